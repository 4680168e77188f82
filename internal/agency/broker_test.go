package agency

import (
	"testing"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

func TestBrokerPublishesToEverySubscriber(t *testing.T) {
	t.Parallel()
	b := newBroker()
	one, cancelOne := b.Subscribe(4)
	defer cancelOne()
	two, cancelTwo := b.Subscribe(4)
	defer cancelTwo()
	b.publish(pcl.RunEvent{Run: 392680, DecisionChanged: true})
	for i, ch := range []<-chan pcl.RunEvent{one, two} {
		select {
		case e := <-ch:
			if e.Run != 392680 || !e.DecisionChanged {
				t.Errorf("subscriber %d got %+v", i, e)
			}
		default:
			t.Errorf("subscriber %d got nothing", i)
		}
	}
}

// TestBrokerDropsForASlowSubscriber: a subscriber that does not read loses events; publish never waits
// for it, and the others get every event.
func TestBrokerDropsForASlowSubscriber(t *testing.T) {
	t.Parallel()
	b := newBroker()
	slow, cancelSlow := b.Subscribe(1)
	defer cancelSlow()
	fast, cancelFast := b.Subscribe(16)
	defer cancelFast()
	for r := range uint32(10) {
		b.publish(pcl.RunEvent{Run: 392680 + r}) // would block here if publish waited
	}
	if n := len(slow); n != 1 {
		t.Errorf("the slow subscriber holds %d events, want its buffer's 1", n)
	}
	if e := <-slow; e.Run != 392680 {
		t.Errorf("the slow subscriber kept %d, want the first event", e.Run)
	}
	if n := len(fast); n != 10 {
		t.Errorf("the other subscriber got %d of 10 events", n)
	}
}

func TestBrokerCancel(t *testing.T) {
	t.Parallel()
	b := newBroker()
	ch, cancel := b.Subscribe(1)
	cancel()
	if _, ok := <-ch; ok {
		t.Error("the channel is open after cancel")
	}
	cancel()                             // twice: no panic
	b.publish(pcl.RunEvent{Run: 392680}) // to nobody: no panic on the closed channel
	odd, cancelOdd := b.Subscribe(-1)    // a nonsense buffer is an unbuffered channel, not a panic
	b.publish(pcl.RunEvent{Run: 392681}) // nobody reads it: dropped
	cancelOdd()
	if _, ok := <-odd; ok {
		t.Error("an event was queued on an unbuffered subscription nobody read")
	}
}
