package agency

import (
	"sync"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// broker hands every stored run state to the subscribers (the web page, the pushers' wake-up). A
// subscriber that does not keep up loses events rather than slowing the loop: each event carries the
// run's whole state, so the next one, or a read of the store, makes up for any it missed.
type broker struct {
	mu   sync.Mutex
	subs map[chan pcl.RunEvent]bool
}

func newBroker() *broker { return &broker{subs: map[chan pcl.RunEvent]bool{}} }

// Subscribe returns a channel of events with room for buffer of them, and the cancel that releases
// it (and closes the channel); cancel may be called more than once.
func (b *broker) Subscribe(buffer int) (<-chan pcl.RunEvent, func()) {
	ch := make(chan pcl.RunEvent, max(buffer, 0))
	b.mu.Lock()
	b.subs[ch] = true
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		if b.subs[ch] {
			delete(b.subs, ch)
			close(ch)
		}
		b.mu.Unlock()
	}
}

// publish offers the event to every subscriber without waiting for any. The lock is held while
// sending so that a cancel cannot close a channel under a send.
func (b *broker) publish(e pcl.RunEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
		}
	}
}
