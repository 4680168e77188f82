package alert

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store"
)

// Snapshot is everything the rules look at in one evaluation. Every part is current or open work:
// nothing in it grows with history.
type Snapshot struct {
	Now time.Time
	// Runs are the states of the runs the agency still watches, in any order.
	Runs    []pcl.RunState
	Policy  pcl.Policy
	Sources []pcl.SourceHealth
	// DeadLetters are the deliveries given up that no later delivered version replaced.
	DeadLetters []store.OutboxEntry
	// Disk is the store's file system; nil when not known (not a local file).
	Disk *DiskSpace
	// StoreError is the store's refusal of the evaluator's last write, nil when it wrote.
	StoreError error
	Notifiers  []NotifierHealth
}

// DiskSpace is the free space of the file system holding the store.
type DiskSpace struct {
	Path        string
	Free, Total uint64
	Err         error // could not be read
}

// Finding is one condition a rule found true now.
type Finding struct {
	Rule string
	// Labels identify the alert besides its rule (run, workflow, source, target, notifier): one alert
	// per distinct set.
	Labels   map[string]string
	Summary  string // one line in plain words, without its time
	Details  string // what to read next
	Run      uint32
	Workflow string
	Since    time.Time // when the condition began by its evidence; zero: unknown
}

// rule is one alert rule: its name (a key of config.AlertRules), the sources whose data it reads, and
// what it finds.
type rule struct {
	name string
	// inputs are the sources whose staleness keeps the rule's alerts from resolving: a condition no
	// longer seen because the data stopped arriving is not a recovery.
	inputs []pcl.Source
	// explainedByStale: a stale input can be the cause of the finding (progress that stopped because
	// nothing is seen), so while one is stale, its source-stale alert inhibits the rule's alerts: one
	// broken source is one alert.
	explainedByStale bool
	find             func(s *Snapshot, cfg config.AlertRule) []Finding
}

// progressSources are the sources a workflow's progress is seen through.
var progressSources = []pcl.Source{pcl.SourceTier0, pcl.SourceHarvest, pcl.SourceDropbox, pcl.SourceCondDB}

// rules are every rule, in config.AlertRuleNames order.
var rules = []rule{
	{name: "workflow-late", inputs: progressSources, explainedByStale: true, find: findWorkflowLate},
	{name: "upload-failed", inputs: []pcl.Source{pcl.SourceDropbox}, find: stateRule(pcl.StateUploadFailed, "upload failed")},
	{name: "too-late", inputs: []pcl.Source{pcl.SourceDropbox}, find: stateRule(pcl.StateTooLate, "too late for the first condition-safe run")},
	{name: "no-payload", inputs: []pcl.Source{pcl.SourceTier0, pcl.SourceHarvest, pcl.SourceDQM}, find: findNoPayload},
	{name: "dqm-bad", inputs: []pcl.Source{pcl.SourceDQM}, find: findDQMBad},
	{name: "at-risk", inputs: progressSources, find: findAtRisk},
	{name: "run-blocked", find: findRunBlocked},
	{name: "run-timed-out", inputs: []pcl.Source{pcl.SourceTier0}, find: findRunTimedOut},
	{name: "run-held", find: findRunHeld},
	{name: "in-order-jam", inputs: []pcl.Source{pcl.SourceTier0}, find: findJam},
	{name: "source-stale", find: findSourceStale},
	{name: "push-undeliverable", find: findUndeliverable},
	{name: "store-trouble", find: findStoreTrouble},
	{name: "notifier-failing", find: findNotifierFailing},
}

func ruleByName(name string) (*rule, bool) {
	for i := range rules {
		if rules[i].name == name {
			return &rules[i], true
		}
	}
	return nil, false
}

func runLabel(run uint32) string { return strconv.FormatUint(uint64(run), 10) }

// stoppedAt is the run's stop, zero while it records or before OMS reported it.
func stoppedAt(rs *pcl.RunState) time.Time {
	if rs.Info == nil || rs.Info.Stop == nil {
		return time.Time{}
	}
	return *rs.Info.Stop
}

