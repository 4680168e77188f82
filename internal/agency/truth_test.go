package agency

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/reconcile"
	"github.com/cms-pcl/spyagency/internal/spy"
	"github.com/cms-pcl/spyagency/internal/spy/runner"
	"github.com/cms-pcl/spyagency/internal/store"
)

// TestSourceViewWakesTheRunsWaitingForIt: a harvest scan after the stream was done (nothing new in it)
// reconciles the run that waits for it at once, and only the runs that wait for that source; the index
// of waiting runs survives a restart.
func TestSourceViewWakesTheRunsWaitingForIt(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.awaitingScan()
	if rs := h.state(); len(rs.WaitsFor) != 1 || rs.WaitsFor[0] != pcl.SourceHarvest {
		t.Fatalf("waits for %v, want the harvest area", rs.WaitsFor)
	}
	h.clk.Advance(time.Minute)
	h.setFresh(h.clk.Now()) // a scan with nothing new: no batch, only the view moves
	h.pass()
	if w := h.gains(); w.State != pcl.StateAwaitingHarvest {
		t.Fatalf("reconciled with nobody telling the agency: %s", w.State)
	}
	h.ag.SourceViewed(pcl.SourceDQM, h.clk.Now())
	h.pass()
	if w := h.gains(); w.State != pcl.StateAwaitingHarvest {
		t.Fatalf("a view of a source the run does not wait for woke it: %s", w.State)
	}

	h.st.Close()
	h.open()
	h.ag.SourceViewed(pcl.SourceHarvest, h.clk.Now())
	h.pass()
	if w := h.gains(); w.State != pcl.StateNoPayload {
		t.Fatalf("after the harvest view advanced: %s (%s), want no-payload", w.State, w.Reason)
	}
	if n, runs := h.ag.index.waits(pcl.SourceHarvest); n != 0 || runs != 0 {
		t.Errorf("the run still indexed as waiting (%d) after its state stopped waiting", n)
	}
}

// TestLoopHonoursAShortResync: a resync interval below the old fixed 30 s tick is kept exactly.
func TestLoopHonoursAShortResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarnessWith(t, func(h *harness) { h.resync = 10 * time.Second })
		done := h.awaitingScan()
		ctx, cancel := context.WithCancel(h.ctx)
		defer cancel()
		go h.ag.Run(ctx)
		synctest.Wait()
		h.setFresh(done.Add(time.Second)) // nobody tells the agency: only the resync can see it
		h.clk.Advance(9 * time.Second)
		synctest.Wait()
		if w := h.gains(); w.State != pcl.StateAwaitingHarvest {
			t.Fatalf("reconciled before the resync: %s", w.State)
		}
		h.clk.Advance(time.Second)
		synctest.Wait()
		if w := h.gains(); w.State != pcl.StateNoPayload {
			t.Fatalf("10 s resync: after 10 s %s, want no-payload", w.State)
		}
		cancel()
		synctest.Wait()
	})
}

// TestLoopWakesAtTheStoredWakeUp: with a long resync the loop still wakes at the earliest stored
// wake-up, and a view advancing wakes it at once.
func TestLoopWakesAtTheStoredWakeUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarnessWith(t, func(h *harness) { h.resync = 100 * time.Hour })
		done := h.awaitingScan()
		ctx, cancel := context.WithCancel(h.ctx)
		defer cancel()
		go h.ag.Run(ctx)
		synctest.Wait()
		wake, err := h.st.NextWake(h.ctx)
		if err != nil || wake.IsZero() {
			t.Fatalf("next wake %v (err %v)", wake, err)
		}
		h.clk.Set(wake.Add(-time.Millisecond))
		synctest.Wait()
		if w, _ := h.st.NextWake(h.ctx); !w.Equal(wake) {
			t.Fatalf("the run was reconciled before its wake-up: next wake %s, was %s", w, wake)
		}
		h.clk.Set(wake)
		synctest.Wait()
		if w, _ := h.st.NextWake(h.ctx); !w.After(wake) {
			t.Fatalf("not reconciled at its wake-up %s: next wake still %s", wake, w)
		}

		h.setFresh(done.Add(time.Second))
		h.ag.SourceViewed(pcl.SourceHarvest, done.Add(time.Second))
		synctest.Wait() // no clock movement: the kick alone
		if w := h.gains(); w.State != pcl.StateNoPayload {
			t.Fatalf("after the harvest view advanced: %s, want no-payload", w.State)
		}
		cancel()
		synctest.Wait()
	})
}

// hookStore lets a test act while the agency reads a run's observations, as spies and passes do
// concurrently in a real process.
type hookStore struct {
	store.Store
	onObservations func(q store.ObservationQuery)
}

func (s *hookStore) Observations(ctx context.Context, q store.ObservationQuery) ([]pcl.Observation, error) {
	out, err := s.Store.Observations(ctx, q)
	if s.onObservations != nil {
		s.onObservations(q)
	}
	return out, err
}

