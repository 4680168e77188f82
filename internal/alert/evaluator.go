package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// Store is what the evaluator keeps in the store: the alerts, the silences, the dead letters it reads,
// and a heartbeat whose write tells it the store still writes.
type Store interface {
	store.AlertStore
	SetSetting(ctx context.Context, key, value string) error
}

// Runs gives the states of the runs the agency still watches.
type Runs interface {
	OpenRunStates(ctx context.Context) ([]pcl.RunState, error)
}

// Sources gives the spies' health.
type Sources interface {
	SourceHealth() []pcl.SourceHealth
}

// Options configure an Evaluator. Store, Clock and Runs are required.
type Options struct {
	Store   Store
	Clock   clock.Clock // the agency's: alert times, `for`, keep-firing
	Runs    Runs
	Sources Sources // nil: no spy runs here
	Policy  pcl.Policy
	Config  config.Alerts
	// Notifiers tell people; BuildNotifiers makes them from the configuration.
	Notifiers []NamedNotifier
	// DiskPath is a file or directory on the store's file system, for its free space; "" skips it.
	DiskPath string
	// Wall is the clock of I/O: notifier timeouts, backoff and retry windows. Default time.Now.
	Wall   func() time.Time
	Logger *slog.Logger
}

// HeartbeatKey is the setting the evaluator writes on every evaluation: when it last evaluated, and the
// proof that the store writes.
const HeartbeatKey = "alerts.evaluated"

// Evaluator evaluates the rules, keeps the alerts' state and tells the notifiers. Evaluate is one
// evaluation (the stepped demo and tests call it); Run evaluates every interval until its context ends.
// The read methods are safe while it runs.
type Evaluator struct {
	o     Options
	log   *slog.Logger
	rules map[string]config.AlertRule // the enabled ones
	disp  *dispatcher
	kick  chan struct{}

	evalMu sync.Mutex // one evaluation at a time

	mu       sync.Mutex // guards what follows, and the episodes' fields
	live     []*episode
	storeErr error
}

