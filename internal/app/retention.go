package app

import (
	"context"
	"time"

	"github.com/cms-pcl/spyagency/internal/store"
)

// Retention (store.retention): the raw observations of runs released longer ago than the configured
// age are compacted by the store (Store.CompactReleased) into a summary per run. It runs among the
// periodic parts, so on replicas only the leader compacts; each call compacts a few runs, each in a
// transaction of its own, so the write lock is never held for long, and a pass ends as soon as a call
// finds fewer runs than it may take. Compaction is idempotent: a crash or a lost lease between two
// calls leaves whole runs compacted or not at all, and the next pass takes up where this one stopped.

// retentionEvery is the time between passes, on the agency's clock (which release times are on).
const retentionEvery = time.Hour

// retentionBatch bounds the runs one store call compacts.
const retentionBatch = 16

// retain runs retention passes until ctx ends; it returns at once when retention is off.
func (a *App) retain(ctx context.Context) {
	keep := a.o.Config.Store.Retention
	if keep <= 0 {
		return
	}
	for {
		a.retainPass(ctx, keep)
		t := a.o.Clock.NewTimer(retentionEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// retainPass compacts every run due, a batch a call, and returns how many it compacted.
func (a *App) retainPass(ctx context.Context, keep time.Duration) int {
	total := 0
	for ctx.Err() == nil {
		now := a.o.Clock.Now()
		got, err := a.Store.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: now.Add(-keep), Now: now, Limit: retentionBatch})
		total += len(got)
		for _, run := range got {
			a.Agency.Forget(run) // its raw facts are gone from the store: remember none of them
		}
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("retention: compacting released runs failed; the next pass tries again", "err", err, "compacted", total)
			}
			break
		}
		if len(got) < retentionBatch {
			break
		}
	}
	if total > 0 {
		a.log.Info("retention: compacted the raw observations of released runs", "runs", total, "older_than", keep)
	}
	return total
}
