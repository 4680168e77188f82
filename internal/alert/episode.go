package alert

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// seenEvery is how far LastSeen may run ahead of what is stored before it is written again: a firing
// alert whose condition holds is not rewritten on every evaluation, and after a restart its keep-firing
// time counts from at most this long ago.
const seenEvery = 5 * time.Minute

// episode is one alert as the evaluator keeps it: the stored record and what it knows of it beyond.
type episode struct {
	store.Alert
	dirty     bool      // changed since it was stored
	savedSeen time.Time // LastSeen as stored
	gone      bool      // a pending alert whose condition went: to be deleted
}

// advanceInput is what one evaluation moves the alerts by.
type advanceInput struct {
	now      time.Time
	findings []Finding
	// rules are the enabled rules' settings, by name.
	rules  map[string]config.AlertRule
	labels map[string]string // added to every alert
	stale  map[pcl.Source]bool
	// silences are those in force now.
	silences  []compiledSilence
	notifiers []string
}

// fingerprint names an alert by its rule and identifying labels.
func fingerprint(rule string, labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	var b strings.Builder
	b.WriteString(rule)
	for _, k := range keys {
		b.WriteString("/" + k + "=" + labels[k])
	}
	return b.String()
}

// alertLabels are all the labels of a finding's alert: the configured ones, then the rule's, then
// those the rules set, which nothing overrides.
func alertLabels(f Finding, cfg config.AlertRule, global map[string]string) map[string]string {
	l := map[string]string{}
	maps.Copy(l, global)
	maps.Copy(l, cfg.Labels)
	maps.Copy(l, f.Labels)
	l["alertname"], l["severity"] = f.Rule, cfg.Severity
	return l
}

// advance moves every live episode by one evaluation: what was found again stays (and fires once its
// `for` passed), what is new starts pending (or firing, with no `for`), what went resolves once its
// keep-firing time passed, unless a source its rule reads is stale; then silences and inhibitions are
// applied and what each notifier is owed is worked out. It returns the live episodes, the new ones
// appended; those marked gone must be deleted from the store.
func advance(live []*episode, in advanceInput) []*episode {
	found := map[string]*Finding{}
	for i := range in.findings {
		f := &in.findings[i]
		found[fingerprint(f.Rule, f.Labels)] = f
	}
	open := map[string]*episode{}
	for _, e := range live {
		if e.State == store.AlertResolved || e.gone {
			continue // kept only for a notice still owed, or to be deleted once the store writes
		}
		open[e.Fingerprint] = e
		cfg, enabled := in.rules[e.Rule]
		f := found[e.Fingerprint]
		switch {
		case f != nil && enabled:
			e.refresh(f, alertLabels(*f, cfg, in.labels), in.now)
			if e.State == store.AlertPending && !in.now.Before(e.Active.Add(cfg.For)) {
				e.fire(in.now)
			}
		case e.State == store.AlertPending:
			e.gone = true
		default:
			e.lost(cfg, enabled, in)
		}
	}
	for fp, f := range found {
		if open[fp] != nil {
			continue
		}
		cfg, enabled := in.rules[f.Rule]
		if !enabled {
			continue
		}
		e := &episode{dirty: true, Alert: store.Alert{Fingerprint: fp, Rule: f.Rule, State: store.AlertPending, Active: in.now}}
		e.refresh(f, alertLabels(*f, cfg, in.labels), in.now)
		if cfg.For <= 0 {
			e.fire(in.now)
		}
		live = append(live, e)
	}
	// New episodes in a stable order: by rule, then fingerprint (the map above has none).
	sort.SliceStable(live, func(i, j int) bool {
		a, b := live[i], live[j]
		if (a.ID == 0) != (b.ID == 0) {
			return b.ID == 0
		}
		if a.ID != 0 {
			return a.ID < b.ID
		}
		return a.Fingerprint < b.Fingerprint
	})
	mute(live, in)
	for _, e := range live {
		if owed := owes(&e.Alert, in.notifiers); owed != e.Owed {
			e.Owed, e.dirty = owed, true
		}
	}
	return live
}

