package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/spy/harvest"
)

// The year-store benchmarks (issue 13) run on a directory built by `spyagency simulate --fast`:
// SPYAGENCY_FAST_DIR names it (docs/benchmarks.md builds a year), or, unset, a week is built here.

// fastDir returns a fast build's directory and the serve configuration of it.
func fastDir(b *testing.B) (string, *config.Config) {
	b.Helper()
	dir := os.Getenv("SPYAGENCY_FAST_DIR")
	if dir == "" {
		dir = b.TempDir()
		if _, _, err := buildFast(context.Background(), fastOptions{Days: 7, Dir: dir, Seed: 1, Faults: "default",
			Step: time.Hour, Retention: config.DefaultRetention, BaseURL: "http://127.0.0.1:1"}); err != nil {
			b.Fatal(err)
		}
	}
	cfg, err := config.Parse("fast", fastServeYAML(b, dir))
	if err != nil {
		b.Fatal(err)
	}
	return dir, cfg
}

// fastServeYAML is the serve configuration of a fast build's directory, sources at an address where
// nothing listens: the store and the harvest area are what is measured.
func fastServeYAML(b *testing.B, dir string) []byte {
	b.Helper()
	return []byte(`sources:
  oms: {url: "http://127.0.0.1:1/agg/api/v1"}
  tier0: {url: "http://127.0.0.1:1/t0wmadatasvc/prod"}
  dropbox: {url: "http://127.0.0.1:1"}
  dqm: {url: "http://127.0.0.1:1/dqm/offline"}
  harvest: {dir: "` + filepath.Join(dir, "cms", "harvest") + `"}
  conddb: {dsn: "sqlite:` + filepath.Join(dir, "cms", "conddb.db") + `"}
store:
  dsn: "sqlite:` + filepath.Join(dir, "spyagency.db") + `"
`)
}

// endOf is the simulated time a fast build ended at, from its record.
func endOf(b *testing.B, dir string) time.Time {
	b.Helper()
	rec, err := readRecord(dir)
	if err != nil {
		b.Fatal(err)
	}
	return rec.To
}

// newBenchApp is a serve of cfg on store dsn at simulated time at, not started: its handler serves.
func newBenchApp(b *testing.B, cfg config.Config, dsn string, at time.Time) *app.App {
	b.Helper()
	cfg.Store.DSN = dsn
	a, err := app.New(context.Background(), app.Options{Config: &cfg, Clock: clock.NewFake(at), OpenLoopback: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	return a
}

// BenchmarkYearStoreServed: first_unready_run and the board (GET /, its header included) of a serve
// on the fast build's store and on an empty one, alternately in one run, with p95/p99 of each and
// their ratios (issue 13: within 1.5 ×). SPYAGENCY_FAST_BASE may name a second, short fast build (a
// fortnight: the same open work and a full first page of the board, without the history) and
// SPYAGENCY_FAST_DECADE a long one (ten years: the same open work with ten times the history), measured
// in the same loop; the decade's ratios are to the year (issue 13: 10 years change nothing by more than
// 1.5 ×).
func BenchmarkYearStoreServed(b *testing.B) {
	dir, cfg := fastDir(b)
	at := endOf(b, dir)
	type served struct {
		name string
		app  *app.App
		ds   []time.Duration
	}
	stores := []*served{{name: "year", app: newBenchApp(b, *cfg, cfg.Store.DSN, at)},
		{name: "empty", app: newBenchApp(b, *cfg, "sqlite:"+filepath.Join(b.TempDir(), "empty.db"), at)}}
	for _, other := range []struct{ name, env string }{{"base", "SPYAGENCY_FAST_BASE"}, {"decade", "SPYAGENCY_FAST_DECADE"}} {
		d := os.Getenv(other.env)
		if d == "" {
			continue
		}
		ocfg, err := config.Parse(other.name, fastServeYAML(b, d))
		if err != nil {
			b.Fatal(err)
		}
		stores = append(stores, &served{name: other.name, app: newBenchApp(b, *ocfg, ocfg.Store.DSN, endOf(b, d))})
	}
	for _, c := range []struct{ name, path string }{{"first_unready_run", "/t0/v1/first_unready_run"}, {"board", "/"}} {
		b.Run(c.name, func(b *testing.B) {
			for _, s := range stores {
				s.ds = s.ds[:0]
			}
			get := func(h http.Handler) time.Duration {
				req := httptest.NewRequest("GET", c.path, nil)
				req.RemoteAddr = "127.0.0.1:40000"
				rec := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(rec, req)
				d := time.Since(start)
				if rec.Code != 200 {
					b.Fatalf("GET %s: %d %s", c.path, rec.Code, rec.Body.String())
				}
				return d
			}
			for b.Loop() {
				for _, s := range stores {
					s.ds = append(s.ds, get(s.app.Handler))
				}
			}
			for _, q := range []struct {
				name string
				q    float64
			}{{"p50", 0.5}, {"p95", 0.95}, {"p99", 0.99}} {
				year := quantileOf(stores[0].ds, q.q)
				for _, s := range stores {
					v := quantileOf(s.ds, q.q)
					b.ReportMetric(float64(v.Microseconds())/1000, s.name+"-"+q.name+"-ms")
					switch {
					case s.name == "decade":
						b.ReportMetric(float64(v)/float64(max(year, 1)), q.name+"-decade/year")
					case s != stores[0]:
						b.ReportMetric(float64(year)/float64(max(v, 1)), q.name+"-year/"+s.name)
					}
				}
			}
		})
	}
}

// BenchmarkYearHarvestPoll: one poll of the harvest spy with nothing new on the fast build's area, at
// the world's end, after the first (full) scan.
func BenchmarkYearHarvestPoll(b *testing.B) {
	dir, cfg := fastDir(b)
	at := endOf(b, dir)
	cat, err := cfg.Catalogue()
	if err != nil {
		b.Fatal(err)
	}
	s, err := harvest.New(harvest.Config{Dir: cfg.Sources.Harvest.Dir, Catalogue: cat, Clock: clock.NewFake(at), Lookback: cfg.Agency.Lookback})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	res, err := s.Poll(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: the first scan saw %d observations, %d files in the area", cfg.Sources.Harvest.Dir, len(res.Observations), countFiles(cfg.Sources.Harvest.Dir))
	cursor := res.Cursor
	for b.Loop() {
		r, err := s.Poll(ctx, cursor)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Observations) != 0 {
			b.Fatalf("a poll with nothing new returned %d observations", len(r.Observations))
		}
	}
}

func quantileOf(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
