package agency

import (
	"context"
	"slices"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
	"github.com/cms-pcl/spyagency/internal/store"
)

// Hints tell the spies what the agency still needs to know, so that they ask their sources only about
// open runs and watched tags.
func (a *Agency) Hints() spy.Hints { return hints{a} }

type hints struct{ a *Agency }

// OpenRuns returns the open runs with whether they stopped and which of their express streams are not
// yet seen done. A run OMS has not reported but that other sources mention is open and not stopped.
func (h hints) OpenRuns(ctx context.Context) ([]spy.OpenRun, error) {
	runs := h.a.OpenRuns()
	if len(runs) == 0 {
		return nil, nil
	}
	obs, err := h.a.o.Store.Observations(ctx, store.ObservationQuery{Runs: runs,
		Kinds: []pcl.Kind{pcl.KindRun, pcl.KindExpressConfig, pcl.KindStreamDone}})
	if err != nil {
		return nil, err
	}
	type acc struct {
		stopped bool
		streams []string
		done    map[string]bool
	}
	by := map[uint32]*acc{}
	for _, r := range runs {
		by[r] = &acc{done: map[string]bool{}}
	}
	for _, o := range obs {
		x := by[o.Run]
		if x == nil {
			continue
		}
		switch o.Kind {
		case pcl.KindRun:
			x.stopped = x.stopped || o.RunInfo.Stop != nil
		case pcl.KindExpressConfig:
			if !slices.Contains(x.streams, o.Stream) {
				x.streams = append(x.streams, o.Stream)
			}
		case pcl.KindStreamDone:
			if o.Done {
				x.done[o.Stream] = true
			}
		}
	}
	out := make([]spy.OpenRun, 0, len(runs))
	for _, r := range runs {
		x := by[r]
		or := spy.OpenRun{Run: r, Stopped: x.stopped}
		for _, s := range x.streams {
			if !x.done[s] {
				or.Streams = append(or.Streams, s)
			}
		}
		slices.Sort(or.Streams)
		out = append(out, or)
	}
	return out, nil
}

// WatchedTags are the catalogue's destination tags and those named by the harvested metadata of open
// runs.
func (h hints) WatchedTags(ctx context.Context) ([]string, error) {
	tags := h.a.o.Catalogue.DestinationTags()
	runs := h.a.OpenRuns()
	if len(runs) > 0 {
		files, err := h.a.o.Store.Observations(ctx, store.ObservationQuery{Runs: runs, Kinds: []pcl.Kind{pcl.KindHarvestFile}})
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			tags = append(tags, f.Destinations...)
		}
	}
	slices.Sort(tags)
	return slices.Compact(tags), nil
}
