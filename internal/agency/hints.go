package agency

import (
	"context"
	"slices"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Hints tell the spies what the agency still needs to know, so that they ask their sources only about
// open runs and watched tags. They satisfy spy.Hints, which the spies declare: the agency does not
// import the spies.
func (a *Agency) Hints() Hints { return Hints{a} }

// Hints answers the spies' questions from the agency's memory.
type Hints struct{ a *Agency }

// OpenRuns returns the open runs with whether they stopped and which of their express streams are not
// yet seen done. A run OMS has not reported but that other sources mention is open and not stopped. It
// answers from memory: every spy asks on every poll.
func (h Hints) OpenRuns(ctx context.Context) ([]pcl.OpenRun, error) {
	runs := h.a.OpenRuns()
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	out := make([]pcl.OpenRun, 0, len(runs))
	for _, r := range runs {
		or := pcl.OpenRun{Run: r}
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
func (h Hints) WatchedTags(ctx context.Context) ([]string, error) {
	tags := h.a.o.Catalogue.DestinationTags()
	h.a.mu.Lock()
	for t := range h.a.harvested {
		tags = append(tags, t)
	}
	h.a.mu.Unlock()
	slices.Sort(tags)
	return slices.Compact(tags), nil
}
