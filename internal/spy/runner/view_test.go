package runner

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
	"github.com/cms-pcl/spyagency/internal/store"
)

// slowPoll is a poll that takes d on the clock (a long listing) and reports view as its own view time.
func slowPoll(clk *clock.Fake, d time.Duration, view func(start time.Time) time.Time) func(context.Context, string) (spy.Result, error) {
	return func(context.Context, string) (spy.Result, error) {
		start := clk.Now()
		clk.Advance(d)
		return spy.Result{Cursor: "c", View: view(start)}, nil
	}
}

// TestViewIsWhenTheListingBegan: a poll's view is the instant its listing began, not when the poll
// ended: whatever was written while the spy read other files is not in it. The spy's own view is kept
// unless it is after the attempt's end (then the end: nobody saw later), and the attempt's start stands
// in for none.
func TestViewIsWhenTheListingBegan(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		view func(start time.Time) time.Time
		want time.Duration // after the attempt's start
	}{
		{"spy's own", func(s time.Time) time.Time { return s.Add(2 * time.Second) }, 2 * time.Second},
		{"none", func(time.Time) time.Time { return time.Time{} }, 0},
		{"before the attempt (a cached answer)", func(s time.Time) time.Time { return s.Add(-time.Hour) }, -time.Hour},
		{"after the attempt", func(s time.Time) time.Time { return s.Add(time.Hour) }, 40 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(t0)
			sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){slowPoll(clk, 40*time.Second, c.view)}}
			r := New(sp, Options{Clock: clk, Wall: clk, Sink: (&recordingSink{}).sink})
			if err := r.PollOnce(t.Context()); err != nil {
				t.Fatal(err)
			}
			h := r.Health()
			if got := h.View.Sub(t0); got != c.want {
				t.Errorf("view at +%v, want +%v", got, c.want)
			}
			if !h.LastSuccess.Equal(t0.Add(40 * time.Second)) {
				t.Errorf("last success %v, want the poll's end", h.LastSuccess)
			}
		})
	}
}

// orderedCursors records the order of writes with the sink's.
type orderedCursors struct {
	memCursors
	log *[]string
	mu  *sync.Mutex
	err error
}

func (c *orderedCursors) SetCursor(ctx context.Context, name string, v store.Cursor) error {
	c.mu.Lock()
	*c.log = append(*c.log, "cursor "+v.Value+" "+v.View.Format(time.TimeOnly))
	c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return c.memCursors.SetCursor(ctx, name, v)
}

// TestViewPersistedWithTheCursor: the view is written with the cursor in one write, after the sink
// stored the poll's observations, on every poll whose view advanced even when the cursor did not move;
// Viewed is told only then. A new runner on the same cursors reports the view before it polls.
func TestViewPersistedWithTheCursor(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	var mu sync.Mutex
	var log []string
	cur := &orderedCursors{memCursors: memCursors{m: map[string]store.Cursor{}}, log: &log, mu: &mu}
	sink := func(_ context.Context, _ pcl.Source, obs []pcl.Observation) error {
		mu.Lock()
		defer mu.Unlock()
		log = append(log, "sink")
		return nil
	}
	viewed := func(src pcl.Source, v time.Time) {
		mu.Lock()
		defer mu.Unlock()
		log = append(log, "viewed "+string(src)+" "+v.Format(time.TimeOnly))
	}
	sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){ok("a", fcsr(392700)), ok("a")}}
	r := New(sp, Options{Clock: clk, Wall: clk, Sink: sink, Cursors: cur, Viewed: viewed})
	if err := r.PollOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if err := r.PollOnce(t.Context()); err != nil { // nothing new, same cursor: the view still moves
		t.Fatal(err)
	}
	want := []string{"sink", "cursor a 12:00:00", "viewed tier0 12:00:00", "cursor a 12:01:00", "viewed tier0 12:01:00"}
	if strings.Join(log, "; ") != strings.Join(want, "; ") {
		t.Errorf("writes\n %s\nwant\n %s", strings.Join(log, "; "), strings.Join(want, "; "))
	}

	// A failed write of the view leaves the older one, in memory as in the store, and tells nobody.
	log = nil
	cur.err = errors.New("disk full")
	clk.Advance(time.Minute)
	if err := r.PollOnce(t.Context()); err == nil {
		t.Fatal("a poll whose view could not be saved succeeded")
	}
	if h := r.Health(); !h.View.Equal(t0.Add(time.Minute)) {
		t.Errorf("view %v after a failed save, want the one saved before", h.View)
	}
	if len(log) != 1 {
		t.Errorf("after a failed save: %v", log)
	}

	// A restart: the new runner knows the source's freshness before its first poll.
	restarted := New(&fakeSpy{clk: clk, script: sp.script}, Options{Clock: clk, Sink: sink, Cursors: &cur.memCursors})
	if h := restarted.Health(); !h.View.IsZero() {
		t.Fatalf("view %v before Restore", h.View)
	}
	if err := restarted.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	if h := restarted.Health(); !h.View.Equal(t0.Add(time.Minute)) {
		t.Errorf("view after Restore %v, want %v", h.View, t0.Add(time.Minute))
	}
}

