// Package agency is the control loop of Spy Agency. It takes observation batches from the spies, stores
// them, reconciles the runs they touch and the runs whose wake-up time came, persists every changed
// decision with a new version (with its audit entry and outbox entries in the same transaction), and
// publishes changes to subscribers: the web page, steering and alerts.
//
// The Agency ties small parts that each do one job under their own lock:
//   - queue (queue.go): the runs to reconcile at the next pass, taken in batches, given back when a
//     pass is cut short;
//   - index (index.go): what is remembered of the runs between passes: which are open, which wait for
//     which source, the harvested payload hashes that route IOVs to runs, and the spies' hints
//     (hints.go);
//   - broker (broker.go): subscriptions to the stored run states, dropping events for a subscriber
//     that does not keep up;
//   - overrides (overrides.go): operators' actions, each written with its audit entry in one
//     transaction and ordered by the store's sequence;
//   - fcsr and tagSyncs (fcsr.go, tagsync.go): facts about every run, persisted before they are used.
//
// The loop itself is in ingest.go (the spies' sink), loop.go (Run and Pass) and decide.go (one run's
// reconcile and the decision it stores).
package agency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/reconcile"
	"github.com/cms-pcl/spyagency/internal/store"
)

// Sources reports the spies' health: each source's view and whether it is stale is what a conclusion
// from absence rests on (the app's spies answer).
type Sources interface {
	SourceHealth() []pcl.SourceHealth
}

// Options configure an Agency. Store, Catalogue and Clock are required.
type Options struct {
	Store     store.Store
	Catalogue *pcl.Catalogue
	Policy    pcl.Policy
	Clock     clock.Clock
	Logger    *slog.Logger
	// Sources reports the spies' health; nil means no spy runs (every source counts as never read).
	Sources Sources
	// Targets are the push targets: each changed decision gets one outbox entry per target.
	Targets []string
	// Resync is how often every open run is reconciled even when nothing woke it (default 5 min): the
	// safety net for a missed wake-up. Between resyncs the loop sleeps until the earliest of the next
	// stored wake-up, the next resync and a kick (a stored batch, a source's view advancing).
	Resync time.Duration
	// Batch is the most runs one pass reconciles (default 200); the rest wait for the next pass.
	Batch int
	// Replicated says other processes share the store and may record overrides in it (a follower's
	// replicas on PostgreSQL): each resync then reads the open runs' overrides again, the safety net for
	// one the leader's watch missed. Alone on its store (SQLite), only this agency writes them.
	Replicated bool
	// Lookback: a run that started longer ago is no longer watched (default 14 days): it leaves the open
	// runs, so the spies stop asking about it and resyncs skip it. Its state stays, and new facts about it
	// are still reconciled.
	Lookback time.Duration
}

// Agency is the loop. It is safe for concurrent use: spies call Ingest from their goroutines.
type Agency struct {
	o   Options
	log *slog.Logger

	queue     *queue
	index     *index
	events    *broker
	overrides *overrides
	fcsr      *fcsr
	syncs     tagSyncs
	facts     *facts      // the open runs' observations and states, kept as they are stored
	resynced  atomic.Bool // a resync came: the next pass reads the open runs' overrides again

	reconcileMu sync.Mutex // one reconcile at a time, so versions are assigned in order

	reconcile func(reconcile.Input) pcl.RunState // reconcile.Reconcile; tests wrap it
}

// New makes an Agency and loads what it must remember from the store.
func New(ctx context.Context, o Options) (*Agency, error) {
	if o.Store == nil || o.Catalogue == nil || o.Clock == nil {
		return nil, errors.New("agency: Store, Catalogue and Clock are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Policy.Classes) == 0 {
		o.Policy = pcl.DefaultPolicy()
	}
	if err := o.Policy.Validate(o.Catalogue); err != nil {
		return nil, fmt.Errorf("agency: %w", err)
	}
	if o.Resync <= 0 {
		o.Resync = 5 * time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 200
	}
	if o.Lookback <= 0 {
		o.Lookback = 14 * 24 * time.Hour
	}
	a := &Agency{o: o, log: o.Logger, queue: newQueue(), index: newIndex(o.Lookback), events: newBroker(), fcsr: newFCSR(), facts: newFacts(),
		overrides: &overrides{store: o.Store, cat: o.Catalogue, clock: o.Clock}, reconcile: reconcile.Reconcile}
	if err := a.load(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// load rebuilds the in-memory parts from the store after a restart: the FCSR and the tags'
// synchronizations, the open runs with the sources they wait for, and the open runs' hints and
// harvested payloads. It reads the store's open run states, not every stored run.
func (a *Agency) load(ctx context.Context) error {
	a.facts.reset() // what another process stored since is read again on first use
	if err := a.syncs.load(ctx, a.o.Store); err != nil {
		return err
	}
	if err := a.fcsr.load(ctx, a.o.Store); err != nil {
		return err
	}
	now := a.o.Clock.Now()
	// Only the runs that may still be open work: released history is read on demand (a run's page, a
	// fact about an old run, see placeholders), so a start-up costs the same in December as in March.
	states, err := a.o.Store.OpenRunStates(ctx, now.Add(-a.o.Lookback))
	if err != nil {
		return fmt.Errorf("agency: read open run states: %w", err)
	}
	for i := range states {
		a.index.settle(&states[i], now)
	}
	if open := a.index.openRuns(); len(open) > 0 {
		// Only open runs still wait for their payloads, so only their harvested hashes route IOVs.
		hinted, err := a.o.Store.Observations(ctx, store.ObservationQuery{Runs: open, Kinds: hintKinds})
		if err != nil {
			return fmt.Errorf("agency: read open runs: %w", err)
		}
		a.index.recall(hinted)
	}
	return nil
}

// Subscribe returns a channel of the stored run states, as they are stored. Events are dropped for a
// subscriber that does not keep up (it can re-read the state); cancel releases the channel.
func (a *Agency) Subscribe(buffer int) (<-chan pcl.RunEvent, func()) {
	return a.events.Subscribe(buffer)
}

// FCSR is the newest first condition-safe run seen.
func (a *Agency) FCSR() uint32 { return a.fcsr.get() }

// OpenRuns lists the runs still watched, oldest first.
func (a *Agency) OpenRuns() []uint32 { return a.index.openRuns() }

// OpenRunStates are the stored states of the runs still watched, oldest first: remembered where the
// agency knows them, read from the store otherwise. A run known before its first state was stored is
// left out.
func (a *Agency) OpenRunStates(ctx context.Context) ([]pcl.RunState, error) {
	runs := a.index.openRuns()
	out := make([]pcl.RunState, 0, len(runs))
	for _, run := range runs {
		if rs, _, ok := a.facts.state(run); ok {
			out = append(out, rs)
			continue
		}
		rs, err := a.o.Store.RunState(ctx, run)
		if apperr.Is(err, apperr.NotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rs) // not remembered: only the reconcile, which writes states, keeps them
	}
	return out, nil
}

// Override records an operator's action on a run, with its audit entry in the same transaction, and
// reconciles the run at once.
func (a *Agency) Override(ctx context.Context, run uint32, action pcl.OverrideAction, workflow, actor, reason string) (pcl.RunState, error) {
	o, err := a.overrides.record(ctx, run, action, workflow, actor, reason)
	if err != nil {
		a.facts.forget(run) // a write whose answer was lost may be stored all the same
		return pcl.RunState{}, err
	}
	a.noteStored(o)
	if _, err := a.Reconcile(ctx, run); err != nil {
		return pcl.RunState{}, err
	}
	return a.o.Store.RunState(ctx, run)
}