// TestDecisionTimeIsWhenItWasTaken: a fact seen while a pass is under way (here while the run before it
// is read) is in the decision it leads to, and that decision is not stamped before the fact was seen.
func TestDecisionTimeIsWhenItWasTaken(t *testing.T) {
	t.Parallel()
	hs := &hookStore{}
	h := newHarnessWith(t, func(h *harness) {
		h.store = func(st store.Store) store.Store { hs.Store = st; return hs }
	})
	other := uint32(run + 1)
	o := stoppedRun()
	o.Run = other
	if err := h.ag.Ingest(h.ctx, pcl.SourceOMS, []pcl.Observation{stoppedRun(), o}); err != nil {
		t.Fatal(err)
	}
	var seen time.Time
	hs.onObservations = func(q store.ObservationQuery) {
		if len(q.Runs) != 1 || q.Runs[0] != run || !seen.IsZero() {
			return
		}
		h.clk.Advance(6 * time.Minute)
		seen = h.clk.Now()
		c := config()
		c.Run, c.Seen = other, seen
		if _, err := h.st.AppendObservations(h.ctx, []pcl.Observation{c}); err != nil {
			t.Error(err)
		}
	}
	h.pass()
	decisions, err := h.st.Decisions(h.ctx, other)
	if err != nil || len(decisions) != 1 {
		t.Fatalf("decisions of run %d: %+v (err %v)", other, decisions, err)
	}
	d := decisions[0]
	if d.Decided.Before(seen) {
		t.Errorf("decision stamped %s, before the express configuration it rests on was seen (%s)", d.Decided, seen)
	}
	if strings.Contains(d.Reason, "express configuration not seen") {
		t.Errorf("the decision did not see the configuration: %s", d.Reason)
	}
	audit, err := h.st.Audit(h.ctx, store.AuditQuery{Run: other})
	if err != nil || len(audit) != 1 || !audit[0].At.Equal(d.Decided) {
		t.Errorf("audit %+v (err %v), want one entry at the decision's time %s", audit, err, d.Decided)
	}
}

// TestAuditShowsTheEvidence: a decision's audit entry names the observations it rests on.
func TestAuditShowsTheEvidence(t *testing.T) {
	t.Parallel()
	if got := auditDetail(pcl.Decision{Version: 3, State: pcl.ReadinessReady, Reason: "all required workflows ok"}); got != "v3 ready: all required workflows ok" {
		t.Errorf("without evidence: %q", got)
	}
	h := newHarness(t)
	h.ag.reconcile = func(in reconcile.Input) pcl.RunState {
		rs := reconcile.Reconcile(in)
		rs.Decision.Evidence = []int64{7, 19, 23}
		return rs
	}
	h.ingest(pcl.SourceOMS, stoppedRun())
	audit, err := h.st.Audit(h.ctx, store.AuditQuery{Run: run})
	if err != nil || len(audit) != 1 {
		t.Fatalf("audit %+v (err %v)", audit, err)
	}
	if !strings.HasSuffix(audit[0].Detail, "(evidence: observations 7, 19, 23)") {
		t.Errorf("audit detail %q does not name the evidence", audit[0].Detail)
	}
	if d := h.state().Decision; len(d.Evidence) != 3 {
		t.Errorf("stored decision %+v lost its evidence", d)
	}
}

// TestReleasedRunKeepsBeingReconciled: a run Tier-0 released while the harvest area could not be
// scanned keeps its readiness, but its workflows' states are corrected once a scan comes, instead of
// freezing at "awaiting harvest"; the spies keep being told about it meanwhile.
func TestReleasedRunKeepsBeingReconciled(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	done := h.awaitingScan()
	h.clk.Advance(time.Minute)
	h.ingest(pcl.SourceTier0, release(h.clk.Now()))
	version := h.state().Decision.Version
	if d := h.state().Decision; d.State != pcl.ReadinessReleased {
		t.Fatalf("after the release: %s", d.State)
	}
	if open := h.ag.OpenRuns(); len(open) != 1 {
		t.Fatalf("a released run whose workflows are not terminal is not watched: open %v", open)
	}
	h.setFresh(done.Add(2 * time.Minute))
	h.ag.Resync()
	h.pass()
	rs := h.state()
	if w, _ := rs.Workflow("SiStripGains"); w.State != pcl.StateNoPayload {
		t.Errorf("the released run's workflow stayed %s after a scan", w.State)
	}
	if rs.Decision.State != pcl.ReadinessReleased || rs.Decision.Version != version {
		t.Errorf("readiness %s v%d, want released v%d", rs.Decision.State, rs.Decision.Version, version)
	}
}