// pastRelease says Tier-0 released the run, or an operator forced it: its workflows can no longer make
// or miss PromptReco.
func pastRelease(rs *pcl.RunState) bool {
	return rs.Decision.State == pcl.ReadinessReleased || rs.Decision.State == pcl.ReadinessForced
}

func workflowFinding(rule string, rs *pcl.RunState, ws *pcl.WorkflowStatus, summary, details string, since time.Time) Finding {
	return Finding{Rule: rule, Labels: map[string]string{"run": runLabel(rs.Run), "workflow": ws.Name},
		Summary: fmt.Sprintf("run %d %s: %s", rs.Run, ws.Name, summary), Details: details, Run: rs.Run, Workflow: ws.Name, Since: since}
}

// findWorkflowLate: an expected workflow of a run not yet released that is not final `after` the run
// stopped, or that timed out.
func findWorkflowLate(s *Snapshot, cfg config.AlertRule) []Finding {
	var out []Finding
	for i := range s.Runs {
		rs := &s.Runs[i]
		stop := stoppedAt(rs)
		if stop.IsZero() || pastRelease(rs) {
			continue
		}
		for j := range rs.Workflows {
			ws := &rs.Workflows[j]
			switch {
			case ws.State == pcl.StateTimedOut:
				out = append(out, workflowFinding("workflow-late", rs, ws, "timed out, no final state by its deadline "+clockAt(ws.Deadline),
					ws.Reason, ws.Deadline))
			case ws.State != pcl.StateNotExpected && !ws.State.Terminal() && !s.Now.Before(stop.Add(cfg.After)):
				out = append(out, workflowFinding("workflow-late", rs, ws,
					fmt.Sprintf("not final %s after the run's stop (%s)", span(cfg.After), ws.State), ws.Reason, stop.Add(cfg.After)))
			}
		}
	}
	return out
}

// stateRule finds the workflows in one bad final state.
func stateRule(st pcl.State, words string) func(*Snapshot, config.AlertRule) []Finding {
	name := map[pcl.State]string{pcl.StateUploadFailed: "upload-failed", pcl.StateTooLate: "too-late"}[st]
	return func(s *Snapshot, _ config.AlertRule) []Finding {
		var out []Finding
		for i := range s.Runs {
			rs := &s.Runs[i]
			for j := range rs.Workflows {
				if ws := &rs.Workflows[j]; ws.State == st {
					out = append(out, workflowFinding(name, rs, ws, words, ws.Reason, ws.Updated))
				}
			}
		}
		return out
	}
}

// findNoPayload: a workflow without a payload that its run needs: no-payload, and blocking the run
// (the class policy requires a payload, or the absence is not confirmed).
func findNoPayload(s *Snapshot, _ config.AlertRule) []Finding {
	var out []Finding
	for i := range s.Runs {
		rs := &s.Runs[i]
		for j := range rs.Workflows {
			if ws := &rs.Workflows[j]; ws.State == pcl.StateNoPayload && slices.Contains(rs.Decision.Blocking, ws.Name) {
				out = append(out, workflowFinding("no-payload", rs, ws, "no payload, which the run needs", ws.Reason, ws.Updated))
			}
		}
	}
	return out
}

func findDQMBad(s *Snapshot, _ config.AlertRule) []Finding {
	var out []Finding
	for i := range s.Runs {
		rs := &s.Runs[i]
		for j := range rs.Workflows {
			if ws := &rs.Workflows[j]; ws.Quality == pcl.QualityBad && ws.State != pcl.StateNotExpected {
				out = append(out, workflowFinding("dqm-bad", rs, ws, "DQM quality tests say bad", "state "+string(ws.State)+": "+ws.Reason, time.Time{}))
			}
		}
	}
	return out
}

