package agency

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy/harvest"
	"github.com/cms-pcl/spyagency/internal/spy/runner"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

// BenchmarkNoPayloadVerdict measures, on the wall clock, how long a no-payload verdict takes: from the
// moment the agency stored "stream done" to the decision that rests on a harvest scan after it, when
// that scan finds nothing new. The harvest spy polls an empty area every 200 ms (its default jitter,
// ±10 %), the agency's loop runs with a 5-minute resync, so only the scan's view advancing can wake
// the run. The target is one poll interval + 100 ms; ns/op is the mean, max-ms the worst iteration.
//
//	go test ./internal/agency -run '^$' -bench NoPayloadVerdict -benchtime 50x
func BenchmarkNoPayloadVerdict(b *testing.B) {
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "spy.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	clk := clock.Real{}
	var r *runner.Runner
	ag, err := New(ctx, Options{Store: st, Catalogue: pcl.DefaultCatalogue(), Clock: clk, Resync: 5 * time.Minute,
		Sources: healthOf(func() []pcl.SourceHealth { return []pcl.SourceHealth{r.Health()} })})
	if err != nil {
		b.Fatal(err)
	}
	sp, err := harvest.New(harvest.Config{Dir: b.TempDir(), Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	const interval = 200 * time.Millisecond
	r = runner.New(sp, runner.Options{Clock: clk, Interval: interval, Sink: ag.Ingest, Viewed: ag.SourceViewed, Cursors: st})
	events, unsubscribe := ag.Subscribe(256)
	defer unsubscribe()
	var wg sync.WaitGroup
	wg.Go(func() { ag.Run(ctx) })
	wg.Go(func() { r.Run(ctx) })
	defer wg.Wait() // before the store closes: the loops use it until they end
	defer cancel()

	var worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		n := uint32(392000 + i)
		now := time.Now().UTC()
		start, stop := now.Add(-3*time.Hour), now.Add(-time.Hour)
		if err := ag.Ingest(ctx, pcl.SourceOMS, []pcl.Observation{{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: n, At: stop, Seen: now,
			RunInfo: &pcl.RunInfo{Start: start, Stop: &stop, Class: "Cosmics26", LastUpdate: stop}},
			{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: n, At: start, Seen: now, Stream: "ExpressCosmics",
				Producers: []string{"PromptCalibProdSiStripLA"}}}); err != nil {
			b.Fatal(err)
		}
		waitFor(b, events, n, func(rs pcl.RunState) bool { return rs.Decision.Version > 0 })
		b.StartTimer()
		began := time.Now()
		done := time.Now().UTC()
		if err := ag.Ingest(ctx, pcl.SourceTier0, []pcl.Observation{{Source: pcl.SourceTier0, Kind: pcl.KindStreamDone, Run: n,
			At: done, Seen: done, Stream: "ExpressCosmics", Done: true}}); err != nil {
			b.Fatal(err)
		}
		waitFor(b, events, n, func(rs pcl.RunState) bool {
			w, ok := rs.Workflow("SiStripLA")
			return ok && w.State == pcl.StateNoPayload && rs.Decision.Releasable
		})
		worst = max(worst, time.Since(began))
	}
	b.StopTimer()
	b.ReportMetric(float64(worst)/float64(time.Millisecond), "max-ms")
	if limit := interval + 100*time.Millisecond; worst > limit {
		b.Logf("the worst verdict took %s, over the target of %s", worst, limit)
	}
}

// waitFor reads the agency's events until run n's state satisfies ok.
func waitFor(b *testing.B, events <-chan pcl.RunEvent, n uint32, ok func(pcl.RunState) bool) {
	b.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case e := <-events:
			if e.Run == n && ok(e.State) {
				return
			}
		case <-timeout.C:
			b.Fatalf("run %d: no such state within 30 s", n)
		}
	}
}
