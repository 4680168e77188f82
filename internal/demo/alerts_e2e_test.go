package demo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/reconcile"
	"github.com/cms-pcl/spyagency/internal/sim"
	"github.com/cms-pcl/spyagency/internal/store"
)

// alertSeed is the seeded world of TestAlertsOnTheSimulator; docs/alerts.md reports what it found.
const alertSeed = 7

// episodes are every alert episode the agency kept: live and history, by fingerprint-like key
// "rule/run/workflow".
func episodes(t *testing.T, st store.Store) map[string][]store.Alert {
	t.Helper()
	ctx := context.Background()
	out := map[string][]store.Alert{}
	add := func(a store.Alert) {
		k := fmt.Sprintf("%s/%d/%s", a.Rule, a.Run, a.Workflow)
		out[k] = append(out[k], a)
	}
	live, err := st.LiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range live {
		add(a)
	}
	for before := int64(0); ; {
		page, err := st.AlertHistory(ctx, store.AlertQuery{Before: before, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page {
			add(a)
		}
		if len(page) < 1000 {
			break
		}
		before = page[len(page)-1].ID
	}
	return out
}

// firedBefore says whether an episode of key fired before t (zero: at any time).
func firedBefore(eps map[string][]store.Alert, key string, t time.Time) bool {
	for _, a := range eps[key] {
		if !a.Fired.IsZero() && (t.IsZero() || a.Fired.Before(t)) {
			return true
		}
	}
	return false
}

// counted says whether a destination tag of a harvested file is one the workflow's state waits for:
// a tag that gates PromptReco, or every tag where none does (design.md, "Matching"; CheckRelease).
func counted(f sim.FileTruth, tag sim.TagTruth) bool {
	anyGating := false
	for _, x := range f.Tags {
		anyGating = anyGating || pcl.TagGates(sim.Synchronization(x.Tag))
	}
	return tag.Status != "skip" && (!anyGating || pcl.TagGates(sim.Synchronization(tag.Tag)))
}

// finalAt is when the truth says a workflow reached a final state, as the agency can see it: its payload
// in every tag it waits for, an upload verdict that fails it, or (no payload) its stream done; zero
// when it never did.
func finalAt(r sim.RunTruth, w sim.WorkflowTruth) time.Time {
	switch w.Outcome {
	case sim.OutcomeMissing:
		return time.Time{}
	case sim.OutcomeNoPayload:
		for _, s := range r.Streams {
			if s.Name == w.Stream {
				return s.Done
			}
		}
		return time.Time{}
	}
	if !w.Harvested || len(w.Files) == 0 {
		return time.Time{}
	}
	var last time.Time
	for _, f := range w.Files {
		for _, tag := range f.Tags {
			if !counted(f, tag) {
				continue
			}
			switch tag.Status {
			case "fail", "too-late":
				return tag.Logged
			case "ok":
				last = maxTime(last, tag.InDB)
			default:
				return time.Time{} // not processed yet
			}
		}
	}
	return last
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// TestAlertsOnTheSimulator runs three simulated days of the default faults, the agency seeing them only
// through its spies, and checks the alerts against the simulator's truth: every injected upload failure
// of a run not yet released raises upload-failed, every workflow not final 10 h after its run's stop
// raises workflow-late, and every workflow that misses Tier-0's own lock of its run (stop + 47.5 h)
// was flagged at-risk with an alert that fired before the lock. Flagged workflows that made it after
// all are the false at-risk alerts; the count is logged (docs/alerts.md reports it).
func TestAlertsOnTheSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("three simulated days")
	}
	t.Parallel()
	d := stepped(t, "default", alertSeed)
	ctx := t.Context()
	start := sim.DefaultStart
	const step = 10 * time.Minute
	end := start.Add(73 * time.Hour)
	for now := start.Add(step); !now.After(end); now = now.Add(step) {
		if err := d.Step(ctx, now); err != nil {
			t.Fatalf("step at %s: %v", now, err)
		}
	}
	eps := episodes(t, d.App.Store)
	late := config.DefaultAlertRules().WorkflowLate.After
	const margin = 15 * time.Minute // the spies' polls and the step between the fact and the alert
	var failures, lateChecked, misses, missesChecked int
	policy := pcl.DefaultPolicy()
	for _, r := range d.Sim.Runs() {
		if r.Stop.IsZero() || r.Stop.Sub(r.Start) < policy.For(r.Class).MinRunLength {
			continue
		}
		for _, w := range r.Workflows {
			key := fmt.Sprintf("%%s/%d/%s", r.Number, w.Workflow)
			// Upload failures: every verdict of a tag the workflow waits for, logged while the run waited
			// for its calibrations.
			for _, f := range w.Files {
				for _, tag := range f.Tags {
					if tag.Status != "fail" || !counted(f, tag) || tag.Logged.Add(margin).After(end) ||
						(!r.Released.IsZero() && !tag.Logged.Before(r.Released)) {
						continue
					}
					failures++
					if !firedBefore(eps, fmt.Sprintf(key, "upload-failed"), time.Time{}) {
						t.Errorf("run %d %s: the upload to %s failed at %s and no upload-failed alert fired", r.Number, w.Workflow, tag.Tag, tag.Logged.Format("Jan 2 15:04"))
					}
				}
			}
			// Late workflows: not final by 10 h after the stop (and the margin).
			due := r.Stop.Add(late + margin)
			if due.Add(step).Before(end) {
				if fin := finalAt(r, w); fin.IsZero() || fin.After(due) {
					lateChecked++
					if !firedBefore(eps, fmt.Sprintf(key, "workflow-late"), time.Time{}) {
						t.Errorf("run %d %s (%s) not final by %s (final %s) and no workflow-late alert fired",
							r.Number, w.Workflow, w.Outcome, due.Format("Jan 2 15:04"), fin.Format("Jan 2 15:04"))
					}
				}
			}
		}
	}
	// Misses, from the agency's own decisions: a run whose first decision at or after Tier-0's lock is
	// timed-out missed it by the workflows it was blocked on. Each of those must have had an at-risk
	// alert that fired before the lock.
	missed := map[string]bool{}
	for _, r := range d.Sim.Runs() {
		if r.Stop.IsZero() {
			continue
		}
		lock := reconcile.LockAt(r.Stop)
		if lock.Add(step).After(end) {
			continue
		}
		ds, err := d.App.Store.Decisions(ctx, r.Number)
		if err != nil {
			continue // a run the agency never decided: too short, or never reported
		}
		var at *pcl.Decision
		ready := false
		for i := range ds {
			if ds[i].Decided.Before(lock) {
				ready = ds[i].Releasable && ds[i].State != pcl.ReadinessTimedOut
				continue
			}
			if at == nil {
				at = &ds[i]
			}
		}
		if ready || at == nil || at.State != pcl.ReadinessTimedOut {
			continue
		}
		for _, w := range at.Blocking {
			misses++
			key := fmt.Sprintf("at-risk/%d/%s", r.Number, w)
			missed[key] = true
			if firedBefore(eps, key, lock) {
				missesChecked++
			} else {
				t.Errorf("run %d %s missed Tier-0's lock at %s without an at-risk alert before it (episodes %+v)",
					r.Number, w, lock.Format("Jan 2 15:04"), eps[key])
			}
		}
	}
	atRisk, falseRisk := 0, 0
	for key, list := range eps {
		if len(list) == 0 || list[0].Rule != "at-risk" || list[0].Fired.IsZero() {
			continue
		}
		truth, ok := d.Sim.Truth(list[0].Run)
		if !ok || reconcile.LockAt(truth.Stop).Add(step).After(end) {
			continue
		}
		atRisk++
		if !missed[key] {
			falseRisk++
			t.Logf("false at-risk: %s (%s) fired %s resolved %s: %s", key, list[0].Summary, list[0].Fired.Sub(truth.Stop), list[0].Resolved.Sub(truth.Stop), list[0].Details)
		}
	}
	if failures == 0 || lateChecked == 0 || misses == 0 {
		t.Fatalf("the world tested nothing: %d upload failures, %d late workflows, %d misses", failures, lateChecked, misses)
	}
	t.Logf("seed %d, 73 simulated hours: %d injected upload failures and %d late workflows, each with its alert; %d misses of Tier-0's lock, each flagged at-risk before it (%d checked); %d at-risk alerts, %d of them false (flagged, then made it)",
		alertSeed, failures, lateChecked, misses, missesChecked, atRisk, falseRisk)
}
