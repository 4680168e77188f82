package reconcile

import (
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// TestOverridesOfOneInstantKeepTheStoresOrder: two overrides made in the same instant share their time;
// the one stored last (the larger sequence number) stands, whichever order a time-and-fields comparison
// would give them. Without sequence numbers (never stored) the time decides, as before.
func TestOverridesOfOneInstantKeepTheStoresOrder(t *testing.T) {
	t.Parallel()
	h1 := "2f1a7c3e5b9d0c4e6f8a1b2c3d4e5f6071829304"
	base := concat(one(stopped()), collisionsConfig(), gainsInDB(h1))
	failed := concat(one(stopped()), collisionsConfig(), one(harvest("SiStripApvGain_pcl", time.Hour, h1),
		upload("SiStripApvGain_pcl", "SiStripApvGain_PCL_v0_prompt", pcl.UploadFail, 70*time.Minute)))
	seq := func(o pcl.Observation, n int64) pcl.Observation { o.Seq = n; return o }
	hold, clear := override(pcl.OverrideHold, "", 3*time.Hour), override(pcl.OverrideClear, "", 3*time.Hour)
	accept, unaccept := override(pcl.OverrideAccept, "SiStripGains", 3*time.Hour), override(pcl.OverrideClear, "SiStripGains", 3*time.Hour)
	for _, tc := range []struct {
		name string
		obs  []pcl.Observation
		want pcl.Readiness
	}{
		// "clear" sorts before "hold": by comparison alone the hold would stand after the clear.
		{"hold, then clear", concat(base, one(seq(hold, 900), seq(clear, 901))), pcl.ReadinessReady},
		{"clear, then hold", concat(base, one(seq(clear, 900), seq(hold, 901))), pcl.ReadinessHeld},
		{"accept, then clear", concat(failed, one(seq(accept, 900), seq(unaccept, 901))), pcl.ReadinessBlocked},
		{"clear, then accept", concat(failed, one(seq(unaccept, 900), seq(accept, 901))), pcl.ReadinessReady},
		{"never stored: by time and fields", concat(base, one(hold, clear)), pcl.ReadinessHeld},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, obs := range [][]pcl.Observation{tc.obs, reversed(tc.obs)} {
				rs := Reconcile(Input{Run: testRun, Observations: obs, Catalogue: catalog, Policy: onlyGains(pcl.OnTimeoutRelease),
					Sources: freshSources(4 * time.Hour), Now: at(4 * time.Hour)})
				if rs.Decision.State != tc.want {
					t.Fatalf("%s (%s), want %s", rs.Decision.State, rs.Decision.Reason, tc.want)
				}
			}
		})
	}
}

func reversed(obs []pcl.Observation) []pcl.Observation {
	out := make([]pcl.Observation, len(obs))
	for i, o := range obs {
		out[len(obs)-1-i] = o
	}
	return out
}
