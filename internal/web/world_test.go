package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/agency"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

// Hostile strings as a compromised or broken source could send them.
const (
	hostileTag  = `<script>alert(1)</script>`
	hostileInfo = `"><img src=x onerror=alert(1)>`
)

// The seeded world's runs, newest last. Each is built through the agency (Ingest, Pass), so its state
// is what the reconcile derives, not hand-made.
const (
	runTimedOut  = 392650 // stopped 50 h ago, nothing ever came: timed out
	runReleased  = 392660 // everything in the DB, Tier-0 released PromptReco
	runReady     = 392670 // everything in the DB
	runFailed    = 392675 // SiPixelAli's upload failed (with a hostile log text)
	runUploading = 392680 // uploading, with a hostile destination tag
	runHeld      = 392685 // held by an operator
	runOngoing   = 392690 // not stopped yet
)

var worldNow = time.Date(2025, 5, 29, 12, 0, 0, 0, time.UTC)

// world is a real store (SQLite unless newWorldOn says otherwise) and agency on a fake clock.
type world struct {
	t   testing.TB
	ctx context.Context
	clk *clock.Fake
	st  store.Store
	ag  *agency.Agency
	cat *pcl.Catalogue
}

func newWorld(t testing.TB) *world {
	t.Helper()
	return newWorldOn(t, func(now func() time.Time) (store.Store, error) {
		return sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "spy.db"), sqlite.Options{Now: now})
	})
}

// newWorldOn is newWorld on the store open makes, given the world's clock.
func newWorldOn(t testing.TB, open func(now func() time.Time) (store.Store, error)) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), clk: clock.NewFake(worldNow.Add(-60 * time.Hour)), cat: pcl.DefaultCatalogue()}
	st, err := open(w.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w.st = st
	fresh := healthFunc(func() []pcl.SourceHealth {
		var out []pcl.SourceHealth
		for _, s := range pcl.Sources {
			out = append(out, pcl.SourceHealth{Name: s, Healthy: true, LastSuccess: w.clk.Now()})
		}
		return out
	})
	if w.ag, err = agency.New(w.ctx, agency.Options{Store: st, Catalogue: w.cat, Clock: w.clk, Sources: fresh}); err != nil {
		t.Fatal(err)
	}
	return w
}

// at moves the clock to worldNow+d (never back) and ingests the observations, then reconciles.
func (w *world) at(d time.Duration, obs ...pcl.Observation) {
	w.t.Helper()
	if t := worldNow.Add(d); t.After(w.clk.Now()) {
		w.clk.Set(t)
	}
	for i := range obs {
		if obs[i].Seen.IsZero() {
			obs[i].Seen = w.clk.Now()
		}
	}
	if err := w.ag.Ingest(w.ctx, pcl.SourceOMS, obs); err != nil {
		w.t.Fatal(err)
	}
	if err := w.ag.Pass(w.ctx); err != nil {
		w.t.Fatal(err)
	}
}

func runObs(run uint32, class string, start time.Time, stop *time.Time) pcl.Observation {
	last := start
	if stop != nil {
		last = *stop
	}
	return pcl.Observation{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: run, At: last,
		RunInfo: &pcl.RunInfo{Start: start, Stop: stop, Class: class, LastUpdate: last, BField: 3.8, Components: []string{"TRACKER", "PIXEL"}}}
}

func stoppedAt(run uint32, class string, stop time.Time) pcl.Observation {
	return runObs(run, class, stop.Add(-3*time.Hour), &stop)
}

func express(run uint32, at time.Time, wfs ...string) pcl.Observation {
	o := pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: run, At: at, Stream: "Express"}
	for _, w := range wfs {
		wf, _ := pcl.DefaultCatalogue().Workflow(w)
		o.Producers = append(o.Producers, wf.Producer)
	}
	return o
}

func fileOf(run uint32, tag string) string {
	return fmt.Sprintf("Run%d@%s@0b1d6e5a-1111-2222-3333-%012d.db", run, tag, run)
}

func hashOf(run uint32, wf string) string {
	return fmt.Sprintf("%08x%s", run, strings.Repeat("ab", 16))[:40]
}

