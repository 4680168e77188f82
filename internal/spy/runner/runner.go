package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
	"github.com/cms-pcl/spyagency/internal/store"
)

// Cursors persist each spy's cursor with its view time (the store implements it).
type Cursors interface {
	Cursor(ctx context.Context, name string) (store.Cursor, error)
	SetCursor(ctx context.Context, name string, c store.Cursor) error
}

// Sink accepts a poll's observations (the store appends them idempotently).
type Sink func(ctx context.Context, src pcl.Source, obs []pcl.Observation) error

// Options configure a Runner. Zero values take the defaults noted.
type Options struct {
	// Clock schedules: the interval, the jitter, the health's times and the view. In the demo it is
	// simulated time.
	Clock    clock.Clock   // default the wall clock
	Interval time.Duration // between poll starts; default 1 min
	Jitter   float64       // fraction of Interval added or removed at random, 0..0.5; default 0.1
	// Wall measures what is I/O: an attempt's deadline and the backoff before a retry. A source answers
	// in real time whatever Clock says, so these are real durations even when Clock is simulated (at
	// 600×, a deadline on Clock of 30 s was 50 ms of the machine's time). Default the wall clock; tests
	// pass a fake.
	Wall clock.Clock
	// Timeout is the deadline of one attempt of a poll, on Wall (default Interval/2).
	Timeout    time.Duration
	StaleAfter int           // consecutive failed polls before the spy is stale; default 3
	Retries    int           // extra attempts after a retryable failure, while the next poll is not due; default 2, negative for none
	Backoff    time.Duration // first wait before a retry, on Wall, doubled each time; default Interval/20
	MaxBackoff time.Duration // default Interval/4
	// Retryable decides whether an error is worth another attempt; default httpx.Retryable.
	Retryable func(error) bool
	Cursors   Cursors // default an in-memory map (the cursor and view are then lost on restart)
	Sink      Sink    // required
	// Viewed, if set, is told after every successful poll whose view of the source was taken later
	// than the previous one, once the poll's observations are stored and its view persisted: the
	// agency then reconciles the runs that wait for a fresh view of this source.
	Viewed func(src pcl.Source, view time.Time)
	Logger *slog.Logger
	Rand   *rand.Rand // for jitter; seed it for reproducible tests; default seeded from the clock
}

// Runner polls one spy.
type Runner struct {
	sp   spy.Spy
	opts Options
	name string

	randMu sync.Mutex

	wake chan struct{} // a notification that the source changed: poll now

	mu          sync.Mutex
	lastPoll    time.Time // start of the last poll (PollIfDue)
	started     time.Time
	lastSuccess time.Time
	view        time.Time // the view of the newest successful poll, as persisted with the cursor
	// cursor is the stored cursor as this runner last read or wrote it; nil until then and after
	// Restore (another process may have written it meanwhile). Only the runner writes its cursor.
	cursor   *store.Cursor
	failures int
	lastErr  string
	polls    int
	// What Counts reports: failed polls and observations stored since start, the last poll's wall time.
	failed   uint64
	observed uint64
	lastTook time.Duration
}

