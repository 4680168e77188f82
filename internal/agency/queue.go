package agency

import (
	"slices"
	"sync"
)

// queue is the loop's work: the runs to reconcile at the next pass. Ingest, a source's view advancing,
// a new FCSR and the resync put runs in; a pass takes them out together with the runs whose stored
// wake-up came, and gives back what it could not do. A run is in it at most once, however often it was
// touched, so a burst of batches about one run costs one reconcile.
type queue struct {
	mu      sync.Mutex
	touched map[uint32]bool
	kick    chan struct{} // one pending wake-up of the loop; more would say nothing new
}

func newQueue() *queue {
	return &queue{touched: map[uint32]bool{}, kick: make(chan struct{}, 1)}
}

// touch puts runs in the queue. It does not wake the loop: callers poke when the runs should not wait
// for the next pass that comes anyway.
func (q *queue) touch(runs ...uint32) {
	q.mu.Lock()
	for _, r := range runs {
		q.touched[r] = true
	}
	q.mu.Unlock()
}

// poke wakes the loop, or leaves it a wake-up if it is busy.
func (q *queue) poke() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// wake is where the loop waits for a poke.
func (q *queue) wake() <-chan struct{} { return q.kick }

// take empties the queue and returns its runs and the due ones, each once, oldest first, at most batch
// of them. The rest stay queued for the next pass, which is poked: the oldest runs are nearest
// Tier-0's turn, and the others must not wait for a resync.
func (q *queue) take(due []uint32, batch int) []uint32 {
	q.mu.Lock()
	runs := make([]uint32, 0, len(q.touched)+len(due))
	for r := range q.touched {
		runs = append(runs, r)
	}
	clear(q.touched)
	q.mu.Unlock()
	runs = append(runs, due...)
	slices.Sort(runs)
	runs = slices.Compact(runs)
	if batch > 0 && len(runs) > batch {
		q.touch(runs[batch:]...)
		runs = runs[:batch]
		q.poke()
	}
	return runs
}

// giveBack returns runs a pass took and did not reconcile (it was cancelled, or their reconcile
// failed): taken off the queue, they must not be forgotten.
func (q *queue) giveBack(runs ...uint32) { q.touch(runs...) }

// len is how many runs wait for a pass.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.touched)
}
