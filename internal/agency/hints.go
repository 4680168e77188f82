package agency

import (
	"context"
	"slices"

	"github.com/cms-pcl/spyagency/internal/spy"
)

// Hints tell the spies what the agency still needs to know, so that they ask their sources only about
// open runs and watched tags.
func (a *Agency) Hints() spy.Hints { return hints{a} }

type hints struct{ a *Agency }

// OpenRuns returns the open runs with whether they stopped and which of their express streams are not
// yet seen done. A run OMS has not reported but that other sources mention is open and not stopped. It
// answers from memory: every spy asks on every poll.
func (h hints) OpenRuns(ctx context.Context) ([]spy.OpenRun, error) {
	runs := h.a.OpenRuns()
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	out := make([]spy.OpenRun, 0, len(runs))
	for _, r := range runs {
		or := spy.OpenRun{Run: r}
		if x := h.a.runHints[r]; x != nil {
			or.Stopped = x.stopped
			for _, s := range x.streams {
				if !slices.Contains(x.done, s) {
					or.Streams = append(or.Streams, s)
				}
			}
			slices.Sort(or.Streams)
		}
		out = append(out, or)
	}
	return out, nil
}

// WatchedTags are the catalogue's destination tags and those named by harvested metadata.
func (h hints) WatchedTags(ctx context.Context) ([]string, error) {
	tags := h.a.o.Catalogue.DestinationTags()
	h.a.mu.Lock()
	for t := range h.a.harvested {
		tags = append(tags, t)
	}
	h.a.mu.Unlock()
	slices.Sort(tags)
	return slices.Compact(tags), nil
}
