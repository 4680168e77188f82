package backfill

import (
	"strings"
	"testing"
	"time"
)

// TestLimiterSlots: requests are given slots 1/rate apart; an idle spell does not bank a burst.
func TestLimiterSlots(t *testing.T) {
	t.Parallel()
	l := newLimiter(5)
	t0 := time.Date(2026, 5, 4, 6, 0, 0, 0, time.UTC)
	for i := range 4 {
		if got, want := l.reserve(t0), t0.Add(time.Duration(i)*200*time.Millisecond); !got.Equal(want) {
			t.Fatalf("slot %d at %s, want %s", i, got, want)
		}
	}
	later := t0.Add(time.Minute)
	if got := l.reserve(later); !got.Equal(later) {
		t.Fatalf("after an idle minute the slot is %s, want now", got)
	}
	if got := l.reserve(later); !got.Equal(later.Add(200 * time.Millisecond)) {
		t.Fatalf("second slot after the idle minute: %s", got)
	}
}

// TestProgress: a terminal gets one bar redrawn in place; anything else gets a line per tenth.
func TestProgress(t *testing.T) {
	t.Parallel()
	var bar strings.Builder
	p := &progress{w: &bar, bar: true}
	for i := 1; i <= 4; i++ {
		p.step(i, 4, uint32(100+i))
	}
	p.done()
	if got := bar.String(); strings.Count(got, "\r") != 4 || strings.Count(got, "\n") != 1 || !strings.Contains(got, "100% run 104") {
		t.Errorf("bar: %q", got)
	}
	var lines strings.Builder
	p = &progress{w: &lines}
	for i := 1; i <= 200; i++ {
		p.step(i, 200, uint32(i))
	}
	got := lines.String()
	if strings.Contains(got, "\r") || strings.Count(got, "\n") != 10 || !strings.HasSuffix(got, "(200/200, 100%)\n") {
		t.Errorf("lines: %q", got)
	}
}
