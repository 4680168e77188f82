package reconcile

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

type deriver struct {
	in Input
	f  *facts
	cp pcl.ClassPolicy
}

// expectation says whether the run is expected to run the workflow, and why (not).
func (d *deriver) expectation(w *pcl.Workflow) (expected, known bool, why string) {
	if len(d.f.configs) == 0 {
		return false, false, "Tier-0 express configuration not seen yet"
	}
	if len(d.workflowStreams(w)) == 0 {
		return false, true, w.Producer + " is not in the alca_skim of any express stream of the run"
	}
	return true, true, ""
}

// workflowStreams are the run's express streams that run the workflow, sorted.
func (d *deriver) workflowStreams(w *pcl.Workflow) []string {
	streams := d.f.producers[w.Producer]
	for i, s := range streams {
		if !w.RunsIn(s) {
			// Rare: the producer runs in a stream that is not the workflow's. Filter on a copy.
			out := slices.Clone(streams[:i])
			for _, s := range streams[i+1:] {
				if w.RunsIn(s) {
					out = append(out, s)
				}
			}
			return out
		}
	}
	return streams
}

func (d *deriver) required(w *pcl.Workflow, expected bool) bool {
	if len(d.cp.Required) == 0 {
		return expected
	}
	return slices.Contains(d.cp.Required, w.Name)
}

// workflow derives one workflow's status for the run.
func (d *deriver) workflow(wi int, w *pcl.Workflow) pcl.WorkflowStatus {
	ws := pcl.WorkflowStatus{Name: w.Name, Quality: pcl.QualityUnknown, Flags: []pcl.Flag{}}
	if len(w.Inputs) > 0 {
		ws.Files = make([]string, 0, len(w.Inputs))
	}
	if q := d.f.quality[wi]; q != nil {
		ws.Quality = q.Quality
	}
	expected, known, why := d.expectation(w)
	// A workflow whose expectation is unknown counts as required: until Tier-0 says what runs, the
	// agency must not assume that anything may be skipped.
	ws.Required = d.required(w, expected || !known)
	f := d.f
	if f.info != nil && f.info.Stop != nil {
		ws.Milestones.Stop = *f.info.Stop
		ws.Updated = *f.info.Stop
	}
	switch {
	case known && !expected:
		ws.State, ws.Reason, ws.Required = pcl.StateNotExpected, why, d.required(w, false)
		return d.finish(wi, w, ws)
	case f.info == nil:
		ws.State, ws.Reason = pcl.StatePending, "OMS has not reported the run yet"
		return d.finish(wi, w, ws)
	case f.info.Stop == nil:
		ws.State, ws.Reason = pcl.StatePending, "run ongoing"
		return d.finish(wi, w, ws)
	}
	stop := *f.info.Stop
	if dur := f.info.Duration(); dur < d.cp.MinRunLength {
		ws.State = pcl.StateNotExpected
		ws.Reason = fmt.Sprintf("run lasted %s, shorter than the %s minimum", dur.Round(time.Second), d.cp.MinRunLength)
		ws.Required = false
		return d.finish(wi, w, ws)
	}
	ws.Deadline = stop.Add(d.cp.WorkflowDeadline)
	if !known {
		ws.State, ws.Reason = pcl.StatePending, why
	} else {
		d.progress(wi, w, &ws)
	}
	if !ws.State.Terminal() && !d.in.Now.Before(ws.Deadline) {
		ws.Reason = fmt.Sprintf("no final state %s after stop (was %s: %s)", d.cp.WorkflowDeadline, ws.State, ws.Reason)
		ws.State = pcl.StateTimedOut
	}
	return d.finish(wi, w, ws)
}

// finish applies what comes after the state: accepted overrides, flags.
func (d *deriver) finish(wi int, w *pcl.Workflow, ws pcl.WorkflowStatus) pcl.WorkflowStatus {
	noPayloadOK := d.cp.AllowsNoPayload(w.Name)
	if ws.State.Bad(noPayloadOK) {
		if o, ok := d.accepted(w.Name); ok {
			ws.Reason = fmt.Sprintf("%s accepted by %s: %s (was %s)", w.Name, o.Actor, o.Reason, ws.State)
			ws.State = pcl.StateAccepted
			ws.Updated = maxTime(ws.Updated, o.At)
		}
	}
	d.flags(wi, w, &ws)
	ws.Updated = maxTime(ws.Updated, ws.Milestones.Latest())
	slices.Sort(ws.Hashes)
	ws.Hashes = slices.Compact(ws.Hashes)
	return ws
}

