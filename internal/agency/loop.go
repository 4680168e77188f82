package agency

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// retryAfterError is how long the loop waits after a failed pass before the next one (clock time), so
// that a store that keeps failing is not asked in a tight loop; the failed runs stay queued.
const retryAfterError = 5 * time.Second

// dueMax is the most due runs one pass asks the store for; the queue's batch bounds the pass itself.
const dueMax = 10000

// Run is the loop, until ctx ends: every open run at once and on every resync, touched runs as batches
// arrive and as the views of the sources they wait for advance, and each run when its wake-up comes.
// Between passes it sleeps until the earliest of those, so a wake-up is on time and the resync
// interval is honoured exactly, whatever they are.
func (a *Agency) Run(ctx context.Context) error {
	nextResync := a.o.Clock.Now().Add(a.o.Resync)
	a.Resync()
	for {
		passed := a.o.Clock.Now()
		err := a.Pass(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Error("reconcile pass failed", "err", err)
		}
		wait := a.untilNext(ctx, passed, nextResync, err != nil)
		t := a.o.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-a.queue.wake():
			t.Stop()
		case <-t.C():
		}
		if now := a.o.Clock.Now(); !now.Before(nextResync) {
			nextResync = now.Add(a.o.Resync)
			a.Resync()
		}
	}
}

// untilNext is how long the loop may sleep after a pass that began at passed: until the earliest stored
// wake-up or the next resync. A wake-up the pass should have handled and did not (its run could not be
// reconciled) waits for the resync rather than spinning; after a failed pass the loop waits a little.
func (a *Agency) untilNext(ctx context.Context, passed, nextResync time.Time, failed bool) time.Duration {
	next := nextResync
	if wake, err := a.o.Store.NextWake(ctx); err != nil {
		if ctx.Err() == nil {
			a.log.Error("reading the next wake-up failed", "err", err)
		}
		failed = true
	} else if wake.After(passed) && wake.Before(next) {
		next = wake
	}
	wait := next.Sub(a.o.Clock.Now())
	if failed {
		wait = max(wait, min(retryAfterError, a.o.Resync))
	}
	return max(wait, 0)
}

// Resync queues every open run for the next pass: what Run does at start and every resync interval.
// It also drops the remembered facts of the runs that closed since, so that memory follows open work.
//
// On a replicated store the next pass first reads the open runs' overrides again (overridesAgain): one
// recorded on another replica that the leader's watch missed is taken up at the resync, as it was before
// the facts were kept in memory.
func (a *Agency) Resync() {
	open := a.index.openRuns()
	a.facts.keep(open)
	if a.o.Replicated {
		a.resynced.Store(true)
	}
	a.queue.touch(open...)
}

// overridesAgain adds to the remembered facts the open runs' stored overrides they lack: the only
// observations another process writes (an override recorded on a follower). Called with a.reconcileMu
// held, after a resync.
func (a *Agency) overridesAgain(ctx context.Context) error {
	open := a.index.openRuns()
	if len(open) == 0 {
		return nil
	}
	obs, err := a.o.Store.Observations(ctx, store.ObservationQuery{Runs: open, Kinds: []pcl.Kind{pcl.KindOverride}})
	if err != nil {
		return fmt.Errorf("agency: read the open runs' overrides: %w", err)
	}
	a.facts.stored(obs)
	return nil
}

// Forget makes the next reconcile of run read its facts and state from the store again: they were
// written by another process (an override recorded on another replica), or removed (a compacted run,
// whose IOVs other runs' facts may hold too).
func (a *Agency) Forget(run uint32) { a.facts.forgetAll(run) }

// Pass reconciles the queued runs and the runs whose wake-up came, once each, at most a batch of them.
func (a *Agency) Pass(ctx context.Context) error {
	a.reconcileMu.Lock()
	defer a.reconcileMu.Unlock()
	if a.resynced.Swap(false) {
		if err := a.overridesAgain(ctx); err != nil {
			a.resynced.Store(true) // the next pass tries again
			return err
		}
	}
	due, err := a.o.Store.DueRuns(ctx, a.o.Clock.Now(), dueMax)
	if err != nil {
		return fmt.Errorf("agency: due runs: %w", err)
	}
	runs := a.queue.take(due, a.o.Batch)
	var errs []error
	for i, r := range runs {
		if ctx.Err() != nil {
			a.queue.giveBack(runs[i:]...)
			return ctx.Err()
		}
		if _, err := a.reconcileRun(ctx, r); err != nil {
			errs = append(errs, err)
			a.queue.giveBack(r) // try again on the next pass
		}
	}
	return errors.Join(errs...)
}

// Reconcile reconciles one run now and reports whether its decision changed.
func (a *Agency) Reconcile(ctx context.Context, run uint32) (bool, error) {
	a.reconcileMu.Lock()
	defer a.reconcileMu.Unlock()
	return a.reconcileRun(ctx, run)
}
