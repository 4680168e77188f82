package sim

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Event priorities at one instant: runs start and stop before Tier-0 reacts, Tier-0 before the feeder
// cycle, so that ties never depend on the order in which events were queued.
const (
	prioRun = iota
	prioTier0
	prioDropbox
	prioDQM
	prioFeeder
)

type event struct {
	at   time.Time
	prio int
	run  uint32
	sub  int // orders a run's events of one priority and instant (workflow index...)
	seq  uint64
	fn   func()
}

type queue []*event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	a, b := q[i], q[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	if a.prio != b.prio {
		return a.prio < b.prio
	}
	if a.run != b.run {
		return a.run < b.run
	}
	if a.sub != b.sub {
		return a.sub < b.sub
	}
	return a.seq < b.seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// run is a run's live state: its truth plus what the world needs to move it on.
type run struct {
	RunTruth
	rng      *rand.Rand
	stopped  bool
	datasets []string
	byAgency bool
}

// world is the simulated CMS. It is not safe for concurrent use; Sim guards it.
type world struct {
	p      Params
	faults Faults
	seed   uint64
	start  time.Time
	cat    *pcl.Catalogue
	log    *slog.Logger
	sched  *schedule
	disk   *disk
	t0     *t0stub

	now    time.Time
	q      queue
	seq    uint64
	runs   []*run // in run order
	byNum  map[uint32]*run
	walk   []*run // stopped runs the upload loop still visits, in order
	events []eventLine
	err    error

	uploadLog   []logRecord
	lastPayload map[string]string // input tag → hash of its newest payload
	lastSince   map[string]uint64 // destination tag → newest since appended
	lastInsert  time.Time         // the newest INSERTION_TIME written
	outages     map[string][]window
}

type eventLine struct {
	at   time.Time
	text string
}

func newWorld(p Params, f Faults, seed uint64, start time.Time, cat *pcl.Catalogue, d *disk, t0 *t0stub, log *slog.Logger) *world {
	w := &world{p: p, faults: f, seed: seed, start: start, cat: cat, log: log, sched: newSchedule(p, seed, start),
		disk: d, t0: t0, now: start, byNum: map[uint32]*run{}, lastPayload: map[string]string{}, lastSince: map[string]uint64{}}
	w.outages = map[string][]window{}
	w.at(start, prioFeeder, 0, 0, w.feeder)
	return w
}

func (w *world) at(t time.Time, prio int, run uint32, sub int, fn func()) {
	w.seq++
	heap.Push(&w.q, &event{at: t, prio: prio, run: run, sub: sub, seq: w.seq, fn: fn})
}

// record notes an event for the digest and the log.
func (w *world) record(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	w.events = append(w.events, eventLine{at: w.now, text: line})
	w.log.Debug("sim: "+line, "at", w.now)
}

// fail keeps the first I/O error; the world goes on, as CMS would.
func (w *world) fail(err error) {
	if err == nil {
		return
	}
	w.log.Error("sim: " + err.Error())
	if w.err == nil {
		w.err = err
	}
}

// advance runs every event up to t, in time order. Planning the schedule first makes sure every run
// that starts by t is in the queue.
func (w *world) advance(ctx context.Context, t time.Time) {
	for {
		for !w.sched.t.After(t) {
			for _, rp := range w.sched.cycle() {
				w.plan(rp)
			}
		}
		if len(w.q) == 0 || w.q[0].at.After(t) {
			break
		}
		e := heap.Pop(&w.q).(*event)
		if e.at.After(w.now) {
			w.now = e.at
		}
		e.fn()
		if ctx.Err() != nil {
			return
		}
	}
	if t.After(w.now) {
		w.now = t
	}
}

// plan queues a run's start.
func (w *world) plan(rp RunPlan) {
	r := &run{RunTruth: RunTruth{RunPlan: rp, Class: rp.Class()},
		rng: rand.New(rand.NewPCG(w.seed, uint64(rp.Number))), datasets: Datasets(rp.Family)}
	w.at(rp.Start, prioRun, rp.Number, 0, func() { w.startRun(r) })
}

func (w *world) startRun(r *run) {
	w.runs = append(w.runs, r)
	w.byNum[r.Number] = r
	w.t0.addRun(r.Number)
	w.record("run %d start class=%s fill=%v hlt=%s", r.Number, r.Class, derefInt(r.Fill), r.HLTKey)
	conf := r.Start.Add(w.p.ConfigureDelay)
	if conf.After(r.Stop) {
		conf = r.Stop
	}
	w.at(conf, prioTier0, r.Number, 0, func() { w.configure(r) })
	w.at(r.Stop, prioRun, r.Number, 1, func() { w.stopRun(r) })
}

// configure gives the run its express streams, each with the PCL producers of the catalogue that run in
// it, and the workflow instances those imply.
func (w *world) configure(r *run) {
	if !r.Configured.IsZero() {
		return // a run shorter than the configure delay was configured at its stop
	}
	r.Configured = w.now
	seen := map[string]bool{}
	for _, st := range Streams(r.Family) {
		s := StreamTruth{Name: st}
		s.Producers = append(s.Producers, otherProducers(st)...)
		for _, wf := range w.cat.Workflows() {
			if !wf.RunsIn(st) {
				continue
			}
			s.Producers = append(s.Producers, wf.Producer)
			if !seen[wf.Name] {
				seen[wf.Name] = true
				r.Workflows = append(r.Workflows, WorkflowTruth{Workflow: wf.Name, Stream: st})
			}
		}
		r.Streams = append(r.Streams, s)
	}
	w.record("run %d configured streams=%d workflows=%d", r.Number, len(r.Streams), len(r.Workflows))
}

// otherProducers are AlCaReco producers that are not PCL workflows, as real alca_skim lists carry them.
func otherProducers(stream string) []string {
	switch strings.TrimPrefix(stream, "HI") {
	case "Express":
		return []string{"SiStripCalZeroBias", "TkAlMinBias", "SiStripCalMinBias"}
	case "ExpressAlignment":
		return []string{"TkAlMinBias"}
	case "ExpressCosmics":
		return []string{"TkAlCosmics0T", "SiStripCalZeroBias"}
	}
	return nil
}

// stopRun draws, from the run's own random stream, when each stream's express processing closes and
// what each workflow's AlcaHarvest will do.
func (w *world) stopRun(r *run) {
	r.stopped = true
	if r.Configured.IsZero() {
		w.configure(r)
	}
	w.record("run %d stop lumis=%d", r.Number, w.p.Lumis(r.Stop.Sub(r.Start)))
	for i := range r.Streams {
		r.Streams[i].ExpressDone = r.Stop.Add(span(r.rng, w.p.ExpressLatency))
	}
	for i := range r.Workflows {
		w.planHarvest(r, i)
	}
	w.walk = append(w.walk, r)
	slices.SortFunc(w.walk, func(a, b *run) int { return int(a.Number) - int(b.Number) })
}

func (w *world) stream(r *run, name string) *StreamTruth {
	for i := range r.Streams {
		if r.Streams[i].Name == name {
			return &r.Streams[i]
		}
	}
	return nil
}

// planHarvest decides a workflow's outcome and when its AlcaHarvest runs: at the first periodic cycle
// (counted from the run's start) after its stream's input closed, at the latest alcaHarvestTimeout after
// stop. Faults make it late, very late (re-run by hand after PromptReco) or missing.
func (w *world) planHarvest(r *run, i int) {
	wt := &r.Workflows[i]
	st := w.stream(r, wt.Stream)
	period := w.p.PeriodicHarvest
	if slices.Contains(w.p.SlowStreams, wt.Stream) {
		period = w.p.SlowPeriodicHarvest
	}
	cycles := (st.ExpressDone.Sub(r.Start) + period - 1) / period
	at := r.Start.Add(cycles * period)
	if limit := r.Stop.Add(w.p.AlcaHarvestTimeout); at.After(limit) {
		at = limit
	}
	wt.Outcome = OutcomePayload
	if r.Stop.Sub(r.Start) < w.p.ShortForPayload || r.rng.Float64() < w.p.NoPayloadRate[string(r.Family)] {
		wt.Outcome = OutcomeNoPayload
	}
	switch x := r.rng.Float64(); {
	case x < w.faults.MissingRate:
		wt.Outcome, at = OutcomeMissing, time.Time{}
	case x < w.faults.MissingRate+w.faults.VeryLateRate && wt.Outcome == OutcomePayload:
		at = r.Stop.Add(w.p.RecoDelay + span(r.rng, Span{time.Hour, 12 * time.Hour}))
	case x < w.faults.MissingRate+w.faults.VeryLateRate+w.faults.LateRate:
		late := r.Stop.Add(span(r.rng, Span{w.p.AlcaHarvestTimeout * 3 / 4, w.p.AlcaHarvestTimeout}))
		if late.After(at) {
			at = late
		}
	}
	wt.HarvestAt = at
	if wt.Outcome == OutcomeMissing {
		return
	}
	w.at(at, prioTier0, r.Number, 1+i, func() { w.harvest(r, i) })
}

// feeder is Tier-0's cycle: the condition upload loop, the express streams' bookkeeping, and PromptReco
// releases.
func (w *world) feeder() {
	w.uploadLoop()
	w.streamsDone()
	w.t0.cycle(w)
	w.at(w.now.Add(w.p.FeederInterval), prioFeeder, 0, 0, w.feeder)
}

// streamsDone marks an express stream done once its input closed and every workflow of it is harvested
// and uploaded, or once the upload loop gave the run up (conditionUploadTimeout).
func (w *world) streamsDone() {
	for _, r := range w.walk {
		for i := range r.Streams {
			st := &r.Streams[i]
			if !st.Done.IsZero() || w.now.Before(st.ExpressDone) {
				continue
			}
			if w.streamFinished(r, st.Name) || !w.now.Before(r.Stop.Add(w.p.ConditionUploadTimeout)) {
				st.Done = w.now
				w.record("run %d stream %s done", r.Number, st.Name)
			}
		}
	}
}

func (w *world) streamFinished(r *run, stream string) bool {
	for _, wt := range r.Workflows {
		if wt.Stream != stream {
			continue
		}
		if !wt.Harvested {
			return false
		}
		for _, f := range wt.Files {
			if f.Uploaded.IsZero() {
				return false
			}
		}
	}
	return true
}

func derefInt(p *int) any {
	if p == nil {
		return "null"
	}
	return *p
}
