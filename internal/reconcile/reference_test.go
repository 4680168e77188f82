package reconcile

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// This file holds a second reconcile: the rules of design.md written out plainly, with maps, sorting
// and nothing clever, so that a reader can check them against the design at a glance. The fast
// Reconcile (dense indices, pooled scratch, lists threaded through slices) must agree with it on every
// world TestReferenceAgrees draws. Where several observations compete for a slot, both take the newest
// (or earliest) by the same total order, compare: ties must be broken somehow, and the point here is
// the rules, not the tie-breaking.

// refNewest is the newest of the observations by compare, nil for none.
func refNewest(obs []*pcl.Observation) *pcl.Observation {
	if len(obs) == 0 {
		return nil
	}
	sorted := slices.Clone(obs)
	sort.Slice(sorted, func(i, j int) bool { return compare(sorted[i], sorted[j]) < 0 })
	return sorted[len(sorted)-1]
}

// refStanding is the override that stands among obs: the one stored last (the largest sequence number)
// when every one of them was stored, else the newest by compare. Nil for none.
func refStanding(obs []*pcl.Observation) *pcl.Observation {
	for _, o := range obs {
		if o.Seq <= 0 {
			return refNewest(obs)
		}
	}
	if len(obs) == 0 {
		return nil
	}
	sorted := slices.Clone(obs)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Seq < sorted[j].Seq })
	return sorted[len(sorted)-1]
}

// refOldest is the oldest of the observations by compare, nil for none.
func refOldest(obs []*pcl.Observation) *pcl.Observation {
	if len(obs) == 0 {
		return nil
	}
	sorted := slices.Clone(obs)
	sort.Slice(sorted, func(i, j int) bool { return compare(sorted[i], sorted[j]) < 0 })
	return sorted[0]
}

// refRun is what the reference knows of a run, sorted by what the rules ask.
type refRun struct {
	in         Input
	cp         pcl.ClassPolicy
	runObs     *pcl.Observation            // the newest OMS report (by last_update)
	info       *pcl.RunInfo                // its run info
	configs    map[string]*pcl.Observation // stream → newest express configuration
	dones      map[string]*pcl.Observation // stream → first stream-done seen
	release    *pcl.Observation            // the first release
	files      map[string][]*pcl.Observation
	markers    map[string][]*pcl.Observation // input tag → markers of any file
	statuses   map[string][]*pcl.Observation // input tag → upload records of any file
	iovs       map[string][]*pcl.Observation // destination tag → all its IOVs
	qualities  map[string][]*pcl.Observation // workflow → DQM verdicts
	overrides  []*pcl.Observation
	unchanged  bool // set while deriving a workflow
	confirmed  bool // set while deriving a workflow: its no-payload is confirmed
	waitsScan  bool
	wfEvidence map[string][]int64
}

// refInputTag is the input tag a marker or upload record names: its own, or its file name's.
func refInputTag(o *pcl.Observation) string {
	if o.InputTag != "" {
		return o.InputTag
	}
	n, err := pcl.ParseHarvestName(path(o.File))
	if err != nil {
		return ""
	}
	return n.InputTag
}

// path is a file name after its directory.
func path(name string) string { return name[strings.LastIndex(name, "/")+1:] }

// refSameUpload says whether two file names are files of one upload.
func refSameUpload(a, b string) bool {
	if a == b {
		return true
	}
	na, errA := pcl.ParseHarvestName(path(a))
	nb, errB := pcl.ParseHarvestName(path(b))
	return errA == nil && errB == nil && na.Stem() == nb.Stem()
}

