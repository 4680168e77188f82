package runner

import (
	"context"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// StaticHints are fixed hints: what `spyagency probe --run N` and tests give a spy instead of the
// agency's live view of open runs.
type StaticHints struct {
	Runs []pcl.OpenRun
	Tags []string
}

func (h StaticHints) OpenRuns(context.Context) ([]pcl.OpenRun, error) { return h.Runs, nil }

func (h StaticHints) WatchedTags(context.Context) ([]string, error) { return h.Tags, nil }
