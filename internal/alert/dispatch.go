package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/store"
)

// The dispatcher tells each notifier what it is owed: the firing notice of an episode's current epoch,
// and the resolution of an episode it was told firing. It sends group by group, records each notice
// in the episode (store.Notified) as soon as it got through, and keeps the notifiers' health. A failure
// worth retrying stops the notifier until its backoff passed (retried within its retry window, then
// given up); a refusal gives up that group's notices at once, and the next group is tried.

type notifierState struct {
	NotifierHealth
	retryStart time.Time // wall time of the first failure of the notices now retried
	lastResend time.Time // agency time of the last re-post of the firing alerts
}

type dispatcher struct {
	notifiers   []NamedNotifier
	wall        func() time.Time
	log         *slog.Logger
	externalURL string
	rules       map[string]config.AlertRule

	mu     sync.Mutex
	health map[string]*notifierState
}

func newDispatcher(ns []NamedNotifier, wall func() time.Time, log *slog.Logger, externalURL string, rules map[string]config.AlertRule) *dispatcher {
	d := &dispatcher{notifiers: ns, wall: wall, log: log, externalURL: externalURL, rules: rules, health: map[string]*notifierState{}}
	for _, n := range ns {
		d.health[n.Name] = &notifierState{NotifierHealth: NotifierHealth{Name: n.Name, Kind: n.Kind}}
	}
	return d
}

func (d *dispatcher) names() []string {
	out := make([]string, len(d.notifiers))
	for i, n := range d.notifiers {
		out[i] = n.Name
	}
	return out
}

// Health is every notifier's health, in the configuration's order.
func (d *dispatcher) Health() []NotifierHealth {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]NotifierHealth, 0, len(d.notifiers))
	for _, n := range d.notifiers {
		out = append(out, d.health[n.Name].NotifierHealth)
	}
	return out
}

// nextRetry is the earliest wall time a notifier waits for, zero for none.
func (d *dispatcher) nextRetry() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var next time.Time
	for _, h := range d.health {
		if !h.NextAttempt.IsZero() && (next.IsZero() || h.NextAttempt.Before(next)) {
			next = h.NextAttempt
		}
	}
	return next
}

// outgoing is one notice to send and what to record when it got through.
type outgoing struct {
	e        *episode
	notice   Notice
	resolved bool // the resolution, not the firing notice
	refresh  bool // a re-post of what the notifier was already told
	epoch    time.Time
}

// notice is an episode as notifiers carry it.
func (d *dispatcher) notice(a *store.Alert, status string) Notice {
	ann := map[string]string{"summary": a.Summary}
	if a.Details != "" {
		ann["description"] = a.Details
	}
	if r, ok := d.rules[a.Rule]; ok && r.Runbook != "" {
		ann["runbook_url"] = r.Runbook
	}
	if a.Run != 0 {
		ann["run_url"] = d.externalURL + "/runs/" + strconv.FormatUint(uint64(a.Run), 10)
	}
	if a.Workflow != "" {
		ann["workflow_url"] = d.externalURL + "/workflows/" + url.PathEscape(a.Workflow)
	}
	if len(a.StaleInputs) > 0 {
		ann["stale_inputs"] = joinComma(a.StaleInputs)
	}
	sum := sha256.Sum256([]byte(a.Fingerprint))
	n := Notice{Status: status, Labels: a.Labels, Annotations: ann, StartsAt: a.Fired,
		GeneratorURL: d.externalURL + "/alerts#alert-" + strconv.FormatInt(a.ID, 10), Fingerprint: hex.EncodeToString(sum[:8])}
	if status == "resolved" {
		n.EndsAt = a.Resolved
	}
	return n
}

