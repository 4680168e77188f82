// Package agency is the control loop of Spy Agency. It takes observation batches from the spies, stores
// them, reconciles the runs they touch and the runs whose wake-up time came, persists every changed
// decision with a new version (with its audit entry and outbox entries in the same transaction), and
// publishes changes to subscribers: the web page, steering and alerts.
package agency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/reconcile"
	"github.com/cms-pcl/spyagency/internal/store"
)

// Options configure an Agency. Store, Catalogue and Clock are required.
type Options struct {
	Store     store.Store
	Catalogue *pcl.Catalogue
	Policy    pcl.Policy
	Clock     clock.Clock
	Logger    *slog.Logger
	// Sources reports the spies' health; nil means no spy runs (every source counts as never read).
	Sources func() map[pcl.Source]pcl.SourceHealth
	// Targets are the push targets: each changed decision gets one outbox entry per target.
	Targets []string
	// Resync is how often every open run is reconciled even when nothing woke it (default 5 min): the
	// safety net for a missed wake-up. Between resyncs the loop sleeps until the earliest of the next
	// stored wake-up, the next resync and a kick (a stored batch, a source's view advancing).
	Resync time.Duration
	// Batch is the most runs one pass reconciles (default 200); the rest wait for the next pass.
	Batch int
	// Lookback: a run that started longer ago is no longer watched (default 14 days): it leaves the open
	// runs, so the spies stop asking about it and resyncs skip it. Its state stays, and new facts about it
	// are still reconciled.
	Lookback time.Duration
}

// retryAfterError is how long the loop waits after a failed pass before the next one (clock time), so
// that a store that keeps failing is not asked in a tight loop; the failed runs stay queued.
const retryAfterError = 5 * time.Second

// Agency is the loop. It is safe for concurrent use: spies call Ingest from their goroutines.
type Agency struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	touched map[uint32]bool
	// open are the runs still watched: not released, or released with workflows that are not terminal
	// yet (a state taken while a source was stale must still be corrected), and not older than the
	// lookback.
	open map[uint32]bool
	// waiting indexes the open runs by the sources whose next fresh view can change their state
	// (RunState.WaitsFor), so that a source's view advancing reconciles exactly those; waitsFor is the
	// reverse, to keep it up to date. Both hold open runs only.
	waiting     map[pcl.Source]map[uint32]bool
	waitsFor    map[uint32][]pcl.Source
	runHints    map[uint32]*runHint // what the spies need of each known run: stopped, streams
	known       map[uint32]bool     // runs with a stored state (a placeholder at least)
	harvested   map[string]bool     // destination tags named by harvested metadata
	payloadRuns map[string][]uint32 // harvested payload hash → runs, to route IOVs whose since moved
	runPayloads map[uint32][]string // the reverse, so that a closed run's hashes can be forgotten
	fcsr        uint32
	syncs       tagSyncs
	subs        map[chan pcl.RunEvent]bool
	kick        chan struct{}
	reconcileMu sync.Mutex // one reconcile pass at a time, so versions are assigned in order
	overrideMu  sync.Mutex // overrides of the same instant keep the order they were made in

	reconcile func(reconcile.Input) pcl.RunState // reconcile.Reconcile; tests wrap it
}

