package demo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/pgtest"
	"github.com/cms-pcl/spyagency/internal/sim"
)

// stepped builds a demo driven in simulated time: the simulator's services and the agency's HTTP API on
// loopback, the agency reaching the simulator only through its spies.
func stepped(t *testing.T, faults string, seed uint64) *Demo {
	t.Helper()
	return steppedWith(t, faults, seed, nil)
}

// steppedWith is stepped with the simulator's handler wrapped (nil: as it is).
func steppedWith(t *testing.T, faults string, seed uint64, wrap func(clk *clock.Fake, h http.Handler) http.Handler) *Demo {
	t.Helper()
	return steppedOn(t, "", faults, seed, wrap)
}

// steppedOn is steppedWith on the store a DSN names ("": a fresh SQLite store).
func steppedOn(t *testing.T, dsn, faults string, seed uint64, wrap func(clk *clock.Fake, h http.Handler) http.Handler) *Demo {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	clk := clock.NewFake(sim.DefaultStart)
	d, err := New(ctx, Options{DataDir: t.TempDir(), StoreDSN: dsn, Seed: seed, Faults: faults, Clock: clk, Stepped: true, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		d.wrapSim = func(h http.Handler) http.Handler { return wrap(clk, h) }
	}
	served := make(chan error, 1)
	go func() { served <- d.ServeSim(ctx) }()
	agency := httptest.NewServer(d.App.Handler)
	d.SetAgencyURL(agency.URL)
	t.Cleanup(func() {
		agency.Close()
		cancel()
		<-served
		d.Close()
	})
	return d
}

// TestEndToEndSafety runs the whole loop for three simulated days with the default faults. Every run that
// stopped on the first day must reach a final readiness, and no run may be released by the simulated
// Tier-0 (on the agency's word) before every calibration it needs is in the condition DB, unless its
// deadline passed under the release-on-timeout policy.
func TestEndToEndSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("three simulated days")
	}
	t.Parallel()
	checkSafety(t, stepped(t, "default", 7), 72*time.Hour)
}

// TestEndToEndSafetyOnPostgres is TestEndToEndSafety on the PostgreSQL store, over two simulated days
// instead of three (every store call is a round trip to the server, and the race detector
// multiplies it): every release is checked against the truth, the completeness of the first day is
// left to the SQLite run.
func TestEndToEndSafetyOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("three simulated days")
	}
	t.Parallel()
	checkSafety(t, steppedOn(t, pgtest.Schema(t), "default", 7, nil), 48*time.Hour)
}

// checkSafety steps a demo through span of simulated time and checks every release against the
// simulator's truth and, when span leaves two days after the first, that every run of the first day
// reached a final readiness.
func checkSafety(t *testing.T, d *Demo, span time.Duration) {
	ctx := t.Context()
	start := sim.DefaultStart
	end := start.Add(span)
	failures := map[pcl.Source]int{}
	injected := 0
	for now := start.Add(5 * time.Minute); !now.After(end); now = now.Add(5 * time.Minute) {
		if err := d.Step(ctx, now); err != nil {
			t.Fatalf("step at %s: %v", now, err)
		}
		// A source fails only while the simulator injects a fault into it: every other failure is
		// of the agency's own making (a deadline too short, a spy that chokes).
		for _, h := range d.App.SourceHealth() {
			if h.Failures > failures[h.Name] {
				if fault := d.Sim.Fault(string(h.Name), now); fault == "" {
					t.Errorf("%s: %s failed outside any injected fault: %s", now.Format("Jan 2 15:04"), h.Name, h.Error)
				} else {
					injected++
				}
			}
			failures[h.Name] = h.Failures
		}
	}
	t.Logf("%d failed polls, all during injected outages", injected)
	policy := pcl.DefaultPolicy()
	checked := 0
	for _, r := range d.Sim.Runs() {
		if span < 72*time.Hour || r.Stop.IsZero() || r.Stop.After(start.Add(24*time.Hour)) {
			continue
		}
		rs, err := d.App.Store.RunState(ctx, r.Number)
		if err != nil {
			t.Errorf("run %d (%s, stopped %s) unknown to the agency: %v", r.Number, r.Class, r.Stop.Format("Jan 2 15:04"), err)
			continue
		}
		checked++
		switch rs.Decision.State {
		case pcl.ReadinessReleased, pcl.ReadinessTimedOut, pcl.ReadinessReady:
		default:
			t.Errorf("run %d (%s, stopped %s) is still %s after two days: %s", r.Number, r.Class, r.Stop.Format("Jan 2 15:04"), rs.Decision.State, rs.Decision.Reason)
		}
	}
	if span >= 72*time.Hour && checked < 5 {
		t.Fatalf("only %d runs stopped on the first day", checked)
	}
	releases := 0
	for _, rel := range d.Sim.Releases() {
		if !rel.ByAgency {
			t.Errorf("run %d released by the fixed delay: the agency was unreachable", rel.Run)
			continue
		}
		releases++
		truth, _ := d.Sim.Truth(rel.Run)
		for _, v := range CheckRelease(truth, rel, policy) {
			t.Error(v)
		}
	}
	if releases == 0 {
		t.Fatal("the agency released nothing in three days")
	}
	t.Logf("%d runs of the first day checked, %d releases on the agency's word", checked, releases)
}

// TestDemoSourcesStayFresh: with no fault injected, no source is ever stale, and no poll fails, even
// though simulated time runs on while each request is served, as it does at 600x on a busy machine (a
// request served in 100 ms of real time costs a minute of simulated time). Deadlines are real time:
// on the simulated clock, they passed during the request.
func TestDemoSourcesStayFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("twelve simulated hours")
	}
	t.Parallel()
	d := steppedWith(t, "none", 11, func(clk *clock.Fake, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			clk.Advance(time.Minute)
			h.ServeHTTP(w, r)
		})
	})
	ctx := t.Context()
	clk := d.Clock.(*clock.Fake)
	end := sim.DefaultStart.Add(12 * time.Hour)
	steps, polls := 0, 0
	for clk.Now().Before(end) {
		if err := d.Step(ctx, clk.Now().Add(5*time.Minute)); err != nil {
			t.Fatalf("step at %s: %v", clk.Now(), err)
		}
		steps++
		for _, h := range d.App.SourceHealth() {
			if h.Stale || h.Failures > 0 {
				t.Fatalf("%s: %s stale=%v after %d failed polls with no fault injected: %s",
					clk.Now().Format("Jan 2 15:04"), h.Name, h.Stale, h.Failures, h.Error)
			}
		}
	}
	for _, h := range d.App.SourceHealth() {
		if h.LastSuccess.IsZero() {
			t.Errorf("%s never polled", h.Name)
		}
		polls++
	}
	if len(d.Sim.Runs()) == 0 {
		t.Fatal("no run in twelve hours")
	}
	t.Logf("%d steps, %d sources healthy throughout", steps, polls)
}