// New makes a Runner for sp.
func New(sp spy.Spy, opts Options) *Runner {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Wall == nil {
		opts.Wall = clock.Real{}
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	switch {
	case opts.Jitter < 0:
		opts.Jitter = 0
	case opts.Jitter == 0:
		opts.Jitter = 0.1
	case opts.Jitter > 0.5:
		opts.Jitter = 0.5
	}
	if opts.Timeout <= 0 {
		opts.Timeout = opts.Interval / 2
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 3
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 2
	}
	if opts.Backoff <= 0 {
		opts.Backoff = opts.Interval / 20
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = opts.Interval / 4
	}
	if opts.Retryable == nil {
		opts.Retryable = httpx.Retryable
	}
	if opts.Cursors == nil {
		opts.Cursors = &memCursors{m: map[string]store.Cursor{}}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Rand == nil {
		seed := uint64(opts.Clock.Now().UnixNano())
		opts.Rand = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
	name := string(sp.Source())
	return &Runner{sp: sp, opts: opts, name: name, started: opts.Clock.Now(), wake: make(chan struct{}, 1)}
}

// Name is the spy's source name, which is also its cursor's name.
func (r *Runner) Name() string { return r.name }

// Restore reads the persisted view of the source, so that Health reports the source's freshness as it
// was before a restart rather than "never read" until the first poll ends: conclusions from absence
// that rested on it (a no-payload workflow, a ready run) must not be withdrawn by a restart. Call it
// before anything reads Health.
func (r *Runner) Restore(ctx context.Context) error {
	c, err := r.opts.Cursors.Cursor(ctx, r.name)
	if err != nil {
		return fmt.Errorf("%s: reading cursor: %w", r.name, err)
	}
	r.mu.Lock()
	if c.View.After(r.view) {
		r.view = c.View
	}
	r.cursor = nil
	r.mu.Unlock()
	return nil
}

// storedCursor is the runner's stored cursor: remembered, or read from the store.
func (r *Runner) storedCursor(ctx context.Context) (store.Cursor, error) {
	r.mu.Lock()
	c := r.cursor
	r.mu.Unlock()
	if c != nil {
		return *c, nil
	}
	got, err := r.opts.Cursors.Cursor(ctx, r.name)
	if err != nil {
		return got, err
	}
	r.remember(got)
	return got, nil
}

// remember notes the cursor just read from or written to the store.
func (r *Runner) remember(c store.Cursor) {
	r.mu.Lock()
	r.cursor = &c
	r.mu.Unlock()
}

// Wake asks for a poll now instead of at the end of the interval: a spy whose source notifies changes
// (the harvest area through file-system events) uses it, and keeps the interval as the safety net.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// watcher is a spy that can tell when its source changed.
type watcher interface {
	Watch(ctx context.Context, notify func()) error
}

// Run polls until ctx is done: one poll at once, then one per interval (± jitter) counted from each poll's
// start, or earlier when Wake is called. A failed poll is logged and counted in the health; it never stops
// the loop. A spy that can watch its source wakes the runner itself.
func (r *Runner) Run(ctx context.Context) error {
	if w, ok := r.sp.(watcher); ok {
		go func() {
			if err := w.Watch(ctx, r.Wake); err != nil && ctx.Err() == nil {
				r.opts.Logger.Info("no change notifications; polling on the interval only", "source", r.name, "err", err)
			}
		}()
	}
	for {
		start := r.opts.Clock.Now()
		before := r.Health()
		err := r.PollOnce(ctx)
		if ctx.Err() == nil {
			r.logChange(before, r.Health(), err)
		}
		wait := r.nextDelay() - r.opts.Clock.Now().Sub(start)
		if err := r.sleep(ctx, wait); err != nil {
			return nil
		}
	}
}

// logChange logs what changed in the spy's health, not every poll: a source down for an hour at a
// one-minute interval must not fill the log.
func (r *Runner) logChange(before, after pcl.SourceHealth, err error) {
	switch {
	case err == nil && before.Failures > 0:
		r.opts.Logger.Info("source answers again", "source", r.name, "failed_polls", before.Failures)
	case err != nil && after.Stale && !before.Stale:
		r.opts.Logger.Warn("source stale: nothing will be concluded from its silence", "source", r.name,
			"failed_polls", after.Failures, "err", err)
	case err != nil && before.Failures == 0:
		r.opts.Logger.Warn("poll failed", "source", r.name, "err", err)
	case err != nil:
		r.opts.Logger.Debug("poll failed", "source", r.name, "failed_polls", after.Failures, "err", err)
	}
}

// nextDelay is the interval with jitter applied.
func (r *Runner) nextDelay() time.Duration {
	r.randMu.Lock()
	u := r.opts.Rand.Float64()
	r.randMu.Unlock()
	f := 1 + r.opts.Jitter*(2*u-1)
	return time.Duration(float64(r.opts.Interval) * f)
}

// sleep waits d on the schedule's clock (or until woken), or returns ctx's error as soon as it is done.
func (r *Runner) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := r.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	case <-r.wake:
		return nil
	}
}

// errPollDeadline is the cause of an attempt's context when its deadline passed.
var errPollDeadline = errors.New("poll deadline passed")

// PollIfDue polls when the interval (without jitter) has passed since the last poll PollIfDue made, or
// when it never polled; it reports whether it polled. It is Run's schedule for callers that drive time
// themselves (the study, end-to-end tests).
func (r *Runner) PollIfDue(ctx context.Context) (bool, error) {
	now := r.opts.Clock.Now()
	r.mu.Lock()
	due := r.lastPoll.IsZero() || now.Sub(r.lastPoll) >= r.opts.Interval
	if due {
		r.lastPoll = now
	}
	r.mu.Unlock()
	if !due {
		return false, nil
	}
	return true, r.PollOnce(ctx)
}

// PollOnce does one poll: reads the cursor, calls the spy (retrying retryable failures with backoff while
// the interval allows), validates the observations, hands them to the sink and only then saves the new
// cursor. It updates the health either way.
func (r *Runner) PollOnce(ctx context.Context) error {
	start := r.opts.Wall.Now()
	err := r.pollOnce(ctx)
	if ctx.Err() == nil { // a poll cut short by shutdown says nothing about the source
		r.record(err)
		r.mu.Lock()
		r.lastTook = r.opts.Wall.Now().Sub(start)
		r.mu.Unlock()
	}
	return err
}

// Counts are what a runner counted since it was made, for the process's metrics.
type Counts struct {
	Polls, Failed, Observations uint64
	LastPoll                    time.Duration // wall time of the last poll
}

// Counts reports the polls made, those that failed, the observations stored and the last poll's wall
// time.
func (r *Runner) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Counts{Polls: uint64(r.polls), Failed: r.failed, Observations: r.observed, LastPoll: r.lastTook}
}