func refIndex(in Input) *refRun {
	r := &refRun{in: in, configs: map[string]*pcl.Observation{}, dones: map[string]*pcl.Observation{},
		files: map[string][]*pcl.Observation{}, markers: map[string][]*pcl.Observation{}, statuses: map[string][]*pcl.Observation{},
		iovs: map[string][]*pcl.Observation{}, qualities: map[string][]*pcl.Observation{}, wfEvidence: map[string][]int64{}}
	var runs []*pcl.Observation
	var releases []*pcl.Observation
	configs := map[string][]*pcl.Observation{}
	for i := range in.Observations {
		o := &in.Observations[i]
		if o.Validate() != nil {
			continue
		}
		if o.Kind == pcl.KindIOV { // any run's: an IOV's since may name another run
			r.iovs[o.Tag] = append(r.iovs[o.Tag], o)
			continue
		}
		if o.Kind == pcl.KindUploadStatus {
			if o.File == "" {
				continue
			}
			mine := o.Run == in.Run
			if o.Run == 0 {
				n, err := pcl.ParseHarvestName(path(o.File))
				mine = err != nil || n.Run == in.Run
			}
			if mine {
				r.statuses[refInputTag(o)] = append(r.statuses[refInputTag(o)], o)
			}
			continue
		}
		if o.Run != in.Run {
			continue
		}
		switch o.Kind {
		case pcl.KindRun:
			runs = append(runs, o)
		case pcl.KindExpressConfig:
			configs[o.Stream] = append(configs[o.Stream], o)
		case pcl.KindStreamDone:
			if o.Done && (r.dones[o.Stream] == nil || earlierSeen(o, r.dones[o.Stream])) {
				r.dones[o.Stream] = o
			}
		case pcl.KindRelease:
			releases = append(releases, o)
		case pcl.KindHarvestFile:
			r.files[o.InputTag] = append(r.files[o.InputTag], o)
		case pcl.KindUploadMarker:
			r.markers[refInputTag(o)] = append(r.markers[refInputTag(o)], o)
		case pcl.KindDQMQuality:
			r.qualities[o.Workflow] = append(r.qualities[o.Workflow], o)
		case pcl.KindOverride:
			r.overrides = append(r.overrides, o)
		}
	}
	// OMS updates a run as it goes: the newest last_update is what it says now.
	sort.Slice(runs, func(i, j int) bool {
		a, b := runs[i].RunInfo.LastUpdate, runs[j].RunInfo.LastUpdate
		if !a.Equal(b) {
			return a.Before(b)
		}
		return compare(runs[i], runs[j]) < 0
	})
	if len(runs) > 0 {
		r.runObs = runs[len(runs)-1]
		info := *r.runObs.RunInfo
		r.info = &info
	}
	for stream, list := range configs {
		r.configs[stream] = refNewest(list)
	}
	r.release = refOldest(releases)
	if r.info != nil {
		r.cp = in.Policy.For(r.info.Class)
	} else {
		r.cp = in.Policy.For("")
	}
	return r
}

// noPayloadOK is the policy's word on a no-payload: any absence for the workflows it names as such, a
// confirmed one for those it does not require to deliver.
func (r *refRun) noPayloadOK(workflow string, confirmed bool) bool {
	if slices.Contains(r.cp.NoPayloadOK, "*") || slices.Contains(r.cp.NoPayloadOK, workflow) {
		return true
	}
	required := slices.Contains(r.cp.RequirePayload, "*") || slices.Contains(r.cp.RequirePayload, workflow)
	return confirmed && !required
}

func (r *refRun) stop() time.Time {
	if r.info == nil || r.info.Stop == nil {
		return time.Time{}
	}
	return *r.info.Stop
}

// streamsOf are the run's express streams that run the workflow: configured with its producer.
func (r *refRun) streamsOf(w *pcl.Workflow) []string {
	var out []string
	for stream, cfg := range r.configs {
		if slices.Contains(cfg.Producers, w.Producer) && w.RunsIn(stream) {
			out = append(out, stream)
		}
	}
	sort.Strings(out)
	return out
}

// winners are a tag's IOVs that win at their since (the newest insertion), by since.
func refWinners(iovs []*pcl.Observation) []*pcl.Observation {
	bySince := map[uint64]*pcl.Observation{}
	for _, o := range iovs {
		w := bySince[o.Since]
		if w == nil || o.Inserted.After(w.Inserted) || (o.Inserted.Equal(w.Inserted) && o.Payload > w.Payload) {
			bySince[o.Since] = o
		}
	}
	var out []*pcl.Observation
	for _, o := range bySince {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Since < out[j].Since })
	return out
}

// gates says whether a tag gates PromptReco: the catalogue's word, else its newest synchronization.
func (r *refRun) gates(tag string) bool {
	if k, ok := r.in.Catalogue.DestinationIndex(tag); ok {
		if g, set := r.in.Catalogue.GatesOf(k); set {
			return g
		}
	}
	var named []*pcl.Observation
	for _, o := range r.iovs[tag] {
		if o.Synchronization != "" {
			named = append(named, o)
		}
	}
	sync := ""
	if o := refNewest(named); o != nil {
		sync = o.Synchronization
	}
	return sync != "hlt" && sync != "express" && sync != "any" && sync != "validation" && sync != "mc" &&
		sync != "runmc" && sync != "offline"
}

