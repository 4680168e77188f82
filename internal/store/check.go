package store

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// The checks every implementation makes of what it is asked to write, in one place so that the stores
// refuse the same things with the same codes.

// The times a Unix-nanosecond integer can hold: both stores keep times that way.
var (
	minStorable = time.Unix(0, math.MinInt64).UTC()
	maxStorable = time.Unix(0, math.MaxInt64).UTC()
)

// Storable checks that non-zero times fit the storage (years 1678 to 2262): beyond, UnixNano overflows
// and the row would be filed at a wrong time.
func Storable(ts ...time.Time) error {
	for _, t := range ts {
		if !t.IsZero() && (t.Before(minStorable) || t.After(maxStorable)) {
			return fmt.Errorf("time %s is out of the storable range (%d to %d)", t.Format(time.RFC3339), minStorable.Year(), maxStorable.Year())
		}
	}
	return nil
}

// CheckAudit refuses an audit entry without actor or action, or with a time out of range.
func CheckAudit(e AuditEntry) error {
	if strings.TrimSpace(e.Actor) == "" {
		return apperr.Errorf(apperr.Invalid, "audit entry %q of run %d has no actor", e.Action, e.Run)
	}
	if strings.TrimSpace(e.Action) == "" {
		return apperr.Errorf(apperr.Invalid, "audit entry by %s of run %d has no action", e.Actor, e.Run)
	}
	if err := Storable(e.At); err != nil {
		return apperr.Errorf(apperr.Invalid, "audit entry %q of run %d: %w", e.Action, e.Run, err)
	}
	return nil
}

// CheckRunState refuses a run state whose times cannot be stored.
func CheckRunState(rs pcl.RunState) error {
	if err := Storable(rs.NextWake, rs.Deadline); err != nil {
		return apperr.Errorf(apperr.Invalid, "state of run %d: %w", rs.Run, err)
	}
	if rs.Info != nil && rs.Info.Stop != nil {
		if err := Storable(*rs.Info.Stop); err != nil {
			return apperr.Errorf(apperr.Invalid, "state of run %d: stop: %w", rs.Run, err)
		}
	}
	return nil
}

// CompleteDecision checks a DecisionWrite and fills in what the store owns: the decision time when
// unset (now), the run and version of the outbox and audit entries, the decision copied into the state.
func CompleteDecision(w DecisionWrite, now time.Time) (DecisionWrite, error) {
	d := w.Decision
	if d.Run == 0 {
		d.Run = w.State.Run
	}
	if d.Run == 0 {
		return w, apperr.Errorf(apperr.Invalid, "save decision: run number is 0")
	}
	if w.State.Run == 0 {
		w.State.Run = d.Run
	}
	if w.State.Run != d.Run {
		return w, apperr.Errorf(apperr.Invalid, "save decision: decision is for run %d, state for run %d", d.Run, w.State.Run)
	}
	if d.Decided.IsZero() {
		d.Decided = now.UTC()
	}
	if err := Storable(d.Decided); err != nil {
		return w, apperr.Errorf(apperr.Invalid, "decision for run %d: decided: %w", d.Run, err)
	}
	if err := CheckRunState(w.State); err != nil {
		return w, err
	}
	w.Decision = d
	w.State.Decision = d
	outbox := make([]OutboxEntry, len(w.Outbox))
	seen := map[string]bool{}
	for i, e := range w.Outbox {
		if e.Target == "" {
			return w, apperr.Errorf(apperr.Invalid, "decision for run %d: outbox entry %d has no target", d.Run, i+1)
		}
		if seen[e.Target] {
			return w, apperr.Errorf(apperr.Invalid, "decision for run %d: two outbox entries for target %q", d.Run, e.Target)
		}
		seen[e.Target] = true
		if e.Run == 0 {
			e.Run = d.Run
		}
		if e.Version == 0 {
			e.Version = d.Version
		}
		if e.Run != d.Run || e.Version != d.Version {
			return w, apperr.Errorf(apperr.Invalid, "decision %d of run %d: outbox entry for %q names run %d version %d",
				d.Version, d.Run, e.Target, e.Run, e.Version)
		}
		if e.Created.IsZero() {
			e.Created = d.Decided
		}
		if e.NextAttempt.IsZero() {
			e.NextAttempt = e.Created
		}
		if err := Storable(e.Created, e.NextAttempt); err != nil {
			return w, apperr.Errorf(apperr.Invalid, "decision for run %d: outbox entry for %q: %w", d.Run, e.Target, err)
		}
		outbox[i] = e
	}
	w.Outbox = outbox
	audit := make([]AuditEntry, len(w.Audit))
	for i, a := range w.Audit {
		if a.Run == 0 {
			a.Run = d.Run
		}
		if a.At.IsZero() {
			a.At = d.Decided
		}
		if err := CheckAudit(a); err != nil {
			return w, err
		}
		audit[i] = a
	}
	w.Audit = audit
	return w, nil
}

