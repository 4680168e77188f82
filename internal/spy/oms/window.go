package oms

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/cms-pcl/spyagency/internal/httpx"
)

// StartWindow selects runs by their start_time, in OMS's filter syntax (cms-interfaces.md §7):
// filter[start_time][GE]=Since and filter[start_time][LE]=Until, or [LT] when Exclusive (a date's
// end is the next midnight, which belongs to the next day). Times are sent in UTC, RFC 3339, to the
// second, as OMS writes start_time.
type StartWindow struct {
	Since, Until time.Time
	Exclusive    bool
}

// String is the window for messages: [since, until] or [since, until).
func (w StartWindow) String() string {
	end := "]"
	if w.Exclusive {
		end = ")"
	}
	return "[" + formatTime(w.Since) + ", " + formatTime(w.Until) + end
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (w StartWindow) contains(t time.Time) bool {
	if t.Before(w.Since.Truncate(time.Second)) {
		return false
	}
	u := w.Until.Truncate(time.Second)
	if w.Exclusive {
		return t.Before(u)
	}
	return !t.After(u)
}

// query is the runs query of the window, sorted by run number (descending when newestFirst), one run
// per page: the first and last runs of the window are all RunRange needs.
func (w StartWindow) query(newestFirst bool) url.Values {
	q := url.Values{}
	q.Set("filter[start_time][GE]", formatTime(w.Since))
	op := "LE"
	if w.Exclusive {
		op = "LT"
	}
	q.Set("filter[start_time]["+op+"]", formatTime(w.Until))
	q.Set("sort", "run_number")
	if newestFirst {
		q.Set("sort", "-run_number")
	}
	q.Set("page[limit]", "1")
	q.Set("page[offset]", "0")
	return q
}

// RunRange asks OMS which runs started in the window: the lowest and highest run numbers (0, 0 when
// none did) and how many runs OMS counted (meta.totalResourceCount; -1 when it gave none). It asks two
// pages of one run each, oldest run first then newest first, so its cost does not depend on the
// window's length. A run outside the window in the reply is an error: that OMS did not apply the
// filter, and a range made of it would be wrong.
func (s *Spy) RunRange(ctx context.Context, w StartWindow) (first, last uint32, count int, err error) {
	if !w.Since.Before(w.Until) && !(w.Since.Equal(w.Until) && !w.Exclusive) {
		return 0, 0, 0, fmt.Errorf("oms: start window %s is empty or inverted", w)
	}
	ask := func(newestFirst bool) (Page, error) {
		p, _, err := httpx.Get(ctx, s.cfg.Client, s.runsURL(w.query(newestFirst)), DecodeRuns)
		if err != nil {
			return Page{}, fmt.Errorf("oms: runs started in %s: %w", w, err)
		}
		for _, r := range p.Runs {
			if !w.contains(r.Info.Start) {
				return Page{}, fmt.Errorf("oms: asked for runs started in %s, got run %d started %s: the start_time filter was not applied",
					w, r.Number, formatTime(r.Info.Start))
			}
		}
		return p, nil
	}
	lo, err := ask(false)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(lo.Runs) == 0 {
		return 0, 0, max(lo.Total, 0), nil
	}
	hi, err := ask(true)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(hi.Runs) == 0 {
		return 0, 0, 0, fmt.Errorf("oms: runs started in %s: the newest-first page is empty but the oldest-first one has run %d", w, lo.Runs[0].Number)
	}
	// One run a page was asked for; a server that sends more still gives the right bounds.
	first, last = lo.Runs[0].Number, hi.Runs[0].Number
	for _, r := range lo.Runs {
		first = min(first, r.Number)
	}
	for _, r := range hi.Runs {
		last = max(last, r.Number)
	}
	if first > last {
		return 0, 0, 0, fmt.Errorf("oms: runs started in %s: sorted by run number, the first is %d and the last %d", w, first, last)
	}
	return first, last, lo.Total, nil
}