// TestViewsAreReadBeforeTheFacts: a harvest poll that ends while the agency reads a run's facts (its
// file stored, then its view published) must not make the file's absence count: the agency uses the
// views it read before the facts.
func TestViewsAreReadBeforeTheFacts(t *testing.T) {
	t.Parallel()
	hs := &hookStore{}
	h := newHarnessWith(t, func(h *harness) {
		h.store = func(st store.Store) store.Store { hs.Store = st; return hs }
	})
	done := h.awaitingScan()
	file := harvestFile()
	file.Seen = done.Add(30 * time.Second)
	armed := true
	var noted sync.WaitGroup
	hs.onObservations = func(q store.ObservationQuery) {
		if !armed || len(q.Runs) != 1 || q.Runs[0] != run || len(q.Kinds) != 0 {
			return
		}
		armed = false
		// What Ingest does, from the spy's goroutine: the store takes the file, then the agency's
		// facts (which wait for this read to end), and only then is the poll's view published.
		added, err := h.st.AppendObservations(h.ctx, []pcl.Observation{file})
		if err != nil {
			t.Error(err)
		}
		noted.Go(func() {
			h.ag.noteStored(added...)
			h.setFresh(done.Add(10 * time.Second)) // the poll's view: after the stream was done
		})
	}
	h.clk.Advance(time.Minute)
	h.ag.Forget(run) // the pass reads the run's facts from the store, as after a restart
	h.ag.Resync()
	h.pass()
	noted.Wait()
	if armed {
		t.Fatal("the pass did not read the run's facts from the store")
	}
	if w := h.gains(); w.State == pcl.StateNoPayload {
		t.Fatalf("no-payload while the harvest file was stored: %s", w.Reason)
	}
	h.ag.Resync()
	h.pass()
	if w := h.gains(); w.State != pcl.StateHarvested {
		t.Errorf("on the next pass: %s, want harvested", w.State)
	}
}

// TestFileWrittenDuringASlowPoll: the harvest area is listed, AlcaHarvest writes the run's file after
// the listing passed its directory, Tier-0 marks the stream done, and only then does the poll end. The
// poll's view is when its listing began, so the run is never no-payload from it; the next poll finds
// the file. Runner, agency and reconcile together, as in a process.
func TestFileWrittenDuringASlowPoll(t *testing.T) {
	t.Parallel()
	var r *runner.Runner
	h := newHarnessWith(t, func(h *harness) {
		h.health = func() []pcl.SourceHealth { return []pcl.SourceHealth{r.Health()} }
	})
	var fileAt time.Time
	slow := func(context.Context, string) (spy.Result, error) {
		view := h.clk.Now() // the listing begins
		h.clk.Advance(20 * time.Second)
		fileAt = h.clk.Now() // AlcaHarvest writes the file; the listing has passed its directory
		h.clk.Advance(20 * time.Second)
		h.ingest(pcl.SourceTier0, streamDone(h.clk.Now())) // Tier-0 marks the stream done
		h.clk.Advance(20 * time.Second)                    // the spy is still reading other files
		return spy.Result{Cursor: "1", View: view}, nil
	}
	found := func(context.Context, string) (spy.Result, error) {
		f := harvestFile()
		f.Seen = h.clk.Now()
		return spy.Result{Observations: []pcl.Observation{f}, Cursor: "2", View: h.clk.Now()}, nil
	}
	sp := &scriptedSpy{polls: []func(context.Context, string) (spy.Result, error){slow, found}}
	r = runner.New(sp, runner.Options{Clock: h.clk, Sink: h.ag.Ingest, Viewed: h.ag.SourceViewed, Cursors: h.st})
	h.ingest(pcl.SourceOMS, cosmicRun())
	h.ingest(pcl.SourceTier0, config())
	h.clk.Advance(time.Hour)
	if err := r.PollOnce(h.ctx); err != nil {
		t.Fatal(err)
	}
	if v := r.Health().View; !v.Before(fileAt) {
		t.Fatalf("view %s is not before the file was written (%s)", v, fileAt)
	}
	h.pass()
	if w := h.gains(); w.State == pcl.StateNoPayload {
		t.Fatalf("no-payload from a poll that began before the file was written: %s", w.Reason)
	}
	h.clk.Advance(time.Minute)
	if err := r.PollOnce(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.pass()
	if w := h.gains(); w.State != pcl.StateHarvested {
		t.Errorf("after the next poll: %s, want harvested", w.State)
	}
}

// scriptedSpy is the harvest area answering with its script, one poll after the other.
type scriptedSpy struct {
	polls []func(context.Context, string) (spy.Result, error)
	n     int
}

func (s *scriptedSpy) Source() pcl.Source { return pcl.SourceHarvest }

func (s *scriptedSpy) Poll(ctx context.Context, cursor string) (spy.Result, error) {
	p := s.polls[min(s.n, len(s.polls)-1)]
	s.n++
	return p(ctx, cursor)
}
