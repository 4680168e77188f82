package agency

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

const run = 392680
const hash = "2f1a7c3e5b9d0c4e6f8a1b2c3d4e5f6071829304"

var t0 = time.Date(2025, 5, 29, 12, 0, 0, 0, time.UTC)

type harness struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock.Fake
	st    *sqlite.Store
	ag    *Agency
	path  string
	mu    sync.Mutex
	fresh time.Time // every source's view (its last successful poll's); setFresh moves it
	// health, when set, replaces the sources' health made from fresh (a real runner's, say).
	health func() map[pcl.Source]pcl.SourceHealth
	// store, when set, wraps the store the agency is given (to act while the agency reads).
	store  func(store.Store) store.Store
	resync time.Duration
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, ctx: t.Context(), clk: clock.NewFake(t0), path: filepath.Join(t.TempDir(), "spy.db")}
	h.open()
	return h
}

func (h *harness) open() {
	h.t.Helper()
	st, err := sqlite.Open(h.ctx, h.path, sqlite.Options{Now: h.clk.Now})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { st.Close() })
	h.st = st
	var agStore store.Store = st
	if h.store != nil {
		agStore = h.store(st)
	}
	ag, err := New(h.ctx, Options{Store: agStore, Catalogue: pcl.DefaultCatalogue(), Policy: onlyGains(), Clock: h.clk,
		Logger: slog.New(slog.DiscardHandler), Targets: []string{"tier0-webhook"}, Resync: h.resync,
		Sources: func() map[pcl.Source]pcl.SourceHealth {
			if h.health != nil {
				return h.health()
			}
			h.mu.Lock()
			fresh := h.fresh
			h.mu.Unlock()
			m := map[pcl.Source]pcl.SourceHealth{}
			for _, s := range pcl.Sources {
				m[s] = pcl.SourceHealth{Name: s, Healthy: true, LastSuccess: fresh, View: fresh}
			}
			return m
		}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.ag = ag
}

// setFresh moves every source's view to t.
func (h *harness) setFresh(t time.Time) {
	h.mu.Lock()
	h.fresh = t
	h.mu.Unlock()
}

func onlyGains() pcl.Policy {
	p := pcl.DefaultPolicy()
	for i := range p.Classes {
		p.Classes[i].Required = []string{"SiStripGains"}
	}
	return p
}

func (h *harness) ingest(src pcl.Source, obs ...pcl.Observation) {
	h.t.Helper()
	for i := range obs {
		if obs[i].Seen.IsZero() {
			obs[i].Seen = h.clk.Now()
		}
	}
	if err := h.ag.Ingest(h.ctx, src, obs); err != nil {
		h.t.Fatal(err)
	}
	if err := h.ag.Pass(h.ctx); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) state() pcl.RunState {
	h.t.Helper()
	rs, err := h.st.RunState(h.ctx, run)
	if err != nil {
		h.t.Fatal(err)
	}
	return rs
}

func stoppedRun() pcl.Observation {
	stop := t0
	return pcl.Observation{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: run, At: t0,
		RunInfo: &pcl.RunInfo{Start: t0.Add(-3 * time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: t0}}
}

func config() pcl.Observation {
	return pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: run, At: t0, Stream: "Express",
		Producers: []string{"PromptCalibProdSiStripGains", "PromptCalibProdSiPixelAli"}}
}

func harvestFile() pcl.Observation {
	return pcl.Observation{Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: run, At: t0.Add(time.Hour),
		InputTag: "SiStripApvGain_pcl", Workflow: "SiStripGains", File: "Run392680@SiStripApvGain_pcl@a1b2.db",
		Destinations: []string{"SiStripApvGain_PCL_v0_hlt", "SiStripApvGain_PCL_v0_prompt"},
		Payloads:     []pcl.IOV{{Since: run, Payload: hash}}}
}

// iovAt is an IOV of the run's payload; its since may be moved up by the upload service. Its tag is of
// a synchronization under which the service does that (hlt), so the payload counts wherever it landed:
// in a pcl or prompt tag only the IOV at the run's own since would (reconcile, "Matching").
func iovAt(tag string, since uint64, d time.Duration) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceCondDB, Kind: pcl.KindIOV, Run: uint32(since), At: t0.Add(d), Tag: tag,
		Since: since, TimeType: pcl.TimeRun, Inserted: t0.Add(d), Payload: hash, Synchronization: "hlt"}
}

