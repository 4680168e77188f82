package agency

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Ingest stores a spy's batch and schedules the runs it touches. It is the spies' sink: when it
// returns nil, the batch is durable and the spy may advance its cursor.
func (a *Agency) Ingest(ctx context.Context, src pcl.Source, obs []pcl.Observation) error {
	if len(obs) == 0 {
		return nil
	}
	added, err := a.o.Store.AppendObservations(ctx, obs)
	if err != nil {
		// The store may hold the batch all the same (a commit whose answer was lost); the spy's retry
		// then adds nothing, so what the batch touches is read from the store again.
		a.facts.forgetBatch(obs)
		return fmt.Errorf("agency: store %d observations from %s: %w", len(obs), src, err)
	}
	a.noteStored(added...)
	if err := a.placeholders(ctx, obs); err != nil {
		return err
	}
	if raised, err := a.fcsr.note(ctx, a.o.Store, obs); err != nil {
		return err
	} else if raised {
		a.Resync() // a new FCSR can put every open run at risk
	}
	if changed, err := a.syncs.note(ctx, a.o.Store, obs); err != nil {
		return err
	} else if changed {
		a.Resync() // a tag's synchronization says whether it gates any run
	}
	if len(added) == 0 {
		return nil
	}
	a.queue.touch(a.index.learn(added)...)
	a.queue.poke()
	return nil
}

// placeholders gives every run the batch names for the first time a stored state before the batch
// counts as taken, so that a run is never forgotten: after a crash between storing its facts and
// reconciling it, a restart finds it open (and reconciles it), and Tier-0's pull API sees a run that is
// not releasable rather than a gap in the numbering. It looks at the whole batch, not only the new facts:
// a batch re-sent after such a crash holds only known facts.
//
// The index knows the runs loaded at start-up (the open ones) and those met since; a run it does not
// know may be released history, so the store is asked before a placeholder is written over its state.
func (a *Agency) placeholders(ctx context.Context, obs []pcl.Observation) error {
	fresh := a.index.unknown(obs)
	now := a.o.Clock.Now()
	for _, r := range fresh {
		stored, err := a.o.Store.RunState(ctx, r)
		switch {
		case err == nil:
			a.index.settle(&stored, now) // known now, and open again if it is still watched
			continue
		case !apperr.Is(err, apperr.NotFound):
			return fmt.Errorf("agency: read run %d: %w", r, err)
		}
		rs := pcl.RunState{Run: r, NextWake: now, Decision: pcl.Decision{Run: r, State: pcl.ReadinessWaiting,
			Reason: "observed; not reconciled yet", Blocking: []string{}}}
		if err := a.o.Store.PutRunState(ctx, rs); err != nil {
			return fmt.Errorf("agency: record new run %d: %w", r, err)
		}
		a.facts.forget(r) // an entry made before the run had a state holds no state: read it again
		a.index.opened(r)
		a.queue.touch(r)
	}
	return nil
}

// SourceViewed is the runners' report that a source's view advanced: a poll taken later than the
// previous one has its observations stored. The open runs whose last state waits for a fresh view of
// that source are reconciled at once instead of at the next resync: a no-payload verdict follows the
// harvest scan that allows it within the pass.
func (a *Agency) SourceViewed(src pcl.Source, _ time.Time) {
	if runs := a.index.waitingFor(src); len(runs) > 0 {
		a.queue.touch(runs...)
		a.queue.poke()
	}
}

// noteStored applies observations the store has just taken (with their sequence numbers) to the open
// runs' facts, in the form a read of the store would give them back.
func (a *Agency) noteStored(obs ...pcl.Observation) {
	if len(obs) == 0 {
		return
	}
	read := make([]pcl.Observation, 0, len(obs))
	for _, o := range obs {
		r, err := asStored(o)
		if err != nil { // the store encoded it, so this cannot be; reading it again is always right
			a.facts.forget(o.Run)
			continue
		}
		read = append(read, r)
	}
	a.facts.stored(read)
}

// asStored is an observation as the store gives it back: encoded as the store encodes it, decoded as
// it decodes it.
func asStored(o pcl.Observation) (pcl.Observation, error) {
	b, err := o.AppendJSON(nil)
	if err != nil {
		return o, err
	}
	var r pcl.Observation
	if err := json.Unmarshal(b, &r); err != nil {
		return o, err
	}
	r.Seq = o.Seq
	return r, nil
}
