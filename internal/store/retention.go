package store

import (
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Compaction is what is kept of a run's raw observations once retention has removed them: who saw
// what, how often and when. The run's decisions, audit entries and final state (with its milestones)
// are not touched by a compaction; they are kept forever.
type Compaction struct {
	Run uint32 `json:"run"`
	// At is when the observations were compacted.
	At time.Time `json:"at"`
	// Observations is how many raw observations were removed.
	Observations int `json:"observations"`
	// Groups summarise them by source and kind, ordered by source, then kind.
	Groups []CompactedGroup `json:"groups"`
	// LateObservations counts the distinct facts delivered for the run after its compaction (a late
	// DQM upload, a backfill over released history): AppendObservations stores none of them raw, keeps
	// only their identity so that each counts once, and returns none of them. A fact stored before the
	// compaction and delivered again after it counts too: its raw row is gone.
	LateObservations int `json:"late_observations"`
}

// LateCounter is implemented by the stores: how many distinct late facts (see
// Compaction.LateObservations) this process's AppendObservations calls have turned away.
type LateCounter interface {
	LateObservations() uint64
}

// CompactedGroup summarises a run's removed observations of one source and kind.
type CompactedGroup struct {
	Source pcl.Source `json:"source"`
	Kind   pcl.Kind   `json:"kind"`
	Count  int        `json:"count"`
	// First and Last are the earliest and latest At (the source's time of the fact) of the group.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// LastSeen is the latest time a spy saw a fact of the group; zero when none recorded it.
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// CompactQuery selects what one call of Store.CompactReleased may compact.
type CompactQuery struct {
	// ReleasedBefore: only runs whose current decision is a persisted release decided before this time
	// (and which stopped before it) are compacted.
	ReleasedBefore time.Time
	// Now is recorded as the compaction time.
	Now time.Time
	// Limit bounds the runs compacted by the call (each in a transaction of its own); 0 means 16.
	Limit int
}

// CompactEach compacts the candidate runs one by one with compact (each in a transaction of its own;
// false when the run was no longer compactable) and returns those it compacted, in order. It stops at
// the first error, returning what was compacted before it: the stores' CompactReleased loop.
func CompactEach(candidates []int64, compact func(run int64) (bool, error)) ([]uint32, error) {
	var done []uint32
	for _, run := range candidates {
		ok, err := compact(run)
		if err != nil {
			return done, err
		}
		if ok {
			done = append(done, uint32(run))
		}
	}
	return done, nil
}

// AddGroup adds one source's and kind's row of a compaction's summary (the stores' GROUP BY source,
// kind): count facts whose At spans first to last (Unix nanoseconds), last seen at lastSeen.
func (c *Compaction) AddGroup(source, kind string, count int, first, last int64, lastSeen time.Time) {
	c.Groups = append(c.Groups, CompactedGroup{Source: pcl.Source(source), Kind: pcl.Kind(kind), Count: count,
		First: time.Unix(0, first).UTC(), Last: time.Unix(0, last).UTC(), LastSeen: lastSeen})
	c.Observations += count
}
