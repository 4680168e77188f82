package reconcile

import (
	"slices"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// evRange is a range [from, to) of the deriver's evidence scratch (facts.ev).
type evRange struct{ from, to int32 }

func (r evRange) len() int { return int(r.to - r.from) }

// cite records that what is being derived rests on o. An observation that did not come from a store
// (Seq 0: a test, a probe) has no number to cite.
func (d *deriver) cite(o *pcl.Observation) {
	if o != nil && o.Seq > 0 {
		d.f.ev = append(d.f.ev, o.Seq)
	}
}

// mark is where the next citation goes; cut drops everything cited from it on.
func (d *deriver) mark() int    { return len(d.f.ev) }
func (d *deriver) cut(from int) { d.f.ev = d.f.ev[:from] }
func (d *deriver) since(from int) evRange {
	return evRange{int32(from), int32(len(d.f.ev))}
}

// keep moves a range cited earlier to from and drops everything else cited since from: of a workflow's
// several inputs, only the one that decided a failure is its evidence.
func (d *deriver) keep(from int, r evRange) {
	n := copy(d.f.ev[from:], d.f.ev[r.from:r.to])
	d.cut(from + n)
}

// settle sorts a range and drops repeats, returning the shorter range.
func (d *deriver) settle(r evRange) evRange {
	s := d.f.ev[r.from:r.to]
	if len(s) > 1 {
		// Citations mostly come in the order the store numbered the facts: then no sort is needed.
		if !slices.IsSorted(s) {
			slices.Sort(s)
		}
		s = slices.Compact(s)
	}
	return evRange{r.from, r.from + int32(len(s))}
}

// workflowEvidence keeps of what a workflow's derivation cited (from from on) what its final state rests
// on: the IOVs of in-db, the verdict of upload-failed and too-late, the stream's end of no-payload, the
// express configuration (or the run's length) of not-expected, the run's stop that a timed-out deadline
// counts from, the operator's accept. States on the way rest on nothing final.
func (d *deriver) workflowEvidence(wi, from int, ws *pcl.WorkflowStatus, accept *pcl.Observation) {
	switch ws.State {
	case pcl.StateAccepted:
		d.cut(from)
		d.cite(accept)
	case pcl.StateTimedOut:
		d.cut(from)
		d.cite(d.f.infoObs)
	case pcl.StateInDB, pcl.StateUploadFailed, pcl.StateTooLate, pcl.StateNoPayload, pcl.StateNotExpected:
	default:
		d.cut(from)
	}
	r := d.settle(d.since(from))
	d.cut(int(r.to)) // the workflows' evidence lies end to end, for fileEvidence to copy at once
	d.f.wfEv[wi] = r
}

// citeOne cites, for the decision, one observation.
func (d *deriver) citeOne(o *pcl.Observation) evRange {
	from := d.mark()
	d.cite(o)
	return d.since(from)
}

// union says which workflows' evidence a decision rests on.
type union int

const (
	ofRequired union = iota // a ready run: every required workflow's
	ofBad                   // a blocked run: the required workflows in a bad final state
)

func (u union) takes(d *deriver, ws *pcl.WorkflowStatus) bool {
	if u == ofBad {
		return ws.Required && ws.State.Bad(d.cp.NoPayloadAccepted(ws))
	}
	return ws.Required
}

// unionOf cites, for the decision, the union of the evidence of the workflows u takes. Each workflow's
// evidence is sorted, and they lie end to end; when the ones taken follow one another without a gap and
// in order (the common case: every workflow required, its facts numbered by the store as they came), the
// union is that stretch of them, shared, and costs nothing.
func (d *deriver) unionOf(rs *pcl.RunState, u union) evRange {
	whole, first := true, true
	var span evRange
	for i := range rs.Workflows {
		r := d.f.wfEv[i]
		if r.len() == 0 {
			continue
		}
		if !u.takes(d, &rs.Workflows[i]) {
			whole = whole && first // a workflow left out before the ones taken is no gap
			continue
		}
		switch {
		case first:
			span, first = r, false
		case r.from == span.to && d.f.ev[r.from] > d.f.ev[span.to-1] && whole:
			span.to = r.to
		default:
			whole = false
		}
	}
	if whole {
		return span
	}
	from := d.mark()
	for i := range rs.Workflows {
		if r := d.f.wfEv[i]; r.len() > 0 && u.takes(d, &rs.Workflows[i]) {
			d.f.ev = append(d.f.ev, d.f.ev[r.from:r.to]...)
		}
	}
	return d.settle(d.since(from))
}

// fileEvidence copies every workflow's evidence and the decision's into one array of the result: the
// scratch is pooled, and one allocation per run is what the evidence costs. The workflows' ranges lie
// end to end and the decision's follows them (or is a stretch of them), so one copy does it. The
// decision's evidence may thus share its array with the workflows'; each slice is capped, so an append
// to one never writes into another.
func (d *deriver) fileEvidence(rs *pcl.RunState, dec evRange) {
	n := len(d.f.ev)
	if n == 0 {
		return
	}
	out := make([]int64, n)
	copy(out, d.f.ev[:n])
	take := func(r evRange) []int64 {
		if r.len() == 0 {
			return nil
		}
		return out[r.from:r.to:r.to]
	}
	for i := range rs.Workflows {
		rs.Workflows[i].Evidence = take(d.f.wfEv[i])
	}
	rs.Decision.Evidence = take(dec)
}
