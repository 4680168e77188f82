// Package backfill rebuilds the history of a range of runs from the sources, after an outage or into a
// new store: it asks each configured source about those runs through the product's own spies (their
// query code and decoders), stores what they saw through the agency's ingest (observations' keys name
// facts, so a repeat stores nothing new), then reconciles each run of the range with the agency.
//
// It tells Tier-0 nothing: its agency has no push targets, so no decision it records gets an outbox
// entry, whether the run was released already (per the store or per Tier-0's own data) or not. Tier-0
// reads what it records through the pull API, and a serve started afterwards carries on from it.
//
// It is resumable: a checkpoint under the setting "backfill/FROM-TO" records the sources already read
// and the last run reconciled, and a completed range is not redone unless Force. A date range is
// resolved to the run range of the runs OMS says started in it (ParseWindow, Resolve) and is then that
// run range, with its checkpoint. It is rate-limited
// towards each source, and each source's polls have the runner's deadlines and retries. A PostgreSQL
// store's leader lease is taken for the duration (a serve that leads makes it refuse), so that it never
// reconciles beside a running agency; a SQLite store is owned by one process anyway.
package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/agency"
	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
	"github.com/cms-pcl/spyagency/internal/spy/runner"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/postgres"
)

// DefaultRate is the default of requests per second towards each source.
const DefaultRate = 5

// maxPolls bounds the polls of one source in one backfill: a source is polled until its cursor stops
// moving (a paged source reads the rest of the range on the next poll).
const maxPolls = 50

// checkpointEvery is how many runs are reconciled between two checkpoints.
const checkpointEvery = 20

// Options configure a backfill. Config, Store and From..To are required.
type Options struct {
	Config   *config.Config
	Store    store.Store
	Clock    clock.Clock // the agency's clock (default the wall clock)
	From, To uint32
	Rate     float64 // requests per second towards each source (default DefaultRate)
	Force    bool    // redo a range that completed
	Progress io.Writer
	Terminal bool // draw a bar on Progress rather than lines
	Logger   *slog.Logger
	// Holder names this process for the leader lease (default backfill@HOST:PID).
	Holder string
}

// Summary is what a backfill did.
type Summary struct {
	Observations int // observations the sources returned (stored or known already)
	Reconciled   int // runs of the range reconciled
	Changed      int // of which the decision changed
	Resumed      bool
	AlreadyDone  bool
	// Failed names each source that could not be read, with the error; the runs of the range it could
	// not cover are all of them.
	Failed map[pcl.Source]error
}

// checkpoint is the progress of one range, stored as JSON in a setting.
type checkpoint struct {
	SourcesDone []pcl.Source `json:"sources_done"`
	Reconciled  uint32       `json:"reconciled_through"` // 0: none yet
	Complete    bool         `json:"complete"`
}

// Key is the setting that holds a range's checkpoint.
func Key(from, to uint32) string { return fmt.Sprintf("backfill/%d-%d", from, to) }

// Validate checks a range.
func Validate(from, to uint32) error {
	switch {
	case from == 0 || to == 0:
		return apperr.Errorf(apperr.Invalid, "a run range needs --from and --to (run numbers above 0)")
	case from > to:
		return apperr.Errorf(apperr.Invalid, "--from %d is after --to %d", from, to)
	}
	return nil
}

