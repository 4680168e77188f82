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
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/reconcile"
	"github.com/cms-pcl/spyagency/internal/spy"
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
	Sources func() map[pcl.Source]spy.Health
	// Targets are the push targets: each changed decision gets one outbox entry per target.
	Targets []string
	// Tick is how often due wake-ups are looked for (clock time); Resync how often every open run is
	// reconciled anyway, so that source health changes (a harvest scan) are taken into account.
	Tick, Resync time.Duration
	// Batch is the most runs one pass reconciles (default 200); the rest wait for the next pass.
	Batch int
	// Lookback: a run that started longer ago is no longer watched (default 14 days): it leaves the open
	// runs, so the spies stop asking about it and resyncs skip it. Its state stays, and new facts about it
	// are still reconciled.
	Lookback time.Duration
}

// Event tells subscribers that a run's state was stored; DecisionChanged when its readiness changed.
type Event struct {
	Run             uint32       `json:"run"`
	DecisionChanged bool         `json:"decision_changed"`
	State           pcl.RunState `json:"state"`
}

// Agency is the loop. It is safe for concurrent use: spies call Ingest from their goroutines.
type Agency struct {
	o   Options
	log *slog.Logger

	mu          sync.Mutex
	touched     map[uint32]bool
	open        map[uint32]bool     // runs whose readiness is not final (not released)
	runHints    map[uint32]*runHint // what the spies need of each known run: stopped, streams
	known       map[uint32]bool     // runs with a stored state (a placeholder at least)
	harvested   map[string]bool     // destination tags named by harvested metadata
	payloadRuns map[string][]uint32 // harvested payload hash → runs, to route IOVs whose since moved
	runPayloads map[uint32][]string // the reverse, so that a closed run's hashes can be forgotten
	fcsr        uint32
	subs        map[chan Event]bool
	kick        chan struct{}
	reconcileMu sync.Mutex // one reconcile pass at a time, so versions are assigned in order
	overrideMu  sync.Mutex // overrides of the same instant keep the order they were made in
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
	if o.Tick <= 0 {
		o.Tick = 30 * time.Second
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
		runHints: map[uint32]*runHint{}, harvested: map[string]bool{}, known: map[uint32]bool{},
		payloadRuns: map[string][]uint32{}, runPayloads: map[uint32][]string{}, subs: map[chan Event]bool{}, kick: make(chan struct{}, 1)}
	if err := a.load(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// load rebuilds the in-memory indexes from the store after a restart.
func (a *Agency) load(ctx context.Context) error {
	if v, ok, err := a.o.Store.Setting(ctx, "fcsr"); err != nil {
		return fmt.Errorf("agency: read FCSR: %w", err)
	} else if ok {
		n, _ := strconv.ParseUint(v, 10, 32)
		a.fcsr = uint32(n)
	}
	for before := uint32(0); ; {
		states, err := a.o.Store.RunStates(ctx, store.RunQuery{Before: before, Limit: 1000})
		if err != nil {
			return fmt.Errorf("agency: read run states: %w", err)
		}
		for _, rs := range states {
			a.known[rs.Run] = true
			if rs.Decision.State != pcl.ReadinessReleased {
				a.open[rs.Run] = true
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
func (a *Agency) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, buffer)
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

func (a *Agency) publish(e Event) {
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

// Run is the loop: it reconciles touched runs as batches arrive, due runs on every tick, and every open
// run on every resync, until ctx ends.
func (a *Agency) Run(ctx context.Context) error {
	lastResync := a.o.Clock.Now()
	a.resyncAll()
	for {
		if err := a.Pass(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("reconcile pass failed", "err", err)
		}
		t := a.o.Clock.NewTimer(a.o.Tick)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-a.kick:
			t.Stop()
		case <-t.C():
		}
		if now := a.o.Clock.Now(); now.Sub(lastResync) >= a.o.Resync {
			lastResync = now
			a.resyncAll()
		}
	}
}

func (a *Agency) resyncAll() {
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
		if _, err := a.reconcileRun(ctx, r, now); err != nil {
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
	return a.reconcileRun(ctx, run, a.o.Clock.Now())
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

func (a *Agency) reconcileRun(ctx context.Context, run uint32, now time.Time) (bool, error) {
	obs, err := a.gather(ctx, run)
	if err != nil {
		return false, fmt.Errorf("agency: run %d: %w", run, err)
	}
	if !anchored(obs) {
		return false, nil
	}
	rs := reconcile.Reconcile(reconcile.Input{Run: run, Observations: obs, Catalogue: a.o.Catalogue,
		Policy: a.o.Policy, Sources: a.sources(), FCSR: a.FCSR(), Now: now})
	prev, err := a.o.Store.RunState(ctx, run)
	switch {
	case apperr.Is(err, apperr.NotFound):
	case err != nil:
		return false, fmt.Errorf("agency: run %d: %w", run, err)
	}
	a.mu.Lock()
	a.known[run] = true
	tooOld := rs.Info != nil && now.Sub(rs.Info.Start) > a.o.Lookback
	if rs.Decision.State == pcl.ReadinessReleased || tooOld {
		delete(a.open, run)
		delete(a.runHints, run)
		a.forgetPayloads(run)
	} else {
		a.open[run] = true
	}
	a.mu.Unlock()
	if err == nil && prev.Decision.Version > 0 && rs.Decision.Same(prev.Decision) {
		rs.Decision.Version, rs.Decision.Decided = prev.Decision.Version, prev.Decision.Decided
		if sameJSON(rs, prev) {
			return false, nil
		}
		if err := a.o.Store.PutRunState(ctx, rs); err != nil {
			return false, fmt.Errorf("agency: run %d: %w", run, err)
		}
		a.publish(Event{Run: run, State: rs})
		return false, nil
	}
	d := rs.Decision
	d.Version = prev.Decision.Version + 1
	d.Decided = now
	w := store.DecisionWrite{Decision: d, State: rs,
		Audit: []store.AuditEntry{{At: now, Run: run, Actor: "agency", Action: "decision",
			Detail: fmt.Sprintf("v%d %s: %s", d.Version, d.State, d.Reason)}}}
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
	a.publish(Event{Run: run, DecisionChanged: true, State: rs})
	return true, nil
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
