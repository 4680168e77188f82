package reconcile

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// flags adds the second opinions an operator must see.
func (d *deriver) flags(wi int, w *pcl.Workflow, ws *pcl.WorkflowStatus) {
	f := d.f
	add := func(fl pcl.Flag) {
		if !slices.Contains(ws.Flags, fl) {
			ws.Flags = append(ws.Flags, fl)
		}
	}
	if f.info != nil {
		if w.Detector != "" && len(f.info.Components) > 0 && !slices.Contains(f.info.Components, w.Detector) {
			add(pcl.FlagDetectorOff)
		}
		if strings.HasPrefix(f.info.Class, "Commissioning") || (f.info.Stop != nil && f.info.BField < 3.0 && !strings.HasPrefix(f.info.Class, "Cosmics")) {
			add(pcl.FlagSpecialRun)
		}
	}
	if d.atRisk(ws) { // risk.go
		add(pcl.FlagAtRisk)
		ws.AtRiskUntil = LockAt(*f.info.Stop)
	}
	if d.unchanged {
		add(pcl.FlagUnchangedPayload)
	}
	if ws.Quality == pcl.QualityBad {
		add(pcl.FlagVetoed)
	}
	for i := range w.Inputs {
		in := &w.Inputs[i]
		hv := &f.inputs[f.cat.InputIndexOf(wi, i)]
		h := f.latest(hv)
		if h == nil {
			continue
		}
		if hv.files > 1 {
			add(pcl.FlagUploadBurst)
		}
		if m := f.marker(hv); h.Prep || (m != nil && m.Prep) {
			add(pcl.FlagRoutedToPrep)
		}
		if !d.harvestTimeout.IsZero() && !h.At.Before(d.harvestTimeout) {
			add(pcl.FlagPartialStatistics)
		}
		if in.TimeType == pcl.TimeLumi && len(h.Payloads) > 0 {
			first := h.Payloads[0].Since
			for _, p := range h.Payloads {
				first = min(first, p.Since)
			}
			if r, lumi := pcl.UnpackLumi(first); r == f.run && lumi > 1 {
				add(pcl.FlagLumiGap)
			}
		}
		if f.burst(hv) {
			add(pcl.FlagUploadBurst)
		}
	}
	if len(ws.Flags) > 1 { // most workflows have no flag: skip the sort's call
		slices.Sort(ws.Flags)
	}
}

// decide derives the run's readiness from its workflows, the overrides and Tier-0's releases, and the
// observations it rests on (ev, a range of the deriver's citations).
func (d *deriver) decide(rs *pcl.RunState) (pcl.Decision, evRange) {
	f := d.f
	dec := pcl.Decision{Run: f.run, Blocking: []string{}}
	for i := range rs.Workflows {
		ws := &rs.Workflows[i] // a range value would copy each status
		if ws.Required && !ws.State.OK(d.cp.NoPayloadAccepted(ws)) {
			dec.Blocking = append(dec.Blocking, ws.Name)
		}
	}
	if f.release != nil {
		r := f.release
		dec.State, dec.Releasable = pcl.ReadinessReleased, true
		dec.Reason = fmt.Sprintf("Tier-0 released PromptReco (%s) %s", r.Dataset, clock(r.At))
		return dec, d.citeOne(r)
	}
	if o, ok := d.runOverride(); ok {
		switch o.Action {
		case pcl.OverrideHold:
			dec.State = pcl.ReadinessHeld
			dec.Reason = fmt.Sprintf("held by %s: %s", o.Actor, o.Reason)
			return dec, d.citeOne(o)
		case pcl.OverrideRelease:
			dec.State, dec.Releasable = pcl.ReadinessForced, true
			dec.Reason = fmt.Sprintf("forced by %s: %s", o.Actor, o.Reason)
			return dec, d.citeOne(o)
		}
	}
	switch {
	case f.info == nil:
		dec.State, dec.Reason = pcl.ReadinessWaiting, "OMS has not reported the run yet"
		return dec, evRange{}
	case f.info.Stop == nil:
		// Nothing can be final while the run records: listing every workflow as blocking says nothing.
		dec.State, dec.Reason, dec.Blocking = pcl.ReadinessOngoing, "run ongoing", []string{}
		return dec, evRange{}
	case !f.configured() && f.info.Duration() >= d.cp.MinRunLength:
		dec.State, dec.Reason = pcl.ReadinessWaiting, "Tier-0 express configuration not seen yet"
		if !d.in.Now.Before(rs.Deadline) {
			return d.timedOut(dec, rs)
		}
		return dec, evRange{}
	}
	if len(dec.Blocking) == 0 {
		dec.State, dec.Releasable = pcl.ReadinessReady, true
		dec.Reason = "every required workflow is in an ok final state"
		return dec, d.unionOf(rs, ofRequired)
	}
	if !d.in.Now.Before(rs.Deadline) {
		return d.timedOut(dec, rs)
	}
	// A required workflow in a bad final state can never become ok by itself: the run needs a person,
	// whatever the others still do.
	for i := range rs.Workflows {
		if ws := &rs.Workflows[i]; ofBad.takes(d, ws) {
			dec.State = pcl.ReadinessBlocked
			dec.Reason = blockedReason(ws, len(dec.Blocking))
			return dec, d.unionOf(rs, ofBad)
		}
	}
	dec.State = pcl.ReadinessWaiting
	dec.Reason = waitingReason(rs, dec.Blocking)
	return dec, evRange{}
}