func refCarries(payloads []pcl.IOV, hash string) bool {
	for _, p := range payloads {
		if p.Payload == hash {
			return true
		}
	}
	return false
}

// refMatch says whether a required tag holds the run's payload as the rules want it, and the IOVs that
// show it.
func (r *refRun) refMatch(tag string, gating bool, tt pcl.TimeType, h *pcl.Observation) (bool, []*pcl.Observation) {
	winners := refWinners(r.iovs[tag])
	if gating && len(h.Payloads) > 0 {
		// The IOV in effect at each since the file gives within the run (or at the run's first since)
		// carries one of the run's payloads, inserted after the harvest.
		var sinces []uint64
		for _, p := range h.Payloads {
			if pcl.RunOfSince(tt, p.Since) == r.in.Run {
				sinces = append(sinces, p.Since)
			}
		}
		if len(sinces) == 0 {
			sinces = []uint64{pcl.SinceOfRun(tt, r.in.Run)}
		}
		var shown []*pcl.Observation
		for _, s := range sinces {
			var at *pcl.Observation
			for _, w := range winners {
				if w.Since == s {
					at = w
				}
			}
			if at == nil || !refCarries(h.Payloads, at.Payload) || at.Inserted.Before(h.At) {
				return false, nil
			}
			shown = append(shown, at)
		}
		sort.Slice(shown, func(i, j int) bool { return shown[i].Since < shown[j].Since })
		if p := shown[0]; p.Previous != "" && p.Previous == p.Payload {
			r.unchanged = true
		}
		return true, shown
	}
	for _, w := range winners {
		var ok bool
		if len(h.Payloads) > 0 {
			// Delivered wherever it landed.
			ok = refCarries(h.Payloads, w.Payload) && !w.Inserted.Before(h.At)
		} else {
			// Without hashes: a since within the run, inserted after the stop.
			wtt := tt
			if w.TimeType != "" {
				wtt = w.TimeType
			}
			ok = pcl.RunOfSince(wtt, w.Since) == r.in.Run && w.Inserted.After(r.stop())
		}
		if ok {
			if w.Previous != "" && w.Previous == w.Payload {
				r.unchanged = true
			}
			return true, []*pcl.Observation{w}
		}
	}
	return false, nil
}

// refFile is one input's latest file's state, the evidence it cites, and its milestones.
type refFile struct {
	state                                   pcl.State
	evidence                                []int64
	harvested, sent, uploaded, inDB, marker time.Time
	hasMarker                               *pcl.Observation
}

func seqs(obs ...*pcl.Observation) []int64 {
	var out []int64
	for _, o := range obs {
		if o != nil && o.Seq > 0 {
			out = append(out, o.Seq)
		}
	}
	return out
}

