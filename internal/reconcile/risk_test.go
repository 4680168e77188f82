package reconcile

import (
	"slices"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// TestAtRiskPrediction: a workflow is flagged at-risk, with Tier-0's lock of the run as the time it has
// left, exactly when it can no longer be ok by that lock without a person: a step behind Tier-0's own
// schedule (harvest by 12 h + 1 h, upload by 18 h, or the policy's fraction of the workflow deadline if
// earlier), or a bad final state. An ongoing run, a workflow on schedule and one that is ok are not.
func TestAtRiskPrediction(t *testing.T) {
	t.Parallel()
	lock := at(47*time.Hour + 30*time.Minute) // the run stopped at t0
	base := concat(one(stopped()), collisionsConfig())
	harvested := concat(base, one(harvest("SiStripApvGain_pcl", time.Hour, h1)))
	failed := concat(harvested, one(upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_prompt", pcl.UploadFail, 70*time.Minute)))
	lateFraction := pcl.DefaultPolicy()
	for i := range lateFraction.Classes {
		lateFraction.Classes[i].AtRiskFraction = 1 // only Tier-0's schedule
	}
	cosmics := concat(one(runObs("Cosmics25", func() *time.Time { s := t0; return &s }())),
		one(expressConfig("ExpressCosmics", "PromptCalibProdSiStrip")), one(streamDone("ExpressCosmics", time.Hour)))
	ongoing := concat(one(runObs("Collisions25", nil)), collisionsConfig())
	tests := []struct {
		name     string
		obs      []pcl.Observation
		policy   pcl.Policy
		now      time.Duration
		workflow string
		risk     bool
	}{
		{"awaiting harvest before the harvest timeout", base, pcl.DefaultPolicy(), 12*time.Hour + 59*time.Minute, "SiStripGains", false},
		{"awaiting harvest an hour past the harvest timeout", base, pcl.DefaultPolicy(), 13 * time.Hour, "SiStripGains", true},
		{"harvested before three quarters of the workflow deadline", harvested, pcl.DefaultPolicy(), 14*time.Hour + 59*time.Minute, "SiStripGains", false},
		{"harvested at three quarters of the workflow deadline", harvested, pcl.DefaultPolicy(), 15 * time.Hour, "SiStripGains", true},
		{"harvested before the upload timeout", harvested, lateFraction, 17*time.Hour + 59*time.Minute, "SiStripGains", false},
		{"harvested at the upload timeout", harvested, lateFraction, 18 * time.Hour, "SiStripGains", true},
		{"upload failed: at once", failed, pcl.DefaultPolicy(), 2 * time.Hour, "SiStripGains", true},
		{"upload failed and accepted", concat(failed, one(override(pcl.OverrideAccept, "SiStripGains", 3*time.Hour))), pcl.DefaultPolicy(), 4 * time.Hour, "SiStripGains", false},
		{"timed out", base, pcl.DefaultPolicy(), 21 * time.Hour, "SiStripGains", true},
		{"in the DB", concat(base, gainsInDB(h1)), pcl.DefaultPolicy(), 30 * time.Hour, "SiStripGains", false},
		{"no payload where the class allows it", cosmics, pcl.DefaultPolicy(), 20 * time.Hour, "SiStripQuality", false},
		{"ongoing run", ongoing, pcl.DefaultPolicy(), 30 * time.Hour, "SiStripGains", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := Reconcile(Input{Run: testRun, Observations: tc.obs, Catalogue: catalog, Policy: tc.policy,
				Sources: freshSources(tc.now), Now: at(tc.now)})
			ws, ok := rs.Workflow(tc.workflow)
			if !ok {
				t.Fatalf("no workflow %s", tc.workflow)
			}
			flagged := slices.Contains(ws.Flags, pcl.FlagAtRisk)
			if flagged != tc.risk {
				t.Fatalf("%s (%s: %s) at-risk=%v, want %v", tc.workflow, ws.State, ws.Reason, flagged, tc.risk)
			}
			switch {
			case tc.risk && !ws.AtRiskUntil.Equal(lock):
				t.Errorf("at risk until %s, want Tier-0's lock %s", ws.AtRiskUntil, lock)
			case !tc.risk && !ws.AtRiskUntil.IsZero():
				t.Errorf("not at risk, but at risk until %s", ws.AtRiskUntil)
			}
		})
	}
}

// TestAtRiskWakesTheRun: the moment a workflow falls behind is a wake-up of its run, so the flag (and
// the alert on it) comes on time, not at the next resync.
func TestAtRiskWakesTheRun(t *testing.T) {
	t.Parallel()
	harvested := concat(one(stopped()), collisionsConfig(), one(harvest("SiStripApvGain_pcl", time.Hour, h1)))
	rs := Reconcile(Input{Run: testRun, Observations: harvested, Catalogue: catalog, Policy: onlyGains(pcl.OnTimeoutRelease),
		Sources: freshSources(2 * time.Hour), Now: at(2 * time.Hour)})
	// Other workflows await their harvest (at risk at 13 h); SiStripGains, harvested, at 15 h.
	if want := at(13 * time.Hour); !rs.NextWake.Equal(want) {
		t.Fatalf("next wake %s, want %s", rs.NextWake, want)
	}
	rs = Reconcile(Input{Run: testRun, Observations: harvested, Catalogue: catalog, Policy: onlyGains(pcl.OnTimeoutRelease),
		Sources: freshSources(13 * time.Hour), Now: at(13 * time.Hour)})
	if want := at(15 * time.Hour); !rs.NextWake.Equal(want) {
		t.Fatalf("next wake %s, want %s (SiStripGains falls behind)", rs.NextWake, want)
	}
}

func TestLockAt(t *testing.T) {
	t.Parallel()
	if got, want := LockAt(t0), t0.Add(47*time.Hour+30*time.Minute); !got.Equal(want) {
		t.Fatalf("LockAt = %s, want %s (48 h release delay − 30 min lock offset)", got, want)
	}
}