func TestLoopDecidesVersionsAndOutbox(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	rs := h.state()
	// v1 when OMS reported the stop (waiting for the express configuration), v2 once it came.
	if rs.Decision.State != pcl.ReadinessWaiting || rs.Decision.Version != 2 {
		t.Fatalf("after stop and config: %+v", rs.Decision)
	}
	h.clk.Advance(time.Hour)
	h.ingest(pcl.SourceHarvest, harvestFile())
	// The same facts again, as a spy restarting would send them: no new version.
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceHarvest, harvestFile())
	if v := h.state().Decision.Version; v != 3 {
		t.Errorf("re-ingesting known facts moved the version to %d", v)
	}
	// The IOVs arrive with the since moved up to a later condition-safe run: matched by hash, routed
	// to the run through the payload index.
	h.clk.Advance(10 * time.Minute)
	h.ingest(pcl.SourceCondDB, iovAt("SiStripApvGain_PCL_v0_hlt", run+3, 70*time.Minute), iovAt("SiStripApvGain_PCL_v0_prompt", run+3, 71*time.Minute))
	rs = h.state()
	if rs.Decision.State != pcl.ReadinessReady || !rs.Decision.Releasable {
		t.Fatalf("after IOVs: %+v", rs.Decision)
	}
	decisions, err := h.st.Decisions(h.ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range decisions {
		if d.Version != int64(i+1) {
			t.Errorf("decision %d has version %d", i, d.Version)
		}
	}
	out, err := h.st.PendingOutbox(h.ctx, "tier0-webhook", h.clk.Now(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.RunState(h.ctx, run+3); err == nil {
		t.Error("an IOV whose since moved up to another run made that run exist")
	}
	if len(out) != len(decisions) {
		t.Errorf("%d outbox entries for %d decisions", len(out), len(decisions))
	}
	audit, err := h.st.Audit(h.ctx, store.AuditQuery{Run: run})
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != len(decisions) {
		t.Errorf("%d audit entries for %d decisions", len(audit), len(decisions))
	}
}

func TestOverrideAndRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config(), pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindFCSR, Run: run + 1, At: t0})
	events, cancel := h.ag.Subscribe(16)
	defer cancel()
	rs, err := h.ag.Override(h.ctx, run, pcl.OverrideHold, "", "calib-shifter", "pixel alignment looks odd")
	if err != nil {
		t.Fatal(err)
	}
	if rs.Decision.State != pcl.ReadinessHeld {
		t.Fatalf("after hold: %+v", rs.Decision)
	}
	select {
	case e := <-events:
		if e.Run != run || !e.DecisionChanged {
			t.Errorf("event %+v", e)
		}
	default:
		t.Error("no event published for the hold")
	}
	if _, err := h.ag.Override(h.ctx, run, pcl.OverrideHold, "", "calib-shifter", " "); err == nil {
		t.Error("a hold without a reason was accepted")
	}
	if _, err := h.ag.Override(h.ctx, 1, pcl.OverrideHold, "", "calib-shifter", "no such run"); err == nil {
		t.Error("an override of an unknown run was accepted")
	}
	// Restart: a new agency on the same database remembers the open run and the FCSR.
	h.st.Close()
	h.open()
	if got := h.ag.FCSR(); got != run+1 {
		t.Errorf("FCSR after restart %d", got)
	}
	if open := h.ag.OpenRuns(); len(open) != 1 || open[0] != run {
		t.Errorf("open runs after restart %v", open)
	}
	if _, err := h.ag.Override(h.ctx, run, pcl.OverrideClear, "", "calib-shifter", "checked, fine"); err != nil {
		t.Fatal(err)
	}
	if s := h.state().Decision.State; s != pcl.ReadinessWaiting {
		t.Errorf("after clear: %s", s)
	}
}

func TestWakeUpAtDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	rs := h.state()
	if rs.NextWake.IsZero() {
		t.Fatal("no wake-up planned for a waiting run")
	}
	// Nothing is observed any more; time alone passes the run deadline.
	h.clk.Set(t0.Add(49 * time.Hour))
	if err := h.ag.Pass(h.ctx); err != nil {
		t.Fatal(err)
	}
	if d := h.state().Decision; d.State != pcl.ReadinessTimedOut || !d.Releasable {
		t.Errorf("after the deadline: %+v", d)
	}
}

func TestRunLoopStopsOnCancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- h.ag.Run(ctx) }()
	if err := h.ag.Ingest(ctx, pcl.SourceOMS, []pcl.Observation{stoppedRun()}); err != nil {
		t.Fatal(err)
	}
	events, unsub := h.ag.Subscribe(4)
	defer unsub()
	if err := h.ag.Ingest(ctx, pcl.SourceTier0, []pcl.Observation{config()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-events:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not reconcile an ingested batch")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

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

// TestRunNotForgottenAfterCrash: the facts of a new run are stored, then the process dies before the
// run is reconciled. After a restart the run is open and gets reconciled; and if the spy re-sends the
// batch (its cursor did not move), known facts alone still bring the run back.
func TestRunNotForgottenAfterCrash(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if err := h.ag.Ingest(h.ctx, pcl.SourceOMS, []pcl.Observation{stoppedRun()}); err != nil {
		t.Fatal(err)
	}
	// Crash: no Pass. The run must have a state that is not releasable.
	rs := h.state()
	if rs.Decision.Releasable || rs.Decision.Version != 0 {
		t.Fatalf("placeholder %+v", rs.Decision)
	}
	h.st.Close()
	h.open()
	if open := h.ag.OpenRuns(); len(open) != 1 || open[0] != run {
		t.Fatalf("after restart the run is not open: %v", open)
	}
	h.ag.Resync() // what Run does first
	if err := h.ag.Pass(h.ctx); err != nil {
		t.Fatal(err)
	}
	if d := h.state().Decision; d.Version != 1 || d.State != pcl.ReadinessWaiting {
		t.Errorf("after restart: %+v", d)
	}

	// The other window: facts stored, no placeholder yet (the crash came between the two writes).
	h2 := newHarness(t)
	if _, err := h2.st.AppendObservations(h2.ctx, []pcl.Observation{stoppedRun()}); err != nil {
		t.Fatal(err)
	}
	h2.st.Close()
	h2.open()
	h2.ingest(pcl.SourceOMS, stoppedRun()) // the spy re-sends: nothing new to the store
	if d := h2.state().Decision; d.Version != 1 {
		t.Errorf("a re-sent batch of known facts did not bring the run back: %+v", d)
	}
}

// TestInterruptedPassKeepsItsRuns: a pass cut short gives its remaining runs back.
func TestInterruptedPassKeepsItsRuns(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if err := h.ag.Ingest(h.ctx, pcl.SourceOMS, []pcl.Observation{stoppedRun()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	if err := h.ag.Pass(ctx); err == nil {
		t.Fatal("a cancelled pass reported success")
	}
	if err := h.ag.Pass(h.ctx); err != nil {
		t.Fatal(err)
	}
	if d := h.state().Decision; d.Version != 1 {
		t.Errorf("the run was dropped by the interrupted pass: %+v", d)
	}
}

// TestLookbackAndBatch: an old run leaves the open runs; a pass reconciles at most Batch runs and keeps
// the rest for the next.
func TestLookbackAndBatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.clk.Advance(15 * 24 * time.Hour)
	h.ag.Resync()
	if err := h.ag.Pass(h.ctx); err != nil {
		t.Fatal(err)
	}
	if open := h.ag.OpenRuns(); len(open) != 0 {
		t.Errorf("a run started 15 days ago is still watched: %v", open)
	}

	st := h.st
	ag, err := New(h.ctx, Options{Store: st, Catalogue: pcl.DefaultCatalogue(), Policy: onlyGains(), Clock: h.clk, Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	var obs []pcl.Observation
	for i := range 5 {
		o := stoppedRun()
		o.Run = run + 10 + uint32(i)
		*o.RunInfo = *stoppedRun().RunInfo
		o.RunInfo.Start = h.clk.Now().Add(-2 * time.Hour)
		stop := h.clk.Now().Add(-time.Hour)
		o.RunInfo.Stop = &stop
		obs = append(obs, o)
	}
	if err := ag.Ingest(h.ctx, pcl.SourceOMS, obs); err != nil {
		t.Fatal(err)
	}
	decided := func() int {
		n := 0
		for _, o := range obs {
			if rs, err := st.RunState(h.ctx, o.Run); err == nil && rs.Decision.Version > 0 {
				n++
			}
		}
		return n
	}
	if err := ag.Pass(h.ctx); err != nil {
		t.Fatal(err)
	}
	if n := decided(); n != 2 {
		t.Errorf("%d runs decided in a pass of at most 2", n)
	}
	for range 2 {
		if err := ag.Pass(h.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := decided(); n != 5 {
		t.Errorf("%d of 5 runs decided after three passes", n)
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
	indexed := func() (int, int) {
		h.ag.mu.Lock()
		defer h.ag.mu.Unlock()
		return len(h.ag.payloadRuns), len(h.ag.runPayloads)
	}
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
