package sim

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/spy/dqm"
	"github.com/cms-pcl/spyagency/internal/spy/dropbox"
	"github.com/cms-pcl/spyagency/internal/spy/oms"
	"github.com/cms-pcl/spyagency/internal/spy/tier0"
)

func newSim(t *testing.T, cfg Config) *Sim {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewFake(DefaultStart)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The same seed gives the same first day, however time is advanced; another seed another day.
func TestSameSeedSameDay(t *testing.T) {
	t.Parallel()
	day := DefaultStart.Add(24 * time.Hour)
	a := newSim(t, Config{Seed: 7})
	b := newSim(t, Config{Seed: 7})
	for now := DefaultStart; now.Before(day); now = now.Add(7*time.Minute + 13*time.Second) {
		if err := b.AdvanceTo(now); err != nil {
			t.Fatal(err)
		}
	}
	da, db := a.Digest(day), b.Digest(day)
	if len(a.Events(day)) < 100 {
		t.Fatalf("a day has only %d events", len(a.Events(day)))
	}
	if da != db {
		ea, eb := a.Events(day), b.Events(day)
		for i := range min(len(ea), len(eb)) {
			if ea[i] != eb[i] {
				t.Fatalf("same seed, different days; first difference:\n%s\n%s", ea[i], eb[i])
			}
		}
		t.Fatalf("same seed, different days: %d vs %d events", len(ea), len(eb))
	}
	if c := newSim(t, Config{Seed: 8}); c.Digest(day) == da {
		t.Fatal("seeds 7 and 8 give the same day")
	}
}

// Fixed mode: every run is locked 30 min before and released 48 h after its stop (on the feeder's next
// cycle, and never before the run before it), strictly in run order; the FCSR is the first unlocked run.
func TestTier0FixedReleases(t *testing.T) {
	t.Parallel()
	s, _ := sharedWorld(t)
	p := DefaultParams()
	rel := s.Releases()
	if len(rel) == 0 {
		t.Fatal("no release in three days")
	}
	runs := s.Runs()
	var prev Release
	for i, r := range rel {
		truth, _ := s.Truth(r.Run)
		if r.Run != runs[i].Number {
			t.Fatalf("release %d is run %d, want run %d (in order)", i, r.Run, runs[i].Number)
		}
		lockAt := truth.Stop.Add(p.RecoDelay - p.RecoLockDelay)
		if r.Locked.Before(lockAt) || r.Locked.Sub(later(lockAt, prev.Locked)) > p.FeederInterval {
			t.Errorf("run %d locked %v, due %v", r.Run, r.Locked, lockAt)
		}
		if r.Released.Sub(r.Locked) < p.RecoLockDelay || r.Released.Sub(later(r.Locked.Add(p.RecoLockDelay), prev.Released)) > p.FeederInterval {
			t.Errorf("run %d released %v, locked %v", r.Run, r.Released, r.Locked)
		}
		if r.ByAgency {
			t.Errorf("run %d released by the agency in fixed mode", r.Run)
		}
		prev = r
	}
	for _, r := range runs[len(rel):] {
		if !s.Now().Before(r.Stop.Add(p.RecoDelay + p.FeederInterval)) {
			t.Errorf("run %d stopped %v and is not released at %v", r.Number, r.Stop, s.Now())
		}
	}
	fcsr := s.FCSR()
	for _, r := range runs {
		if locked := !r.Locked.IsZero(); locked != (r.Number < fcsr) {
			t.Errorf("run %d locked=%v with FCSR %d", r.Number, locked, fcsr)
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// fakeAgency answers first_unready_run from the test.
type fakeAgency struct {
	mu  sync.Mutex
	n   uint32
	err error
}

func (f *fakeAgency) set(n uint32, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n, f.err = n, err
}

func (f *fakeAgency) FirstUnreadyRun(context.Context) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.err
}

// Agency mode: runs below the agency's answer are locked on the next cycle after their stop and released
// 30 min later; the others wait; with the agency unreachable the fixed delay applies.
func TestTier0FollowsAgency(t *testing.T) {
	t.Parallel()
	p := DefaultParams()
	p.RecoDelay = 8 * time.Hour // the fixed fallback comes sooner: a shorter world to simulate
	ag := &fakeAgency{}
	s := newSim(t, Config{Seed: 5, Tier0Mode: Tier0Agency, Agency: ag, Params: &p})
	// The schedule does not depend on what happens in the world: plan the first three runs ahead.
	runs := newSchedule(p, 5, DefaultStart).cycle()[:3]
	ag.set(runs[2].Number, nil)
	if err := s.AdvanceTo(runs[2].Stop.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	rel := s.Releases()
	if len(rel) != 2 || rel[0].Run != runs[0].Number || rel[1].Run != runs[1].Number {
		t.Fatalf("releases %+v, want runs %d and %d", rel, runs[0].Number, runs[1].Number)
	}
	for i, r := range rel {
		if !r.ByAgency || r.Locked.Before(runs[i].Stop) || r.Locked.Sub(runs[i].Stop) > p.FeederInterval ||
			r.Released.Sub(r.Locked) < p.RecoLockDelay || r.Released.Sub(r.Locked) > p.RecoLockDelay+p.FeederInterval {
			t.Errorf("release %+v of a run stopped at %v", r, runs[i].Stop)
		}
	}
	if s.FCSR() != runs[2].Number {
		t.Errorf("FCSR %d, want %d", s.FCSR(), runs[2].Number)
	}
	ag.set(0, errors.New("connection refused"))
	due := runs[2].Stop.Add(p.RecoDelay)
	s.AdvanceTo(due.Add(-time.Minute))
	if n := len(s.Releases()); n != 2 {
		t.Fatalf("%d releases before the fixed delay passed, want 2", n)
	}
	s.AdvanceTo(due.Add(p.FeederInterval))
	rel = s.Releases()
	if len(rel) < 3 || rel[2].Run != runs[2].Number || rel[2].ByAgency {
		t.Fatalf("with the agency down, run %d is not released by the fixed delay: %+v", runs[2].Number, rel)
	}
}

func TestHTTPAgency(t *testing.T) {
	t.Parallel()
	var body string
	var status int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if req.URL.Path != "/t0/v1/first_unready_run" {
			http.NotFound(rw, req)
			return
		}
		rw.Header().Set("Content-Type", "application/json") // as the pull API answers, errors included
		rw.WriteHeader(status)
		rw.Write([]byte(body))
	}))
	defer srv.Close()
	a := HTTPAgency{BaseURL: srv.URL + "/"}
	for _, c := range []struct {
		status int
		body   string
		want   uint32
		err    string
	}{
		{200, `{"result": [400123]}`, 400123, ""},
		{200, `{"result": []}`, 0, "want one run"},
		{503, `down`, 0, "HTTP 503"},
		{200, `<html>`, 0, "invalid"},
	} {
		mu.Lock()
		status, body = c.status, c.body
		mu.Unlock()
		n, err := a.FirstUnreadyRun(context.Background())
		if n != c.want || (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%d %s: got %d, %v", c.status, c.body, n, err)
		}
	}
}

// The heavy profile takes sources down (503 and HTML pages), answers garbage, fails uploads and makes
// payloads late or missing; the none profile does none of it.
func TestFaultProfiles(t *testing.T) {
	t.Parallel()
	heavy, err := FaultProfile("heavy")
	if err != nil {
		t.Fatal(err)
	}
	heavy.SlowReply = time.Millisecond // keep the test fast; slowness is wall time
	for _, c := range []struct {
		name   string
		faults *Faults
		days   int
	}{{"none", nil, 1}, {"heavy", &heavy, 2}} {
		clk := clock.NewFake(DefaultStart)
		s := newSim(t, Config{Seed: 11, Faults: c.name, CustomFaults: c.faults, Clock: clk})
		srv := httptest.NewServer(s.Handler())
		seen := map[string]int{}
		urls := map[string]string{
			"oms":     srv.URL + "/agg/api/v1/runs",
			"tier0":   srv.URL + "/t0wmadatasvc/prod/firstconditionsaferun",
			"dropbox": srv.URL + dropbox.LogPath,
			"dqm":     srv.URL + "/dqm/offline/data/json/samples",
		}
		decode := map[string]func([]byte) error{
			"oms":     func(b []byte) error { _, err := oms.DecodeRuns(b); return err },
			"tier0":   func(b []byte) error { _, _, err := tier0.DecodeFCSR(b); return err },
			"dropbox": func(b []byte) error { _, err := dropbox.DecodeLog(b); return err },
			"dqm":     func(b []byte) error { _, err := dqm.DecodeSamples(b); return err },
		}
		end := DefaultStart.Add(time.Duration(c.days) * 24 * time.Hour)
		for now := DefaultStart.Add(time.Minute); now.Before(end); now = now.Add(10 * time.Minute) {
			clk.Set(now)
			for src, u := range urls {
				code, h, body := get(t, u)
				switch {
				case code == http.StatusServiceUnavailable:
					seen["503"]++
				case strings.HasPrefix(h.Get("Content-Type"), "text/html"):
					seen["html"]++
				case code != 200:
					t.Errorf("%s %s: status %d", c.name, src, code)
				case decode[src](body) != nil:
					seen["garbage"]++
				default:
					seen["ok"]++
				}
			}
		}
		srv.Close()
		for _, r := range s.Runs() {
			for _, w := range r.Workflows {
				if w.Outcome == OutcomeMissing {
					seen["missing"]++
				}
				if w.Outcome == OutcomePayload && w.HarvestAt.Sub(r.Stop) >= DefaultParams().AlcaHarvestTimeout*3/4 {
					seen["late"]++
				}
				for _, f := range w.Files {
					for _, tg := range f.Tags {
						if tg.Status == "fail" {
							seen["upload-fail"]++
						}
					}
				}
			}
		}
		faults := []string{"503", "html", "garbage", "missing", "late", "upload-fail"}
		for _, k := range faults {
			if c.name == "heavy" && seen[k] == 0 {
				t.Errorf("heavy profile: no %s in %d days (%v)", k, c.days, seen)
			}
			if c.name == "none" && seen[k] != 0 {
				t.Errorf("none profile: %d %s (%v)", seen[k], k, seen)
			}
		}
		if seen["ok"] == 0 {
			t.Errorf("%s: no good reply at all", c.name)
		}
	}
}

// Run advances the world on the clock's ticks and stops with its context.
func TestRunFollowsClock(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(DefaultStart)
	s := newSim(t, Config{Seed: 3, Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	target := DefaultStart.Add(3 * time.Hour)
	for deadline := time.Now().Add(20 * time.Second); s.Now().Before(target); {
		if time.Now().After(deadline) {
			t.Fatalf("world at %v, clock at %v", s.Now(), clk.Now())
		}
		if clk.Timers() > 0 {
			clk.Advance(DefaultParams().FeederInterval)
		}
		time.Sleep(time.Millisecond) // yield to the Run goroutine; the fake clock decides the time
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(s.Runs()) == 0 {
		t.Fatal("three hours without a run")
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	bad := DefaultParams()
	bad.RecoLockDelay = bad.RecoDelay
	for name, cfg := range map[string]Config{
		"no dir":       {},
		"faults":       {Dir: t.TempDir(), Faults: "medium"},
		"mode":         {Dir: t.TempDir(), Tier0Mode: "eager"},
		"agency":       {Dir: t.TempDir(), Tier0Mode: Tier0Agency},
		"lock >= reco": {Dir: t.TempDir(), Params: &bad},
	} {
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

func TestHTTPAgencySendsToken(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		got <- req.Header.Get("Authorization")
		rw.Header().Set("Content-Type", "application/json")
		rw.Write([]byte("{\"result\": [\n 7\n]}\n"))
	}))
	defer srv.Close()
	n, err := HTTPAgency{BaseURL: srv.URL, Token: "sa_steer"}.FirstUnreadyRun(context.Background())
	if n != 7 || err != nil || <-got != "Bearer sa_steer" {
		t.Errorf("got %d, %v", n, err)
	}
}

func TestAgencyAt(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		rw.Write([]byte("{\"result\": [\n 392700\n]}\n"))
	}))
	defer srv.Close()
	var a AgencyAt
	if _, err := a.FirstUnreadyRun(context.Background()); err == nil {
		t.Error("an agency not yet listening answered")
	}
	a.Set(srv.URL)
	if n, err := a.FirstUnreadyRun(context.Background()); n != 392700 || err != nil {
		t.Errorf("after Set: %d, %v", n, err)
	}
	a.Set("")
	if _, err := a.FirstUnreadyRun(context.Background()); err == nil {
		t.Error("an agency gone answered")
	}
}