// CheckAlert refuses an alert episode without fingerprint or rule, in an unknown state, resolved
// without a time, or with a time out of range.
func CheckAlert(a Alert) error {
	what := fmt.Sprintf("alert %q", a.Fingerprint)
	switch {
	case strings.TrimSpace(a.Fingerprint) == "":
		return apperr.Errorf(apperr.Invalid, "alert of rule %q has no fingerprint", a.Rule)
	case strings.TrimSpace(a.Rule) == "":
		return apperr.Errorf(apperr.Invalid, "%s has no rule", what)
	case a.State != AlertPending && a.State != AlertFiring && a.State != AlertResolved:
		return apperr.Errorf(apperr.Invalid, "%s: unknown state %q", what, a.State)
	case a.State == AlertResolved && a.Resolved.IsZero():
		return apperr.Errorf(apperr.Invalid, "%s is resolved without a resolution time", what)
	}
	if err := Storable(a.Since, a.Active, a.Fired, a.LastSeen, a.Resolved, a.NotifyFrom); err != nil {
		return apperr.Errorf(apperr.Invalid, "%s: %w", what, err)
	}
	return nil
}

// Live says whether an episode is read by LiveAlerts: not resolved, or owed to a notifier.
func (a Alert) Live() bool { return a.State != AlertResolved || a.Owed }

var matcherOps = map[string]bool{"=": true, "!=": true, "=~": true, "!~": true}

// CheckSilence refuses a silence without matchers, author, reason or a proper time span, or with a
// matcher that names no label or an unknown operator.
func CheckSilence(si Silence) error {
	switch {
	case len(si.Matchers) == 0:
		return apperr.Errorf(apperr.Invalid, "a silence needs at least one matcher")
	case strings.TrimSpace(si.Author) == "":
		return apperr.Errorf(apperr.Invalid, "a silence needs an author")
	case strings.TrimSpace(si.Reason) == "":
		return apperr.Errorf(apperr.Invalid, "a silence needs a reason")
	case si.Starts.IsZero() || si.Ends.IsZero():
		return apperr.Errorf(apperr.Invalid, "a silence needs a start and an end")
	case !si.Ends.After(si.Starts):
		return apperr.Errorf(apperr.Invalid, "a silence must end after it starts (%s to %s)", si.Starts.Format(time.RFC3339), si.Ends.Format(time.RFC3339))
	}
	for _, m := range si.Matchers {
		if strings.TrimSpace(m.Name) == "" {
			return apperr.Errorf(apperr.Invalid, "a silence's matcher has no label name")
		}
		if !matcherOps[m.Op] {
			return apperr.Errorf(apperr.Invalid, "matcher %s: unknown operator %q (want =, !=, =~ or !~)", m.Name, m.Op)
		}
	}
	if err := Storable(si.Starts, si.Ends, si.Created); err != nil {
		return apperr.Errorf(apperr.Invalid, "silence: %w", err)
	}
	return nil
}
