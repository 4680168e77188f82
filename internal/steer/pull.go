package steer

import (
	"math"
	"slices"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// ReadyRun is one element of GET /t0/v1/ready_runs, in Tier-0's field names.
type ReadyRun struct {
	Run uint32 `json:"run"`
	// Ready already accounts for in-order release: a releasable run behind an earlier run that blocks is
	// not ready, so Tier-0 needs no other condition of ours to act on it.
	Ready   bool          `json:"ready"`
	State   pcl.Readiness `json:"state"`
	Version int64         `json:"version"`
	// Decided is when the version was decided; null for a run with no persisted decision yet.
	Decided *time.Time `json:"decided"`
}

// Releasable says whether a run may go to PromptReco on its own merits, before in-order release is
// considered. Both the stored decision and the current policy must agree: a decision that was never
// persisted (version 0) tells Tier-0 nothing, and a timed-out run is released only while its class policy
// still says so, so that tightening the policy to "hold" takes effect before the run is decided again.
func Releasable(rs pcl.RunState, policy pcl.Policy) bool {
	d := rs.Decision
	if d.Version <= 0 || !d.Releasable {
		return false
	}
	switch d.State {
	case pcl.ReadinessReady, pcl.ReadinessForced, pcl.ReadinessReleased:
		return true
	case pcl.ReadinessTimedOut:
		return policy.For(runClass(rs)).OnTimeout == pcl.OnTimeoutRelease
	}
	// ongoing, waiting, held, and anything this code does not know.
	return false
}

// runClass is the run's class as reconcile recorded it, or as OMS reported it.
func runClass(rs pcl.RunState) string {
	if rs.Class == "" && rs.Info != nil {
		return rs.Info.Class
	}
	return rs.Class
}

// byRun returns the states in run order without touching the caller's slice, dropping run 0, which no
// run has.
func byRun(states []pcl.RunState) []pcl.RunState {
	out := make([]pcl.RunState, 0, len(states))
	for _, rs := range states {
		if rs.Run != 0 {
			out = append(out, rs)
		}
	}
	slices.SortStableFunc(out, func(a, b pcl.RunState) int {
		switch {
		case a.Run < b.Run:
			return -1
		case a.Run > b.Run:
			return 1
		}
		return 0
	})
	return out
}

// FirstUnreadyRun is N such that every run below N may be released: the lowest known run that is not
// releasable (ongoing, waiting, held, undecided, or timed out under a hold policy), or the highest known
// run + 1 when none blocks. With no known run it is 1: nothing may be released.
//
// N is a single boundary, so every run that is not releasable stops it, whatever its class policy says
// about in-order release; a run above a blocker whose class does not release in order shows up as ready in
// ReadyRuns instead. Runs Spy Agency does not know (gaps in the numbering) do not block: Spy Agency learns
// every run from OMS, and run numbers are not contiguous.
func FirstUnreadyRun(states []pcl.RunState, policy pcl.Policy) uint32 {
	return FirstUnreadyIn(store.ReleaseView{Runs: states}, policy)
}

// FirstUnreadyIn is FirstUnreadyRun over a release view: the lowest run of v.Runs that is not
// releasable, or the highest known run (v.Highest, or the highest of v.Runs) + 1. The runs a view
// leaves out are persisted releases, releasable under any policy, so the answer is the one every run
// would give.
func FirstUnreadyIn(v store.ReleaseView, policy pcl.Policy) uint32 {
	sorted := byRun(v.Runs)
	for _, rs := range sorted {
		if !Releasable(rs, policy) {
			return rs.Run
		}
	}
	highest := v.Highest
	if len(sorted) > 0 {
		highest = max(highest, sorted[len(sorted)-1].Run)
	}
	if highest == 0 {
		return 1
	}
	if highest == math.MaxUint32 {
		return highest // cannot say "above the highest"; the highest itself stays unreleased, which is safe
	}
	return highest + 1
}

// ReadyRuns lists the known runs in [from, to] (to 0: no upper bound) in run order. A run is ready when it
// is releasable and no earlier run blocks it: a run that is not releasable blocks every later run when its
// own class policy says InOrder. Earlier runs outside the range count, so states must hold every run up to
// to, not only the range.
func ReadyRuns(states []pcl.RunState, from, to uint32, policy pcl.Policy) []ReadyRun {
	out := []ReadyRun{}
	blocked := false
	for _, rs := range byRun(states) {
		if to != 0 && rs.Run > to {
			break
		}
		ok := Releasable(rs, policy)
		ready := ok && !blocked
		if !ok && policy.For(runClass(rs)).InOrder {
			blocked = true
		}
		if rs.Run < from {
			continue
		}
		out = append(out, readyRun(rs, ready))
	}
	return out
}

func readyRun(rs pcl.RunState, ready bool) ReadyRun {
	d := rs.Decision
	r := ReadyRun{Run: rs.Run, Ready: ready, State: d.State, Version: d.Version}
	if d.Version > 0 && !d.Decided.IsZero() {
		t := d.Decided.UTC()
		r.Decided = &t
	}
	if d.Version <= 0 || r.State == "" {
		// Not decided yet: from Tier-0's side that is waiting, whatever the state carries.
		r.State = pcl.ReadinessWaiting
	}
	return r
}
