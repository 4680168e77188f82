package app

import (
	"context"
	"sync"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/postgres"
)

// Live pages on every replica. The web's live stream subscribes to runFeed, not to the agency: on the
// leader the agency's events are forwarded to it and announced to the other replicas (NOTIFY); on
// every replica the notifications of others are read back as the run's stored state and fed to it.

// runNotifier is a store that carries run notifications between replicas (the PostgreSQL store).
type runNotifier interface {
	NotifyRun(ctx context.Context, n postgres.RunNote) error
	ListenRuns(ctx context.Context, fn func(postgres.RunNote), regained func()) error
}

// runFeed hands run events to the web's subscribers. A subscriber that does not keep up loses events
// rather than slowing the feed: each carries the run's whole state.
type runFeed struct {
	mu   sync.Mutex
	subs map[chan pcl.RunEvent]bool
}

func newRunFeed() *runFeed { return &runFeed{subs: map[chan pcl.RunEvent]bool{}} }

// Subscribe is the web's Events.
func (f *runFeed) Subscribe(buffer int) (<-chan pcl.RunEvent, func()) {
	ch := make(chan pcl.RunEvent, max(buffer, 0))
	f.mu.Lock()
	f.subs[ch] = true
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		if f.subs[ch] {
			delete(f.subs, ch)
			close(ch)
		}
		f.mu.Unlock()
	}
}

func (f *runFeed) publish(e pcl.RunEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// runLive runs, until ctx ends, the forwarding of this replica's agency events to the feed and to the
// other replicas, and the listening to theirs.
func (a *App) runLive(ctx context.Context, n runNotifier) {
	events, unsubscribe := a.Agency.Subscribe(256)
	a.life.parts.Go(func() {
		defer unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-events:
				if !ok {
					return
				}
				a.feed.publish(e)
				if err := n.NotifyRun(ctx, postgres.RunNote{From: a.lead.self, Run: e.Run, DecisionChanged: e.DecisionChanged}); err != nil && ctx.Err() == nil {
					a.log.Warn("telling the other replicas of a run failed", "run", e.Run, "err", err)
				}
			}
		}
	})
	a.life.parts.Go(func() {
		_ = n.ListenRuns(ctx, func(note postgres.RunNote) {
			if note.From == a.lead.self {
				return // this replica's own event, published above
			}
			rs, err := a.Store.RunState(ctx, note.Run)
			if err != nil {
				if ctx.Err() == nil {
					a.log.Warn("reading a run another replica changed failed", "run", note.Run, "err", err)
				}
				return
			}
			a.feed.publish(pcl.RunEvent{Run: note.Run, DecisionChanged: note.DecisionChanged, State: rs})
		}, func() { a.republish(ctx) })
	})
}

// republish makes up for notifications lost while this replica was not listening: it hands the feed
// the stored state of every open run and of the board's first page, which are what a live page shows.
// A run's state is whole, so an event already seen changes nothing on the page.
func (a *App) republish(ctx context.Context) {
	// Releases of runs that stopped before now are not open: only the runs not released are read.
	open, err := a.Store.OpenRunStates(ctx, a.o.Clock.Now())
	if err == nil {
		var newest []pcl.RunState
		newest, err = a.Store.RunStates(ctx, store.RunQuery{Limit: republishNewest})
		open = append(open, newest...)
	}
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("reading the runs again after lost notifications failed; the page shows them on reload", "err", err)
		}
		return
	}
	seen := map[uint32]bool{}
	for _, rs := range open {
		if !seen[rs.Run] {
			seen[rs.Run] = true
			a.feed.publish(pcl.RunEvent{Run: rs.Run, State: rs})
		}
	}
}

// republishNewest is how many of the newest runs republish reads besides the open ones: the board's
// first page.
const republishNewest = 100
