package conddbv2

import (
	"cmp"
	"slices"
	"time"
)

// Snapshot applies CondDB's snapshot rule to a tag's rows: of the rows sharing a since, the one inserted
// last wins, and a snapshot at time at ignores rows inserted after it (zero at: no such limit). The result
// holds one IOV per since, ordered by since.
func Snapshot(rows []IOV, at time.Time) []IOV {
	best := map[uint64]IOV{}
	for _, r := range rows {
		if !at.IsZero() && r.Inserted.After(at) {
			continue
		}
		if cur, ok := best[r.Since]; !ok || r.Inserted.After(cur.Inserted) {
			best[r.Since] = r
		}
	}
	out := make([]IOV, 0, len(best))
	for _, r := range best {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b IOV) int { return cmp.Compare(a.Since, b.Since) })
	return out
}

// ValidAt is the IOV of a snapshot (as Snapshot returns it) that covers since: the last one whose since
// is at or below it.
func ValidAt(snapshot []IOV, since uint64) (IOV, bool) {
	i, found := slices.BinarySearchFunc(snapshot, since, func(e IOV, t uint64) int { return cmp.Compare(e.Since, t) })
	if found {
		return snapshot[i], true
	}
	if i == 0 {
		return IOV{}, false
	}
	return snapshot[i-1], true
}
