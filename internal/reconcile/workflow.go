package reconcile

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

type deriver struct {
	harvestScan    time.Time     // the harvest area's last good scan
	runLength      time.Duration // zero while the run is ongoing
	harvestTimeout time.Time     // stop + Tier-0's alcaHarvestTimeout; zero while ongoing
	wfDeadline     time.Time     // stop + the class's workflow deadline; zero while ongoing
	// unchanged is set while deriving a workflow when a matched IOV repeats the previous payload.
	unchanged bool
	// waitsHarvest is set when a workflow's state waits for a harvest-area view taken after its
	// stream's end (RunState.WaitsFor).
	waitsHarvest bool
	in           Input
	f            *facts
	cp           pcl.ClassPolicy
	// files and hashes are the backing arrays of every workflow's Files and Hashes, filled up to nf and
	// nh. Filling them by index and setting each workflow's lists once keeps slice headers from being
	// written into the result for every element.
	files, hashes []string
	nf, nh        int
}

// expectation says whether the run is expected to run the workflow, and why (not).
func (d *deriver) expectation(wi int) (expected, known bool, why string) {
	if !d.f.configured() {
		return false, false, "Tier-0 express configuration not seen yet"
	}
	if d.f.wfStreams[wi] == 0 {
		return false, true, "its AlCaReco producer is not in the alca_skim of any express stream of the run"
	}
	return true, true, ""
}

// workflowStreams are the run's express streams that run the workflow, sorted.
func (d *deriver) workflowStreams(wi int) []string {
	var out []string
	for si, s := range d.f.streams {
		if d.f.wfStreams[wi]&(1<<si) != 0 {
			out = append(out, s.name)
		}
	}
	slices.Sort(out)
	return out
}

func (d *deriver) required(w *pcl.Workflow, expected bool) bool {
	if len(d.cp.Required) == 0 {
		return expected
	}
	return slices.Contains(d.cp.Required, w.Name)
}

// workflow derives one workflow's status for the run.
func (d *deriver) workflow(wi int, w *pcl.Workflow, ws *pcl.WorkflowStatus) {
	nf, nh, ev := d.nf, d.nh, d.mark()
	d.derive(wi, w, ws)
	if d.nf > nf {
		ws.Files = d.files[nf:d.nf:d.nf]
	}
	if d.nh > nh {
		ws.Hashes = d.hashes[nh:d.nh:d.nh]
	}
	d.finish(wi, w, ws, ev)
}

// derive sets a fresh status's name, quality, requirement, state and milestones.
func (d *deriver) derive(wi int, w *pcl.Workflow, ws *pcl.WorkflowStatus) {
	d.unchanged = false
	// ws is fresh, zeroed memory: set only what is not zero (a whole literal would also write zeroes).
	ws.Name, ws.Quality, ws.Flags = w.Name, pcl.QualityUnknown, []pcl.Flag{}

	if q := d.f.quality[wi]; q != nil {
		ws.Quality = q.Quality
	}
	expected, known, why := d.expectation(wi)
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
		for i := range f.streams {
			d.cite(f.streams[i].config) // none of them lists the workflow's producer
		}
		return
	case f.info == nil:
		ws.State, ws.Reason = pcl.StatePending, "OMS has not reported the run yet"
		return
	case f.info.Stop == nil:
		ws.State, ws.Reason = pcl.StatePending, "run ongoing"
		return
	}
	if d.runLength < d.cp.MinRunLength {
		ws.State = pcl.StateNotExpected
		ws.Reason = fmt.Sprintf("run lasted %s, shorter than the %s minimum", d.runLength.Round(time.Second), d.cp.MinRunLength)
		ws.Required = false
		d.cite(f.infoObs)
		return
	}
	ws.Deadline = d.wfDeadline
	if !known {
		ws.State, ws.Reason = pcl.StatePending, why
	} else {
		d.progress(wi, w, ws)
	}
	if !ws.State.Terminal() && !d.in.Now.Before(ws.Deadline) {
		ws.Reason = fmt.Sprintf("no final state %s after stop (was %s: %s)", d.cp.WorkflowDeadline, ws.State, ws.Reason)
		ws.State = pcl.StateTimedOut
	}
}

