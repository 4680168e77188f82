package agency

import (
	"context"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

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