// Run backfills the range. It returns the summary and an error when the range could not be completed:
// a failing source (named, nonzero exit), a cancelled context (the checkpoint is saved), a store error.
func Run(ctx context.Context, o Options) (Summary, error) {
	sum := Summary{Failed: map[pcl.Source]error{}}
	if err := Validate(o.From, o.To); err != nil {
		return sum, err
	}
	if o.Config == nil || o.Store == nil {
		return sum, errors.New("backfill: Config and Store are required")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Holder == "" {
		host, _ := os.Hostname()
		o.Holder = fmt.Sprintf("backfill@%s:%d", host, os.Getpid())
	}
	release, err := lease(ctx, o)
	if err != nil {
		return sum, err
	}
	defer release()

	cp, err := loadCheckpoint(ctx, o.Store, o.From, o.To)
	if err != nil {
		return sum, err
	}
	if cp.Complete && !o.Force {
		sum.AlreadyDone = true
		return sum, nil
	}
	if o.Force {
		cp = checkpoint{}
	}
	sum.Resumed = len(cp.SourcesDone) > 0 || cp.Reconciled > 0
	save := func() error {
		b, _ := json.Marshal(cp)
		// A cancelled backfill still saves where it stopped.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := o.Store.SetSetting(sctx, Key(o.From, o.To), string(b)); err != nil {
			return fmt.Errorf("backfill: save checkpoint: %w", err)
		}
		return nil
	}

	cfg := o.Config
	cat, err := cfg.Catalogue()
	if err != nil {
		return sum, err
	}
	classes, err := config.NewClassifier(cfg.RunClasses)
	if err != nil {
		return sum, err
	}
	health := &healths{}
	// No Targets: nothing this agency decides gets an outbox entry, so Tier-0 is told nothing.
	ag, err := agency.New(ctx, agency.Options{Store: o.Store, Catalogue: cat, Policy: cfg.Policy, Clock: o.Clock,
		Logger: o.Logger.With("part", "agency"), Sources: health, Batch: cfg.Agency.ReconcileBatch,
		Lookback: cfg.Agency.Lookback})
	if err != nil {
		return sum, err
	}
	hints := rangeHints{from: o.From, to: o.To, tags: ag.Hints()}
	prog := &progress{w: o.Progress, bar: o.Terminal}

	sources := cfg.Sources.Enabled()
	var runners []*runner.Runner
	var curs []*cursors
	for _, src := range sources {
		sc, _ := cfg.Sources.ByName(src)
		lim := newLimiter(o.Rate)
		sp, err := app.NewSpy(src, sc, app.SpyParams{Catalogue: cat, Clock: o.Clock, Logger: o.Logger, Hints: hints,
			ClassOf: classes.ClassOf, FirstRun: o.From, Lookback: 100 * 365 * 24 * time.Hour,
			HTTP: &http.Client{Transport: limitedTransport{lim: lim, next: http.DefaultTransport}}})
		if err != nil {
			return sum, fmt.Errorf("source %s: %w", src, err)
		}
		if c, ok := sp.(io.Closer); ok {
			defer c.Close()
		}
		count := func(ctx context.Context, s pcl.Source, obs []pcl.Observation) error {
			sum.Observations += len(obs)
			return ag.Ingest(ctx, s, obs)
		}
		cur := &cursors{}
		curs = append(curs, cur)
		r := runner.New(limitedSpy{Spy: sp, lim: lim}, runner.Options{Clock: o.Clock, Timeout: sc.Timeout, Cursors: cur,
			Interval: max(sc.Interval, time.Minute), Sink: count, Viewed: ag.SourceViewed,
			Logger: o.Logger.With("spy", string(src))})
		runners = append(runners, r)
		health.add(r)
	}

	for i, src := range sources {
		if slices.Contains(cp.SourcesDone, src) {
			// Read by an earlier, interrupted backfill: its observations are stored. Its view is not,
			// so a conclusion from absence waits for the source being read again.
			continue
		}
		prog.line(fmt.Sprintf("reading %s for runs %d-%d", src, o.From, o.To))
		if err := pollAll(ctx, runners[i], curs[i]); err != nil {
			if ctx.Err() != nil {
				_ = save()
				return sum, fmt.Errorf("backfill interrupted while reading %s; checkpoint saved: %w", src, ctx.Err())
			}
			sum.Failed[src] = err
			continue
		}
		cp.SourcesDone = append(cp.SourcesDone, src)
		if err := save(); err != nil {
			return sum, err
		}
	}

	start := o.From
	if cp.Reconciled >= o.From {
		start = cp.Reconciled + 1
	}
	total := int(o.To-o.From) + 1
	for r := start; r >= start && r <= o.To; r++ {
		if ctx.Err() != nil {
			prog.done()
			_ = save()
			return sum, fmt.Errorf("backfill interrupted at run %d; checkpoint saved: %w", r, ctx.Err())
		}
		if _, err := o.Store.RunState(ctx, r); err != nil {
			if !apperr.Is(err, apperr.NotFound) {
				return sum, fmt.Errorf("backfill: read run %d: %w", r, err)
			}
		} else {
			changed, err := ag.Reconcile(ctx, r)
			if err != nil {
				if ctx.Err() != nil {
					continue // reported at the top of the loop
				}
				_ = save()
				return sum, fmt.Errorf("backfill: reconcile run %d: %w", r, err)
			}
			sum.Reconciled++
			if changed {
				sum.Changed++
			}
		}
		cp.Reconciled = r
		if (r-o.From+1)%checkpointEvery == 0 || r == o.To {
			if err := save(); err != nil {
				return sum, err
			}
		}
		prog.step(int(r-o.From)+1, total, r)
		if r == o.To {
			break // no wrap-around at the top of uint32
		}
	}
	prog.done()
	if len(sum.Failed) > 0 {
		// The range is not complete: the next run reads the failed sources again.
		_ = save()
		var names []string
		for _, src := range sources {
			if err, ok := sum.Failed[src]; ok {
				names = append(names, fmt.Sprintf("%s (runs %d-%d not covered: %v)", src, o.From, o.To, err))
			}
		}
		return sum, fmt.Errorf("backfill: %d source(s) failed: %s", len(names), strings.Join(names, "; "))
	}
	cp.Complete = true
	return sum, save()
}