// finish applies what comes after the state: accepted overrides, evidence, flags, the milestones' order.
// ev is where the workflow's citations start.
func (d *deriver) finish(wi int, w *pcl.Workflow, ws *pcl.WorkflowStatus, ev int) {
	noPayloadOK := d.cp.NoPayloadAccepted(ws)
	var accept *pcl.Observation
	if ws.State.Bad(noPayloadOK) {
		if o, ok := d.accepted(w.Name); ok {
			ws.Reason = fmt.Sprintf("%s accepted by %s: %s (was %s)", w.Name, o.Actor, o.Reason, ws.State)
			ws.State = pcl.StateAccepted
			ws.Updated = maxTime(ws.Updated, o.At)
			accept = o
		}
	}
	d.workflowEvidence(wi, ev, ws, accept)
	d.flags(wi, w, ws)
	orderMilestones(&ws.Milestones)
	if len(ws.Hashes) > 1 { // most workflows have one hash: skip the calls
		slices.Sort(ws.Hashes)
		ws.Hashes = slices.Compact(ws.Hashes)
	}
}

// accepted returns the operator's standing accept of a workflow, if the newest accept or clear naming it
// is an accept.
func (d *deriver) accepted(workflow string) (*pcl.Observation, bool) {
	last := d.newestOverride(func(o *pcl.Observation) bool {
		return o.Workflow == workflow && (o.Action == pcl.OverrideAccept || o.Action == pcl.OverrideClear)
	})
	if last == nil || last.Action != pcl.OverrideAccept {
		return nil, false
	}
	return last, true
}

// fileState is where one harvested input file stands, and the evidence it cited.
type fileState struct {
	state  pcl.State
	reason string
	ev     evRange
}

// progress derives the state of an expected workflow of a stopped run from its harvest files onwards.
func (d *deriver) progress(wi int, w *pcl.Workflow, ws *pcl.WorkflowStatus) {
	f := d.f
	var doneAt time.Time
	var done *pcl.Observation // the stream-done seen first
	// Visit only the streams that run the workflow, by their bits: a run has several express streams,
	// a workflow runs in one or two.
	for m := f.wfStreams[wi]; m != 0; m &= m - 1 {
		if s := &f.streams[bits.TrailingZeros32(m)]; s.done != nil && (done == nil || earlierSeen(s.done, done)) {
			doneAt, done = seenAt(s.done), s.done
		}
	}
	if !doneAt.IsZero() {
		setLatest(ws, &ws.Milestones.ExpressDone, doneAt)
	}
	from := d.mark()
	var buf [4]fileState
	states := buf[:0]
	var missing []string
	for i := range w.Inputs {
		in := &w.Inputs[i]
		hv := &f.inputs[f.cat.InputIndexOf(wi, i)]
		if hv.latest == 0 {
			missing = append(missing, in.Tag)
			continue
		}
		// A re-harvest replaces the earlier file: the newest one counts.
		states = append(states, d.file(in, f.cat.InputIndexOf(wi, i), hv, ws))
	}
	harvestFresh := !doneAt.IsZero() && d.harvestScan.After(doneAt)
	if (len(states) == 0 || len(missing) > 0) && !doneAt.IsZero() && !harvestFresh {
		// Absence after the stream's end is concluded from a harvest-area view taken after it: the next
		// such view changes this workflow by itself.
		d.waitsHarvest = true
	}
	noPayload := func(reason string) {
		ws.State, ws.Reason = pcl.StateNoPayload, reason
		d.cut(from)
		d.cite(done)
	}
	if len(states) == 0 {
		switch {
		case harvestFresh:
			noPayload(fmt.Sprintf("%s done at %s and no file of %s in the harvest area", strings.Join(d.workflowStreams(wi), ", "), clock(doneAt), w.Name))
			d.confirmNoPayload(wi, doneAt, ws)
		case !doneAt.IsZero():
			ws.State = pcl.StateAwaitingHarvest
			ws.Reason = "stream done, waiting for a harvest-area scan after it"
		default:
			ws.State = pcl.StateAwaitingHarvest
			ws.Reason = "no harvest output yet"
		}
		return
	}
	var failed int
	ws.State, ws.Reason, failed = combine(states)
	if failed >= 0 {
		d.keep(from, states[failed].ev) // the failing input's verdict, not the others' IOVs
	}
	if len(missing) == 0 {
		return
	}
	switch {
	case !harvestFresh:
		// A workflow's inputs are harvested together; until the stream is done and the area rescanned,
		// a missing input may still come, so the workflow cannot be final yet.
		if ws.State.Terminal() {
			ws.State = pcl.StateUploaded
			ws.Reason = fmt.Sprintf("%s; waiting for the files of %s", ws.Reason, strings.Join(missing, ", "))
		}
	case d.cp.AllowsNoPayload(w.Name):
		// The state stands, but its reason must not claim the missing input's tags.
		ws.Reason = fmt.Sprintf("%s; no file of %s, which this run class accepts", ws.Reason, strings.Join(missing, ", "))
	case ws.State != pcl.StateUploadFailed && ws.State != pcl.StateTooLate:
		// Each input feeds its own destination tags, which PromptReco reads: an input that never came
		// leaves those tags without the run's payload, just as a workflow with no file at all does. So
		// it is no-payload, which this class's policy does not accept; an operator can.
		noPayload(fmt.Sprintf("%s done at %s and no file of %s in the harvest area (the other inputs: %s)",
			strings.Join(d.workflowStreams(wi), ", "), clock(doneAt), strings.Join(missing, ", "), ws.Reason))
	}
}