func (r *Runner) pollOnce(ctx context.Context) error {
	if r.opts.Sink == nil {
		return fmt.Errorf("%s runner: no sink configured", r.name)
	}
	prev, err := r.storedCursor(ctx)
	if err != nil {
		return fmt.Errorf("%s: reading cursor: %w", r.name, err)
	}
	res, err := r.pollWithRetries(ctx, prev.Value)
	if err != nil {
		return err
	}
	if err := r.check(res.Observations); err != nil {
		return err
	}
	if len(res.Observations) > 0 {
		if err := r.opts.Sink(ctx, r.sp.Source(), res.Observations); err != nil {
			return fmt.Errorf("%s: storing %d observations: %w", r.name, len(res.Observations), err)
		}
		r.mu.Lock()
		r.observed += uint64(len(res.Observations))
		r.mu.Unlock()
	}
	// The view is persisted with the cursor, after the observations it vouches for are stored: a crash
	// in between leaves the older view, which concludes less. It is written on every poll, also when
	// the cursor did not move, because a poll that found nothing new is exactly what a conclusion from
	// absence rests on.
	r.mu.Lock()
	view := r.view
	r.mu.Unlock()
	advanced := !res.Partial && res.View.After(view)
	if advanced {
		view = res.View
	}
	if res.Cursor != prev.Value || !view.Equal(prev.View) {
		c := store.Cursor{Value: res.Cursor, View: view}
		if err := r.opts.Cursors.SetCursor(ctx, r.name, c); err != nil {
			r.mu.Lock()
			r.cursor = nil // the store may or may not hold it now: read it again
			r.mu.Unlock()
			return fmt.Errorf("%s: saving cursor: %w", r.name, err)
		}
		r.remember(c)
	}
	if advanced {
		r.mu.Lock()
		if view.After(r.view) {
			r.view = view
		}
		r.mu.Unlock()
		if r.opts.Viewed != nil {
			r.opts.Viewed(r.sp.Source(), view)
		}
	}
	return nil
}

// pollWithRetries calls the spy until it succeeds, fails permanently, runs out of retries, or the next
// poll comes due. Attempts and backoff are timed on the wall clock, the interval on the schedule's:
// a retry is made only while the next poll is not due yet, since that poll is a retry too.
func (r *Runner) pollWithRetries(ctx context.Context, cursor string) (spy.Result, error) {
	due := r.opts.Clock.Now().Add(r.opts.Interval)
	backoff := r.opts.Backoff
	for attempt := 0; ; attempt++ {
		res, err := r.attempt(ctx, cursor)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return spy.Result{}, fmt.Errorf("%s: %w", r.name, ctx.Err())
		}
		if attempt >= r.opts.Retries || !r.opts.Retryable(err) || !r.opts.Clock.Now().Before(due) {
			return spy.Result{}, err
		}
		wait := max(backoff, httpx.RetryAfter(err))
		wait = min(wait, r.opts.MaxBackoff)
		r.opts.Logger.Debug("retrying poll", "source", r.name, "attempt", attempt+1, "wait", wait, "err", err)
		retry, serr := r.backoff(ctx, wait, due)
		if serr != nil {
			return spy.Result{}, fmt.Errorf("%s: %w (after: %v)", r.name, serr, err)
		}
		if !retry {
			return spy.Result{}, err
		}
		backoff = min(2*backoff, r.opts.MaxBackoff)
	}
}