// pollAll polls a source until its cursor stops moving.
func pollAll(ctx context.Context, r *runner.Runner, cur *cursors) error {
	prev := ""
	for range maxPolls {
		if err := r.PollOnce(ctx); err != nil {
			return err
		}
		c := cur.value()
		if c == prev {
			return nil
		}
		prev = c
	}
	return nil
}

// cursors keep one source's cursor for the backfill only: the serve's cursors in the store are left
// alone, so the live agency carries on where it was.
type cursors struct {
	mu sync.Mutex
	c  store.Cursor
}

func (c *cursors) Cursor(context.Context, string) (store.Cursor, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c, nil
}

func (c *cursors) SetCursor(_ context.Context, _ string, v store.Cursor) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c = v
	return nil
}

func (c *cursors) value() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c.Value
}

func loadCheckpoint(ctx context.Context, st store.Store, from, to uint32) (checkpoint, error) {
	var cp checkpoint
	v, ok, err := st.Setting(ctx, Key(from, to))
	if err != nil {
		return cp, fmt.Errorf("backfill: read checkpoint: %w", err)
	}
	if !ok {
		return cp, nil
	}
	if err := json.Unmarshal([]byte(v), &cp); err != nil {
		return checkpoint{}, fmt.Errorf("backfill: checkpoint %s is not valid (%v); delete the setting or use --force", Key(from, to), err)
	}
	return cp, nil
}

// leaseStore is a store whose leader lease a serve takes (PostgreSQL).
type leaseStore interface {
	AcquireLease(ctx context.Context, holder string, ttl time.Duration, now time.Time) (postgres.Lease, bool, error)
	ReleaseLease(ctx context.Context, holder string, epoch int64) error
}

// lease takes the store's leader lease for the backfill, or refuses while another process holds it. It
// renews it every third of its time to live; release gives it back.
func lease(ctx context.Context, o Options) (func(), error) {
	ls, ok := o.Store.(leaseStore)
	if !ok {
		return func() {}, nil
	}
	ttl := o.Config.Agency.LeaseTTL
	if ttl <= 0 {
		ttl = config.DefaultLeaseTTL
	}
	l, got, err := ls.AcquireLease(ctx, o.Holder, ttl, time.Now())
	if err != nil {
		return nil, fmt.Errorf("backfill: take the leader lease: %w", err)
	}
	if !got {
		return nil, apperr.Errorf(apperr.Conflict, "backfill: %s holds the store's leader lease (a serve is running); stop it first", l.Holder)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if _, ok, err := ls.AcquireLease(ctx, o.Holder, ttl, time.Now()); err != nil || !ok {
					o.Logger.Error("backfill: renewing the leader lease failed", "err", err, "held", ok)
				}
			}
		}
	}()
	return func() {
		close(stop)
		wg.Wait()
		_ = ls.ReleaseLease(context.WithoutCancel(ctx), o.Holder, l.Epoch)
	}, nil
}

// rangeHints tell the spies to ask about the runs of the range: all of them, as stopped runs.
type rangeHints struct {
	from, to uint32
	tags     spy.Hints
}

func (h rangeHints) OpenRuns(context.Context) ([]pcl.OpenRun, error) {
	out := make([]pcl.OpenRun, 0, h.to-h.from+1)
	for r := h.from; r >= h.from && r <= h.to; r++ {
		out = append(out, pcl.OpenRun{Run: r, Stopped: true})
		if r == h.to {
			break
		}
	}
	return out, nil
}

func (h rangeHints) WatchedTags(ctx context.Context) ([]string, error) {
	return h.tags.WatchedTags(ctx)
}

// healths report the backfill's runners' health to its agency.
type healths struct {
	mu sync.Mutex
	rs []*runner.Runner
}

func (h *healths) add(r *runner.Runner) { h.mu.Lock(); h.rs = append(h.rs, r); h.mu.Unlock() }

func (h *healths) SourceHealth() []pcl.SourceHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]pcl.SourceHealth, 0, len(h.rs))
	for _, r := range h.rs {
		out = append(out, r.Health())
	}
	return out
}