// confirmNoPayload looks for what confirms that a workflow with no file really ran and wrote nothing
// (design.md, "No payload"): the DQM GUI's insufficient-statistics verdict for the workflow and run, or
// Tier-0 saying the stream is done before its upload timeout (run_stream_done includes AlcaHarvest and
// the upload task, cms-interfaces.md §2; a stream whose harvest never finished is marked done only at
// that timeout). A confirmed no-payload carries the no-payload-confirmed flag and cites what confirmed
// it; an unconfirmed one says what is missing.
func (d *deriver) confirmNoPayload(wi int, doneAt time.Time, ws *pcl.WorkflowStatus) {
	if q := d.f.quality[wi]; q != nil && q.Quality == pcl.QualityInsufficient {
		ws.Flags = append(ws.Flags, pcl.FlagNoPayloadConfirmed)
		ws.Reason += "; confirmed: the DQM GUI's quality tests say insufficient statistics"
		d.cite(q)
		return
	}
	if timeout := d.f.info.Stop.Add(ConditionUploadTimeout); doneAt.Before(timeout) {
		ws.Flags = append(ws.Flags, pcl.FlagNoPayloadConfirmed)
		ws.Reason += fmt.Sprintf("; confirmed: Tier-0 finished the stream %s after stop, before its %s upload timeout, so the harvest ran and wrote nothing",
			doneAt.Sub(*d.f.info.Stop).Round(time.Minute), ConditionUploadTimeout)
		return
	}
	ws.Reason += fmt.Sprintf("; nothing confirms it: no insufficient-statistics verdict from the DQM GUI, and Tier-0 marked the stream done only at its %s upload timeout, so the harvest may never have run", ConditionUploadTimeout)
}

// stateRank orders non-bad file states by progress: a workflow is as far as its least advanced input.
// A switch, not a map: combine runs for every multi-input workflow of every reconcile.
func stateRank(s pcl.State) int {
	switch s {
	case pcl.StateHarvested:
		return 1
	case pcl.StateUploading:
		return 2
	case pcl.StateUploaded:
		return 3
	case pcl.StateInDB:
		return 4
	}
	return 0
}

// inDBReason is a file's reason once in the DB, and inDBReasons[n] what combine makes of n of them: a
// multi-input workflow in the DB, the common case, then takes no allocation. deliveredReason is the
// reason of a file none of whose tags gates PromptReco.
const (
	inDBReason      = "payload in effect at the run in every tag that gates PromptReco"
	deliveredReason = "payload in every destination tag (none gates PromptReco)"
)

var inDBReasons = func() (r [5]string) {
	for n := 1; n < len(r); n++ {
		r[n] = strings.Join(slices.Repeat([]string{inDBReason}, n), "; ")
	}
	return r
}()

// combine folds the inputs' states: a failure anywhere is the workflow's failure, else the least
// advanced. failed is the index of the failing input, -1 for none.
func combine(states []fileState) (st pcl.State, reason string, failed int) {
	if len(states) == 1 {
		if states[0].state == pcl.StateUploadFailed || states[0].state == pcl.StateTooLate {
			failed = 0
		} else {
			failed = -1
		}
		return states[0].state, states[0].reason, failed
	}
	for _, bad := range []pcl.State{pcl.StateUploadFailed, pcl.StateTooLate} {
		for i, s := range states {
			if s.state == bad {
				return s.state, s.reason, i
			}
		}
	}
	least := states[0]
	for _, s := range states[1:] {
		if stateRank(s.state) < stateRank(least.state) {
			least = s
		}
	}
	var buf [4]string
	reasons := buf[:0]
	allInDB := true
	for _, s := range states {
		if s.state == least.state {
			reasons = append(reasons, s.reason)
			allInDB = allInDB && s.reason == inDBReason
		}
	}
	if allInDB && len(reasons) < len(inDBReasons) {
		return least.state, inDBReasons[len(reasons)], -1
	}
	return least.state, strings.Join(reasons, "; "), -1
}

