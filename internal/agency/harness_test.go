package agency

import (
	"context"
	"log/slog"
	"path/filepath"
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
	health func() []pcl.SourceHealth
	// store, when set, wraps the store the agency is given (to act while the agency reads).
	store  func(store.Store) store.Store
	resync time.Duration
	// replicated is Options.Replicated: other processes record overrides in the store.
	replicated bool
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
		Logger: slog.New(slog.DiscardHandler), Targets: []string{"tier0-webhook"}, Resync: h.resync, Sources: h, Replicated: h.replicated})
	if err != nil {
		h.t.Fatal(err)
	}
	h.ag = ag
}

// SourceHealth is the spies' health as the agency reads it: every source fresh as of h.fresh, unless
// h.health says otherwise.
func (h *harness) SourceHealth() []pcl.SourceHealth {
	if h.health != nil {
		return h.health()
	}
	h.mu.Lock()
	fresh := h.fresh
	h.mu.Unlock()
	var out []pcl.SourceHealth
	for _, s := range pcl.Sources {
		out = append(out, pcl.SourceHealth{Name: s, Healthy: true, LastSuccess: fresh, View: fresh})
	}
	return out
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

// newHarnessWith is newHarness with its options set before the agency is built.
func newHarnessWith(t *testing.T, set func(h *harness)) *harness {
	t.Helper()
	h := &harness{t: t, ctx: t.Context(), clk: clock.NewFake(t0), path: t.TempDir() + "/spy.db"}
	set(h)
	h.open()
	return h
}

// cosmicRun is the run as a cosmics run, whose policy accepts no payload from any workflow.
func cosmicRun() pcl.Observation {
	o := stoppedRun()
	info := *o.RunInfo
	info.Class = "Cosmics25"
	o.RunInfo = &info
	return o
}

func streamDone(seen time.Time) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindStreamDone, Run: run, At: seen, Seen: seen, Stream: "Express", Done: true}
}

func release(at time.Time) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindRelease, Run: run, At: at, Seen: at, Dataset: "Cosmics"}
}

// gains is the state of the run's required workflow.
func (h *harness) gains() pcl.WorkflowStatus {
	h.t.Helper()
	rs := h.state()
	w, ok := rs.Workflow("SiStripGains")
	if !ok {
		h.t.Fatalf("no SiStripGains in %+v", rs.Workflows)
	}
	return *w
}

func (h *harness) pass() {
	h.t.Helper()
	if err := h.ag.Pass(h.ctx); err != nil {
		h.t.Fatal(err)
	}
}

// awaitingScan brings the cosmics run to "stream done, waiting for a harvest scan after it".
func (h *harness) awaitingScan() time.Time {
	h.t.Helper()
	h.ingest(pcl.SourceOMS, cosmicRun())
	h.ingest(pcl.SourceTier0, config())
	h.clk.Advance(time.Hour)
	done := h.clk.Now()
	h.ingest(pcl.SourceTier0, streamDone(done))
	if w := h.gains(); w.State != pcl.StateAwaitingHarvest {
		h.t.Fatalf("after the stream was done, before a scan: %s (%s)", w.State, w.Reason)
	}
	return done
}
