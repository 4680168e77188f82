package runner

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
	"github.com/cms-pcl/spyagency/internal/store"
)

var t0 = time.Date(2025, 5, 29, 12, 0, 0, 0, time.UTC)

// fakeSpy answers each poll with its script's next step (the last one repeats) and records when it was
// called, by the fake clock.
type fakeSpy struct {
	clk    clock.Clock
	mu     sync.Mutex
	script []func(ctx context.Context, cursor string) (spy.Result, error)
	calls  []time.Time
	cursor []string
}

func (f *fakeSpy) Source() pcl.Source { return pcl.SourceTier0 }

func (f *fakeSpy) Poll(ctx context.Context, cursor string) (spy.Result, error) {
	f.mu.Lock()
	i := min(len(f.calls), len(f.script)-1)
	f.calls = append(f.calls, f.clk.Now())
	f.cursor = append(f.cursor, cursor)
	step := f.script[i]
	f.mu.Unlock()
	return step(ctx, cursor)
}

func (f *fakeSpy) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

func ok(cursor string, obs ...pcl.Observation) func(context.Context, string) (spy.Result, error) {
	return func(context.Context, string) (spy.Result, error) {
		return spy.Result{Observations: obs, Cursor: cursor}, nil
	}
}

func fail(err error) func(context.Context, string) (spy.Result, error) {
	return func(context.Context, string) (spy.Result, error) { return spy.Result{}, err }
}

func hang(ctx context.Context, _ string) (spy.Result, error) {
	<-ctx.Done()
	return spy.Result{}, ctx.Err()
}

func fcsr(run uint32) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindFCSR, Run: run, At: t0, Seen: t0}
}

type recordingSink struct {
	mu  sync.Mutex
	got [][]pcl.Observation
	err error
}

func (s *recordingSink) sink(_ context.Context, _ pcl.Source, obs []pcl.Observation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.got = append(s.got, obs)
	return nil
}

var errRetry = httpx.MarkRetryable(errors.New("HTTP 503"))

func TestRunPollsAtIntervalWithJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){ok("c")}}
		sink := &recordingSink{}
		r := New(sp, Options{Clock: clk, Interval: time.Minute, Jitter: 0.2, Sink: sink.sink,
			Rand: rand.New(rand.NewPCG(1, 2))})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		for range 20 * 60 {
			synctest.Wait()
			clk.Advance(time.Second)
		}
		synctest.Wait()
		calls := sp.callTimes()
		if len(calls) < 17 || len(calls) > 25 {
			t.Fatalf("%d polls in 20 minutes at 1/min ± 20%%", len(calls))
		}
		distinct := map[time.Duration]bool{}
		for i := 1; i < len(calls); i++ {
			gap := calls[i].Sub(calls[i-1])
			distinct[gap] = true
			if gap < 48*time.Second || gap > 73*time.Second { // ±20% plus the 1 s stepping
				t.Errorf("gap %d is %v, outside 1 min ± 20%%", i, gap)
			}
		}
		if len(distinct) < 3 {
			t.Errorf("gaps %v show no jitter", distinct)
		}
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v on cancel", err)
			}
		default:
			t.Fatal("Run did not stop on cancel")
		}
	})
}

func TestRetriesBackOffExponentially(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){
			fail(errRetry), fail(errRetry), fail(errRetry), ok("c2", fcsr(392700))}}
		sink := &recordingSink{}
		r := New(sp, Options{Clock: clk, Wall: clk, Interval: time.Minute, Retries: 3, Backoff: time.Second,
			MaxBackoff: 10 * time.Second, Sink: sink.sink})
		errc := make(chan error, 1)
		go func() { errc <- r.PollOnce(t.Context()) }()
		for range 10 {
			synctest.Wait()
			clk.Advance(time.Second)
		}
		if err := <-errc; err != nil {
			t.Fatalf("poll failed after retries: %v", err)
		}
		calls := sp.callTimes()
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
		if len(calls) != len(want) {
			t.Fatalf("%d attempts, want %d", len(calls), len(want))
		}
		for i, w := range want {
			if got := calls[i].Sub(t0); got != w {
				t.Errorf("attempt %d at +%v, want +%v", i, got, w)
			}
		}
		if len(sink.got) != 1 || sink.got[0][0].Run != 392700 {
			t.Errorf("sink got %v", sink.got)
		}
	})
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){fail(errors.New("HTTP 404"))}}
		r := New(sp, Options{Clock: clk, Retries: 5, Sink: (&recordingSink{}).sink})
		if err := r.PollOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("got %v", err)
		}
		if n := len(sp.callTimes()); n != 1 {
			t.Errorf("%d attempts for a permanent error", n)
		}
	})
}

func TestStaleAfterFailuresAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){
			ok("a"), fail(errors.New("answered HTML, not JSON")), fail(errors.New("answered HTML, not JSON")),
			fail(errors.New("answered HTML, not JSON")), ok("b")}}
		r := New(sp, Options{Clock: clk, StaleAfter: 3, Sink: (&recordingSink{}).sink})
		if h := r.Health(); h.Healthy || h.Stale {
			t.Errorf("before any poll: %+v", h)
		}
		if err := r.PollOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 3; i++ {
			clk.Advance(time.Minute)
			if err := r.PollOnce(t.Context()); err == nil {
				t.Fatal("poll should fail")
			}
			h := r.Health()
			if h.Healthy || h.Failures != i || h.Stale != (i >= 3) || !strings.Contains(h.Error, "HTML") {
				t.Errorf("after %d failures: %+v", i, h)
			}
			if h.LagSeconds != float64(60*i) || !h.LastSuccess.Equal(t0) {
				t.Errorf("lag %v last success %v", h.LagSeconds, h.LastSuccess)
			}
		}
		clk.Advance(time.Minute)
		if err := r.PollOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		if h := r.Health(); !h.Healthy || h.Stale || h.Failures != 0 || h.Error != "" || h.LagSeconds != 0 {
			t.Errorf("after recovery: %+v", h)
		}
	})
}

func TestCursorSavedOnlyAfterSinkAccepts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){ok("next", fcsr(392700))}}
		sink := &recordingSink{err: errors.New("disk full")}
		cur := &memCursors{m: map[string]store.Cursor{"tier0": {Value: "prev"}}}
		r := New(sp, Options{Clock: clk, Sink: sink.sink, Cursors: cur})
		if err := r.PollOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("got %v", err)
		}
		if c, _ := cur.Cursor(t.Context(), "tier0"); c.Value != "prev" || !c.View.IsZero() {
			t.Errorf("cursor moved to %+v although the sink refused", c)
		}
		if h := r.Health(); !h.View.IsZero() {
			t.Errorf("the view advanced to %s although the sink refused the poll's observations", h.View)
		}
		sink.err = nil
		if err := r.PollOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		if c, _ := cur.Cursor(t.Context(), "tier0"); c.Value != "next" || !c.View.Equal(t0) {
			t.Errorf("cursor %+v, want next with the view of the poll", c)
		}
		if sp.cursor[0] != "prev" || sp.cursor[1] != "prev" {
			t.Errorf("spy was given cursors %v", sp.cursor)
		}
	})
}

func TestInvalidObservationRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		bad := pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindStreamDone, Run: 392700, At: t0} // no stream
		other := fcsr(1)
		other.Source = pcl.SourceOMS
		for _, o := range []pcl.Observation{bad, other} {
			sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){ok("x", fcsr(392700), o)}}
			sink := &recordingSink{}
			r := New(sp, Options{Clock: clk, Sink: sink.sink})
			if err := r.PollOnce(t.Context()); err == nil {
				t.Errorf("observation %+v accepted", o)
			}
			if len(sink.got) != 0 {
				t.Errorf("sink got observations of a refused poll")
			}
		}
	})
}

func TestHangingSpyHitsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){hang}}
		r := New(sp, Options{Clock: clk, Wall: clk, Interval: time.Minute, Timeout: 20 * time.Second, Retries: 1,
			Backoff: 5 * time.Second, Sink: (&recordingSink{}).sink})
		errc := make(chan error, 1)
		go func() { errc <- r.PollOnce(t.Context()) }()
		for range 60 {
			synctest.Wait()
			clk.Advance(time.Second)
		}
		err := <-errc
		if err == nil || !strings.Contains(err.Error(), "poll deadline") {
			t.Fatalf("got %v", err)
		}
		calls := sp.callTimes()
		// The retry starts at +25 s and is cut at the deadline, both within the interval.
		if len(calls) != 2 || calls[1].Sub(t0) != 25*time.Second {
			t.Errorf("attempts at %v", calls)
		}
		if h := r.Health(); h.Failures != 1 {
			t.Errorf("health %+v", h)
		}
	})
}

func TestCancelStopsPromptly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){hang}}
		r := New(sp, Options{Clock: clk, Interval: time.Hour, Sink: (&recordingSink{}).sink})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Run still running after cancel, with no clock movement")
		}
		if h := r.Health(); h.Failures != 0 {
			t.Errorf("shutdown counted as a failure: %+v", h)
		}
	})
}

// watchingSpy notifies changes through Watch, as the harvest spy does with file-system events, and can
// report a problem while polling fine.
type watchingSpy struct {
	fakeSpy
	notify  chan func()
	problem error
}

func (w *watchingSpy) Watch(ctx context.Context, notify func()) error {
	w.notify <- notify
	<-ctx.Done()
	return nil
}

func (w *watchingSpy) Degraded() error { return w.problem }

func TestWatchWakesThePollAndDegradedShows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		sp := &watchingSpy{fakeSpy: fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){ok("c")}},
			notify: make(chan func(), 1)}
		r := New(sp, Options{Clock: clk, Interval: time.Hour, Sink: (&recordingSink{}).sink, Rand: rand.New(rand.NewPCG(1, 2))})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		notify := <-sp.notify
		synctest.Wait()
		if n := len(sp.callTimes()); n != 1 {
			t.Fatalf("%d polls at start", n)
		}
		clk.Advance(time.Minute)
		notify() // a file appeared: poll now, not in an hour
		synctest.Wait()
		if n := len(sp.callTimes()); n != 2 {
			t.Fatalf("%d polls after a change notification, want 2", n)
		}
		if h := r.Health(); !h.Healthy || h.Error != "" {
			t.Errorf("health before a problem: %+v", h)
		}
		sp.problem = errors.New("harvest: 1 unreadable file(s)")
		if h := r.Health(); h.Healthy || h.Stale || !strings.Contains(h.Error, "unreadable") {
			t.Errorf("health with a degraded spy: %+v", h)
		}
	})
}