// TestDeadlineIsWallTime: in simulated time running 600 times faster than the wall, a source that takes
// two real seconds to answer is not timed out by a 30 s deadline (which on the simulated clock was 50 ms
// of real time), and a source that never answers is cut after 30 real seconds.
func TestDeadlineIsWallTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := clock.NewScaled(t0, 600)
		slow := func(ctx context.Context, _ string) (spy.Result, error) {
			select {
			case <-time.After(2 * time.Second):
				return spy.Result{Cursor: "c"}, nil
			case <-ctx.Done():
				return spy.Result{}, ctx.Err()
			}
		}
		sp := &fakeSpy{clk: sim, script: []func(context.Context, string) (spy.Result, error){slow, hang}}
		r := New(sp, Options{Clock: sim, Interval: time.Minute, Timeout: 30 * time.Second, Retries: -1, Sink: (&recordingSink{}).sink})
		if err := r.PollOnce(t.Context()); err != nil {
			t.Fatalf("a source answering in 2 s of real time failed a 30 s deadline: %v", err)
		}
		began := time.Now()
		err := r.PollOnce(t.Context())
		if err == nil || !strings.Contains(err.Error(), "poll deadline") {
			t.Fatalf("a hanging source: %v", err)
		}
		if took := time.Since(began); took != 30*time.Second {
			t.Errorf("the deadline passed after %v of real time, want 30s", took)
		}
	})
}

// TestRetryOnlyWhileTheNextPollIsNotDue: the backoff is wall time, but a retry whose backoff outlasts
// the interval on the schedule's clock is not made: the next poll is the retry.
func TestRetryOnlyWhileTheNextPollIsNotDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sched, wall := clock.NewFake(t0), clock.NewFake(t0)
		sp := &fakeSpy{clk: sched, script: []func(context.Context, string) (spy.Result, error){fail(errRetry), fail(errRetry), ok("c")}}
		r := New(sp, Options{Clock: sched, Wall: wall, Interval: time.Minute, Retries: 2, Backoff: 10 * time.Second,
			Sink: (&recordingSink{}).sink})
		errc := make(chan error, 1)
		go func() { errc <- r.PollOnce(t.Context()) }()
		synctest.Wait()
		sched.Advance(time.Minute) // simulated time runs on while the backoff waits in real time
		synctest.Wait()
		if err := <-errc; err == nil {
			t.Fatal("retried although the next poll came due during the backoff")
		}
		if n := len(sp.callTimes()); n != 1 {
			t.Errorf("%d attempts, want 1", n)
		}

		// Within the interval the retry is made after the wall backoff.
		go func() { errc <- r.PollOnce(t.Context()) }()
		synctest.Wait()
		wall.Advance(10 * time.Second)
		synctest.Wait()
		if err := <-errc; err != nil {
			t.Fatalf("the retry within the interval failed: %v", err)
		}
		if n := len(sp.callTimes()); n != 3 {
			t.Errorf("%d attempts in all, want 3", n)
		}
	})
}

// TestPartialPollKeepsTheView: a poll that read only part of its source (a page limit) stores its
// observations and cursor, but its view does not advance the source's.
func TestPartialPollKeepsTheView(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	partial := func(context.Context, string) (spy.Result, error) {
		return spy.Result{Observations: []pcl.Observation{fcsr(392701)}, Cursor: "p", View: clk.Now(), Partial: true}, nil
	}
	sp := &fakeSpy{clk: clk, script: []func(context.Context, string) (spy.Result, error){ok("a"), partial}}
	sink := &recordingSink{}
	cur := &memCursors{m: map[string]store.Cursor{}}
	r := New(sp, Options{Clock: clk, Wall: clk, Sink: sink.sink, Cursors: cur})
	if err := r.PollOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if err := r.PollOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c, _ := cur.Cursor(t.Context(), "tier0"); c.Value != "p" || !c.View.Equal(t0) {
		t.Errorf("cursor %+v, want the partial poll's value with the earlier view", c)
	}
	if h := r.Health(); !h.View.Equal(t0) || len(sink.got) != 1 {
		t.Errorf("view %s, %d batches stored; want %s and the partial poll's batch", h.View, len(sink.got), t0)
	}
}