// flow is one workflow's observations for a run, from harvest to the condition DB, as far as upTo says.
func (w *world) flow(run uint32, wfName string, at time.Time, upTo pcl.State, extraDest ...string) []pcl.Observation {
	wf, _ := w.cat.Workflow(wfName)
	in := wf.Inputs[0]
	dests := append(append([]string{}, in.Destinations...), extraDest...)
	h := hashOf(run, wfName)
	obs := []pcl.Observation{{Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: run, At: at, Workflow: wfName,
		InputTag: in.Tag, File: fileOf(run, in.Tag), Destinations: dests, Payloads: []pcl.IOV{{Since: uint64(run), Payload: h}}}}
	if upTo == pcl.StateHarvested {
		return obs
	}
	obs = append(obs, pcl.Observation{Source: pcl.SourceHarvest, Kind: pcl.KindUploadMarker, Run: run, At: at.Add(20 * time.Minute),
		InputTag: in.Tag, File: strings.TrimSuffix(fileOf(run, in.Tag), ".db") + ".txt.uploaded"})
	if upTo == pcl.StateUploading {
		return obs
	}
	for _, d := range dests {
		st, info := pcl.UploadOK, "appended 1 IOV"
		if upTo == pcl.StateUploadFailed {
			st, info = pcl.UploadFail, hostileInfo
		}
		obs = append(obs, pcl.Observation{Source: pcl.SourceDropbox, Kind: pcl.KindUploadStatus, Run: run, At: at.Add(40 * time.Minute),
			InputTag: in.Tag, File: fileOf(run, in.Tag), FileHash: fmt.Sprintf("%040d", run), Tag: d, Status: st, Info: info})
	}
	if upTo != pcl.StateInDB {
		return obs
	}
	for _, d := range dests {
		obs = append(obs, pcl.Observation{Source: pcl.SourceCondDB, Kind: pcl.KindIOV, Run: run, At: at.Add(time.Hour), Tag: d,
			Since: uint64(run), TimeType: pcl.TimeRun, Inserted: at.Add(time.Hour), Payload: h})
	}
	return obs
}

func quality(run uint32, wf string, q pcl.Quality, at time.Time) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceDQM, Kind: pcl.KindDQMQuality, Run: run, At: at, Workflow: wf,
		Dataset: "/StreamExpress/Run2025C-PromptCalibProd-Express-v1/ALCAPROMPT", Quality: q}
}

// seed builds the world of the tests and the screenshots: seven runs in every readiness.
func (w *world) seed() {
	w.t.Helper()
	h := time.Hour
	stop := func(d time.Duration) time.Time { return worldNow.Add(d) }
	gains, pix := "SiStripGains", "SiPixelAli"
	w.at(-60*h, stoppedAt(runTimedOut, "Collisions25", stop(-50*h)), express(runTimedOut, stop(-50*h), gains))
	w.at(-45*h, stoppedAt(runReleased, "Cosmics25", stop(-45*h)), express(runReleased, stop(-45*h), gains))
	w.at(-40*h, w.flow(runReleased, gains, stop(-43*h), pcl.StateInDB)...)
	w.at(-39*h, quality(runReleased, gains, pcl.QualityGood, stop(-40*h)),
		pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindRelease, Run: runReleased, At: stop(-39 * h), Dataset: "Cosmics"})
	w.at(-30*h, stoppedAt(runReady, "Collisions25", stop(-30*h)), express(runReady, stop(-30*h), gains, pix))
	w.at(-26*h, append(w.flow(runReady, gains, stop(-28*h), pcl.StateInDB), w.flow(runReady, pix, stop(-27*h), pcl.StateInDB)...)...)
	w.at(-25*h, quality(runReady, gains, pcl.QualityGood, stop(-25*h)), quality(runReady, pix, pcl.QualityWarning, stop(-25*h)))
	w.at(-20*h, stoppedAt(runFailed, "Collisions25", stop(-20*h)), express(runFailed, stop(-20*h), gains, pix))
	w.at(-17*h, append(w.flow(runFailed, gains, stop(-19*h), pcl.StateInDB), w.flow(runFailed, pix, stop(-18*h), pcl.StateUploadFailed)...)...)
	w.at(-16*h, quality(runFailed, pix, pcl.QualityBad, stop(-16*h)))
	w.at(-10*h, stoppedAt(runUploading, "Collisions25", stop(-10*h)), express(runUploading, stop(-10*h), gains, pix))
	w.at(-8*h, append(w.flow(runUploading, gains, stop(-9*h), pcl.StateUploading, hostileTag), w.flow(runUploading, pix, stop(-8*h), pcl.StateHarvested)...)...)
	w.at(-6*h, stoppedAt(runHeld, "Collisions25", stop(-6*h)), express(runHeld, stop(-6*h), gains))
	w.at(-5*h, w.flow(runHeld, gains, stop(-5*h), pcl.StateInDB)...)
	w.at(-2*h, runObs(runOngoing, "Collisions25", stop(-2*h), nil))
	w.clk.Set(worldNow.Add(-4 * h))
	if _, err := w.ag.Override(w.ctx, runHeld, pcl.OverrideHold, "", "calib-shifter", "SiStripGains gains look off by 5 %; "+hostileInfo); err != nil {
		w.t.Fatal(err)
	}
	w.at(0)
}

