package backfill

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/demo"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/pgtest"
	"github.com/cms-pcl/spyagency/internal/sim"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/postgres"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

// world is a simulated CMS that ran for days, served on loopback, and a store to backfill into.
type world struct {
	sim   *sim.Sim
	srv   *httptest.Server
	cfg   *config.Config
	clk   *clock.Fake
	store store.Store
	from  uint32
	to    uint32
}

func newWorld(t *testing.T, days int, handler func(http.Handler) http.Handler) *world {
	t.Helper()
	clk := clock.NewFake(sim.DefaultStart)
	s, err := sim.New(sim.Config{Seed: 7, Dir: t.TempDir(), Faults: "none", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	end := sim.DefaultStart.Add(time.Duration(days) * 24 * time.Hour)
	if err := s.AdvanceTo(end); err != nil {
		t.Fatal(err)
	}
	clk.Set(end)
	var h http.Handler = s.Handler()
	if handler != nil {
		h = handler(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg, err := config.Parse("sim.yaml", s.ServeConfig(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	// A push target the live agency would push to: backfill must give it nothing.
	cfg.Steering.Targets = []config.PushTarget{{Name: "tier0", Type: "webhook", URL: "http://127.0.0.1:1/"}}
	st, err := sqlite.OpenDSN(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "spy.db"), sqlite.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	runs := s.Runs()
	if len(runs) < 10 {
		t.Fatalf("a world of %d days has only %d runs", days, len(runs))
	}
	return &world{sim: s, srv: srv, cfg: cfg, clk: clk, store: st, from: runs[0].Number, to: runs[len(runs)-1].Number}
}

func (w *world) opts() Options {
	return Options{Config: w.cfg, Store: w.store, Clock: w.clk, From: w.from, To: w.to, Rate: 1000}
}

// states reads the stored state of every simulated run of the range.
func (w *world) states(t *testing.T) map[uint32]pcl.RunState {
	t.Helper()
	out := map[uint32]pcl.RunState{}
	for _, r := range w.sim.Runs() {
		rs, err := w.store.RunState(t.Context(), r.Number)
		if err != nil {
			t.Fatalf("run %d: %v", r.Number, err)
		}
		out[r.Number] = rs
	}
	return out
}

// TestBackfillEmptyStore: a range backfilled into an empty store has a decision for every simulated
// run; none is ready or released while a calibration it needs is missing (the simulator's truth);
// nothing is queued for Tier-0; and a rerun of the completed range does nothing.
func TestBackfillEmptyStore(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 4, nil)
	var progress strings.Builder
	o := w.opts()
	o.Progress = &progress
	sum, err := Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Observations == 0 || sum.Reconciled != len(w.sim.Runs()) {
		t.Fatalf("summary %+v for %d simulated runs", sum, len(w.sim.Runs()))
	}
	policy := w.cfg.Policy
	if len(policy.Classes) == 0 {
		policy = pcl.DefaultPolicy()
	}
	counts := map[pcl.Readiness]int{}
	for n, rs := range w.states(t) {
		counts[rs.Decision.State]++
		if rs.Decision.Decided.IsZero() {
			t.Errorf("run %d was never reconciled: %+v", n, rs.Decision)
		}
		if rs.Decision.State == pcl.ReadinessReady {
			truth, _ := w.sim.Truth(n)
			for _, v := range demo.CheckRelease(truth, sim.Release{Run: n, Locked: w.clk.Now()}, policy) {
				t.Error(v)
			}
		}
	}
	t.Logf("%d simulated runs, %d observations read: %v", len(w.sim.Runs()), sum.Observations, counts)
	if counts[pcl.ReadinessReady]+counts[pcl.ReadinessReleased] == 0 {
		t.Errorf("after 4 days no run is ready or released: %v", counts)
	}
	out, err := w.store.Outbox(t.Context(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 0 {
		t.Errorf("backfill queued %d pushes for Tier-0, e.g. run %d", len(out), out[0].Run)
	}
	if !strings.Contains(progress.String(), "reading oms") || !strings.Contains(progress.String(), "100%") {
		t.Errorf("progress lines: %q", progress.String())
	}
	again, err := Run(t.Context(), w.opts())
	if err != nil || !again.AlreadyDone || again.Observations != 0 {
		t.Fatalf("rerun of a completed range: %+v, %v", again, err)
	}
	forced := w.opts()
	forced.Force = true
	redo, err := Run(t.Context(), forced)
	if err != nil || redo.AlreadyDone || redo.Changed != 0 {
		t.Fatalf("forced rerun: %+v, %v (decisions must not change on a repeat)", redo, err)
	}
}

// TestBackfillResume: a backfill cancelled midway saves its checkpoint, and the rerun resumes there
// (it does not read again the sources already read) and ends where an uninterrupted backfill ends.
func TestBackfillResume(t *testing.T) {
	t.Parallel()
	whole := newWorld(t, 3, nil)
	if _, err := Run(t.Context(), whole.opts()); err != nil {
		t.Fatal(err)
	}
	want := whole.states(t)

	ctx, cancel := context.WithCancel(t.Context())
	var tier0Requests, omsAgain atomic.Int32
	var resumed atomic.Bool
	w := newWorld(t, 3, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			if resumed.Load() && strings.HasPrefix(req.URL.Path, "/agg") {
				omsAgain.Add(1)
			}
			if strings.HasPrefix(req.URL.Path, "/t0wmadatasvc") {
				if tier0Requests.Add(1) == 5 {
					cancel() // killed while reading Tier-0
				}
			}
			h.ServeHTTP(rw, req)
		})
	})
	o := w.opts()
	_, err := Run(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "checkpoint saved") {
		t.Fatalf("cancelled backfill: %v", err)
	}
	cp, err := loadCheckpoint(t.Context(), w.store, w.from, w.to)
	if err != nil || cp.Complete {
		t.Fatalf("checkpoint after the kill: %+v, %v", cp, err)
	}
	if !slices.Contains(cp.SourcesDone, pcl.SourceOMS) || slices.Contains(cp.SourcesDone, pcl.SourceTier0) {
		t.Fatalf("checkpoint %+v: want oms read and tier0 not", cp)
	}
	resumed.Store(true)
	sum, err := Run(t.Context(), w.opts())
	if err != nil || !sum.Resumed {
		t.Fatalf("resumed backfill: %+v, %v", sum, err)
	}
	if n := omsAgain.Load(); n != 0 {
		t.Errorf("the resumed backfill asked OMS again (%d requests), which the first had read", n)
	}
	got := w.states(t)
	for n, rs := range want {
		g := got[n]
		if g.Decision.State != rs.Decision.State || !slices.Equal(g.Decision.Blocking, rs.Decision.Blocking) {
			t.Errorf("run %d: resumed %s %v, uninterrupted %s %v", n, g.Decision.State, g.Decision.Blocking, rs.Decision.State, rs.Decision.Blocking)
		}
	}
}

// TestBackfillSourceFails: a source that cannot be read is named in the error with the runs it could
// not cover, the range is not marked complete, and the other sources' facts are stored.
func TestBackfillSourceFails(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 2, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			if strings.HasPrefix(req.URL.Path, "/dqm") {
				http.Error(rw, "dqm is down", http.StatusNotFound)
				return
			}
			h.ServeHTTP(rw, req)
		})
	})
	sum, err := Run(t.Context(), w.opts())
	if err == nil || !strings.Contains(err.Error(), "dqm (runs") {
		t.Fatalf("want an error naming dqm and its runs, got %v", err)
	}
	if _, ok := sum.Failed[pcl.SourceDQM]; !ok || len(sum.Failed) != 1 || sum.Observations == 0 {
		t.Fatalf("summary %+v", sum)
	}
	cp, _ := loadCheckpoint(t.Context(), w.store, w.from, w.to)
	if cp.Complete || slices.Contains(cp.SourcesDone, pcl.SourceDQM) {
		t.Fatalf("checkpoint %+v after a failed source", cp)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ from, to uint32 }{{0, 5}, {5, 0}, {6, 5}} {
		if err := Validate(c.from, c.to); err == nil {
			t.Errorf("Validate(%d, %d) accepted", c.from, c.to)
		}
	}
	if err := Validate(5, 5); err != nil {
		t.Error(err)
	}
}

// TestBackfillLease: on a PostgreSQL store a backfill refuses to run while a serve holds the leader
// lease, and takes and gives back the lease when it is free, so a serve can lead right after.
func TestBackfillLease(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := postgres.Open(ctx, pgtest.Schema(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := config.Default()
	o := Options{Config: cfg, Store: st, From: 1, To: 3, Holder: "backfill-test"}
	if _, ok, err := st.AcquireLease(ctx, "serve-a", time.Minute, time.Now()); err != nil || !ok {
		t.Fatalf("serve's lease: %v %v", ok, err)
	}
	_, err = Run(ctx, o)
	if !apperr.Is(err, apperr.Conflict) || !strings.Contains(err.Error(), "serve-a") {
		t.Fatalf("backfill beside a leading serve: %v", err)
	}
	cur, err := st.CurrentLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ReleaseLease(ctx, "serve-a", cur.Epoch); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, o); err != nil { // no source configured: nothing to read, three runs unknown
		t.Fatal(err)
	}
	if _, ok, err := st.AcquireLease(ctx, "serve-b", time.Minute, time.Now()); err != nil || !ok {
		t.Fatalf("the lease after the backfill: %v %v (it must be given back)", ok, err)
	}
}
