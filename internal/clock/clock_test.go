package clock

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 4, 6, 0, 0, 0, time.UTC)

func TestFakeFiresTimersInOrder(t *testing.T) {
	t.Parallel()
	f := NewFake(t0)
	late, early, stopped := f.NewTimer(2*time.Hour), f.NewTimer(time.Hour), f.NewTimer(90*time.Minute)
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop reports the first stop only")
	}
	if f.Timers() != 2 {
		t.Errorf("%d timers waiting", f.Timers())
	}
	f.Advance(59 * time.Minute)
	select {
	case <-early.C():
		t.Fatal("fired early")
	default:
	}
	f.Advance(time.Minute)
	if got := <-early.C(); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("fired at %s", got)
	}
	f.Set(t0) // never backwards
	if !f.Now().Equal(t0.Add(time.Hour)) {
		t.Errorf("Set moved the clock back to %s", f.Now())
	}
	f.Advance(2 * time.Hour)
	<-late.C()
	select {
	case <-stopped.C():
		t.Error("a stopped timer fired")
	default:
	}
	if now := NewFake(t0).NewTimer(0); now == nil {
		t.Fatal("no timer")
	} else {
		<-now.C() // a zero duration fires at once
	}
}

func TestScaledRunsFaster(t *testing.T) {
	t.Parallel()
	wall := time.Now().Add(-2 * time.Second)
	s := NewScaledAt(t0, wall, 600)
	got := s.Now().Sub(t0)
	if got < 1150*time.Second || got > 1500*time.Second { // 2 s of wall time at 600×, with scheduling slack
		t.Errorf("after 2 s of wall time at 600×, simulated time advanced %s", got)
	}
	if s.Speed() != 600 || !s.Epoch().Equal(t0) || !s.WallStart().Equal(wall) {
		t.Error("accessors")
	}
	timer := NewScaled(t0, 3600).NewTimer(time.Hour) // one simulated hour: one wall second
	select {
	case <-timer.C():
	case <-time.After(10 * time.Second):
		t.Fatal("a simulated hour at 3600× took more than 10 s")
	}
}
