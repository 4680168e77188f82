package demo

import (
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/sim"
)

// TestSafeAtAgreesWithCheckRelease: the study's oracle (SafeAt) and the end-to-end test's checker
// (CheckRelease) are one rule: a release at SafeAt passes, a release a second earlier does not (unless
// nothing was needed), and a run never safe fails until its deadline.
func TestSafeAtAgreesWithCheckRelease(t *testing.T) {
	t.Parallel()
	stop := sim.DefaultStart.Add(10 * time.Hour)
	start := stop.Add(-2 * time.Hour)
	inDB := stop.Add(3 * time.Hour)
	payload := sim.WorkflowTruth{Workflow: "SiStripGains", Outcome: sim.OutcomePayload, Harvested: true, HarvestAt: stop.Add(time.Hour),
		Files: []sim.FileTruth{{Tags: []sim.TagTruth{
			{Tag: "SiStripApvGain_PCL_v0_prompt", Status: "ok", InDB: inDB},
			{Tag: "SiStripApvGain_PCL_v0_hlt", Status: "ok", InDB: inDB.Add(5 * time.Hour)}, // does not gate
		}}}}
	noPayload := sim.WorkflowTruth{Workflow: "SiPixelAli", Outcome: sim.OutcomeNoPayload, HarvestAt: stop.Add(4 * time.Hour)}
	missing := sim.WorkflowTruth{Workflow: "SiPixelLA", Outcome: sim.OutcomeMissing}
	notYet := sim.WorkflowTruth{Workflow: "SiPixelLA", Outcome: sim.OutcomePayload}
	failed := payload
	failed.Files = []sim.FileTruth{{Tags: []sim.TagTruth{{Tag: "SiStripApvGain_PCL_v0_prompt", Status: "fail"}}}}
	strict := pcl.DefaultPolicy()
	strict.Classes[0].RequirePayload = []string{"SiPixelAli"}
	run := func(start time.Time, ws ...sim.WorkflowTruth) sim.RunTruth {
		r := sim.RunTruth{Class: "Collisions26", Workflows: ws}
		r.Number, r.Start, r.Stop = 400001, start, stop
		return r
	}
	for _, tc := range []struct {
		name   string
		truth  sim.RunTruth
		policy pcl.Policy
		want   time.Time // zero: never safe before the deadline
	}{
		{"a payload counts once in every gating tag", run(start, payload), pcl.DefaultPolicy(), inDB},
		{"a no-payload counts from its harvest", run(start, payload, noPayload), pcl.DefaultPolicy(), noPayload.HarvestAt},
		{"a required payload that never came", run(start, payload, noPayload), strict, time.Time{}},
		{"a missing payload", run(start, payload, missing), pcl.DefaultPolicy(), time.Time{}},
		{"a payload not harvested yet", run(start, notYet), pcl.DefaultPolicy(), time.Time{}},
		{"a failed upload", run(start, failed), pcl.DefaultPolicy(), time.Time{}},
		{"a run too short to expect anything", run(stop.Add(-time.Minute), missing), pcl.DefaultPolicy(), stop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			at, ok := SafeAt(tc.truth, tc.policy)
			if ok != !tc.want.IsZero() || !at.Equal(tc.want) {
				t.Fatalf("SafeAt = %s, %v; want %s", at, ok, tc.want)
			}
			deadline := stop.Add(tc.policy.For(tc.truth.Class).RunDeadline)
			if v := CheckRelease(tc.truth, sim.Release{Locked: deadline}, tc.policy); len(v) != 0 {
				t.Errorf("a release at the deadline is a timeout, allowed: %v", v)
			}
			if !ok {
				if v := CheckRelease(tc.truth, sim.Release{Locked: deadline.Add(-time.Minute)}, tc.policy); len(v) == 0 {
					t.Error("a release before the deadline of a run never safe passed the check")
				}
				return
			}
			if v := CheckRelease(tc.truth, sim.Release{Locked: at}, tc.policy); len(v) != 0 {
				t.Errorf("a release at SafeAt failed the check: %v", v)
			}
			if at.After(stop) && tc.want.Equal(inDB) {
				if v := CheckRelease(tc.truth, sim.Release{Locked: at.Add(-time.Second)}, tc.policy); len(v) == 0 {
					t.Error("a release a second before SafeAt passed the check")
				}
			}
		})
	}
}

// A violation says when the payload reached the condition DB, or that it never did.
func TestCheckReleaseSaysWhenThePayloadCame(t *testing.T) {
	t.Parallel()
	stop := sim.DefaultStart.Add(10 * time.Hour)
	inDB := stop.Add(3 * time.Hour)
	wf := func(tag sim.TagTruth) sim.WorkflowTruth {
		return sim.WorkflowTruth{Workflow: "SiStripGains", Outcome: sim.OutcomePayload, Harvested: true, HarvestAt: stop.Add(time.Hour),
			Files: []sim.FileTruth{{Tags: []sim.TagTruth{tag}}}}
	}
	for _, tc := range []struct {
		tag  sim.TagTruth
		want string
	}{
		{sim.TagTruth{Tag: "SiStripApvGain_PCL_v0_prompt", Status: "ok", InDB: inDB}, `(status "ok", in DB ` + inDB.Format("Jan 2 15:04") + ")"},
		{sim.TagTruth{Tag: "SiStripApvGain_PCL_v0_prompt", Status: "fail"}, `(status "fail", never in DB)`},
	} {
		r := sim.RunTruth{Class: "Collisions26", Workflows: []sim.WorkflowTruth{wf(tc.tag)}}
		r.Number, r.Start, r.Stop = 400001, stop.Add(-2*time.Hour), stop
		v := CheckRelease(r, sim.Release{Locked: stop.Add(2 * time.Hour)}, pcl.DefaultPolicy())
		if len(v) != 1 || !strings.HasSuffix(v[0], tc.want) {
			t.Errorf("violations %q, want one ending %q", v, tc.want)
		}
	}
}
