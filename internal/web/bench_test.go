package web

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/pgtest"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/postgres"
)

// fill stores n runs below the seeded ones, each a copy of a real derived state (the ready run's, with
// all 18 workflows), every 50th waiting so that "needs attention" has something to find.
func fill(b *testing.B, w *world, n int) {
	b.Helper()
	tmpl, err := w.st.RunState(w.ctx, runReady)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		rs := tmpl
		rs.Run = uint32(300000 + i)
		rs.Decision.Run = rs.Run
		rs.Decision.State = pcl.ReadinessReleased
		if i%50 == 0 {
			rs.Decision.State = pcl.ReadinessWaiting
		}
		if err := w.st.PutRunState(w.ctx, rs); err != nil {
			b.Fatal(err)
		}
	}
}

func p95(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[int(float64(len(ds))*0.95)]
}

// BenchmarkBoardPage measures the server time of the run board with 10,000 runs stored (the target is a
// p95 of at most 20 ms), for the first page and for the "needs attention" filter.
func BenchmarkBoardPage(b *testing.B) {
	w := newWorld(b)
	w.seed()
	fill(b, w, 10000)
	srv, err := New(Options{Store: w.st, Catalogue: w.cat, Clock: w.clk, Events: w.ag})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	for _, q := range []string{"/", "/?attention=1", "/?before=305000"} {
		b.Run(q, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				rec := httptest.NewRecorder()
				start := time.Now()
				srv.ServeHTTP(rec, httptest.NewRequest("GET", q, nil))
				ds = append(ds, time.Since(start))
				if rec.Code != 200 {
					b.Fatalf("%s: %d", q, rec.Code)
				}
			}
			b.ReportMetric(float64(p95(ds).Microseconds())/1000, "p95-ms")
		})
	}
}

// BenchmarkSSEFanout connects 500 clients to /events over loopback, publishes a run change, and measures
// how long until the last client has it (the target is within 100 ms).
func BenchmarkSSEFanout(b *testing.B) {
	const clients = 500
	w := newWorld(b)
	w.seed()
	rs, err := w.st.RunState(w.ctx, runReady)
	if err != nil {
		b.Fatal(err)
	}
	src := make(chan pcl.RunEvent, 16)
	srv, err := New(Options{Store: w.st, Catalogue: w.cat, Clock: w.clk, Heartbeat: time.Hour,
		Events: eventsFunc(func(int) (<-chan pcl.RunEvent, func()) { return src, func() {} })})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	arrived := make(chan time.Time, clients)
	var ready sync.WaitGroup
	for range clients {
		ready.Add(1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/events", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				ready.Done()
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			first := true
			for sc.Scan() {
				line := sc.Text()
				if first && strings.HasPrefix(line, "event: tick") {
					first = false
					ready.Done()
				}
				if strings.HasPrefix(line, "event: run") {
					arrived <- time.Now()
				}
			}
		}()
	}
	ready.Wait()
	var worst []time.Duration
	for b.Loop() {
		start := time.Now()
		src <- pcl.RunEvent{Run: rs.Run, DecisionChanged: true, State: rs}
		last := start
		for range clients {
			select {
			case t := <-arrived:
				if t.After(last) {
					last = t
				}
			case <-time.After(10 * time.Second):
				b.Fatal("a client never got the event")
			}
		}
		worst = append(worst, last.Sub(start))
	}
	b.ReportMetric(float64(slices.Max(worst).Microseconds())/1000, "worst-ms")
	b.ReportMetric(float64(p95(worst).Microseconds())/1000, "p95-worst-ms")
}

// storeFirstUnready is the header's first unready run as the app gives it: steering's answer from the
// store's release view.
type storeFirstUnready struct{ st store.Store }

func (f storeFirstUnready) FirstUnready(ctx context.Context) (uint32, error) {
	v, err := steer.StoreSource{Store: f.st}.Snapshot(ctx, 0, 0)
	if err != nil {
		return 0, err
	}
	return steer.FirstUnreadyIn(v, pcl.DefaultPolicy()), nil
}

// BenchmarkBoardHistory measures the served board, header included (its first unready run and what it
// holds), over the seeded runs alone and after a year (2,000) and ten years (20,000) of released runs
// below them: the target is a p95 within 1.5 × the seeded store's (docs/benchmarks.md).
func BenchmarkBoardHistory(b *testing.B) {
	for _, c := range []struct {
		name     string
		released int
	}{{"seeded", 0}, {"year", 2000}, {"decade", 20000}} {
		b.Run(c.name, func(b *testing.B) { benchBoard(b, newWorld(b), c.released) })
	}
}

// BenchmarkBoardStores is the served board on SQLite and on PostgreSQL in one run (issue 16): the
// seeded runs alone, and with a year (2,000) of released runs below them.
func BenchmarkBoardStores(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) *world
	}{
		{"sqlite", func(b *testing.B) *world { return newWorld(b) }},
		{"postgres", func(b *testing.B) *world {
			dsn := pgtest.Schema(b)
			return newWorldOn(b, func(now func() time.Time) (store.Store, error) {
				return postgres.Open(context.Background(), dsn, postgres.Options{Now: now})
			})
		}},
	}
	for _, st := range stores {
		for _, c := range []struct {
			name     string
			released int
		}{{"seeded", 0}, {"year", 2000}} {
			b.Run(st.name+"/"+c.name, func(b *testing.B) { benchBoard(b, st.open(b), c.released) })
		}
	}
}

// benchBoard measures the served board, header included, on the seeded world with released runs of
// history below it, and reports the p95 of the server time.
func benchBoard(b *testing.B, w *world, released int) {
	w.seed()
	tmpl, err := w.st.RunState(w.ctx, runReady)
	if err != nil {
		b.Fatal(err)
	}
	for i := range released {
		rs := tmpl
		rs.Run = uint32(300000 + i)
		rs.Decision.Run, rs.Decision.State, rs.Decision.Version, rs.Decision.Releasable = rs.Run, pcl.ReadinessReleased, 1, true
		if _, err := w.st.SaveDecision(w.ctx, store.DecisionWrite{Decision: rs.Decision, State: rs}); err != nil {
			b.Fatal(err)
		}
	}
	srv, err := New(Options{Store: w.st, Catalogue: w.cat, Clock: w.clk, Events: w.ag, FirstUnready: storeFirstUnready{w.st}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	var ds []time.Duration
	for b.Loop() {
		rec := httptest.NewRecorder()
		start := time.Now()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		ds = append(ds, time.Since(start))
		if rec.Code != 200 {
			b.Fatalf("board: %d", rec.Code)
		}
	}
	b.ReportMetric(float64(p95(ds).Microseconds())/1000, "p95-ms")
}
