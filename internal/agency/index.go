package agency

import (
	"slices"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// index is what the agency remembers of the runs between passes, so that routing a batch, waking the
// runs a source's view concerns and answering the spies' hints never read the store: which runs are
// known and which still watched (open), which open runs wait for which source, the payload hashes the
// open runs harvested (to route an IOV whose since the upload service moved up to the run that
// harvested it), and what the spies are told of each run. It holds open runs only, apart from the
// known set and the harvested tags (a few dozen), so it grows with open work, not with history.
type index struct {
	lookback time.Duration

	mu    sync.Mutex
	known map[uint32]bool // runs known to have a stored state (a placeholder at least): the open runs loaded at start-up and the runs met since
	// open are the runs still watched: not released, or released with workflows that are not terminal
	// yet (a state taken while a source was stale must still be corrected), and not older than the
	// lookback.
	open map[uint32]bool
	// waiting files the open runs under the sources whose next fresh view can change their state
	// (RunState.WaitsFor); waitsFor is the reverse, to keep it up to date.
	waiting     map[pcl.Source]map[uint32]bool
	waitsFor    map[uint32][]pcl.Source
	hints       map[uint32]*runHint // what the spies need of each run: stopped, streams
	harvested   map[string]bool     // destination tags named by harvested metadata
	payloadRuns map[string][]uint32 // harvested payload hash → runs, to route IOVs whose since moved
	runPayloads map[uint32][]string // the reverse, so that a closed run's hashes can be forgotten
}

// runHint is what the spies are told of a run (see Hints).
type runHint struct {
	stopped bool
	streams []string // configured express streams
	done    []string // streams seen done
}

func newIndex(lookback time.Duration) *index {
	return &index{lookback: lookback, known: map[uint32]bool{}, open: map[uint32]bool{},
		waiting: map[pcl.Source]map[uint32]bool{}, waitsFor: map[uint32][]pcl.Source{}, hints: map[uint32]*runHint{},
		harvested: map[string]bool{}, payloadRuns: map[string][]uint32{}, runPayloads: map[uint32][]string{}}
}

// hintKinds are the kinds the index learns from; after a restart they are read back for the open runs.
var hintKinds = []pcl.Kind{pcl.KindRun, pcl.KindExpressConfig, pcl.KindStreamDone, pcl.KindHarvestFile}

// watched says whether a run's state still needs watching: a run Tier-0 released keeps being reconciled
// until each of its workflows is terminal, so that a state taken while a source was stale (awaiting a
// harvest scan that could not come) is corrected rather than frozen on its page and in the latency
// plots. Workflows are terminal by their deadline at the latest, so this ends; the lookback ends it too.
func (x *index) watched(rs *pcl.RunState, now time.Time) bool {
	if rs.Info != nil && now.Sub(rs.Info.Start) > x.lookback {
		return false
	}
	if rs.Decision.State != pcl.ReadinessReleased {
		return true
	}
	for i := range rs.Workflows {
		if !rs.Workflows[i].State.Terminal() {
			return true
		}
	}
	return false
}

// settle files a run by its stored state: known, and either open and waiting for the sources its state
// waits for, or closed. A closed run is forgotten by the routing: a released run, or one older than the
// lookback, waits for no IOV any more, and without this the index would grow with every run of the
// agency's life.
func (x *index) settle(rs *pcl.RunState, now time.Time) {
	watched := x.watched(rs, now)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.known[rs.Run] = true
	if watched {
		x.open[rs.Run] = true
		x.noteWaits(rs.Run, rs.WaitsFor)
		return
	}
	delete(x.open, rs.Run)
	delete(x.hints, rs.Run)
	x.noteWaits(rs.Run, nil)
	x.forgetPayloads(rs.Run)
}

// learn keeps what the hints and the routing need from newly stored observations and returns the runs
// they touch: each fact's own run, and for an IOV the open runs that harvested its payload (its since
// may name a later run, or none).
func (x *index) learn(obs []pcl.Observation) []uint32 {
	x.mu.Lock()
	defer x.mu.Unlock()
	var touched []uint32
	for _, o := range obs {
		x.note(o)
		if o.Kind == pcl.KindIOV {
			touched = append(touched, x.payloadRuns[o.Payload]...)
		}
		if o.Run != 0 && o.Kind != pcl.KindFCSR {
			touched = append(touched, o.Run)
		}
	}
	return touched
}

// note is learn without the routing, for facts read back after a restart. Called with x.mu held.
func (x *index) note(o pcl.Observation) {
	h := x.hints[o.Run]
	if h == nil && o.Run != 0 && (o.Kind == pcl.KindRun || o.Kind == pcl.KindExpressConfig || o.Kind == pcl.KindStreamDone) {
		h = &runHint{}
		x.hints[o.Run] = h
	}
	switch o.Kind {
	case pcl.KindHarvestFile:
		for _, p := range o.Payloads {
			if !slices.Contains(x.payloadRuns[p.Payload], o.Run) {
				x.payloadRuns[p.Payload] = append(x.payloadRuns[p.Payload], o.Run)
				x.runPayloads[o.Run] = append(x.runPayloads[o.Run], p.Payload)
			}
		}
		for _, d := range o.Destinations {
			x.harvested[d] = true
		}
	case pcl.KindRun:
		h.stopped = h.stopped || o.RunInfo.Stop != nil
	case pcl.KindExpressConfig:
		if !slices.Contains(h.streams, o.Stream) {
			h.streams = append(h.streams, o.Stream)
		}
	case pcl.KindStreamDone:
		if o.Done && !slices.Contains(h.done, o.Stream) {
			h.done = append(h.done, o.Stream)
		}
	}
}

// recall is note for a restart's read-back of the open runs' facts.
func (x *index) recall(obs []pcl.Observation) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, o := range obs {
		x.note(o)
	}
}

