// Package clock gives the agency its sense of time. In production it is the wall clock; in the demo it is
// simulated time running N times faster than the wall clock; in tests it is a fake moved by hand. Every
// deadline, interval and timestamp in Spy Agency is taken from a Clock, never from package time directly.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and makes timers in its own time.
type Clock interface {
	Now() time.Time
	// NewTimer fires once d of this clock's time has passed.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it returns false if it already fired or was stopped.
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Scaled is simulated time: it starts at Epoch when created and runs Speed times faster than the wall.
type Scaled struct {
	epoch time.Time
	start time.Time
	speed float64
}

// NewScaled starts simulated time at epoch, running speed times real time (speed > 0).
func NewScaled(epoch time.Time, speed float64) *Scaled {
	if speed <= 0 {
		speed = 1
	}
	return &Scaled{epoch: epoch, start: time.Now(), speed: speed}
}

func (s *Scaled) Now() time.Time {
	real := time.Since(s.start)
	return s.epoch.Add(time.Duration(float64(real) * s.speed))
}

// NewScaledAt is simulated time that was epoch at wall time wallStart: how a separate process (serve
// watching `spyagency simulate`) shares the simulator's time.
func NewScaledAt(epoch, wallStart time.Time, speed float64) *Scaled {
	if speed <= 0 {
		speed = 1
	}
	return &Scaled{epoch: epoch, start: wallStart, speed: speed}
}

// WallStart is the wall time at which simulated time was Epoch.
func (s *Scaled) WallStart() time.Time { return s.start }

// Epoch is the simulated time at WallStart.
func (s *Scaled) Epoch() time.Time { return s.epoch }

// Speed is how many simulated seconds pass per real second.
func (s *Scaled) Speed() float64 { return s.speed }

func (s *Scaled) NewTimer(d time.Duration) Timer {
	real := time.Duration(float64(d) / s.speed)
	t := &scaledTimer{c: make(chan time.Time, 1)}
	t.t = time.AfterFunc(real, func() { t.c <- s.Now() })
	return t
}

type scaledTimer struct {
	t *time.Timer
	c chan time.Time
}

func (t *scaledTimer) C() <-chan time.Time { return t.c }
func (t *scaledTimer) Stop() bool          { return t.t.Stop() }

// Fake is a clock for tests: time stands still until Advance or Set moves it, and timers fire when it
// passes their time.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewFake starts a fake clock at t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, at: f.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.fired = true
		t.c <- f.now
		return t
	}
	f.timers = append(f.timers, t)
	return t
}

// Advance moves the clock forward by d, firing the timers it passes in time order.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t (never backwards), firing the timers it passes.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.Before(f.now) {
		return
	}
	f.now = t
	sort.Slice(f.timers, func(i, j int) bool { return f.timers[i].at.Before(f.timers[j].at) })
	keep := f.timers[:0]
	for _, tm := range f.timers {
		if tm.stopped || tm.fired {
			continue
		}
		if !tm.at.After(t) {
			tm.fired = true
			tm.c <- tm.at
			continue
		}
		keep = append(keep, tm)
	}
	f.timers = keep
}

// Timers returns how many timers wait to fire; tests use it to know that a goroutine is parked.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.timers {
		if !t.stopped && !t.fired {
			n++
		}
	}
	return n
}

type fakeTimer struct {
	f       *Fake
	at      time.Time
	c       chan time.Time
	fired   bool
	stopped bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	if t.fired || t.stopped {
		return false
	}
	t.stopped = true
	return true
}