func (d *deriver) timedOut(dec pcl.Decision, rs *pcl.RunState) (pcl.Decision, evRange) {
	dec.State = pcl.ReadinessTimedOut
	dec.Releasable = d.cp.OnTimeout == pcl.OnTimeoutRelease
	action := "held until an operator acts"
	if dec.Releasable {
		action = "released by policy"
	}
	what := "the express configuration"
	if len(dec.Blocking) > 0 {
		what = strings.Join(dec.Blocking, ", ")
	}
	dec.Reason = fmt.Sprintf("deadline %s after stop passed waiting for %s: %s", d.cp.RunDeadline, what, action)
	// The deadline counts from the stop OMS reported.
	return dec, d.citeOne(d.f.infoObs)
}

// blockedReason names a workflow in a bad final state, its state, why, and what unblocks the run.
func blockedReason(ws *pcl.WorkflowStatus, blocking int) string {
	action := "accept it, release the run, or fix and re-upload"
	if ws.State == pcl.StateNoPayload {
		action = "if the harvest ran and found too few events, accept it; else have it harvested and uploaded again, or release the run"
	}
	r := fmt.Sprintf("%s %s (%s): %s", ws.Name, ws.State, ws.Reason, action)
	if blocking > 1 {
		r += fmt.Sprintf(" (and %d more)", blocking-1)
	}
	return r
}

// waitingReason says in words what the run waits for: the first blocking workflow's story, and how
// many others there are.
func waitingReason(rs *pcl.RunState, blocking []string) string {
	ws, _ := rs.Workflow(blocking[0])
	r := fmt.Sprintf("waiting for %s: %s", ws.Name, ws.Reason)
	if len(blocking) > 1 {
		r += fmt.Sprintf(" (and %d more)", len(blocking)-1)
	}
	return r
}

// runOverride returns the operator's standing run-level override: the newest release, hold or clear.
func (d *deriver) runOverride() (*pcl.Observation, bool) {
	last := d.newestOverride(func(o *pcl.Observation) bool {
		return o.Workflow == "" && (o.Action == pcl.OverrideRelease || o.Action == pcl.OverrideHold || o.Action == pcl.OverrideClear)
	})
	if last == nil || last.Action == pcl.OverrideClear {
		return nil, false
	}
	return last, true
}

// newestOverride returns the newest of the run's overrides that match, nil for none. Overrides are
// ordered by the store's sequence number, the order they were stored in, when every one that matches
// has one: two made in the same instant (a fast script, a fake clock) share a time, and their order is
// the store's. Without sequence numbers (observations that never were in a store) they are ordered by
// time. One rule for the whole set, not a pair at a time, keeps the order total whatever the input.
func (d *deriver) newestOverride(match func(*pcl.Observation) bool) *pcl.Observation {
	bySeq := true
	for _, o := range d.f.overrides {
		if match(o) && o.Seq <= 0 {
			bySeq = false
			break
		}
	}
	var last *pcl.Observation
	for _, o := range d.f.overrides {
		if !match(o) {
			continue
		}
		if last == nil || (bySeq && o.Seq > last.Seq) || (!bySeq && later(o, last)) {
			last = o
		}
	}
	return last
}

// nextWake is the next moment at which time alone changes the run's state: a workflow's deadline or risk
// threshold, or the run's deadline.
func (d *deriver) nextWake(rs *pcl.RunState) time.Time {
	now := d.in.Now
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	switch rs.Decision.State {
	case pcl.ReadinessReleased:
		return time.Time{}
	}
	for i := range rs.Workflows {
		ws := &rs.Workflows[i]
		if ws.State.Terminal() || ws.Deadline.IsZero() {
			continue
		}
		consider(ws.Deadline)
		consider(d.riskAt(ws))
	}
	// A waiting or blocked run times out at its deadline; nothing else wakes a blocked one.
	if !rs.Deadline.IsZero() && (rs.Decision.State == pcl.ReadinessWaiting || rs.Decision.State == pcl.ReadinessBlocked) {
		consider(rs.Deadline)
	}
	return next
}