// accepted returns the operator's standing accept of a workflow, if the newest accept or clear naming it
// is an accept.
func (d *deriver) accepted(workflow string) (*pcl.Observation, bool) {
	var last *pcl.Observation
	for _, o := range d.f.overrides {
		if o.Workflow == workflow && (o.Action == pcl.OverrideAccept || o.Action == pcl.OverrideClear) && later(o, last) {
			last = o
		}
	}
	if last == nil || last.Action != pcl.OverrideAccept {
		return nil, false
	}
	return last, true
}

// fileState is where one harvested input file stands.
type fileState struct {
	state  pcl.State
	reason string
}

// progress derives the state of an expected workflow of a stopped run from its harvest files onwards.
func (d *deriver) progress(wi int, w *pcl.Workflow, ws *pcl.WorkflowStatus) {
	f := d.f
	streams := d.workflowStreams(w)
	var doneAt time.Time
	for _, s := range streams {
		if o, ok := f.done[s]; ok && (doneAt.IsZero() || seenAt(o).Before(doneAt)) {
			doneAt = seenAt(o)
		}
	}
	if !doneAt.IsZero() {
		ws.Milestones.ExpressDone = doneAt
	}
	var states []fileState
	var missing []string
	for i := range w.Inputs {
		in := &w.Inputs[i]
		hv := &f.inputs[f.cat.InputIndexOf(wi, i)]
		if hv.latest == nil {
			missing = append(missing, in.Tag)
			continue
		}
		// A re-harvest replaces the earlier file: the newest one counts.
		states = append(states, d.file(in, hv, ws))
	}
	harvestFresh := !doneAt.IsZero() && d.in.Sources[pcl.SourceHarvest].LastSuccess.After(doneAt)
	if len(states) == 0 {
		switch {
		case harvestFresh:
			ws.State = pcl.StateNoPayload
			ws.Reason = fmt.Sprintf("%s done at %s and no file of %s in the harvest area", strings.Join(streams, ", "), clock(doneAt), w.Name)
		case !doneAt.IsZero():
			ws.State = pcl.StateAwaitingHarvest
			ws.Reason = "stream done, waiting for a harvest-area scan after it"
		default:
			ws.State = pcl.StateAwaitingHarvest
			ws.Reason = "no harvest output yet"
		}
		return
	}
	ws.State, ws.Reason = combine(states)
	// A workflow's inputs are harvested together; until the stream is done and the area rescanned, a
	// missing input may still come, so the workflow cannot be final yet.
	if len(missing) > 0 && !harvestFresh && ws.State.Terminal() {
		ws.State = pcl.StateUploaded
		ws.Reason = fmt.Sprintf("%s; waiting for the files of %s", ws.Reason, strings.Join(missing, ", "))
	}
}

// stateRank orders non-bad file states by progress: a workflow is as far as its least advanced input.
var stateRank = map[pcl.State]int{pcl.StateHarvested: 1, pcl.StateUploading: 2, pcl.StateUploaded: 3, pcl.StateInDB: 4}

// combine folds the inputs' states: a failure anywhere is the workflow's failure, else the least advanced.
func combine(states []fileState) (pcl.State, string) {
	for _, bad := range []pcl.State{pcl.StateUploadFailed, pcl.StateTooLate} {
		for _, s := range states {
			if s.state == bad {
				return s.state, s.reason
			}
		}
	}
	least := states[0]
	for _, s := range states[1:] {
		if stateRank[s.state] < stateRank[least.state] {
			least = s
		}
	}
	var reasons []string
	for _, s := range states {
		if s.state == least.state {
			reasons = append(reasons, s.reason)
		}
	}
	return least.state, strings.Join(reasons, "; ")
}

