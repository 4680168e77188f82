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
	steps := [...]*time.Time{&m.ExpressDone, &m.Harvested, &m.UploadSent, &m.Uploaded, &m.InDB}
	if !m.ExpressDone.IsZero() {
		m.Observed |= stepBits[0]
	}
	// Most workflows' sources agree: one comparison per milestone says so.
	prev, ordered := m.Stop, true
	for _, t := range steps {
		if !t.IsZero() {
			if t.Compare(prev) < 0 {
				ordered = false
				break
			}
			prev = *t
		}
	}
	if ordered {
		return
	}
	var bound time.Time // the next later milestone passed, zero for none
	for i := len(steps) - 1; i >= 0; i-- {
		t := steps[i]
		if t.IsZero() {
			continue
		}
		if !bound.IsZero() && t.After(bound) {
			*t = bound
			m.Observed |= stepBits[i]
		}
		if t.Before(m.Stop) {
			*t = m.Stop
			m.Observed |= stepBits[i]
		}
		bound = *t
	}
}

// stepBits are the milestones after the stop as sets of one, in loop order: MilestoneSet.Add looks a
// milestone up by name, which this runs too often for.
var stepBits = func() (b [5]pcl.MilestoneSet) {
	for i, m := range pcl.AllMilestones[1:] {
		b[i].Add(m)
	}
	return b
}()