// New loads the live alerts from the store.
func New(ctx context.Context, o Options) (*Evaluator, error) {
	if o.Store == nil || o.Clock == nil || o.Runs == nil {
		return nil, errors.New("alert: Store, Clock and Runs are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Wall == nil {
		o.Wall = time.Now
	}
	if o.Config.Interval <= 0 {
		o.Config.Interval = config.DefaultAlertInterval
	}
	if o.Config.MaxSilence <= 0 {
		o.Config.MaxSilence = config.DefaultMaxSilence
	}
	if len(o.Policy.Classes) == 0 {
		o.Policy = pcl.DefaultPolicy()
	}
	o.Config.ExternalURL = strings.TrimRight(o.Config.ExternalURL, "/")
	e := &Evaluator{o: o, log: o.Logger, rules: map[string]config.AlertRule{}, kick: make(chan struct{}, 1)}
	for _, name := range config.AlertRuleNames {
		if _, ok := ruleByName(name); !ok {
			return nil, fmt.Errorf("alert: rule %q of the configuration has no implementation", name)
		}
		r, _ := o.Config.Rules.Rule(name)
		if r.Runbook == "" {
			r.Runbook = config.DefaultRunbook(o.Config.ExternalURL, name)
		}
		if r.Enabled {
			e.rules[name] = r
		}
	}
	seen := map[string]bool{}
	for _, n := range o.Notifiers {
		if n.Name == "" || seen[n.Name] || n.Notifier == nil {
			return nil, fmt.Errorf("alert: notifier %q: a notifier needs a unique name and an implementation", n.Name)
		}
		seen[n.Name] = true
	}
	e.disp = newDispatcher(o.Notifiers, o.Wall, o.Logger, o.Config.ExternalURL, e.rules)
	stored, err := o.Store.LiveAlerts(ctx)
	if err != nil {
		return nil, fmt.Errorf("alert: read the live alerts: %w", err)
	}
	for _, a := range stored {
		e.live = append(e.live, &episode{Alert: a, savedSeen: a.LastSeen})
	}
	return e, nil
}

// Reload replaces what the evaluator knows of the live alerts with what the store holds. A replica
// calls it when it begins to lead (the alerts' state is what the previous leader stored, so an alert
// that fires on goes on as the same episode and is not notified again) and, while it follows, on every
// look at the lease, so that its Alerts page shows the leader's alerts. Not while this evaluator
// evaluates for a leader: what it has not stored yet would be lost.
func (e *Evaluator) Reload(ctx context.Context) error {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	stored, err := e.o.Store.LiveAlerts(ctx)
	if err != nil {
		return fmt.Errorf("alert: read the live alerts: %w", err)
	}
	live := make([]*episode, 0, len(stored))
	for _, a := range stored {
		live = append(live, &episode{Alert: a, savedSeen: a.LastSeen})
	}
	e.mu.Lock()
	e.live = live
	e.mu.Unlock()
	return nil
}

// Evaluate runs one evaluation: the rules over a fresh snapshot, the alerts' states, the store, the
// notifiers. It fails only when it could not look (the open runs could not be read); a store that
// refuses writes is itself an alert (store-trouble).
func (e *Evaluator) Evaluate(ctx context.Context) error {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	now := e.o.Clock.Now()
	snap, err := e.snapshot(ctx, now)
	if err != nil {
		return err
	}
	silences, err := e.o.Store.Silences(ctx, store.SilenceQuery{ActiveAt: now, Limit: 1000})
	if err != nil {
		return fmt.Errorf("alert: read the silences in force: %w", err)
	}
	in := advanceInput{now: now, rules: e.rules, labels: e.o.Config.Labels, stale: map[pcl.Source]bool{}, notifiers: e.disp.names()}
	for _, s := range silences {
		c, err := compileSilence(s)
		if err != nil {
			e.log.Error("a stored silence does not compile; it is ignored", "silence", s.ID, "err", err)
			continue
		}
		in.silences = append(in.silences, c)
	}
	for _, h := range snap.Sources {
		in.stale[h.Name] = h.Stale
	}
	for _, r := range rules {
		if cfg, ok := e.rules[r.name]; ok {
			in.findings = append(in.findings, r.find(&snap, cfg)...)
		}
	}
	e.mu.Lock()
	e.live = advance(e.live, in)
	e.mu.Unlock()
	err1 := e.save(ctx)
	e.notify(ctx, now)
	err2 := e.save(ctx)
	// The heartbeat is written on every evaluation, so that a store that stopped writing is noticed
	// even when no alert changed.
	err3 := e.o.Store.SetSetting(ctx, HeartbeatKey, now.UTC().Format(time.RFC3339Nano))
	e.mu.Lock()
	e.storeErr = errors.Join(err1, err2, err3)
	e.mu.Unlock()
	return nil
}

func (e *Evaluator) snapshot(ctx context.Context, now time.Time) (Snapshot, error) {
	s := Snapshot{Now: now, Policy: e.o.Policy, Notifiers: e.disp.Health()}
	var err error
	if s.Runs, err = e.o.Runs.OpenRunStates(ctx); err != nil {
		return s, fmt.Errorf("alert: read the open runs: %w", err)
	}
	if e.o.Sources != nil {
		s.Sources = e.o.Sources.SourceHealth()
	}
	if _, ok := e.rules["push-undeliverable"]; ok {
		if s.DeadLetters, err = e.o.Store.DeadLetters(ctx, 500); err != nil {
			return s, fmt.Errorf("alert: read the dead letters: %w", err)
		}
	}
	if e.o.DiskPath != "" && diskKnown {
		d := freeSpace(e.o.DiskPath)
		s.Disk = &d
	}
	e.mu.Lock()
	s.StoreError = e.storeErr
	e.mu.Unlock()
	return s, nil
}

// save writes what changed and forgets what is over: pending episodes that went, and resolved ones no
// notifier is owed anything of. When the store refuses, everything stays as it is in memory, to be
// written by a later evaluation, and the refusal is the next evaluation's store-trouble.
func (e *Evaluator) save(ctx context.Context) error {
	e.mu.Lock()
	var w store.AlertWrite
	var saved []*episode
	for _, ep := range e.live {
		switch {
		case ep.gone && ep.ID != 0:
			w.Delete = append(w.Delete, ep.ID)
		case ep.gone:
		case ep.dirty:
			w.Save = append(w.Save, ep.Alert)
			saved = append(saved, ep)
		}
	}
	if len(w.Save) > 0 || len(w.Delete) > 0 {
		// A write is made anyway: the episodes whose LastSeen is half way to being due ride along, so
		// that the refreshes of many alerts fall on the same evaluations instead of one each minute.
		for _, ep := range e.live {
			if !ep.gone && !ep.dirty && ep.ID != 0 && ep.LastSeen.Sub(ep.savedSeen) >= seenEvery/2 {
				w.Save = append(w.Save, ep.Alert)
				saved = append(saved, ep)
			}
		}
	}
	e.mu.Unlock()
	if len(w.Save) > 0 || len(w.Delete) > 0 {
		out, err := e.o.Store.SaveAlerts(ctx, w)
		if err != nil {
			e.log.Error("alerts not saved; kept in memory until the store writes", "err", err)
			return fmt.Errorf("save alerts: %w", err)
		}
		e.mu.Lock()
		for i, ep := range saved {
			// Nothing changes an episode between the copy above and here: evaluations are serial.
			ep.ID, ep.savedSeen, ep.dirty = out[i].ID, out[i].LastSeen, false
		}
		e.mu.Unlock()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.live = slices.DeleteFunc(e.live, func(ep *episode) bool {
		return ep.gone || (ep.State == store.AlertResolved && !ep.Owed && !ep.dirty)
	})
	return nil
}

// notify tells each notifier what it is owed, then works out what is still owed.
func (e *Evaluator) notify(ctx context.Context, now time.Time) {
	for _, n := range e.disp.notifiers {
		e.mu.Lock()
		groups, resend := e.disp.plan(n, e.live, now)
		e.mu.Unlock()
		if len(groups) == 0 {
			if resend {
				e.disp.resent(n.Name, now)
			}
			continue
		}
		marks := e.disp.send(ctx, n, groups, now)
		e.mu.Lock()
		apply(n.Name, marks)
		e.mu.Unlock()
		if resend && len(marks) == len(groups) {
			e.disp.resent(n.Name, now)
		}
	}
	names := e.disp.names()
	e.mu.Lock()
	for _, ep := range e.live {
		if owed := owes(&ep.Alert, names); owed != ep.Owed {
			ep.Owed, ep.dirty = owed, true
		}
	}
	e.mu.Unlock()
}

// Run evaluates every interval of the agency's clock (but at most once a second of real time, whatever
// a simulated clock's speed), at once after a silence changed, and when a notifier's retry is due,
// until ctx ends.
func (e *Evaluator) Run(ctx context.Context) error {
	for {
		if err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("alert evaluation failed", "err", err)
		}
		last := time.Now()
		t := e.o.Clock.NewTimer(e.o.Config.Interval)
		var retry <-chan time.Time
		var rt *time.Timer
		if next := e.disp.nextRetry(); !next.IsZero() {
			rt = time.NewTimer(max(next.Sub(e.o.Wall()), 0))
			retry = rt.C
		}
		stop := func() {
			t.Stop()
			if rt != nil {
				rt.Stop()
			}
		}
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-t.C():
		case <-e.kick:
		case <-retry:
		}
		stop()
		if d := time.Second - time.Since(last); d > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d):
			}
		}
	}
}