func (r *refRun) refFileState(in *pcl.Input, h *pcl.Observation) refFile {
	out := refFile{harvested: h.At}
	var markers, statuses []*pcl.Observation
	for _, m := range r.markers[in.Tag] {
		if refSameUpload(m.File, h.File) {
			markers = append(markers, m)
		}
	}
	for _, s := range r.statuses[in.Tag] {
		if refSameUpload(s.File, h.File) {
			statuses = append(statuses, s)
		}
	}
	out.hasMarker = refOldest(markers)
	if out.hasMarker != nil {
		out.sent = out.hasMarker.At
	}
	dests := h.Destinations
	if len(dests) == 0 {
		dests = in.Destinations
	}
	if len(dests) > maxDests {
		out.state = pcl.StateHarvested
		return out
	}
	verdict := map[string]*pcl.Observation{}
	for _, tag := range dests {
		var mine []*pcl.Observation
		for _, s := range statuses {
			if s.Tag == tag {
				mine = append(mine, s)
			}
		}
		verdict[tag] = refNewest(mine)
	}
	anyGating := false // among the tags that took the upload
	for _, tag := range dests {
		anyGating = anyGating || (r.gates(tag) && (verdict[tag] == nil || verdict[tag].Status != pcl.UploadSkip))
	}
	// The tags the file waits for: the gating ones, or all where none gates; a skipped one needs nothing.
	var required []string
	var lastStatus time.Time
	anyVerdict, allVerdicts := false, true
	for _, tag := range dests {
		v := verdict[tag]
		skipped := v != nil && v.Status == pcl.UploadSkip
		need := !skipped && (r.gates(tag) || !anyGating)
		if v != nil && (need || skipped) {
			anyVerdict = true
			if v.At.After(lastStatus) {
				lastStatus = v.At
			}
		}
		if need {
			required = append(required, tag)
			allVerdicts = allVerdicts && v != nil
		}
	}
	var shown []*pcl.Observation
	missing := false
	for _, tag := range required {
		if v := verdict[tag]; !r.gates(tag) && v != nil && (v.Status == pcl.UploadFail || v.Status == pcl.UploadTooLate) {
			missing = true // a non-gating tag's payload must come from the run's own upload, which failed
			continue
		}
		ok, iovs := r.refMatch(tag, r.gates(tag), in.TimeType, h)
		if !ok {
			missing = true
			continue
		}
		shown = append(shown, iovs...)
	}
	if !missing && len(dests) > 0 {
		out.state = pcl.StateInDB
		out.evidence = seqs(shown...)
		for _, o := range shown {
			if o.Inserted.After(out.inDB) {
				out.inDB = o.Inserted
			}
		}
		if allVerdicts && anyVerdict {
			out.uploaded = lastStatus
		}
		return out
	}
	for _, bad := range []pcl.UploadStatus{pcl.UploadFail, pcl.UploadTooLate} {
		for _, tag := range dests {
			if v := verdict[tag]; v != nil && v.Status == bad && slices.Contains(required, tag) {
				out.state = pcl.StateUploadFailed
				if bad == pcl.UploadTooLate {
					out.state = pcl.StateTooLate
				}
				out.evidence = seqs(v)
				return out
			}
		}
	}
	switch {
	case allVerdicts && anyVerdict:
		out.state, out.uploaded = pcl.StateUploaded, lastStatus
	case out.hasMarker != nil, anyVerdict:
		out.state = pcl.StateUploading
	default:
		out.state = pcl.StateHarvested
	}
	return out
}

// refWorkflow derives one workflow's status.
func (r *refRun) refWorkflow(w *pcl.Workflow) pcl.WorkflowStatus {
	ws := pcl.WorkflowStatus{Name: w.Name, Quality: pcl.QualityUnknown, Flags: []pcl.Flag{}}
	r.unchanged, r.confirmed = false, false
	if q := refNewest(r.qualities[w.Name]); q != nil {
		ws.Quality = q.Quality
	}
	required := func(expected bool) bool {
		if len(r.cp.Required) == 0 {
			return expected
		}
		return slices.Contains(r.cp.Required, w.Name)
	}
	configured := len(r.configs) > 0
	streams := r.streamsOf(w)
	expected := len(streams) > 0
	ws.Required = required(expected || !configured)
	ws.Milestones.Stop = r.stop()
	var evidence []int64
	switch {
	case configured && !expected:
		ws.State, ws.Required = pcl.StateNotExpected, required(false)
		for _, cfg := range r.configs {
			evidence = append(evidence, seqs(cfg)...)
		}
	case r.info == nil || r.info.Stop == nil:
		ws.State = pcl.StatePending
	case r.info.Duration() < r.cp.MinRunLength:
		ws.State, ws.Required = pcl.StateNotExpected, false
		evidence = seqs(r.runObs)
	default:
		ws.Deadline = r.stop().Add(r.cp.WorkflowDeadline)
		if !configured {
			ws.State = pcl.StatePending
		} else {
			evidence = r.refProgress(w, streams, &ws)
		}
		if !ws.State.Terminal() && !r.in.Now.Before(ws.Deadline) {
			ws.State = pcl.StateTimedOut
			evidence = seqs(r.runObs)
		}
	}
	if ws.State.Bad(r.noPayloadOK(w.Name, r.confirmed)) {
		var named []*pcl.Observation
		for _, o := range r.overrides {
			if o.Workflow == w.Name && (o.Action == pcl.OverrideAccept || o.Action == pcl.OverrideClear) {
				named = append(named, o)
			}
		}
		if last := refStanding(named); last != nil && last.Action == pcl.OverrideAccept {
			ws.State = pcl.StateAccepted
			evidence = seqs(last)
		}
	}
	switch ws.State {
	case pcl.StateInDB, pcl.StateUploadFailed, pcl.StateTooLate, pcl.StateNoPayload, pcl.StateNotExpected,
		pcl.StateAccepted, pcl.StateTimedOut:
	default:
		evidence = nil
	}
	slices.Sort(evidence)
	ws.Evidence = slices.Compact(evidence)
	r.wfEvidence[w.Name] = ws.Evidence
	ws.Flags = r.refFlags(w, &ws)
	orderMilestonesPlainly(&ws.Milestones)
	return ws
}