// logRecorder keeps what the runner logged.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func TestLogsChangesNotEveryPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		script := []func(context.Context, string) (spy.Result, error){ok("c")}
		for range 20 {
			script = append(script, fail(errors.New("HTTP 400: bad request")))
		}
		script = append(script, ok("c"))
		sp := &fakeSpy{clk: clk, script: script}
		rec := &logRecorder{}
		r := New(sp, Options{Clock: clk, Interval: time.Minute, Sink: (&recordingSink{}).sink, StaleAfter: 3, Retries: -1,
			Logger: slog.New(slog.NewTextHandler(rec, &slog.HandlerOptions{Level: slog.LevelInfo})), Rand: rand.New(rand.NewPCG(1, 2))})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		for range 30 * 60 {
			synctest.Wait()
			clk.Advance(time.Second)
		}
		synctest.Wait()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(sp.callTimes()) < 22 {
			t.Fatalf("only %d polls", len(sp.callTimes()))
		}
		joined := strings.Join(rec.lines, "")
		if len(rec.lines) != 3 || !strings.Contains(joined, "poll failed") || !strings.Contains(joined, "stale") || !strings.Contains(joined, "answers again") {
			t.Errorf("want three lines (failed, stale, answers again), got %d:\n%s", len(rec.lines), joined)
		}
	})
}

func TestPollIfDueKeepsTheInterval(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){ok("c")}}
	r := New(sp, Options{Clock: clk, Interval: 10 * time.Minute, Sink: (&recordingSink{}).sink})
	polled := 0
	for range 60 { // one hour in one-minute steps
		if did, err := r.PollIfDue(t.Context()); err != nil {
			t.Fatal(err)
		} else if did {
			polled++
		}
		clk.Advance(time.Minute)
	}
	if polled != 6 {
		t.Errorf("%d polls in an hour at a 10-minute interval, want 6", polled)
	}
}

// TestCounts: polls, failures and stored observations are counted for the metrics, a poll's wall time
// is measured on the wall clock, and a poll cut short by shutdown counts for nothing.
func TestCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		slow := func(ctx context.Context, c string) (spy.Result, error) {
			time.Sleep(250 * time.Millisecond) // the wall clock of the bubble
			return ok("c2", fcsr(1), fcsr(2))(ctx, c)
		}
		sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){
			ok("c1", fcsr(1)), fail(errors.New("HTTP 404")), slow}}
		r := New(sp, Options{Clock: clk, Retries: -1, Sink: (&recordingSink{}).sink})
		for range 3 {
			_ = r.PollOnce(t.Context())
		}
		got := r.Counts()
		if got.Polls != 3 || got.Failed != 1 || got.Observations != 3 || got.LastPoll != 250*time.Millisecond {
			t.Errorf("counts %+v, want 3 polls, 1 failed, 3 observations, last poll 250ms", got)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_ = r.PollOnce(ctx)
		if r.Counts().Polls != 3 {
			t.Errorf("a poll cut short by shutdown was counted: %+v", r.Counts())
		}
	})
}

// countingCursors counts the store reads of cursors.
type countingCursors struct {
	memCursors
	reads int
}

func (c *countingCursors) Cursor(ctx context.Context, name string) (store.Cursor, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.memCursors.Cursor(ctx, name)
}

// TestCursorReadOnceThenRemembered: the runner reads its stored cursor once and then keeps what it
// writes, so a poll that finds nothing costs no read; after Restore (another replica led meanwhile) it
// reads the store again and goes on from what is stored there.
func TestCursorReadOnceThenRemembered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(t0)
		sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){
			ok("a"), ok("b"), ok("b"), ok("elsewhere-next")}}
		cur := &countingCursors{memCursors: memCursors{m: map[string]store.Cursor{"tier0": {Value: "start"}}}}
		r := New(sp, Options{Clock: clk, Sink: (&recordingSink{}).sink, Cursors: cur})
		for range 3 {
			if err := r.PollOnce(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if cur.reads != 1 {
			t.Errorf("%d cursor reads in 3 polls, want 1", cur.reads)
		}
		// Another leader moved the cursor on.
		if err := cur.SetCursor(t.Context(), "tier0", store.Cursor{Value: "elsewhere"}); err != nil {
			t.Fatal(err)
		}
		if err := r.Restore(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := r.PollOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := []string{"start", "a", "b", "elsewhere"}
		if !slices.Equal(sp.cursor, want) {
			t.Errorf("spy was given cursors %v, want %v", sp.cursor, want)
		}
	})
}