// unknown lists the runs a batch names that have no stored state yet, each once. IOVs, upload records
// and the FCSR name runs by since or file name and never make a run (see anchored).
func (x *index) unknown(obs []pcl.Observation) []uint32 {
	x.mu.Lock()
	defer x.mu.Unlock()
	var fresh []uint32
	for i := range obs {
		o := &obs[i]
		if o.Run == 0 || x.known[o.Run] || slices.Contains(fresh, o.Run) {
			continue
		}
		switch o.Kind {
		case pcl.KindIOV, pcl.KindUploadStatus, pcl.KindFCSR:
			continue
		}
		fresh = append(fresh, o.Run)
	}
	return fresh
}

// opened records a new run's first stored state (its placeholder): known and open.
func (x *index) opened(run uint32) {
	x.mu.Lock()
	x.known[run], x.open[run] = true, true
	x.mu.Unlock()
}

// isOpen says whether a run is open.
func (x *index) isOpen(run uint32) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.open[run]
}

// openRuns lists the open runs, oldest first.
func (x *index) openRuns() []uint32 {
	x.mu.Lock()
	out := make([]uint32, 0, len(x.open))
	for r := range x.open {
		out = append(out, r)
	}
	x.mu.Unlock()
	slices.Sort(out)
	return out
}

// waitingFor lists the open runs whose last state waits for a fresh view of src.
func (x *index) waitingFor(src pcl.Source) []uint32 {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]uint32, 0, len(x.waiting[src]))
	for r := range x.waiting[src] {
		out = append(out, r)
	}
	return out
}

// openHints are the open runs as the spies are told of them, oldest first.
func (x *index) openHints() []pcl.OpenRun {
	runs := x.openRuns()
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]pcl.OpenRun, 0, len(runs))
	for _, r := range runs {
		or := pcl.OpenRun{Run: r}
		if h := x.hints[r]; h != nil {
			or.Stopped = h.stopped
			for _, s := range h.streams {
				if !slices.Contains(h.done, s) {
					or.Streams = append(or.Streams, s)
				}
			}
			slices.Sort(or.Streams)
		}
		out = append(out, or)
	}
	return out
}

// harvestedTags are the destination tags harvested metadata named, in no order.
func (x *index) harvestedTags() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.harvested))
	for t := range x.harvested {
		out = append(out, t)
	}
	return out
}

// noteWaits files the run under the sources its state waits for, and out of those it no longer waits
// for. Called with x.mu held.
func (x *index) noteWaits(run uint32, srcs []pcl.Source) {
	for _, s := range x.waitsFor[run] {
		if !slices.Contains(srcs, s) {
			delete(x.waiting[s], run)
		}
	}
	if len(srcs) == 0 {
		delete(x.waitsFor, run)
		return
	}
	for _, s := range srcs {
		if x.waiting[s] == nil {
			x.waiting[s] = map[uint32]bool{}
		}
		x.waiting[s][run] = true
	}
	x.waitsFor[run] = slices.Clone(srcs)
}

// forgetPayloads drops a closed run from the payload routing. Called with x.mu held.
func (x *index) forgetPayloads(run uint32) {
	for _, h := range x.runPayloads[run] {
		runs := slices.DeleteFunc(x.payloadRuns[h], func(r uint32) bool { return r == run })
		if len(runs) == 0 {
			delete(x.payloadRuns, h)
		} else {
			x.payloadRuns[h] = runs
		}
	}
	delete(x.runPayloads, run)
}