// Wake has the alerts evaluated again soon (at most once a second), as when a run's decision changed.
func (e *Evaluator) Wake() { e.poke() }

func (e *Evaluator) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Active returns the alerts not resolved (pending and firing, silenced or not), oldest first.
func (e *Evaluator) Active() []store.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []store.Alert
	for _, ep := range e.live {
		if ep.State != store.AlertResolved && !ep.gone {
			out = append(out, cloneAlert(ep.Alert))
		}
	}
	return out
}

// Firing returns the alerts that fire and are neither silenced nor inhibited: what people are told.
func (e *Evaluator) Firing() []store.Alert {
	var out []store.Alert
	for _, a := range e.Active() {
		if a.State == store.AlertFiring && len(a.SilencedBy) == 0 && a.InhibitedBy == "" {
			out = append(out, a)
		}
	}
	return out
}

// History returns resolved alerts, newest first.
func (e *Evaluator) History(ctx context.Context, q store.AlertQuery) ([]store.Alert, error) {
	return e.o.Store.AlertHistory(ctx, q)
}

// RunbookOf is a rule's runbook link, as its alerts carry it.
func (e *Evaluator) RunbookOf(rule string) string {
	if r, ok := e.rules[rule]; ok {
		return r.Runbook
	}
	r, _ := e.o.Config.Rules.Rule(rule)
	if r.Runbook != "" {
		return r.Runbook
	}
	return config.DefaultRunbook(e.o.Config.ExternalURL, rule)
}

