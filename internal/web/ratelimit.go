package web

import (
	"net/netip"
	"sync"
	"time"
)

// failLimiter counts failed authentications per client address in fixed windows: once a client has
// failed limit times within a window, whatever it presents is refused (429, Retry-After) until the
// window ends, so that tokens and sessions cannot be guessed at the speed of the network. IPv6
// clients are counted per /64, which one host usually holds whole. The table is bounded: past
// maxTracked addresses with failures in their current window, a new address is not counted (the
// limiter fails open rather than grow without end, and the guessing stays as hard as the tokens are
// long).
type failLimiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[netip.Prefix]*failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

const maxTracked = 10000

func newFailLimiter(limit int, window time.Duration, now func() time.Time) *failLimiter {
	if limit <= 0 {
		limit = 10
	}
	if window <= 0 {
		window = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	return &failLimiter{limit: limit, window: window, now: now, seen: map[netip.Prefix]*failWindow{}}
}

func clientKey(a netip.Addr) (netip.Prefix, bool) {
	if !a.IsValid() {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// blocked says whether the address is over its limit, and for how many seconds more.
func (l *failLimiter) blocked(a netip.Addr) (int, bool) {
	k, ok := clientKey(a)
	if !ok {
		return 0, false
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.seen[k]
	if w == nil || !now.Before(w.start.Add(l.window)) || w.n < l.limit {
		return 0, false
	}
	left := w.start.Add(l.window).Sub(now)
	return int((left + time.Second - 1) / time.Second), true
}

// fail counts one failed authentication.
func (l *failLimiter) fail(a netip.Addr) {
	k, ok := clientKey(a)
	if !ok {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.seen[k]
	if w != nil && now.Before(w.start.Add(l.window)) {
		w.n++
		return
	}
	if w == nil && len(l.seen) >= maxTracked {
		for key, old := range l.seen {
			if !now.Before(old.start.Add(l.window)) {
				delete(l.seen, key)
			}
		}
		if len(l.seen) >= maxTracked {
			return
		}
	}
	l.seen[k] = &failWindow{start: now, n: 1}
}
