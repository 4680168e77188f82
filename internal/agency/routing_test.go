package agency

import (
	"slices"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

func TestHints(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config(), pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: run, At: t0,
		Stream: "ExpressAlignment", Producers: []string{"PromptCalibProdBeamSpotHP"}},
		pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindStreamDone, Run: run, At: t0, Stream: "ExpressAlignment", Done: true})
	f := harvestFile()
	f.Destinations = append(f.Destinations, "SiStripApvGain_PCL_v1_special")
	h.ingest(pcl.SourceHarvest, f)
	open, err := h.ag.Hints().OpenRuns(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || !open[0].Stopped || len(open[0].Streams) != 1 || open[0].Streams[0] != "Express" {
		t.Errorf("open runs %+v", open)
	}
	tags, err := h.ag.Hints().WatchedTags(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tags, "SiStripApvGain_PCL_v1_special") || !slices.Contains(tags, "SiPixelAli_PCL_v0_hlt_off") {
		t.Errorf("watched tags miss the metadata's or the catalogue's: %v", tags)
	}
}

// TestPayloadRoutingSurvivesRestart: after a restart, an IOV whose since the upload service moved up
// still reaches the open run that harvested its payload.
func TestPayloadRoutingSurvivesRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	h.clk.Advance(time.Hour)
	h.ingest(pcl.SourceHarvest, harvestFile())
	h.st.Close()
	h.open()
	h.clk.Advance(10 * time.Minute)
	h.ingest(pcl.SourceCondDB, iovAt("SiStripApvGain_PCL_v0_hlt", run+3, 70*time.Minute), iovAt("SiStripApvGain_PCL_v0_prompt", run+3, 71*time.Minute))
	if d := h.state().Decision; d.State != pcl.ReadinessReady {
		t.Errorf("after restart and the IOVs: %s (%s)", d.State, d.Reason)
	}
}

// TestReleasedRunLeavesPayloadIndex: the index that routes IOVs to runs by payload hash forgets a run
// once Tier-0 released it and its workflows are all terminal, so that it does not grow with every run of
// the agency's life.
func TestReleasedRunLeavesPayloadIndex(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	h.clk.Advance(time.Hour)
	h.ingest(pcl.SourceHarvest, harvestFile())
	indexed := h.ag.index.routed
	if byHash, byRun := indexed(); byHash != 1 || byRun != 1 {
		t.Fatalf("after the harvest: %d hashes, %d runs indexed, want 1 and 1", byHash, byRun)
	}
	h.clk.Advance(10 * time.Minute)
	h.ingest(pcl.SourceCondDB, iovAt("SiStripApvGain_PCL_v0_hlt", run, 70*time.Minute), iovAt("SiStripApvGain_PCL_v0_prompt", run, 71*time.Minute))
	if byHash, _ := indexed(); byHash != 1 {
		t.Fatalf("a ready run left the index before Tier-0 released it")
	}
	h.ingest(pcl.SourceTier0, pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindRelease, Run: run, At: h.clk.Now(), Dataset: "ZeroBias"})
	if d := h.state().Decision; d.State != pcl.ReadinessReleased {
		t.Fatalf("after the release: %s (%s)", d.State, d.Reason)
	}
	// Its other workflows still wait: the run is still watched, its payloads still routed.
	if byHash, byRun := indexed(); byHash != 1 || byRun != 1 || len(h.ag.OpenRuns()) != 1 {
		t.Fatalf("after the release, with workflows not terminal: %d hashes, %d runs indexed, open %v", byHash, byRun, h.ag.OpenRuns())
	}
	h.clk.Advance(21 * time.Hour) // past the workflow deadline: every workflow is terminal
	h.ag.Resync()
	if err := h.ag.Pass(h.ctx); err != nil {
		t.Fatal(err)
	}
	rs := h.state()
	for _, w := range rs.Workflows {
		if !w.State.Terminal() {
			t.Errorf("workflow %s is %s after its deadline", w.Name, w.State)
		}
	}
	if byHash, byRun := indexed(); byHash != 0 || byRun != 0 || len(h.ag.OpenRuns()) != 0 {
		t.Errorf("released and settled: %d hashes, %d runs still indexed, open %v", byHash, byRun, h.ag.OpenRuns())
	}
}

// TestTagSynchronizationFromOtherRuns: a run whose upload to the hlt tag failed has no IOV of that tag,
// so its own observations cannot say the tag does not gate PromptReco. The agency learns the tag's
// synchronization from any IOV the condition DB spy reports (here another run's), keeps it across a
// restart, and the run is ready on its prompt tag alone.
func TestTagSynchronizationFromOtherRuns(t *testing.T) {
	t.Parallel()
	const hlt, prompt = "SiStripApvGain_PCL_v0_hlt", "SiStripApvGain_PCL_v0_prompt"
	h := newHarness(t)
	failed := pcl.Observation{Source: pcl.SourceDropbox, Kind: pcl.KindUploadStatus, Run: run, At: t0.Add(90 * time.Minute),
		File: "Run392680@SiStripApvGain_pcl@a1b2.db", InputTag: "SiStripApvGain_pcl", Tag: hlt, Status: pcl.UploadFail, Info: "simulated"}
	inPrompt := iovAt(prompt, run, 2*time.Hour)
	inPrompt.Synchronization = "pcl"
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	h.ingest(pcl.SourceHarvest, harvestFile())
	h.ingest(pcl.SourceDropbox, failed)
	h.ingest(pcl.SourceCondDB, inPrompt)
	if rs := h.state(); rs.Decision.State != pcl.ReadinessBlocked {
		t.Fatalf("with the hlt tag's synchronization unknown: %s (%s), want blocked", rs.Decision.State, rs.Decision.Reason)
	}
	other := pcl.Observation{Source: pcl.SourceCondDB, Kind: pcl.KindIOV, Run: run - 5, At: t0.Add(-time.Hour), Tag: hlt,
		Since: run - 5, TimeType: pcl.TimeRun, Inserted: t0.Add(-time.Hour), Payload: "ffff", Synchronization: "hlt"}
	h.ingest(pcl.SourceCondDB, other)
	rs := h.state()
	if rs.Decision.State != pcl.ReadinessReady {
		t.Fatalf("once the hlt tag is known as hlt: %s (%s), want ready", rs.Decision.State, rs.Decision.Reason)
	}
	version := rs.Decision.Version
	h.open() // a restart on the same store
	if _, err := h.ag.Reconcile(h.ctx, run); err != nil {
		t.Fatal(err)
	}
	if rs := h.state(); rs.Decision.Version != version || rs.Decision.State != pcl.ReadinessReady {
		t.Fatalf("after a restart: v%d %s (%s), want v%d ready", rs.Decision.Version, rs.Decision.State, rs.Decision.Reason, version)
	}
}
