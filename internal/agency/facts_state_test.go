package agency

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// rememberedIsStored fails unless the agency's remembered state of the run, if any, is the stored one.
func (h *harness) rememberedIsStored(when string) {
	h.t.Helper()
	rs, _, ok := h.ag.facts.state(run)
	if !ok {
		return
	}
	a, _ := json.Marshal(rs)
	b, _ := json.Marshal(h.state())
	if string(a) != string(b) {
		h.t.Fatalf("%s: remembered state differs from the stored one:\n got %s\nwant %s", when, a, b)
	}
}

// TestRememberedStateAfterSameDecision: a released run's reconcile whose decision tells Tier-0 nothing
// new (sameDecision) but whose reason or blocking list moved stores its state with the run's latest
// stored decision (PutRunState keeps the versioned decision); the agency must remember that, not its
// unversioned decision, or the alerts (OpenRunStates) and the next comparisons read a state the store
// never held.
func TestRememberedStateAfterSameDecision(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	h.clk.Advance(time.Minute)
	h.ingest(pcl.SourceTier0, release(h.clk.Now()))
	if d := h.state().Decision; d.State != pcl.ReadinessReleased || len(d.Blocking) == 0 {
		t.Fatalf("released with nothing blocking, or not released: %+v", d)
	}
	h.rememberedIsStored("after the release")
	h.clk.Advance(time.Minute)
	h.ingest(pcl.SourceHarvest, harvestFile())
	h.rememberedIsStored("after a harvest file of the released run")
	h.clk.Advance(time.Minute)
	h.ingest(pcl.SourceCondDB, iovAt("SiStripApvGain_PCL_v0_hlt", run, 2*time.Hour), iovAt("SiStripApvGain_PCL_v0_prompt", run, 2*time.Hour))
	h.rememberedIsStored("after its IOV")
	if w := h.gains(); w.State != pcl.StateInDB {
		t.Fatalf("SiStripGains %s after its IOVs, want in-db: the scenario did not happen", w.State)
	}
	states, err := h.ag.OpenRunStates(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range states {
		a, _ := json.Marshal(rs)
		b, _ := json.Marshal(h.state())
		if rs.Run == run && string(a) != string(b) {
			t.Fatalf("OpenRunStates (the alerts) is not the stored state:\n got %s\nwant %s", a, b)
		}
	}
}