// refProgress derives an expected workflow of a stopped run from its files; it returns the evidence.
func (r *refRun) refProgress(w *pcl.Workflow, streams []string, ws *pcl.WorkflowStatus) []int64 {
	var done *pcl.Observation
	for _, s := range streams {
		if d := r.dones[s]; d != nil && (done == nil || earlierSeen(d, done)) {
			done = d
		}
	}
	if done != nil {
		ws.Milestones.ExpressDone = seenAt(done)
	}
	fresh := done != nil && r.in.Sources[pcl.SourceHarvest].View.After(seenAt(done))
	var states []refFile
	var missing bool
	for i := range w.Inputs {
		h := refNewest(r.files[w.Inputs[i].Tag])
		if h == nil {
			missing = true
			continue
		}
		f := r.refFileState(&w.Inputs[i], h)
		states = append(states, f)
		m := &ws.Milestones
		if m.Harvested.IsZero() || f.harvested.Before(m.Harvested) {
			m.Harvested = f.harvested
		}
		if !f.sent.IsZero() && (m.UploadSent.IsZero() || f.sent.Before(m.UploadSent)) {
			m.UploadSent = f.sent
		}
		if f.uploaded.After(m.Uploaded) {
			m.Uploaded = f.uploaded
		}
		if f.inDB.After(m.InDB) {
			m.InDB = f.inDB
		}
	}
	if missing && done != nil && !fresh {
		r.waitsScan = true
	}
	noPayload := func() []int64 {
		ws.State = pcl.StateNoPayload
		return seqs(done)
	}
	if len(states) == 0 {
		if fresh {
			// Confirmed by the DQM GUI (every test said 30), or by Tier-0 finishing the stream before
			// its 18 h upload timeout; only a whole absence, never a missing input among others.
			ev := noPayload()
			if q := refNewest(r.qualities[w.Name]); q != nil && q.Quality == pcl.QualityInsufficient {
				r.confirmed = true
				ev = append(ev, seqs(q)...)
			} else if seenAt(done).Before(r.stop().Add(18 * time.Hour)) {
				r.confirmed = true
			}
			return ev
		}
		ws.State = pcl.StateAwaitingHarvest
		return nil
	}
	// A failure of any input is the workflow's; else it is as far as its least advanced input.
	var evidence []int64
	failed := false
	for _, bad := range []pcl.State{pcl.StateUploadFailed, pcl.StateTooLate} {
		for _, f := range states {
			if f.state == bad && !failed {
				ws.State, evidence, failed = bad, f.evidence, true
			}
		}
	}
	if !failed {
		order := []pcl.State{pcl.StateHarvested, pcl.StateUploading, pcl.StateUploaded, pcl.StateInDB}
		least := len(order) - 1
		for _, f := range states {
			least = min(least, slices.Index(order, f.state))
		}
		ws.State = order[least]
		for _, f := range states {
			evidence = append(evidence, f.evidence...)
		}
	}
	if !missing {
		return evidence
	}
	switch {
	case !fresh:
		if ws.State.Terminal() {
			ws.State = pcl.StateUploaded
		}
	case r.cp.AllowsNoPayload(w.Name):
	case ws.State != pcl.StateUploadFailed && ws.State != pcl.StateTooLate:
		return noPayload()
	}
	return evidence
}

