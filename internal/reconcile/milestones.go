package reconcile

import (
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// orderMilestones makes a workflow's milestones follow the loop: stop ≤ express-done ≤ harvested ≤
// upload-sent ≤ uploaded ≤ in-db, skipping the ones not passed.
//
// Each milestone but express-done carries the time its source gave: the harvest file's and the
// marker's modification times, the upload log's time, the IOV's INSERTION_TIME. Tier-0's
// run_stream_done gives only a state, so express-done is when the agency saw it, which can be hours
// after the harvest it must precede: it is always marked observed. Where clocks disagree (the EOS
// server's, the upload service's, the condition DB's), an earlier milestone is bounded by the next later
// one, since a step cannot have happened after the step it led to, and nothing is put before the stop.
// A time moved so is marked observed too: it is no longer the time a source reported.
func orderMilestones(m *pcl.Milestones) {
	if m.ExpressDone.IsZero() && m.Harvested.IsZero() {
		return // nothing after the stop: the later milestones all come with a harvest file
	}
	at := [...]stamp{stampOf(m.Stop), stampOf(m.ExpressDone), stampOf(m.Harvested), stampOf(m.UploadSent),
		stampOf(m.Uploaded), stampOf(m.InDB)}
	if at[1] != zeroStamp {
		m.Observed |= stepBits[0]
	}
	next := 0 // the next later milestone passed, 0 for none
	for i := len(at) - 1; i >= 1; i-- {
		if at[i] == zeroStamp {
			continue
		}
		if next > 0 && at[next].before(at[i]) {
			*milestoneAt(m, i), at[i] = *milestoneAt(m, next), at[next]
			m.Observed |= stepBits[i-1]
		}
		if at[i].before(at[0]) {
			*milestoneAt(m, i), at[i] = m.Stop, at[0]
			m.Observed |= stepBits[i-1]
		}
		next = i
	}
}

// milestoneAt is the milestone at position i of the loop (0 the stop).
func milestoneAt(m *pcl.Milestones, i int) *time.Time {
	switch i {
	case 1:
		return &m.ExpressDone
	case 2:
		return &m.Harvested
	case 3:
		return &m.UploadSent
	case 4:
		return &m.Uploaded
	case 5:
		return &m.InDB
	}
	return &m.Stop
}

// stamp is a time as seconds and nanoseconds, read once: the milestones are compared many times per
// run, and time.Time's own comparisons decode both times every time.
type stamp struct {
	sec  int64
	nsec int32
}

func stampOf(t time.Time) stamp { return stamp{t.Unix(), int32(t.Nanosecond())} }

var zeroStamp = stampOf(time.Time{})

func (a stamp) before(b stamp) bool { return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec) }

// stepBits are the milestones after the stop as sets of one, in loop order: MilestoneSet.Add looks a
// milestone up by name, which this runs too often for.
var stepBits = func() (b [5]pcl.MilestoneSet) {
	for i, m := range pcl.AllMilestones[1:] {
		b[i].Add(m)
	}
	return b
}()
