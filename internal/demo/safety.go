package demo

import (
	"fmt"
	"slices"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/sim"
)

// CheckRelease is the safety invariant of design.md checked against the simulator's truth: at the moment
// Tier-0 acted on the agency's word (it locked the run), every calibration the run needs was in the
// condition DB (or had nothing to deliver and the policy allows that), or the run's deadline had passed
// under a release-on-timeout policy. It returns one line per violation, each starting with "SAFETY:";
// none means the release was safe. Every test that releases runs through the simulator uses it: the
// end-to-end test of this package and the crash suite (internal/crashtest).
func CheckRelease(truth sim.RunTruth, rel sim.Release, policy pcl.Policy) []string {
	cp := policy.For(truth.Class)
	decided := rel.Locked
	if !truth.Stop.IsZero() && !decided.Before(truth.Stop.Add(cp.RunDeadline)) && cp.OnTimeout == pcl.OnTimeoutRelease {
		return nil // timed out under a release policy: allowed, with an alert
	}
	if truth.Stop.IsZero() || truth.Stop.Sub(truth.Start) < cp.MinRunLength {
		return nil // a run too short to expect calibrations
	}
	var out []string
	for _, w := range truth.Workflows {
		if len(cp.Required) > 0 && !slices.Contains(cp.Required, w.Workflow) {
			continue
		}
		switch w.Outcome {
		case sim.OutcomeNoPayload:
			// The harvest really ran and wrote nothing: PromptReco goes on with the previous conditions,
			// which is safe unless the policy requires this workflow's payload.
			if !cp.AllowsNoPayload(w.Workflow) && cp.RequiresPayload(w.Workflow) {
				out = append(out, fmt.Sprintf("SAFETY: run %d (%s) released at %s while %s had no payload (the policy requires one)",
					truth.Number, truth.Class, decided.Format("Jan 2 15:04"), w.Workflow))
			}
		case sim.OutcomeMissing:
			out = append(out, fmt.Sprintf("SAFETY: run %d (%s) released at %s while %s never delivered",
				truth.Number, truth.Class, decided.Format("Jan 2 15:04"), w.Workflow))
		case sim.OutcomePayload:
			if !w.Harvested || len(w.Files) == 0 {
				out = append(out, fmt.Sprintf("SAFETY: run %d (%s) released at %s before %s was harvested",
					truth.Number, truth.Class, decided.Format("Jan 2 15:04"), w.Workflow))
				continue
			}
			for _, f := range w.Files {
				// PromptReco reads the tags that gate it (design.md, "Matching"): those, or every tag
				// where none gates, must hold the payload.
				anyGating := false
				for _, tag := range f.Tags {
					anyGating = anyGating || pcl.TagGates(sim.Synchronization(tag.Tag))
				}
				for _, tag := range f.Tags {
					if tag.Status == "skip" || (anyGating && !pcl.TagGates(sim.Synchronization(tag.Tag))) {
						continue
					}
					if tag.InDB.IsZero() || tag.InDB.After(decided) {
						inDB := "never in DB"
						if !tag.InDB.IsZero() {
							inDB = "in DB " + tag.InDB.Format("Jan 2 15:04")
						}
						out = append(out, fmt.Sprintf("SAFETY: run %d (%s) released at %s before %s's payload was in %s (status %q, %s)",
							truth.Number, truth.Class, decided.Format("Jan 2 15:04"), w.Workflow, tag.Tag, tag.Status, inDB))
					}
				}
			}
		}
	}
	return out
}

// SafeAt is the first instant at which a release of the run is safe by CheckRelease without its
// deadline: the run stopped (and, long enough to expect calibrations, every required workflow's
// payload is in each tag that gates PromptReco, or its harvest ran and wrote nothing where the policy
// allows that). A no-payload counts from its harvest, not before: nobody can know it earlier. ok is
// false when the run is never safe before its deadline (a missing payload, a failed or too-late upload,
// a harvest not done yet). The study's oracle releases each run at this instant, so the oracle and the
// checker are the same rule.
func SafeAt(truth sim.RunTruth, policy pcl.Policy) (at time.Time, ok bool) {
	cp := policy.For(truth.Class)
	if truth.Stop.IsZero() {
		return time.Time{}, false
	}
	at = truth.Stop
	if truth.Stop.Sub(truth.Start) < cp.MinRunLength {
		return at, true
	}
	for _, w := range truth.Workflows {
		if len(cp.Required) > 0 && !slices.Contains(cp.Required, w.Workflow) {
			continue
		}
		switch w.Outcome {
		case sim.OutcomeNoPayload:
			if !cp.AllowsNoPayload(w.Workflow) && cp.RequiresPayload(w.Workflow) {
				return time.Time{}, false
			}
			if w.HarvestAt.After(at) {
				at = w.HarvestAt
			}
		case sim.OutcomePayload:
			if !w.Harvested || len(w.Files) == 0 {
				return time.Time{}, false
			}
			for _, f := range w.Files {
				anyGating := false
				for _, tag := range f.Tags {
					anyGating = anyGating || pcl.TagGates(sim.Synchronization(tag.Tag))
				}
				for _, tag := range f.Tags {
					if tag.Status == "skip" || (anyGating && !pcl.TagGates(sim.Synchronization(tag.Tag))) {
						continue
					}
					if tag.InDB.IsZero() {
						return time.Time{}, false
					}
					if tag.InDB.After(at) {
						at = tag.InDB
					}
				}
			}
		default: // missing: never delivered
			return time.Time{}, false
		}
	}
	return at, true
}