func (r *refRun) refFlags(w *pcl.Workflow, ws *pcl.WorkflowStatus) []pcl.Flag {
	set := map[pcl.Flag]bool{}
	if r.info != nil {
		if w.Detector != "" && len(r.info.Components) > 0 && !slices.Contains(r.info.Components, w.Detector) {
			set[pcl.FlagDetectorOff] = true
		}
		if strings.HasPrefix(r.info.Class, "Commissioning") || (r.info.Stop != nil && r.info.BField < 3.0 && !strings.HasPrefix(r.info.Class, "Cosmics")) {
			set[pcl.FlagSpecialRun] = true
		}
	}
	if ws.State != pcl.StateNotExpected && !ws.Deadline.IsZero() {
		early := ws.State == pcl.StateAwaitingHarvest || ws.State == pcl.StateHarvested || ws.State == pcl.StateUploading
		// At risk of missing Tier-0's lock: a bad final state, a step behind Tier-0's schedule, or an
		// upload that the FCSR has already passed.
		if (ws.State.Terminal() && ws.State.Bad(r.noPayloadOK(w.Name, r.confirmed))) ||
			(!ws.State.Terminal() && (!r.in.Now.Before(r.refRiskAt(ws)) || (r.in.FCSR > r.in.Run && early))) {
			set[pcl.FlagAtRisk] = true
			ws.AtRiskUntil = r.stop().Add(48*time.Hour - 30*time.Minute)
		}
	}
	if r.unchanged {
		set[pcl.FlagUnchangedPayload] = true
	}
	if r.confirmed {
		set[pcl.FlagNoPayloadConfirmed] = true
	}
	if ws.Quality == pcl.QualityBad {
		set[pcl.FlagVetoed] = true
	}
	for _, in := range w.Inputs {
		h := refNewest(r.files[in.Tag])
		if h == nil {
			continue
		}
		names := map[string]bool{}
		for _, f := range r.files[in.Tag] {
			names[f.File] = true
		}
		var markers, statuses []*pcl.Observation
		for _, m := range r.markers[in.Tag] {
			if refSameUpload(m.File, h.File) {
				markers = append(markers, m)
			}
		}
		for _, s := range r.statuses[in.Tag] {
			if refSameUpload(s.File, h.File) {
				statuses = append(statuses, s)
			}
		}
		// Two files of one input, or one tag's upload logged at two times: more than one upload.
		burst := len(names) > 1
		for _, a := range statuses {
			for _, b := range statuses {
				burst = burst || (a.Tag == b.Tag && !a.At.Equal(b.At))
			}
		}
		if burst {
			set[pcl.FlagUploadBurst] = true
		}
		if m := refOldest(markers); h.Prep || (m != nil && m.Prep) {
			set[pcl.FlagRoutedToPrep] = true
		}
		if !r.stop().IsZero() && !h.At.Before(r.stop().Add(AlcaHarvestTimeout)) {
			set[pcl.FlagPartialStatistics] = true
		}
		if in.TimeType == pcl.TimeLumi && len(h.Payloads) > 0 {
			first := h.Payloads[0].Since
			for _, p := range h.Payloads {
				first = min(first, p.Since)
			}
			if run, lumi := pcl.UnpackLumi(first); run == r.in.Run && lumi > 1 {
				set[pcl.FlagLumiGap] = true
			}
		}
	}
	out := []pcl.Flag{}
	for f := range set {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// orderMilestonesPlainly puts the milestones in loop order: each is at most the next one passed and at
// least the stop; express-done, and any time moved, is observed.
func orderMilestonesPlainly(m *pcl.Milestones) {
	if !m.ExpressDone.IsZero() {
		m.Observed.Add(pcl.MilestoneExpressDone)
	}
	for i := len(pcl.AllMilestones) - 1; i >= 1; i-- {
		k := pcl.AllMilestones[i]
		t := m.Get(k)
		if t.IsZero() {
			continue
		}
		for _, later := range pcl.AllMilestones[i+1:] {
			if lt := m.Get(later); !lt.IsZero() {
				if t.After(lt) {
					t = lt
					m.Observed.Add(k)
				}
				break
			}
		}
		if t.Before(m.Stop) {
			t = m.Stop
			m.Observed.Add(k)
		}
		m.Set(k, t)
	}
}

// refReconcile is the whole reference: workflows, then the run's readiness and when to look again.
func refReconcile(in Input) pcl.RunState {
	r := refIndex(in)
	rs := pcl.RunState{Run: in.Run, Info: r.info}
	if r.info != nil {
		rs.Class = r.info.Class
	}
	if !r.stop().IsZero() {
		rs.Deadline = r.stop().Add(r.cp.RunDeadline)
	}
	for _, w := range in.Catalogue.Workflows() {
		rs.Workflows = append(rs.Workflows, r.refWorkflow(&w))
	}
	rs.Decision = r.refDecide(&rs)
	rs.NextWake = r.refNextWake(&rs)
	if r.waitsScan && rs.Decision.State != pcl.ReadinessReleased {
		rs.WaitsFor = []pcl.Source{pcl.SourceHarvest}
	}
	return rs
}

func (r *refRun) refDecide(rs *pcl.RunState) pcl.Decision {
	d := pcl.Decision{Run: r.in.Run, Blocking: []string{}}
	okState := func(ws pcl.WorkflowStatus) bool {
		return ws.State.OK(r.noPayloadOK(ws.Name, slices.Contains(ws.Flags, pcl.FlagNoPayloadConfirmed)))
	}
	for _, ws := range rs.Workflows {
		if ws.Required && !okState(ws) {
			d.Blocking = append(d.Blocking, ws.Name)
		}
	}
	union := func(keep func(ws pcl.WorkflowStatus) bool) []int64 {
		var out []int64
		for _, ws := range rs.Workflows {
			if keep(ws) {
				out = append(out, ws.Evidence...)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	timedOut := func() pcl.Decision {
		d.State, d.Releasable, d.Evidence = pcl.ReadinessTimedOut, r.cp.OnTimeout == pcl.OnTimeoutRelease, seqs(r.runObs)
		return d
	}
	if r.release != nil {
		d.State, d.Releasable, d.Evidence = pcl.ReadinessReleased, true, seqs(r.release)
		return d
	}
	var runLevel []*pcl.Observation
	for _, o := range r.overrides {
		if o.Workflow == "" && o.Action != pcl.OverrideAccept {
			runLevel = append(runLevel, o)
		}
	}
	if o := refStanding(runLevel); o != nil && o.Action == pcl.OverrideHold {
		d.State, d.Evidence = pcl.ReadinessHeld, seqs(o)
		return d
	} else if o != nil && o.Action == pcl.OverrideRelease {
		d.State, d.Releasable, d.Evidence = pcl.ReadinessForced, true, seqs(o)
		return d
	}
	switch {
	case r.info == nil:
		d.State = pcl.ReadinessWaiting
		return d
	case r.info.Stop == nil:
		d.State, d.Blocking = pcl.ReadinessOngoing, []string{}
		return d
	case len(r.configs) == 0 && r.info.Duration() >= r.cp.MinRunLength:
		if !r.in.Now.Before(rs.Deadline) {
			return timedOut()
		}
		d.State = pcl.ReadinessWaiting
		return d
	case len(d.Blocking) == 0:
		d.State, d.Releasable = pcl.ReadinessReady, true
		d.Evidence = union(func(ws pcl.WorkflowStatus) bool { return ws.Required })
		return d
	case !r.in.Now.Before(rs.Deadline):
		return timedOut()
	}
	bad := func(ws pcl.WorkflowStatus) bool {
		return ws.Required && ws.State.Bad(r.noPayloadOK(ws.Name, slices.Contains(ws.Flags, pcl.FlagNoPayloadConfirmed)))
	}
	for _, ws := range rs.Workflows {
		if bad(ws) {
			d.State, d.Evidence = pcl.ReadinessBlocked, union(bad)
			return d
		}
	}
	d.State = pcl.ReadinessWaiting
	return d
}

// refRiskAt is when a workflow that is not final falls behind Tier-0's schedule: 12 h + 1 h for a
// harvest, 18 h for an upload, or the policy's fraction of the workflow deadline if that is earlier.
func (r *refRun) refRiskAt(ws *pcl.WorkflowStatus) time.Time {
	step := 18 * time.Hour
	if ws.State == pcl.StatePending || ws.State == pcl.StateAwaitingHarvest {
		step = 13 * time.Hour
	}
	return r.stop().Add(min(step, time.Duration(float64(r.cp.WorkflowDeadline)*r.cp.AtRiskFraction)))
}

func (r *refRun) refNextWake(rs *pcl.RunState) time.Time {
	if rs.Decision.State == pcl.ReadinessReleased {
		return time.Time{}
	}
	var times []time.Time
	for _, ws := range rs.Workflows {
		if !ws.State.Terminal() && !ws.Deadline.IsZero() {
			times = append(times, ws.Deadline, r.refRiskAt(&ws))
		}
	}
	if !rs.Deadline.IsZero() && (rs.Decision.State == pcl.ReadinessWaiting || rs.Decision.State == pcl.ReadinessBlocked) {
		times = append(times, rs.Deadline)
	}
	var next time.Time
	for _, t := range times {
		if t.After(r.in.Now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// numberFacts gives each distinct fact a sequence number, as a store does: growing in order of first
// appearance, with gaps (other runs' facts), and the same number for the same fact duplicated.
func numberFacts(r *rand.Rand, obs []pcl.Observation) {
	byKey := map[[16]byte]int64{}
	last := int64(0)
	for i := range obs {
		k := obs[i].KeySum()
		if _, ok := byKey[k]; !ok {
			last += 1 + r.Int64N(3)
			byKey[k] = last
		}
		obs[i].Seq = byKey[k]
	}
}

// differences lists where the fast and the reference results disagree: states, requirements,
// readiness, blocking, releasability, milestones, flags, quality, evidence, deadlines, wake-up and
// waits. Reasons are worded for people and are not compared.
func differences(fast, ref pcl.RunState) []string {
	var out []string
	diff := func(what string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, fmt.Sprintf("%s: fast %v, reference %v", what, a, b))
		}
	}
	diff("decision state", fast.Decision.State, ref.Decision.State)
	diff("releasable", fast.Decision.Releasable, ref.Decision.Releasable)
	diff("blocking", fast.Decision.Blocking, ref.Decision.Blocking)
	diff("decision evidence", fast.Decision.Evidence, ref.Decision.Evidence)
	diff("deadline", fast.Deadline, ref.Deadline)
	diff("next wake", fast.NextWake, ref.NextWake)
	diff("waits for", fast.WaitsFor, ref.WaitsFor)
	diff("class", fast.Class, ref.Class)
	if len(fast.Workflows) != len(ref.Workflows) {
		return append(out, fmt.Sprintf("%d workflows, reference %d", len(fast.Workflows), len(ref.Workflows)))
	}
	for i, f := range fast.Workflows {
		g := ref.Workflows[i]
		diff(f.Name+" state", f.State, g.State)
		diff(f.Name+" required", f.Required, g.Required)
		diff(f.Name+" flags", f.Flags, g.Flags)
		diff(f.Name+" quality", f.Quality, g.Quality)
		diff(f.Name+" milestones", f.Milestones, g.Milestones)
		diff(f.Name+" evidence", f.Evidence, g.Evidence)
		diff(f.Name+" deadline", f.Deadline, g.Deadline)
		diff(f.Name+" at risk until", f.AtRiskUntil, g.AtRiskUntil)
	}
	return out
}

// TestReferenceAgrees: the fast reconcile and the plain one agree on thousands of random worlds.
func TestReferenceAgrees(t *testing.T) {
	t.Parallel()
	n := 5000
	if testing.Short() {
		n = 500
	}
	// The catalogue's word on gating, both ways, besides the tags' synchronizations.
	catalogues := []*pcl.Catalogue{catalog, catalog,
		withGates("SiStripApvGain_pcl", map[string]bool{"SiStripApvGain_PCL_v0_hlt": true, "SiStripApvGain_PCL_v0_prompt": false}),
		withGates("SiStripBadStrip_pcl", map[string]bool{"SiStripBadChannel_PCL_v1_hlt": true})}
	for seed := range n {
		r := rand.New(rand.NewPCG(uint64(seed), 0x2ef))
		obs, p, now, sources, fcsr := randomWorld(r)
		numberFacts(r, obs)
		in := Input{Run: testRun, Observations: obs, Catalogue: catalogues[r.IntN(len(catalogues))], Policy: p, Sources: sources,
			FCSR: fcsr, Now: at(now)}
		ref := refReconcile(in)
		if d := differences(Reconcile(in), ref); len(d) > 0 {
			t.Fatalf("seed %d: the fast reconcile and the reference disagree:\n%s", seed, strings.Join(d, "\n"))
		}
		// The fast one must not depend on the order of its input or on duplicates, which the
		// reference, by its sorting, cannot.
		shuffled := slices.Clone(obs)
		for i := r.IntN(len(obs) + 1); i > 0; i-- {
			shuffled = append(shuffled, obs[r.IntN(len(obs))])
		}
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		in.Observations = shuffled
		if d := differences(Reconcile(in), ref); len(d) > 0 {
			t.Fatalf("seed %d, shuffled: the fast reconcile and the reference disagree:\n%s", seed, strings.Join(d, "\n"))
		}
	}
}
