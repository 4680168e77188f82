package agency

import (
	"slices"
	"testing"
)

// woken says whether the queue left the loop a wake-up, and takes it.
func woken(q *queue) bool {
	select {
	case <-q.wake():
		return true
	default:
		return false
	}
}

func TestQueueTakesEachRunOnceOldestFirst(t *testing.T) {
	t.Parallel()
	q := newQueue()
	q.touch(392690, 392680)
	q.touch(392680) // touched again before the pass: one reconcile
	if woken(q) {
		t.Error("touch woke the loop; only poke does")
	}
	got := q.take([]uint32{392685, 392690}, 0)
	if want := []uint32{392680, 392685, 392690}; !slices.Equal(got, want) {
		t.Fatalf("take: %v, want %v (touched and due, each once, oldest first)", got, want)
	}
	if n := q.len(); n != 0 {
		t.Errorf("%d runs left after a take without a batch limit", n)
	}
	if got := q.take(nil, 0); len(got) != 0 {
		t.Errorf("a second take: %v, want nothing", got)
	}
}

func TestQueueBatchKeepsTheRestAndWakes(t *testing.T) {
	t.Parallel()
	q := newQueue()
	q.touch(5, 4, 3)
	got := q.take([]uint32{2, 1}, 2)
	if !slices.Equal(got, []uint32{1, 2}) {
		t.Fatalf("first batch: %v, want the two oldest", got)
	}
	if !woken(q) {
		t.Error("runs left over and no wake-up for the next pass")
	}
	if got := q.take(nil, 2); !slices.Equal(got, []uint32{3, 4}) {
		t.Fatalf("second batch: %v", got)
	}
	woken(q)
	if got := q.take(nil, 2); !slices.Equal(got, []uint32{5}) {
		t.Fatalf("third batch: %v", got)
	}
	if woken(q) {
		t.Error("a batch that took everything left a wake-up")
	}
}

func TestQueueGiveBack(t *testing.T) {
	t.Parallel()
	q := newQueue()
	q.touch(1, 2, 3)
	taken := q.take(nil, 0)
	q.giveBack(taken[1:]...) // the pass was cancelled after the first
	if got := q.take(nil, 0); !slices.Equal(got, []uint32{2, 3}) {
		t.Fatalf("after give-back: %v, want the two not reconciled", got)
	}
}

func TestQueuePokeDoesNotBlock(t *testing.T) {
	t.Parallel()
	q := newQueue()
	for range 3 {
		q.poke() // nobody waits: the first is kept, the others say nothing new
	}
	if !woken(q) || woken(q) {
		t.Error("want exactly one pending wake-up after several pokes")
	}
}