// serve starts the web server on loopback over the world, with a stale DQM spy and the default links.
func (w *world) serve(t testing.TB, mod func(*Options)) (*httptest.Server, *Server) {
	t.Helper()
	o := Options{Store: w.st, Catalogue: w.cat, Clock: w.clk, Overrider: w.ag, Events: w.ag, Links: Links(config.DefaultLinks()),
		Heartbeat: 200 * time.Millisecond,
		Sources: healthFunc(func() []pcl.SourceHealth {
			var out []pcl.SourceHealth
			for _, s := range pcl.Sources {
				h := pcl.SourceHealth{Name: s, Healthy: true, LastSuccess: w.clk.Now().Add(-time.Minute), LagSeconds: 60}
				if s == pcl.SourceDQM {
					h = pcl.SourceHealth{Name: s, Stale: true, LastSuccess: w.clk.Now().Add(-3 * time.Hour), LagSeconds: 10800, Failures: 5, Error: "HTTP 503 from the DQM GUI: " + hostileInfo}
				}
				out = append(out, h)
			}
			return out
		})}
	if mod != nil {
		mod(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	// Shorter than the tests' streams, which must outlive them, as ListenAndServe sets them from the
	// configuration (the stream lifts the write deadline; net/http lifts the read deadline itself once
	// a body-less request is read).
	hs.Config.ReadTimeout, hs.Config.WriteTimeout = 2*time.Second, 2*time.Second
	hs.Start()
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return hs, srv
}

// operatorLoopback is the demo's rule: loopback clients may act, as "demo-operator".
var operatorLoopback = operatorFunc(func(r *http.Request) (string, error) {
	if strings.HasPrefix(r.RemoteAddr, "127.0.0.1:") || strings.HasPrefix(r.RemoteAddr, "[::1]:") {
		return "demo-operator", nil
	}
	return "", fmt.Errorf("not a loopback client")
})

func TestSeededWorldStates(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.seed()
	want := map[uint32]pcl.Readiness{runTimedOut: pcl.ReadinessTimedOut, runReleased: pcl.ReadinessReleased, runReady: pcl.ReadinessReady,
		runFailed: pcl.ReadinessBlocked, runUploading: pcl.ReadinessWaiting, runHeld: pcl.ReadinessHeld, runOngoing: pcl.ReadinessOngoing}
	for run, rd := range want {
		rs, err := w.st.RunState(w.ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		if rs.Decision.State != rd {
			t.Errorf("run %d: %s (%s), want %s", run, rs.Decision.State, rs.Decision.Reason, rd)
		}
	}
}

// The parts of the process the server reads, made from functions for the tests.

// healthFunc makes a function the spies' health, as the agency and the server read it.
type healthFunc func() []pcl.SourceHealth

func (f healthFunc) SourceHealth() []pcl.SourceHealth { return f() }

// operatorFunc makes a function the server's Operators.
type operatorFunc func(*http.Request) (string, error)

func (f operatorFunc) Operator(r *http.Request) (string, error) { return f(r) }

// firstUnreadyFunc makes a function the server's FirstUnready.
type firstUnreadyFunc func(context.Context) (uint32, error)

func (f firstUnreadyFunc) FirstUnready(ctx context.Context) (uint32, error) { return f(ctx) }

// firstUnreadyIs is a FirstUnready that always names run n.
func firstUnreadyIs(n uint32) firstUnreadyFunc {
	return func(context.Context) (uint32, error) { return n, nil }
}

// eventsFunc makes a function the server's Events.
type eventsFunc func(int) (<-chan pcl.RunEvent, func())

func (f eventsFunc) Subscribe(buffer int) (<-chan pcl.RunEvent, func()) { return f(buffer) }

// AlertsFunc makes a function an AlertSource.
type AlertsFunc func(ctx context.Context) ([]Alert, error)

// Firing calls f.
func (f AlertsFunc) Firing(ctx context.Context) ([]Alert, error) { return f(ctx) }