// refresh takes what the finding says now.
func (e *episode) refresh(f *Finding, labels map[string]string, now time.Time) {
	since := f.Since
	if since.IsZero() {
		since = e.Since
	}
	if since.IsZero() {
		since = e.Active
	}
	if e.Summary != f.Summary || e.Details != f.Details || !maps.Equal(e.Labels, labels) || e.Run != f.Run ||
		e.Workflow != f.Workflow || !e.Since.Equal(since) || len(e.StaleInputs) > 0 || e.Severity != labels["severity"] {
		e.dirty = true
	}
	e.Summary, e.Details, e.Labels, e.Run, e.Workflow, e.Since = f.Summary, f.Details, labels, f.Run, f.Workflow, since
	e.Severity, e.StaleInputs = labels["severity"], nil
	e.LastSeen = now
	if now.Sub(e.savedSeen) >= seenEvery {
		e.dirty = true
	}
}

func (e *episode) fire(now time.Time) {
	e.State, e.Fired, e.NotifyFrom, e.dirty = store.AlertFiring, now, now, true
}

// lost handles a firing episode whose condition was not found: it keeps firing while a source its rule
// reads is stale (saying so) or within its keep-firing time, and resolves after. A rule switched off
// resolves its alerts at once.
func (e *episode) lost(cfg config.AlertRule, enabled bool, in advanceInput) {
	var stale []string
	if r, ok := ruleByName(e.Rule); ok && enabled {
		for _, s := range r.inputs {
			if in.stale[s] {
				stale = append(stale, string(s))
			}
		}
	}
	if !slices.Equal(stale, e.StaleInputs) {
		e.StaleInputs, e.dirty = stale, true
	}
	if len(stale) > 0 {
		return
	}
	if enabled && in.now.Before(e.LastSeen.Add(cfg.KeepFiringFor)) {
		return
	}
	e.State, e.Resolved, e.dirty = store.AlertResolved, in.now, true
}

// mute applies the silences in force and the inhibitions: an alert of a rule whose finding a stale
// source can explain is held back by that source's firing source-stale alert. An alert that stops
// being muted while it fires starts a new notification epoch: it is told again.
func mute(live []*episode, in advanceInput) {
	staleAlert := map[string]string{} // source → the fingerprint of its firing source-stale alert
	for _, e := range live {
		if e.Rule == "source-stale" && e.State == store.AlertFiring {
			staleAlert[e.Labels["source"]] = e.Fingerprint
		}
	}
	for _, e := range live {
		if e.State == store.AlertResolved || e.gone {
			continue
		}
		wasMuted := e.muted()
		var by []int64
		for _, s := range in.silences {
			if s.matches(e.Labels) {
				by = append(by, s.ID)
			}
		}
		inhibited := ""
		if r, ok := ruleByName(e.Rule); ok && r.explainedByStale {
			for _, s := range r.inputs {
				if fp := staleAlert[string(s)]; fp != "" && in.stale[s] {
					inhibited = fp
					break
				}
			}
		}
		if !slices.Equal(by, e.SilencedBy) || inhibited != e.InhibitedBy {
			e.SilencedBy, e.InhibitedBy, e.dirty = by, inhibited, true
		}
		if wasMuted && !e.muted() && e.State == store.AlertFiring && e.NotifyFrom.Before(in.now) {
			e.NotifyFrom = in.now
		}
	}
}

func (e *episode) muted() bool { return len(e.SilencedBy) > 0 || e.InhibitedBy != "" }

// needsFiring says the notifier is owed the firing notice of the episode's current epoch.
func needsFiring(a *store.Alert, notifier string) bool {
	if a.State != store.AlertFiring || len(a.SilencedBy) > 0 || a.InhibitedBy != "" {
		return false
	}
	return a.Notified[notifier].Epoch.Before(a.NotifyFrom)
}

// needsResolved says the notifier told the episode firing and is owed its resolution.
func needsResolved(a *store.Alert, notifier string) bool {
	n := a.Notified[notifier]
	return a.State == store.AlertResolved && !n.Firing.IsZero() && n.Resolved.IsZero() && n.GaveUp == ""
}

// owes says whether some notifier is owed a notice of the episode.
func owes(a *store.Alert, notifiers []string) bool {
	for _, n := range notifiers {
		if needsFiring(a, n) || needsResolved(a, n) {
			return true
		}
	}
	return false
}