// Notifiers is every notifier's health.
func (e *Evaluator) Notifiers() []NotifierHealth { return e.disp.Health() }

func cloneAlert(a store.Alert) store.Alert {
	a.SilencedBy = slices.Clone(a.SilencedBy)
	a.StaleInputs = slices.Clone(a.StaleInputs)
	// Labels and Notified are replaced, never changed in place, once an episode is shared.
	return a
}

// Silences lists the silences, newest first: those not ended yet, or all of them.
func (e *Evaluator) Silences(ctx context.Context, all bool, limit int) ([]store.Silence, error) {
	q := store.SilenceQuery{Limit: limit}
	if !all {
		q.NotEndedAt = e.o.Clock.Now()
	}
	return e.o.Store.Silences(ctx, q)
}

// AddSilence makes a silence (Starts defaults to now) after checking it, with an audit entry, and has
// the alerts evaluated again so that it takes effect at once.
func (e *Evaluator) AddSilence(ctx context.Context, s store.Silence) (store.Silence, error) {
	now := e.o.Clock.Now()
	if s.Starts.IsZero() || s.Starts.Before(now) {
		s.Starts = now
	}
	if err := checkNewSilence(s, now, e.o.Config.MaxSilence); err != nil {
		return store.Silence{}, err
	}
	s.Created = now
	added, err := e.o.Store.AddSilence(ctx, s, store.AuditEntry{At: now, Actor: s.Author, Action: "silence", Detail: describeSilence(s)})
	if err != nil {
		return store.Silence{}, err
	}
	e.log.Info("silence added", "silence", added.ID, "author", added.Author, "until", added.Ends)
	e.poke()
	return added, nil
}

// ExpireSilence ends a silence now, with an audit entry; the alerts it kept quiet notify again if they
// still fire.
func (e *Evaluator) ExpireSilence(ctx context.Context, id int64, actor string) (store.Silence, error) {
	now := e.o.Clock.Now()
	s, err := e.o.Store.Silence(ctx, id)
	if err != nil {
		return store.Silence{}, err
	}
	ended, err := e.o.Store.ExpireSilence(ctx, id, now, actor, store.AuditEntry{At: now, Actor: actor, Action: "silence-expire",
		Detail: "ended early: " + describeSilence(s)})
	if err != nil {
		return store.Silence{}, err
	}
	e.log.Info("silence expired early", "silence", id, "actor", actor)
	e.poke()
	return ended, nil
}
