// Package spy defines how Spy Agency watches a CMS system: a Spy polls its source once and turns what it
// read into observations; the Runner polls it on an interval with jitter, a deadline, retries and
// backoff, persists its cursor and keeps its health. A spy never decides anything.
//
// Each source has its own package below this one (tier0, harvest, dropbox, conddb, dqm, oms), and each
// format is decoded in exactly one place.
package spy

import (
	"context"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Spy polls one source.
type Spy interface {
	// Source names the spied system.
	Source() pcl.Source
	// Poll reads what is new since cursor (the value a previous Result returned; "" the first time) and
	// returns the observations and the cursor to persist. An error means nothing of this poll may be
	// trusted: the runner stores none of its observations and keeps the old cursor.
	Poll(ctx context.Context, cursor string) (Result, error)
}

// Result is what one poll saw.
type Result struct {
	Observations []pcl.Observation
	Cursor       string
	// View is the instant the poll's view of the source was taken: when its listing or query began,
	// read from the spy's clock before the first request. Whatever the source held then is in
	// Observations (or was sent before), so a conclusion from absence ("no harvest file after the
	// stream was done") may rest on it, and on nothing later: a file written while the poll read other
	// files counts as unseen. Zero lets the runner take the attempt's start, which is never later.
	View time.Time
	// Partial says the poll read only part of what the source held at View (a page limit; the rest
	// comes with the next poll). Its observations and cursor are kept, but it is no view of the source:
	// the source's view time does not advance.
	Partial bool
}

// Hints tell spies what the agency is interested in, so that they ask their source only about that.
type Hints interface {
	// OpenRuns returns the runs whose readiness is not yet final.
	OpenRuns(ctx context.Context) ([]pcl.OpenRun, error)
	// WatchedTags returns the condition DB tags to follow: the catalogue's destination tags and those
	// named by harvested metadata.
	WatchedTags(ctx context.Context) ([]string, error)
}