// New makes an Agency and loads what it must remember from the store.
func New(ctx context.Context, o Options) (*Agency, error) {
	if o.Store == nil || o.Catalogue == nil || o.Clock == nil {
		return nil, errors.New("agency: Store, Catalogue and Clock are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Policy.Classes) == 0 {
		o.Policy = pcl.DefaultPolicy()
	}
	if err := o.Policy.Validate(o.Catalogue); err != nil {
		return nil, fmt.Errorf("agency: %w", err)
	}
	if o.Resync <= 0 {
		o.Resync = 5 * time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 200
	}
	if o.Lookback <= 0 {
		o.Lookback = 14 * 24 * time.Hour
	}
	a := &Agency{o: o, log: o.Logger, touched: map[uint32]bool{}, open: map[uint32]bool{},
		waiting: map[pcl.Source]map[uint32]bool{}, waitsFor: map[uint32][]pcl.Source{},
		runHints: map[uint32]*runHint{}, harvested: map[string]bool{}, known: map[uint32]bool{},
		payloadRuns: map[string][]uint32{}, runPayloads: map[uint32][]string{}, subs: map[chan pcl.RunEvent]bool{}, kick: make(chan struct{}, 1),
		reconcile: reconcile.Reconcile}
	if err := a.load(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// load rebuilds the in-memory indexes from the store after a restart.
func (a *Agency) load(ctx context.Context) error {
	if err := a.syncs.load(ctx, a.o.Store); err != nil {
		return err
	}
	if v, ok, err := a.o.Store.Setting(ctx, "fcsr"); err != nil {
		return fmt.Errorf("agency: read FCSR: %w", err)
	} else if ok {
		n, _ := strconv.ParseUint(v, 10, 32)
		a.fcsr = uint32(n)
	}
	now := a.o.Clock.Now()
	for before := uint32(0); ; {
		states, err := a.o.Store.RunStates(ctx, store.RunQuery{Before: before, Limit: 1000})
		if err != nil {
			return fmt.Errorf("agency: read run states: %w", err)
		}
		for _, rs := range states {
			a.known[rs.Run] = true
			if a.watched(&rs, now) {
				a.open[rs.Run] = true
				a.noteWaits(rs.Run, rs.WaitsFor)
			}
		}
		if len(states) < 1000 {
			break
		}
		before = states[len(states)-1].Run
	}
	if len(a.open) > 0 {
		// Only open runs still wait for their payloads, so only their harvested hashes route IOVs.
		hinted, err := a.o.Store.Observations(ctx, store.ObservationQuery{Runs: a.OpenRuns(),
			Kinds: []pcl.Kind{pcl.KindRun, pcl.KindExpressConfig, pcl.KindStreamDone, pcl.KindHarvestFile}})
		if err != nil {
			return fmt.Errorf("agency: read open runs: %w", err)
		}
		for _, o := range hinted {
			a.noteHint(o)
		}
	}
	return nil
}

// runHint is what the spies are told of a run (see Hints).
type runHint struct {
	stopped bool
	streams []string // configured express streams
	done    []string // streams seen done
}

// noteHint keeps what the spies' hints and the IOV routing need from an observation, so that they are
// answered from memory instead of the store on every poll. Called with a.mu held, or before the agency
// is shared.
func (a *Agency) noteHint(o pcl.Observation) {
	h := a.runHints[o.Run]
	if h == nil && o.Run != 0 && (o.Kind == pcl.KindRun || o.Kind == pcl.KindExpressConfig || o.Kind == pcl.KindStreamDone) {
		h = &runHint{}
		a.runHints[o.Run] = h
	}
	switch o.Kind {
	case pcl.KindHarvestFile:
		for _, p := range o.Payloads {
			if !slices.Contains(a.payloadRuns[p.Payload], o.Run) {
				a.payloadRuns[p.Payload] = append(a.payloadRuns[p.Payload], o.Run)
				a.runPayloads[o.Run] = append(a.runPayloads[o.Run], p.Payload)
			}
		}
		for _, d := range o.Destinations {
			a.harvested[d] = true
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

// forgetPayloads drops a closed run from the payload routing index: a released run, or one older than
// the lookback, waits for no IOV any more, and without this the index would grow with every run of the
// agency's life. Called with a.mu held.
func (a *Agency) forgetPayloads(run uint32) {
	for _, h := range a.runPayloads[run] {
		runs := slices.DeleteFunc(a.payloadRuns[h], func(r uint32) bool { return r == run })
		if len(runs) == 0 {
			delete(a.payloadRuns, h)
		} else {
			a.payloadRuns[h] = runs
		}
	}
	delete(a.runPayloads, run)
}

// watched says whether a run's state still needs watching: a run Tier-0 released keeps being reconciled
// until each of its workflows is terminal, so that a state taken while a source was stale (awaiting a
// harvest scan that could not come) is corrected rather than frozen on its page and in the latency
// plots. Workflows are terminal by their deadline at the latest, so this ends; the lookback ends it too.
func (a *Agency) watched(rs *pcl.RunState, now time.Time) bool {
	if rs.Info != nil && now.Sub(rs.Info.Start) > a.o.Lookback {
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

// noteWaits files the run under the sources its state waits for, and out of those it no longer waits
// for. Called with a.mu held, or before the agency is shared.
func (a *Agency) noteWaits(run uint32, srcs []pcl.Source) {
	for _, s := range a.waitsFor[run] {
		if !slices.Contains(srcs, s) {
			delete(a.waiting[s], run)
		}
	}
	if len(srcs) == 0 {
		delete(a.waitsFor, run)
		return
	}
	for _, s := range srcs {
		if a.waiting[s] == nil {
			a.waiting[s] = map[uint32]bool{}
		}
		a.waiting[s][run] = true
	}
	a.waitsFor[run] = slices.Clone(srcs)
}

// SourceViewed is the runners' report that a source's view advanced: a poll taken later than the
// previous one has its observations stored. The open runs whose last state waits for a fresh view of
// that source are reconciled at once instead of at the next resync: a no-payload verdict follows the
// harvest scan that allows it within the pass.
func (a *Agency) SourceViewed(src pcl.Source, _ time.Time) {
	a.mu.Lock()
	n := len(a.waiting[src])
	for r := range a.waiting[src] {
		a.touched[r] = true
	}
	a.mu.Unlock()
	if n > 0 {
		a.poke()
	}
}

// Ingest stores a spy's batch and schedules the runs it touches. It is the spies' sink: when it
// returns nil, the batch is durable and the spy may advance its cursor.
func (a *Agency) Ingest(ctx context.Context, src pcl.Source, obs []pcl.Observation) error {
	if len(obs) == 0 {
		return nil
	}
	added, err := a.o.Store.AppendObservations(ctx, obs)
	if err != nil {
		return fmt.Errorf("agency: store %d observations from %s: %w", len(obs), src, err)
	}
	if err := a.placeholders(ctx, obs); err != nil {
		return err
	}
	if err := a.noteFCSR(ctx, obs); err != nil {
		return err
	}
	if changed, err := a.syncs.note(ctx, a.o.Store, obs); err != nil {
		return err
	} else if changed {
		a.Resync() // a tag's synchronization says whether it gates any run
	}
	if len(added) == 0 {
		return nil
	}
	a.mu.Lock()
	for _, o := range added {
		a.noteHint(o)
		if o.Kind == pcl.KindIOV {
			for _, r := range a.payloadRuns[o.Payload] {
				a.touched[r] = true
			}
		}
		if o.Run != 0 && o.Kind != pcl.KindFCSR {
			a.touched[o.Run] = true
		}
	}
	a.mu.Unlock()
	a.poke()
	return nil
}

// noteFCSR keeps the newest first condition-safe run. It is persisted before it is used, and judged
// from the whole batch: if persisting fails, the spy re-sends the batch, whose FCSR is then a known fact
// that would not count as new.
func (a *Agency) noteFCSR(ctx context.Context, obs []pcl.Observation) error {
	var fcsr uint32
	for i := range obs {
		if obs[i].Kind == pcl.KindFCSR {
			fcsr = max(fcsr, obs[i].Run)
		}
	}
	if fcsr <= a.FCSR() {
		return nil
	}
	if err := a.o.Store.SetSetting(ctx, "fcsr", strconv.FormatUint(uint64(fcsr), 10)); err != nil {
		return fmt.Errorf("agency: store FCSR: %w", err)
	}
	a.mu.Lock()
	if fcsr > a.fcsr {
		a.fcsr = fcsr
		// A new FCSR can put every open run at risk.
		for r := range a.open {
			a.touched[r] = true
		}
	}
	a.mu.Unlock()
	return nil
}

// placeholders gives every run the batch names for the first time a stored state before the batch
// counts as taken, so that a run is never forgotten: after a crash between storing its facts and
// reconciling it, a restart finds it open (and reconciles it), and Tier-0's pull API sees a run that is
// not releasable rather than a gap in the numbering. It looks at the whole batch, not only the new facts:
// a batch re-sent after such a crash holds only known facts.
func (a *Agency) placeholders(ctx context.Context, obs []pcl.Observation) error {
	var fresh []uint32
	a.mu.Lock()
	for i := range obs {
		o := &obs[i]
		if o.Run == 0 || a.known[o.Run] || slices.Contains(fresh, o.Run) {
			continue
		}
		switch o.Kind {
		case pcl.KindIOV, pcl.KindUploadStatus, pcl.KindFCSR:
			continue // these name runs by since or file name and never make a run (see anchored)
		}
		fresh = append(fresh, o.Run)
	}
	a.mu.Unlock()
	now := a.o.Clock.Now()
	for _, r := range fresh {
		rs := pcl.RunState{Run: r, NextWake: now, Decision: pcl.Decision{Run: r, State: pcl.ReadinessWaiting,
			Reason: "observed; not reconciled yet", Blocking: []string{}}}
		if err := a.o.Store.PutRunState(ctx, rs); err != nil {
			return fmt.Errorf("agency: record new run %d: %w", r, err)
		}
		a.mu.Lock()
		a.known[r], a.open[r], a.touched[r] = true, true, true
		a.mu.Unlock()
	}
	return nil
}

func (a *Agency) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Subscribe returns a channel of events. Events are dropped for a subscriber that does not keep up
// (it can re-read the state); cancel releases the channel.
func (a *Agency) Subscribe(buffer int) (<-chan pcl.RunEvent, func()) {
	ch := make(chan pcl.RunEvent, buffer)
	a.mu.Lock()
	a.subs[ch] = true
	a.mu.Unlock()
	return ch, func() {
		a.mu.Lock()
		if a.subs[ch] {
			delete(a.subs, ch)
			close(ch)
		}
		a.mu.Unlock()
	}
}

func (a *Agency) publish(e pcl.RunEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ch := range a.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// FCSR is the newest first condition-safe run seen.
func (a *Agency) FCSR() uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fcsr
}

// OpenRuns lists the runs whose readiness is not final, oldest first.
func (a *Agency) OpenRuns() []uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]uint32, 0, len(a.open))
	for r := range a.open {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Run is the loop, until ctx ends: every open run at once and on every resync, touched runs as batches
// arrive and as the views of the sources they wait for advance, and each run when its wake-up comes.
// Between passes it sleeps until the earliest of those, so a wake-up is on time and the resync
// interval is honoured exactly, whatever they are.
func (a *Agency) Run(ctx context.Context) error {
	nextResync := a.o.Clock.Now().Add(a.o.Resync)
	a.Resync()
	for {
		passed := a.o.Clock.Now()
		err := a.Pass(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Error("reconcile pass failed", "err", err)
		}
		wait := a.untilNext(ctx, passed, nextResync, err != nil)
		t := a.o.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-a.kick:
			t.Stop()
		case <-t.C():
		}
		if now := a.o.Clock.Now(); !now.Before(nextResync) {
			nextResync = now.Add(a.o.Resync)
			a.Resync()
		}
	}
}

// untilNext is how long the loop may sleep after a pass that began at passed: until the earliest stored
// wake-up or the next resync. A wake-up the pass should have handled and did not (its run could not be
// reconciled) waits for the resync rather than spinning; after a failed pass the loop waits a little.
func (a *Agency) untilNext(ctx context.Context, passed, nextResync time.Time, failed bool) time.Duration {
	next := nextResync
	if wake, err := a.o.Store.NextWake(ctx); err != nil {
		if ctx.Err() == nil {
			a.log.Error("reading the next wake-up failed", "err", err)
		}
		failed = true
	} else if wake.After(passed) && wake.Before(next) {
		next = wake
	}
	wait := next.Sub(a.o.Clock.Now())
	if failed {
		wait = max(wait, min(retryAfterError, a.o.Resync))
	}
	return max(wait, 0)
}

// Resync marks every open run for the next pass: what Run does at start and every resync interval.
func (a *Agency) Resync() {
	a.mu.Lock()
	for r := range a.open {
		a.touched[r] = true
	}
	a.mu.Unlock()
}

// Pass reconciles the touched runs and the runs whose wake-up came, once each.
func (a *Agency) Pass(ctx context.Context) error {
	a.reconcileMu.Lock()
	defer a.reconcileMu.Unlock()
	now := a.o.Clock.Now()
	due, err := a.o.Store.DueRuns(ctx, now, 10000)
	if err != nil {
		return fmt.Errorf("agency: due runs: %w", err)
	}
	a.mu.Lock()
	runs := make([]uint32, 0, len(a.touched)+len(due))
	for r := range a.touched {
		runs = append(runs, r)
	}
	clear(a.touched)
	a.mu.Unlock()
	runs = append(runs, due...)
	slices.Sort(runs)
	runs = slices.Compact(runs)
	if len(runs) > a.o.Batch {
		// Oldest runs first: they are nearest Tier-0's turn. The rest wait for the next pass.
		a.mu.Lock()
		for _, r := range runs[a.o.Batch:] {
			a.touched[r] = true
		}
		a.mu.Unlock()
		runs = runs[:a.o.Batch]
		a.poke()
	}
	var errs []error
	for i, r := range runs {
		if ctx.Err() != nil {
			// Give the rest back: they were taken off the queue and must not be forgotten.
			a.mu.Lock()
			for _, left := range runs[i:] {
				a.touched[left] = true
			}
			a.mu.Unlock()
			return ctx.Err()
		}
		if _, err := a.reconcileRun(ctx, r); err != nil {
			errs = append(errs, err)
			a.mu.Lock()
			a.touched[r] = true // try again on the next pass
			a.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// Reconcile reconciles one run now and reports whether its decision changed.
func (a *Agency) Reconcile(ctx context.Context, run uint32) (bool, error) {
	a.reconcileMu.Lock()
	defer a.reconcileMu.Unlock()
	return a.reconcileRun(ctx, run)
}

func (a *Agency) sources() map[pcl.Source]reconcile.SourceView {
	out := map[pcl.Source]reconcile.SourceView{}
	if a.o.Sources == nil {
		return out
	}
	for s, h := range a.o.Sources() {
		out[s] = reconcile.SourceView{View: h.View, Stale: h.Stale}
	}
	return out
}

// gather collects everything the reconcile of a run needs: the run's own observations and the IOVs
// that carry its harvested payloads (their since may point at another run).
func (a *Agency) gather(ctx context.Context, run uint32) ([]pcl.Observation, error) {
	obs, err := a.o.Store.Observations(ctx, store.ObservationQuery{Runs: []uint32{run}})
	if err != nil {
		return nil, err
	}
	var hashes []string
	for _, o := range obs {
		if o.Kind == pcl.KindHarvestFile {
			for _, p := range o.Payloads {
				hashes = append(hashes, p.Payload)
			}
		}
	}
	if len(hashes) > 0 {
		iovs, err := a.o.Store.Observations(ctx, store.ObservationQuery{Kinds: []pcl.Kind{pcl.KindIOV}, Payloads: hashes})
		if err != nil {
			return nil, err
		}
		obs = append(obs, iovs...)
	}
	return obs, nil
}

// reconcileRun derives a run's state and stores it, with a new decision version when the readiness
// changed. The sources' views are read before the run's observations: every poll a view vouches for had
// its observations stored before the view was published, so they are all in what is gathered next, and
// an absence concluded from the view is true of the gathered facts. The decision's time is taken after
// the gathering, so that it is never before the evidence it rests on was seen.
func (a *Agency) reconcileRun(ctx context.Context, run uint32) (bool, error) {
	sources := a.sources()
	obs, err := a.gather(ctx, run)
	if err != nil {
		return false, fmt.Errorf("agency: run %d: %w", run, err)
	}
	if !anchored(obs) {
		return false, nil
	}
	now := a.o.Clock.Now()
	rs := a.reconcile(reconcile.Input{Run: run, Observations: obs, Catalogue: a.o.Catalogue,
		Policy: a.o.Policy, Sources: sources, FCSR: a.FCSR(), Now: now, Synchronizations: a.syncs.snapshot()})
	prev, err := a.o.Store.RunState(ctx, run)
	switch {
	case apperr.Is(err, apperr.NotFound):
	case err != nil:
		return false, fmt.Errorf("agency: run %d: %w", run, err)
	}
	a.mu.Lock()
	a.known[run] = true
	if a.watched(&rs, now) {
		a.open[run] = true
		a.noteWaits(run, rs.WaitsFor)
	} else {
		delete(a.open, run)
		delete(a.runHints, run)
		a.noteWaits(run, nil)
		a.forgetPayloads(run)
	}
	a.mu.Unlock()
	if err == nil && prev.Decision.Version > 0 && sameDecision(rs.Decision, prev.Decision) {
		rs.Decision.Version, rs.Decision.Decided = prev.Decision.Version, prev.Decision.Decided
		if sameJSON(rs, prev) {
			return false, nil
		}
		if err := a.o.Store.PutRunState(ctx, rs); err != nil {
			return false, fmt.Errorf("agency: run %d: %w", run, err)
		}
		a.publish(pcl.RunEvent{Run: run, State: rs})
		return false, nil
	}
	d := rs.Decision
	d.Version = prev.Decision.Version + 1
	d.Decided = now
	w := store.DecisionWrite{Decision: d, State: rs,
		Audit: []store.AuditEntry{{At: now, Run: run, Actor: "agency", Action: "decision", Detail: auditDetail(d)}}}
	body, err := json.Marshal(d)
	if err != nil {
		return false, fmt.Errorf("agency: run %d: %w", run, err)
	}
	for _, t := range a.o.Targets {
		w.Outbox = append(w.Outbox, store.OutboxEntry{Target: t, Run: run, Version: d.Version, Payload: body, Created: now, NextAttempt: now})
	}
	saved, err := a.o.Store.SaveDecision(ctx, w)
	if err != nil {
		return false, fmt.Errorf("agency: run %d: save decision v%d: %w", run, d.Version, err)
	}
	rs.Decision = saved
	a.log.Info("decision", "run", run, "version", saved.Version, "state", saved.State, "releasable", saved.Releasable, "reason", saved.Reason)
	a.publish(pcl.RunEvent{Run: run, DecisionChanged: true, State: rs})
	return true, nil
}

// sameDecision says whether d tells Tier-0 nothing new after prev. A released run stays watched while
// its workflows settle (see watched), and their states may change what blocks it; but Tier-0 has
// released it, so no new version is made for that.
func sameDecision(d, prev pcl.Decision) bool {
	if d.State == pcl.ReadinessReleased && prev.State == pcl.ReadinessReleased && d.Releasable == prev.Releasable {
		return true
	}
	return d.Same(prev)
}

// auditDetail is a decision's audit text: its version, readiness and reason, and the store's sequence
// numbers of the observations it rests on, so that the audit log alone shows which facts, seen when,
// let a run be reported ready.
func auditDetail(d pcl.Decision) string {
	detail := fmt.Sprintf("v%d %s: %s", d.Version, d.State, d.Reason)
	if len(d.Evidence) == 0 {
		return detail
	}
	seqs := make([]string, len(d.Evidence))
	for i, n := range d.Evidence {
		seqs[i] = strconv.FormatInt(n, 10)
	}
	return detail + " (evidence: observations " + strings.Join(seqs, ", ") + ")"
}

// anchored says whether the observations make a run: IOVs and upload records point at runs by their
// since or file name, but a since moved up by the upload service names a run that may not exist.
func anchored(obs []pcl.Observation) bool {
	for _, o := range obs {
		switch o.Kind {
		case pcl.KindIOV, pcl.KindUploadStatus, pcl.KindFCSR:
		default:
			return true
		}
	}
	return false
}

func sameJSON(a, b pcl.RunState) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// Override records an operator's action on a run as an observation (so the reconcile sees it like any
// fact), writes its audit entry, and reconciles the run at once.
func (a *Agency) Override(ctx context.Context, run uint32, action pcl.OverrideAction, workflow, actor, reason string) (pcl.RunState, error) {
	if workflow != "" {
		if _, ok := a.o.Catalogue.Workflow(workflow); !ok {
			return pcl.RunState{}, apperr.Errorf(apperr.Invalid, "unknown workflow %q", workflow)
		}
	}
	if action == pcl.OverrideAccept && workflow == "" {
		return pcl.RunState{}, apperr.Errorf(apperr.Invalid, "accept needs a workflow")
	}
	if _, err := a.o.Store.RunState(ctx, run); err != nil {
		return pcl.RunState{}, err
	}
	if action == pcl.OverrideHold || action == pcl.OverrideRelease {
		// Tier-0 already started PromptReco: holding or releasing the run changes nothing, and an
		// audited hold that did nothing would mislead whoever reads the log.
		released, err := a.o.Store.Observations(ctx, store.ObservationQuery{Runs: []uint32{run}, Kinds: []pcl.Kind{pcl.KindRelease}, Limit: 1})
		if err != nil {
			return pcl.RunState{}, err
		}
		if len(released) > 0 {
			return pcl.RunState{}, apperr.Errorf(apperr.Conflict, "run %d was released by Tier-0 at %s (PromptReco started); a %s changes nothing now",
				run, released[0].At.UTC().Format(time.RFC3339), action)
		}
	}
	a.overrideMu.Lock()
	defer a.overrideMu.Unlock()
	now := a.o.Clock.Now()
	// Overrides are ordered by time; two in the same instant (a fast script, a fake clock) must still
	// keep the order they were made in.
	prior, err := a.o.Store.Observations(ctx, store.ObservationQuery{Runs: []uint32{run}, Kinds: []pcl.Kind{pcl.KindOverride}})
	if err != nil {
		return pcl.RunState{}, err
	}
	for _, p := range prior {
		if !now.After(p.At) {
			now = p.At.Add(time.Microsecond)
		}
	}
	o := pcl.Observation{Source: pcl.SourceOperator, Kind: pcl.KindOverride, Run: run, At: now, Seen: now,
		Action: action, Workflow: workflow, Actor: actor, Reason: reason}
	if err := o.Validate(); err != nil {
		return pcl.RunState{}, apperr.Errorf(apperr.Invalid, "%v", err)
	}
	if _, err := a.o.Store.AppendObservations(ctx, []pcl.Observation{o}); err != nil {
		return pcl.RunState{}, err
	}
	detail := reason
	if workflow != "" {
		detail = workflow + ": " + reason
	}
	if err := a.o.Store.AppendAudit(ctx, store.AuditEntry{At: now, Run: run, Actor: actor, Action: string(action), Detail: detail}); err != nil {
		return pcl.RunState{}, err
	}
	if _, err := a.Reconcile(ctx, run); err != nil {
		return pcl.RunState{}, err
	}
	return a.o.Store.RunState(ctx, run)
}