// file derives one harvested file's state and records its milestones.
func (d *deriver) file(in *pcl.Input, hv *inputFacts, ws *pcl.WorkflowStatus) fileState {
	h := hv.latest
	key := stem(h.File)
	ws.Files = append(ws.Files, h.File)
	harvested := h.At
	setEarliest(&ws.Milestones, pcl.MilestoneHarvested, harvested)
	if ws.Hashes == nil {
		ws.Hashes = make([]string, 0, len(h.Payloads))
	}
	for _, p := range h.Payloads {
		ws.Hashes = append(ws.Hashes, p.Payload)
	}
	dests := h.Destinations
	if len(dests) == 0 {
		dests = in.Destinations
	}
	// The newest verdict per destination tag counts: a retried upload may succeed after a failure.
	statuses := hv.fileStatuses(key)
	var inDB time.Time
	var notIn []string
	for _, tag := range dests {
		if v := verdict(statuses, tag); v != nil && v.Status == pcl.UploadSkip {
			continue // the tag's synchronization took nothing: nothing to find there
		}
		if t, ok := d.matchIOV(tag, in.TimeType, h.Payloads, harvested); ok {
			inDB = maxTime(inDB, t)
			continue
		}
		notIn = append(notIn, tag)
	}
	marker := hv.marker(key)
	if marker != nil {
		setEarliest(&ws.Milestones, pcl.MilestoneUploadSent, marker.At)
	}
	var lastStatus time.Time
	allVerdicts := len(dests) > 0
	anyVerdict := false
	for _, tag := range dests {
		v := verdict(statuses, tag)
		if v == nil {
			allVerdicts = false
			continue
		}
		anyVerdict = true
		lastStatus = maxTime(lastStatus, v.At)
	}
	if len(notIn) == 0 && len(dests) > 0 {
		if !inDB.IsZero() {
			setLatest(&ws.Milestones, pcl.MilestoneInDB, inDB)
		}
		if allVerdicts {
			setLatest(&ws.Milestones, pcl.MilestoneUploaded, lastStatus)
		}
		return fileState{pcl.StateInDB, in.Tag + " in " + strings.Join(dests, ", ")}
	}
	for _, bad := range []pcl.UploadStatus{pcl.UploadFail, pcl.UploadTooLate} {
		for _, tag := range dests {
			if v := verdict(statuses, tag); v != nil && v.Status == bad {
				st := pcl.StateUploadFailed
				if bad == pcl.UploadTooLate {
					st = pcl.StateTooLate
				}
				return fileState{st, fmt.Sprintf("upload of %s to %s: %s %s", in.Tag, tag, bad, v.Info)}
			}
		}
	}
	if allVerdicts {
		setLatest(&ws.Milestones, pcl.MilestoneUploaded, lastStatus)
		return fileState{pcl.StateUploaded, "uploaded " + clock(lastStatus) + ", not yet in " + strings.Join(notIn, ", ")}
	}
	if marker != nil {
		return fileState{pcl.StateUploading, "sent to the dropBox " + clock(marker.At) + ", no upload result yet"}
	}
	if anyVerdict {
		return fileState{pcl.StateUploading, "upload results for some destination tags only"}
	}
	return fileState{pcl.StateHarvested, fmt.Sprintf("harvested %s, not uploaded yet", clock(harvested))}
}

// matchIOV finds, in a destination tag, a winning IOV that carries one of the run's payloads and was
// inserted after the harvest. Without payload hashes (no access to the file), the since must point into
// the run and the IOV be inserted after the run stopped.
func (d *deriver) matchIOV(tag string, tt pcl.TimeType, payloads []pcl.IOV, harvested time.Time) (time.Time, bool) {
	for _, o := range d.f.tagIOVs(tag) {
		if len(payloads) > 0 {
			if carries(payloads, o.Payload) && !o.Inserted.Before(harvested) {
				return o.Inserted, true
			}
			continue
		}
		if o.TimeType != "" {
			tt = o.TimeType
		}
		if pcl.RunOfSince(tt, o.Since) == d.f.run && o.Inserted.After(*d.f.info.Stop) {
			return o.Inserted, true
		}
	}
	return time.Time{}, false
}

// carries says whether a harvested file holds the payload.
func carries(payloads []pcl.IOV, hash string) bool {
	for _, p := range payloads {
		if p.Payload == hash {
			return true
		}
	}
	return false
}

func setEarliest(m *pcl.Milestones, k pcl.Milestone, t time.Time) {
	if cur := m.Get(k); cur.IsZero() || t.Before(cur) {
		m.Set(k, t)
	}
}

func setLatest(m *pcl.Milestones, k pcl.Milestone, t time.Time) {
	if t.After(m.Get(k)) {
		m.Set(k, t)
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