func joinComma(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// plan is what one notifier is to be sent now, by group, under mu of the evaluator (it reads episodes).
func (d *dispatcher) plan(n NamedNotifier, live []*episode, now time.Time) (groups [][]outgoing, resend bool) {
	d.mu.Lock()
	st := d.health[n.Name]
	wallNow := d.wall()
	waiting := !st.NextAttempt.IsZero() && wallNow.Before(st.NextAttempt)
	resend = n.Resend > 0 && (st.lastResend.IsZero() || now.Sub(st.lastResend) >= n.Resend)
	d.mu.Unlock()
	if waiting {
		return nil, false
	}
	byGroup := map[string][]outgoing{}
	var keys []string
	add := func(e *episode, o outgoing) {
		cfg := d.rules[e.Rule]
		k, _ := groupKey(e.Rule, cfg.GroupBy, e.Labels)
		if _, ok := byGroup[k]; !ok {
			keys = append(keys, k)
		}
		byGroup[k] = append(byGroup[k], o)
	}
	for _, e := range live {
		a := &e.Alert
		switch {
		case needsFiring(a, n.Name):
			o := outgoing{e: e, notice: d.notice(a, "firing"), epoch: a.NotifyFrom}
			add(e, o)
		case needsResolved(a, n.Name):
			add(e, outgoing{e: e, notice: d.notice(a, "resolved"), resolved: true})
		case resend && a.State == store.AlertFiring && !e.muted() && !a.Notified[n.Name].Firing.IsZero() &&
			a.Notified[n.Name].Epoch.Equal(a.NotifyFrom):
			add(e, outgoing{e: e, notice: d.notice(a, "firing"), refresh: true})
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		groups = append(groups, byGroup[k])
	}
	if n.Resend > 0 {
		// Alertmanager resolves a firing alert nobody re-posts by its endsAt: a few resends ahead.
		for _, g := range groups {
			for i := range g {
				if g[i].notice.Status == "firing" {
					g[i].notice.EndsAt = now.Add(4 * n.Resend)
				}
			}
		}
	}
	return groups, resend
}

// mark is what a delivery attempt of one group did, applied to its episodes by apply.
type mark struct {
	group  []outgoing
	sentAt time.Time // agency time; zero when given up
	gaveUp string
}

// send delivers one notifier's groups (no lock held: this is I/O) and returns what to record.
func (d *dispatcher) send(ctx context.Context, n NamedNotifier, groups [][]outgoing, now time.Time) []mark {
	var marks []mark
	for _, g := range groups {
		m := Message{Receiver: n.Name, ExternalURL: d.externalURL}
		e := g[0].e
		m.GroupKey, m.GroupLabels = groupKey(e.Rule, d.rules[e.Rule].GroupBy, e.Labels)
		for _, o := range g {
			m.Alerts = append(m.Alerts, o.notice)
		}
		retry, err := n.Notifier.Notify(ctx, m)
		wallNow := d.wall()
		d.mu.Lock()
		st := d.health[n.Name]
		st.LastAttempt = wallNow
		if err == nil {
			st.LastSuccess, st.LastError, st.Failures, st.FailingSince, st.NextAttempt, st.retryStart = wallNow, "", 0, time.Time{}, time.Time{}, time.Time{}
			d.mu.Unlock()
			marks = append(marks, mark{group: g, sentAt: now})
			continue
		}
		if st.Failures == 0 {
			st.FailingSince = wallNow
		}
		st.Failures++
		st.LastError = err.Error()
		if st.retryStart.IsZero() {
			st.retryStart = wallNow
		}
		if retry && wallNow.Sub(st.retryStart) < n.RetryFor && ctx.Err() == nil {
			st.NextAttempt = wallNow.Add(backoff(st.Failures))
			d.mu.Unlock()
			d.log.Warn("notification failed; retrying", "notifier", n.Name, "group", m.GroupKey, "attempt", st.Failures, "err", err)
			return marks // the receiver is away: the other groups wait too
		}
		st.NextAttempt, st.retryStart = time.Time{}, time.Time{}
		st.GivenUp += len(g)
		d.mu.Unlock()
		d.log.Error("notification given up", "notifier", n.Name, "group", m.GroupKey, "alerts", len(g), "err", err)
		marks = append(marks, mark{group: g, gaveUp: err.Error()})
	}
	return marks
}

// apply records the marks in the episodes (under the evaluator's mu).
func apply(name string, marks []mark) {
	for _, mk := range marks {
		for _, o := range mk.group {
			if o.refresh {
				continue
			}
			a := &o.e.Alert
			if a.Notified == nil {
				a.Notified = map[string]store.Notified{}
			}
			n := a.Notified[name]
			switch {
			case o.resolved && mk.gaveUp != "":
				n.GaveUp = mk.gaveUp
			case o.resolved:
				n.Resolved = mk.sentAt
			case mk.gaveUp != "":
				n = store.Notified{Epoch: o.epoch, GaveUp: mk.gaveUp}
			default:
				n = store.Notified{Epoch: o.epoch, Firing: mk.sentAt}
			}
			a.Notified[name] = n
			o.e.dirty = true
		}
	}
}

// resent notes that a notifier's firing alerts were all posted again.
func (d *dispatcher) resent(name string, now time.Time) {
	d.mu.Lock()
	d.health[name].lastResend = now
	d.mu.Unlock()
}