// backoff waits d on the wall clock before a retry. It reports false when the next poll came due on
// the schedule's clock first (then that poll is the retry), and ctx's error when it is done.
func (r *Runner) backoff(ctx context.Context, d time.Duration, due time.Time) (bool, error) {
	wall := r.opts.Wall.NewTimer(d)
	defer wall.Stop()
	next := r.opts.Clock.NewTimer(due.Sub(r.opts.Clock.Now()))
	defer next.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-wall.C():
		return r.opts.Clock.Now().Before(due), nil
	case <-next.C():
		return false, nil
	}
}

// attempt calls the spy once under the per-poll deadline, measured on the wall clock: a source answers
// in real time. The result's view is the spy's own (the start of its listing or query), else the
// attempt's start, and never after the attempt's end, on the schedule's clock.
func (r *Runner) attempt(ctx context.Context, cursor string) (spy.Result, error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := r.opts.Wall.NewTimer(r.opts.Timeout)
	defer t.Stop()
	go func() {
		select {
		case <-t.C():
			cancel(errPollDeadline)
		case <-actx.Done():
		}
	}()
	start := r.opts.Clock.Now()
	res, err := r.sp.Poll(actx, cursor)
	if context.Cause(actx) == errPollDeadline {
		// Whatever the spy returned after its deadline is not trusted; the deadline may pass again on a
		// retry, but a slow source deserves another chance within the interval.
		return spy.Result{}, httpx.MarkRetryable(fmt.Errorf("%s: no answer within the poll deadline of %s: %w", r.name, r.opts.Timeout, errOr(err, errPollDeadline)))
	}
	if err != nil {
		return spy.Result{}, fmt.Errorf("%s: %w", r.name, err)
	}
	// A view after the attempt ended would claim what nobody has seen yet. One before it began is kept:
	// it concludes less (a spy answering from a cache it filled earlier says so).
	if end := r.opts.Clock.Now(); res.View.IsZero() {
		res.View = start
	} else if res.View.After(end) {
		res.View = end
	}
	return res, nil
}

func errOr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// check refuses a poll whose observations are not all valid and of this spy's source: a spy with a bug
// must not slip a false fact into the store.
func (r *Runner) check(obs []pcl.Observation) error {
	for i := range obs {
		if obs[i].Source != r.sp.Source() {
			return fmt.Errorf("%s: observation %d claims source %q", r.name, i, obs[i].Source)
		}
		if err := obs[i].Validate(); err != nil {
			return fmt.Errorf("%s: observation %d: %w", r.name, i, err)
		}
	}
	return nil
}

func (r *Runner) record(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.polls++
	if err == nil {
		r.lastSuccess = r.opts.Clock.Now()
		r.failures = 0
		r.lastErr = ""
		return
	}
	r.failures++
	r.failed++
	r.lastErr = err.Error()
}

// degraded is a spy that can work and still have something to report, such as unreadable files.
type degraded interface{ Degraded() error }

// Health reports the spy's health: healthy when its last poll succeeded, stale after StaleAfter
// consecutive failures, lag counted from the last success (from the runner's start before any). A spy
// that polls fine but reports a problem (Degraded) is not healthy and shows the problem, without being
// stale: what it read is still true.
func (r *Runner) Health() pcl.SourceHealth {
	var problem error
	if d, ok := r.sp.(degraded); ok {
		problem = d.Degraded()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Clock.Now()
	since := r.lastSuccess
	if since.IsZero() {
		since = r.started
	}
	h := pcl.SourceHealth{
		Name:        r.sp.Source(),
		Healthy:     r.polls > 0 && r.failures == 0,
		Stale:       r.failures >= r.opts.StaleAfter,
		LastSuccess: r.lastSuccess,
		View:        r.view,
		LagSeconds:  max(0, now.Sub(since).Seconds()),
		Error:       r.lastErr,
		Failures:    r.failures,
	}
	if problem != nil && h.Error == "" {
		h.Healthy, h.Error = false, problem.Error()
	}
	return h
}

type memCursors struct {
	mu sync.Mutex
	m  map[string]store.Cursor
}

func (c *memCursors) Cursor(_ context.Context, name string) (store.Cursor, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name], nil
}

func (c *memCursors) SetCursor(_ context.Context, name string, v store.Cursor) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[name] = v
	return nil
}
