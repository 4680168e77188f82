package agency

import (
	"context"
	"slices"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Hints tell the spies what the agency still needs to know, so that they ask their sources only about
// open runs and watched tags. They satisfy spy.Hints, which the spies declare: the agency does not
// import the spies.
func (a *Agency) Hints() Hints { return Hints{index: a.index, cat: a.o.Catalogue} }

// Hints answers the spies' questions from the agency's memory: every spy asks on every poll.
type Hints struct {
	index *index
	cat   *pcl.Catalogue
}

// OpenRuns returns the open runs with whether they stopped and which of their express streams are not
// yet seen done. A run OMS has not reported but that other sources mention is open and not stopped.
func (h Hints) OpenRuns(ctx context.Context) ([]pcl.OpenRun, error) { return h.index.openHints(), nil }

// WatchedTags are the catalogue's destination tags and those named by harvested metadata.
func (h Hints) WatchedTags(ctx context.Context) ([]string, error) {
	tags := append(h.cat.DestinationTags(), h.index.harvestedTags()...)
	slices.Sort(tags)
	return slices.Compact(tags), nil
}