// findAtRisk: a workflow the reconcile predicts will miss Tier-0's own lock of its run, while Tier-0 has
// not released the run.
func findAtRisk(s *Snapshot, _ config.AlertRule) []Finding {
	var out []Finding
	for i := range s.Runs {
		rs := &s.Runs[i]
		if pastRelease(rs) {
			continue
		}
		for j := range rs.Workflows {
			ws := &rs.Workflows[j]
			if !slices.Contains(ws.Flags, pcl.FlagAtRisk) || ws.AtRiskUntil.IsZero() {
				continue
			}
			f := workflowFinding("at-risk", rs, ws, "will miss Tier-0's lock of the run at "+clockAt(ws.AtRiskUntil),
				fmt.Sprintf("%s: %s. Tier-0 locks PromptReco of the run on its own at %s; until then accept, release or fix it",
					ws.State, ws.Reason, ws.AtRiskUntil.UTC().Format(time.RFC3339)), time.Time{})
			out = append(out, f)
		}
	}
	return out
}

func runFinding(rule string, rs *pcl.RunState, summary, details string, since time.Time) Finding {
	return Finding{Rule: rule, Labels: map[string]string{"run": runLabel(rs.Run)}, Summary: fmt.Sprintf("run %d %s", rs.Run, summary),
		Details: details, Run: rs.Run, Since: since}
}

func findRunBlocked(s *Snapshot, cfg config.AlertRule) []Finding {
	var out []Finding
	for i := range s.Runs {
		rs := &s.Runs[i]
		if rs.Decision.State == pcl.ReadinessBlocked && rs.Decision.Version > 0 && !s.Now.Before(rs.Decision.Decided.Add(cfg.After)) {
			out = append(out, runFinding("run-blocked", rs, "blocked: it needs an operator", rs.Decision.Reason, rs.Decision.Decided))
		}
	}
	return out
}

func findRunTimedOut(s *Snapshot, _ config.AlertRule) []Finding {
	var out []Finding
	for i := range s.Runs {
		if rs := &s.Runs[i]; rs.Decision.State == pcl.ReadinessTimedOut && rs.Decision.Version > 0 {
			out = append(out, runFinding("run-timed-out", rs, "timed out", rs.Decision.Reason, rs.Decision.Decided))
		}
	}
	return out
}

func findRunHeld(s *Snapshot, cfg config.AlertRule) []Finding {
	var out []Finding
	for i := range s.Runs {
		rs := &s.Runs[i]
		if rs.Decision.State == pcl.ReadinessHeld && rs.Decision.Version > 0 && !s.Now.Before(rs.Decision.Decided.Add(cfg.After)) {
			out = append(out, runFinding("run-held", rs, fmt.Sprintf("held for more than %s", span(cfg.After)), rs.Decision.Reason, rs.Decision.Decided))
		}
	}
	return out
}

// findJam: the first run Tier-0 may not release holds back at least `count` newer runs that could go on
// their own, for at least `after`, under an in-order policy.
func findJam(s *Snapshot, cfg config.AlertRule) []Finding {
	first := steer.FirstUnreadyRun(s.Runs, s.Policy)
	var head *pcl.RunState
	var held []*pcl.RunState
	for i := range s.Runs {
		rs := &s.Runs[i]
		switch {
		case rs.Run == first:
			head = rs
		case rs.Run > first && steer.Releasable(*rs, s.Policy) && rs.Decision.State != pcl.ReadinessReleased:
			held = append(held, rs)
		}
	}
	if head == nil || !s.Policy.For(head.Class).InOrder || len(held) < max(cfg.Count, 1) {
		return nil
	}
	// Since when the queue is held: the earliest of the held runs' releasable decisions.
	var since time.Time
	for _, rs := range held {
		if since.IsZero() || rs.Decision.Decided.Before(since) {
			since = rs.Decision.Decided
		}
	}
	if s.Now.Before(since.Add(cfg.After)) {
		return nil
	}
	slices.SortFunc(held, func(a, b *pcl.RunState) int { return int(a.Run) - int(b.Run) })
	names := make([]string, 0, min(len(held), 10))
	for _, rs := range held[:min(len(held), 10)] {
		names = append(names, runLabel(rs.Run))
	}
	more := ""
	if len(held) > 10 {
		more = fmt.Sprintf(" and %d more", len(held)-10)
	}
	return []Finding{runFinding("in-order-jam", head, fmt.Sprintf("holds back %d newer run(s) that could go", len(held)),
		fmt.Sprintf("%s: %s. Held behind it: %s%s", head.Decision.State, head.Decision.Reason, strings.Join(names, ", "), more), since)}
}

