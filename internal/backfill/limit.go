package backfill

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/spy"
)

// limiter spaces requests towards one source at least 1/rate apart (wall time).
type limiter struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

func newLimiter(rate float64) *limiter {
	return &limiter{every: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the next request may go, or ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	now := time.Now()
	if d := l.reserve(now).Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// reserve takes the next free slot at or after now.
func (l *limiter) reserve(now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.every)
	return at
}

// limitedTransport waits for the limiter before each HTTP request.
type limitedTransport struct {
	lim  *limiter
	next http.RoundTripper
}

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.lim.wait(req.Context()); err != nil {
		return nil, err
	}
	return t.next.RoundTrip(req)
}

// limitedSpy waits for the limiter before each poll: the bound for the sources that are no HTTP
// service (the harvest area, the condition DB), and one more request's worth for those that are.
type limitedSpy struct {
	spy.Spy
	lim *limiter
}

func (s limitedSpy) Poll(ctx context.Context, cursor string) (spy.Result, error) {
	if err := s.lim.wait(ctx); err != nil {
		return spy.Result{}, err
	}
	return s.Spy.Poll(ctx, cursor)
}

// progress draws a bar on a terminal and writes plain lines otherwise.
type progress struct {
	w       io.Writer
	bar     bool
	drawn   bool
	lastPct int
}

func (p *progress) line(msg string) {
	p.done()
	fmt.Fprintf(p.w, "backfill: %s\n", msg)
}

func (p *progress) step(done, total int, run uint32) {
	pct := done * 100 / total
	if p.bar {
		const width = 40
		n := done * width / total
		fmt.Fprintf(p.w, "\r[%s%s] %3d%% run %d", strings.Repeat("=", n), strings.Repeat(" ", width-n), pct, run)
		p.drawn = true
		return
	}
	if pct/10 != p.lastPct/10 || done == total {
		fmt.Fprintf(p.w, "backfill: reconciled through run %d (%d/%d, %d%%)\n", run, done, total, pct)
	}
	p.lastPct = pct
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