// maxDests bounds the destination tags of one upload that the reconcile follows; PCL inputs have one to
// three, and metadata naming more is garbage.
const maxDests = 8

// destTag is what one destination tag of a harvested file needs and shows. It is small: file keeps one
// for each tag on its stack.
type destTag struct {
	verdict  *pcl.Observation // the newest upload-log verdict of the file for the tag
	k        int32            // its dense index, when known
	known    bool             // the catalogue has the tag
	gating   bool             // it gates PromptReco
	required bool             // the file's state waits for it (see file)
}

// file derives one harvested file's state and records its milestones. ii is the input's dense index.
//
// Which destination tags a file's state waits for: those that gate PromptReco, the IOV in effect at the
// run carrying the run's payload. Where none gates (SiStripQuality's one hlt tag, SiPixelAli's offline
// ones), in-db would otherwise need nothing at all, so then every tag must have the payload delivered,
// wherever it landed. A tag whose upload was skipped (its synchronization took nothing) needs nothing,
// and counts for neither. A failed upload to a tag that does not gate fails nothing: the reason of an
// in-db file mentions it.
func (d *deriver) file(in *pcl.Input, ii int, hv *inputFacts, ws *pcl.WorkflowStatus) fileState {
	h := d.f.latest(hv)
	// Room is certain: index counted every input's latest file and its payloads, and each input belongs
	// to one workflow, derived once.
	d.files[d.nf] = h.File
	d.nf++
	harvested := h.At
	setEarliest(ws, &ws.Milestones.Harvested, harvested)
	for _, p := range h.Payloads {
		d.hashes[d.nh] = p.Payload
		d.nh++
	}
	dests := h.Destinations
	var destIdx []int // the catalogue's indices, when the metadata names the catalogue's tags
	if len(dests) == 0 || slices.Equal(dests, in.Destinations) {
		dests, destIdx = in.Destinations, d.f.cat.DestinationIndicesOf(ii)
	}
	if len(dests) > maxDests {
		// Never conclude in-db from part of the tags: such metadata is garbage or a new kind of upload
		// that someone must look at.
		return fileState{state: pcl.StateHarvested, reason: fmt.Sprintf("the metadata of %s names %d destination tags; at most %d are followed", in.Tag, len(dests), maxDests)}
	}
	// The newest verdict per destination tag counts: a retried upload may succeed after a failure.
	var tags [maxDests]destTag
	d.f.fileStatuses(hv, func(o *pcl.Observation) {
		if j := slices.Index(dests, o.Tag); j >= 0 && later(o, tags[j].verdict) {
			tags[j].verdict = o
		}
	})
	anyGating := false // among the tags that took the upload
	for j, tag := range dests {
		t := &tags[j]
		t.k, t.known = d.destIndex(tag, j, destIdx)
		t.gating = d.gates(tag, t.k, t.known)
		anyGating = anyGating || (t.gating && (t.verdict == nil || t.verdict.Status != pcl.UploadSkip))
	}
	var inDB, lastStatus time.Time
	var notIn []string
	allVerdicts, anyVerdict := true, false
	from := d.mark()
	for j, tag := range dests {
		t := &tags[j]
		skipped := t.verdict != nil && t.verdict.Status == pcl.UploadSkip
		t.required = !skipped && (t.gating || !anyGating)
		if v := t.verdict; v != nil && (t.required || skipped) {
			anyVerdict = true
			lastStatus = maxTime(lastStatus, v.At)
		}
		if !t.required {
			continue // a skipped tag took nothing: nothing to find there
		}
		allVerdicts = allVerdicts && t.verdict != nil
		iovs := d.iovsOf(tag, t.k, t.known)
		if t.gating && len(h.Payloads) > 0 {
			if ok, ins, unchanged := d.inEffect(iovs, in.TimeType, h.Payloads, harvested); ok {
				inDB = maxTime(inDB, ins)
				d.unchanged = d.unchanged || unchanged
				continue
			}
		} else if v := t.verdict; !t.gating && v != nil && (v.Status == pcl.UploadFail || v.Status == pcl.UploadTooLate) {
			// In a tag that does not gate, the payload counts wherever it landed, but only the run's own
			// upload puts it there: after that upload failed, an identical payload found there is a later
			// run's (the newest verdict counts, so a retried upload that succeeded is not refused).
		} else if m := d.delivered(iovs, in.TimeType, h.Payloads, harvested); m != nil {
			d.cite(m)
			inDB = maxTime(inDB, m.Inserted)
			d.unchanged = d.unchanged || (m.Previous != "" && m.Previous == m.Payload)
			continue
		}
		notIn = append(notIn, tag)
	}
	marker := d.f.marker(hv)
	if marker != nil {
		setEarliest(ws, &ws.Milestones.UploadSent, marker.At)
	}
	if len(notIn) == 0 && len(dests) > 0 {
		if !inDB.IsZero() {
			setLatest(ws, &ws.Milestones.InDB, inDB)
		}
		if allVerdicts && anyVerdict {
			setLatest(ws, &ws.Milestones.Uploaded, lastStatus)
		}
		// A constant: a finished workflow needs no story, and this is the hot path.
		reason := inDBReason
		if !anyGating {
			reason = deliveredReason
		}
		for j, tag := range dests {
			if v := tags[j].verdict; !tags[j].required && v != nil && (v.Status == pcl.UploadFail || v.Status == pcl.UploadTooLate) {
				reason += fmt.Sprintf("; the upload to %s, which does not gate PromptReco, says %s %s", tag, v.Status, v.Info)
			}
		}
		return fileState{state: pcl.StateInDB, reason: reason, ev: d.since(from)}
	}
	d.cut(from)
	for _, bad := range [...]pcl.UploadStatus{pcl.UploadFail, pcl.UploadTooLate} {
		for j, tag := range dests {
			t := &tags[j]
			if v := t.verdict; t.required && v != nil && v.Status == bad {
				st := pcl.StateUploadFailed
				if bad == pcl.UploadTooLate {
					st = pcl.StateTooLate
				}
				reason := fmt.Sprintf("upload of %s to %s: %s %s", in.Tag, tag, bad, v.Info)
				if _, set := d.catalogueSay(t.k, t.known); !set && t.gating && d.synchronization(tag, t.k, t.known) == "" {
					reason += fmt.Sprintf(" (no IOV of %s seen for this run: its synchronization is unknown, so it counts as gating PromptReco)", tag)
				}
				if t.gating && len(h.Payloads) > 0 {
					reason += d.notInEffect(tag, d.iovsOf(tag, t.k, t.known), in.TimeType, h.Payloads, harvested)
				}
				d.cite(v)
				return fileState{state: st, reason: reason, ev: d.since(from)}
			}
		}
	}
	// Where the payload is in a gating tag but not in effect at the run (it landed at a later run's
	// since, another row wins), the reason says so whatever the upload log says yet.
	var why string
	for j, tag := range dests {
		if t := &tags[j]; t.required && t.gating && len(h.Payloads) > 0 && slices.Contains(notIn, tag) {
			why += d.notInEffect(tag, d.iovsOf(tag, t.k, t.known), in.TimeType, h.Payloads, harvested)
		}
	}
	if allVerdicts && anyVerdict {
		setLatest(ws, &ws.Milestones.Uploaded, lastStatus)
		return fileState{state: pcl.StateUploaded, reason: "uploaded " + clock(lastStatus) + ", not yet in " + strings.Join(notIn, ", ") + why}
	}
	if marker != nil {
		return fileState{state: pcl.StateUploading, reason: "sent to the dropBox " + clock(marker.At) + ", no upload result yet" + why}
	}
	if anyVerdict {
		return fileState{state: pcl.StateUploading, reason: "upload results for some destination tags only" + why}
	}
	return fileState{state: pcl.StateHarvested, reason: "harvested " + clock(harvested) + ", not uploaded yet" + why}
}

// catalogueSay is the catalogue's say on whether a known destination tag gates.
func (d *deriver) catalogueSay(k int32, known bool) (gates, set bool) {
	if !known {
		return false, false
	}
	return d.f.cat.GatesOf(int(k))
}

// setEarliest and setLatest record a milestone (m is one of ws.Milestones' fields) and keep Updated as
// the newest milestone time met. They take the field rather than a pcl.Milestone: going through
// Milestones.Get and Set is a switch per call on the hot path.
func setEarliest(ws *pcl.WorkflowStatus, m *time.Time, t time.Time) {
	if m.IsZero() || t.Before(*m) {
		*m = t
	}
	if t.After(ws.Updated) {
		ws.Updated = t
	}
}

func setLatest(ws *pcl.WorkflowStatus, m *time.Time, t time.Time) {
	if t.After(*m) {
		*m = t
	}
	if t.After(ws.Updated) {
		ws.Updated = t
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