func findSourceStale(s *Snapshot, _ config.AlertRule) []Finding {
	var out []Finding
	for _, h := range s.Sources {
		if !h.Stale {
			continue
		}
		f := Finding{Rule: "source-stale", Labels: map[string]string{"source": string(h.Name)}, Since: h.LastSuccess,
			Summary: fmt.Sprintf("%s: stale, no good answer in its last polls", h.Name),
			Details: fmt.Sprintf("nothing is concluded from what it would show until it answers again (%d failed polls in a row). Last error: %s", h.Failures, h.Error)}
		if h.LastSuccess.IsZero() {
			f.Summary = fmt.Sprintf("%s: stale, no good answer since the start", h.Name)
		}
		out = append(out, f)
	}
	return out
}

func findUndeliverable(s *Snapshot, _ config.AlertRule) []Finding {
	var out []Finding
	for _, e := range s.DeadLetters {
		// A dead entry's NextAttempt is the moment it was given up.
		out = append(out, Finding{Rule: "push-undeliverable", Labels: map[string]string{"target": e.Target, "run": runLabel(e.Run)},
			Run: e.Run, Since: e.NextAttempt,
			Summary: fmt.Sprintf("%s: decision v%d of run %d undeliverable", e.Target, e.Version, e.Run),
			Details: fmt.Sprintf("given up after %d attempt(s); Tier-0 may be acting on an older decision of the run. Last error: %s", e.Attempts, e.LastError)})
	}
	return out
}

func findStoreTrouble(s *Snapshot, cfg config.AlertRule) []Finding {
	var problems []string
	if s.StoreError != nil {
		problems = append(problems, "the store refused a write: "+s.StoreError.Error())
	}
	if d := s.Disk; d != nil {
		switch {
		case d.Err != nil:
			problems = append(problems, fmt.Sprintf("the free space of %s cannot be read: %v", d.Path, d.Err))
		case d.Free < uint64(max(cfg.MinFreeBytes, 0)):
			problems = append(problems, fmt.Sprintf("%s has %s free of %s, below %s", d.Path, bytesText(d.Free), bytesText(d.Total), bytesText(uint64(cfg.MinFreeBytes))))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return []Finding{{Rule: "store-trouble", Labels: map[string]string{}, Summary: "store trouble: " + problems[0],
		Details: strings.Join(problems, "; ") + ". Decisions cannot be kept (or soon will not be): nothing is told to Tier-0 that is not persisted first"}}
}

func findNotifierFailing(s *Snapshot, cfg config.AlertRule) []Finding {
	var out []Finding
	for _, n := range s.Notifiers {
		if n.Failures < max(cfg.Count, 1) {
			continue
		}
		out = append(out, Finding{Rule: "notifier-failing", Labels: map[string]string{"notifier": n.Name}, Since: n.FailingSince,
			Summary: fmt.Sprintf("%s (%s): %d deliveries failed in a row", n.Name, n.Kind, n.Failures),
			Details: fmt.Sprintf("alerts may not reach the people this notifier tells (%d notice(s) given up so far). Last error: %s", n.GivenUp, n.LastError)})
	}
	return out
}

// clockAt is a time as alerts say it: "Jun 3 14:30 UTC".
func clockAt(t time.Time) string { return t.UTC().Format("Jan 2 15:04 MST") }

// span is a duration as alerts say it: "45 m", "10 h", "14 h 20 m", "3 d 2 h".
func span(d time.Duration) string {
	m := int64(max(d, 0) / time.Minute)
	switch {
	case m < 60:
		return fmt.Sprintf("%d m", m)
	case m < 48*60 && m%60 == 0:
		return fmt.Sprintf("%d h", m/60)
	case m < 48*60:
		return fmt.Sprintf("%d h %d m", m/60, m%60)
	}
	return fmt.Sprintf("%d d %d h", m/(24*60), m%(24*60)/60)
}

func bytesText(n uint64) string {
	const gib, mib = 1 << 30, 1 << 20
	if n >= gib {
		return fmt.Sprintf("%.1f GiB", float64(n)/gib)
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/mib)
}
