package study

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/cms-pcl/spyagency/internal/demo"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/sim"
)

// PolicyResult is one policy's metrics over the measured runs. Latencies are hours from run stop to
// Tier-0's lock of the run (the moment it acted on the decision; PromptReco starts 30 min later).
type PolicyResult struct {
	Policy           string  `json:"policy"`
	Runs             int     `json:"runs"`
	MedianHours      float64 `json:"median_release_latency_hours"`
	P90Hours         float64 `json:"p90_release_latency_hours"`
	MaxHours         float64 `json:"max_release_latency_hours"`
	MeanHours        float64 `json:"mean_release_latency_hours"`
	SafetyViolations int     `json:"safety_violations"`
	// ReleasedByTimeout counts runs released at or after their deadline (47.5 h), or by Tier-0's own
	// delay before the agency said go.
	ReleasedByTimeout int `json:"released_by_timeout"`
	// LaterThanFixed counts runs locked later than fixed48h locked them.
	LaterThanFixed  int `json:"later_than_fixed"`
	OperatorActions int `json:"operator_actions"`
	// JamRunHours sums, over runs, the hours a run was releasable by itself while an earlier run was
	// not yet released: the cost of in-order release.
	JamRunHours float64 `json:"jam_run_hours"`
	// Unreleased counts measured runs the world ended without releasing (0 when all is well).
	Unreleased      int     `json:"unreleased"`
	RatioToFixed48h float64 `json:"ratio_to_fixed48h"`
	RatioToOracle   float64 `json:"ratio_to_oracle"`
	// RatioToOracleOperator, for agency+operator: its median over oracle+operator's.
	RatioToOracleOperator float64  `json:"ratio_to_oracle_operator,omitempty"`
	Violations            []string `json:"violations,omitempty"`
}

// RunRelease is one run's release under one policy.
type RunRelease struct {
	Run   uint32
	Class string
	Stop  time.Time
	// Ready is when the run was releasable by itself (the policy's own readiness, before run order).
	Ready     time.Time
	Locked    time.Time // zero: not released by the world's end
	ByTimeout bool
	Unsafe    []string
	Actions   int
}

// Latency is the run's stop-to-lock time.
func (r RunRelease) Latency() time.Duration { return r.Locked.Sub(r.Stop) }

// measure computes every policy's releases and metrics from the worlds.
func measure(o Options, w window, worlds map[string]*world) (*Result, error) {
	fixed := worlds[Fixed48h]
	policy := pcl.DefaultPolicy()
	var runs []uint32
	for n, t := range fixed.truth {
		if !t.Stop.IsZero() && !t.Stop.Before(w.start) && t.Stop.Before(w.measureEnd) {
			runs = append(runs, n)
		}
	}
	slices.Sort(runs)
	if len(runs) == 0 {
		return nil, fmt.Errorf("study: no run stopped in the first %d simulated days", o.Days)
	}
	rel := map[string][]RunRelease{
		Fixed48h:        fromWorld(fixed, fixed, runs, policy, true),
		Oracle:          oracle(fixed, runs, policy, true, 0),
		OracleUnordered: oracle(fixed, runs, policy, false, 0),
	}
	names := []string{}
	for _, p := range Policies {
		if slices.Contains(o.Policies, p) {
			names = append(names, p)
		}
	}
	for _, p := range []string{Agency, AgencyOperator} {
		wd, ok := worlds[p]
		if !ok {
			continue
		}
		for _, n := range runs {
			if a, f := wd.truth[n], fixed.truth[n]; !a.Stop.Equal(f.Stop) || a.Class != f.Class {
				return nil, fmt.Errorf("study: the %s world diverged from the fixed one at run %d (stop %s vs %s)", p, n, a.Stop, f.Stop)
			}
		}
		rel[p] = fromWorld(wd, fixed, runs, policy, false)
	}
	rel[OracleOperator] = oracle(fixed, runs, policy, true, o.OperatorResponse)
	if _, ok := worlds[AgencyOperator]; ok && !slices.Contains(names, OracleOperator) {
		names = append(names, OracleOperator) // agency+operator's yardstick
	}
	res := &Result{Days: o.Days, Seed: o.Seed, Faults: o.Faults, Response: o.OperatorResponse, Releases: rel, Start: w.start}
	fixedLock := map[uint32]time.Time{}
	for _, r := range rel[Fixed48h] {
		fixedLock[r.Run] = r.Locked
	}
	for _, name := range names {
		res.Policies = append(res.Policies, summarize(name, rel[name], fixedLock))
	}
	base := map[string]float64{}
	for _, name := range []string{Fixed48h, Oracle, OracleOperator} {
		if rs, ok := rel[name]; ok {
			base[name] = summarize(name, rs, fixedLock).MedianHours
		}
	}
	for i := range res.Policies {
		p := &res.Policies[i]
		p.RatioToFixed48h = ratio(p.MedianHours, base[Fixed48h])
		p.RatioToOracle = ratio(p.MedianHours, base[Oracle])
		if p.Policy == AgencyOperator {
			p.RatioToOracleOperator = ratio(p.MedianHours, base[OracleOperator])
		}
	}
	return res, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round3(a / b)
}

// fromWorld reads the releases of a world that ran Tier-0 (fixed or asking the agency) and checks each
// against the world's own truth.
func fromWorld(wd, fixed *world, runs []uint32, policy pcl.Policy, isFixed bool) []RunRelease {
	out := make([]RunRelease, 0, len(runs))
	for _, n := range runs {
		t := wd.truth[n]
		r := RunRelease{Run: n, Class: t.Class, Stop: t.Stop, Actions: wd.actions[n]}
		rl, ok := wd.releases[n]
		if ok {
			r.Locked = rl.Locked
			r.Ready = rl.Locked
			if !isFixed {
				r.Ready = wd.ready[n]
			}
			deadline := t.Stop.Add(policy.For(t.Class).RunDeadline)
			r.ByTimeout = !r.Locked.Before(deadline) || (!isFixed && !rl.ByAgency)
			r.Unsafe = demo.CheckRelease(t, rl, policy)
		}
		out = append(out, r)
	}
	return out
}

// oracle releases each run at the first instant it is safe (demo.SafeAt, from the fixed world's
// truth), or at its deadline when it never is; in run order when ordered. With a response time, a run
// never safe by itself is released that long after the truth shows what blocks it (the yardstick of a
// shift operator who accepts it), and never after its deadline.
func oracle(fixed *world, runs []uint32, policy pcl.Policy, ordered bool, response time.Duration) []RunRelease {
	out := make([]RunRelease, 0, len(runs))
	var prev time.Time
	for _, n := range runs {
		t := fixed.truth[n]
		deadline := t.Stop.Add(policy.For(t.Class).RunDeadline)
		own, ok := demo.SafeAt(t, policy)
		byTimeout := false
		switch {
		case ok && own.Before(deadline):
		case ok:
			// Safe only after the deadline (a payload in the DB later than that): the timeout comes first.
			own, byTimeout = deadline, true
		case response > 0:
			own = minTime(operatorAt(t, policy, deadline, response), deadline)
			byTimeout = !own.Before(deadline)
		default:
			own, byTimeout = deadline, true
		}
		r := RunRelease{Run: n, Class: t.Class, Stop: t.Stop, Ready: own, Locked: own, ByTimeout: byTimeout}
		if ordered && prev.After(r.Locked) {
			r.Locked = prev
			r.ByTimeout = !r.Locked.Before(deadline)
		}
		prev = r.Locked
		r.Unsafe = demo.CheckRelease(t, sim.Release{Run: n, Locked: r.Locked}, policy)
		out = append(out, r)
	}
	return out
}

// operatorAt is when an operator who acts the response time after a required workflow is known bad
// would have the run released: the workflows that are fine must be safe (SafeAt of the run without the
// bad ones), and each bad one known bad, plus the response time.
func operatorAt(t sim.RunTruth, policy pcl.Policy, deadline time.Time, response time.Duration) time.Time {
	good := t
	good.Workflows = nil
	var known time.Time
	for _, w := range t.Workflows {
		one := t
		one.Workflows = []sim.WorkflowTruth{w}
		if _, ok := demo.SafeAt(one, policy); ok {
			good.Workflows = append(good.Workflows, w)
			continue
		}
		known = maxTime(known, badKnownAt(t, w, t.Stop.Add(policy.For(t.Class).WorkflowDeadline)))
	}
	at, ok := demo.SafeAt(good, policy)
	if !ok {
		return deadline
	}
	return maxTime(at, known.Add(response))
}

// badKnownAt is when the truth first shows that a workflow will not deliver: its stream marked done
// without it (a missing payload), the dropBox's failing verdict, else the workflow's deadline (when the
// policy declares it timed out).
func badKnownAt(t sim.RunTruth, w sim.WorkflowTruth, deadline time.Time) time.Time {
	switch w.Outcome {
	case sim.OutcomeMissing, sim.OutcomeNoPayload:
		for _, s := range t.Streams {
			if s.Name == w.Stream && !s.Done.IsZero() {
				return s.Done
			}
		}
	case sim.OutcomePayload:
		var at time.Time
		for _, f := range w.Files {
			for _, tag := range f.Tags {
				if tag.InDB.IsZero() && (tag.Status == "fail" || tag.Status == "too-late") {
					at = maxTime(at, tag.Logged)
				}
			}
		}
		if !at.IsZero() {
			return at
		}
	}
	return deadline
}

// summarize is one policy's metrics.
func summarize(name string, rs []RunRelease, fixedLock map[uint32]time.Time) PolicyResult {
	p := PolicyResult{Policy: name, Runs: len(rs)}
	var hours []float64
	var prevLocked time.Time
	sum := 0.0
	for i, r := range rs {
		if r.Locked.IsZero() {
			p.Unreleased++
			continue
		}
		h := r.Latency().Hours()
		hours = append(hours, h)
		sum += h
		if len(r.Unsafe) > 0 {
			p.SafetyViolations++
			p.Violations = append(p.Violations, r.Unsafe...)
		}
		if r.ByTimeout {
			p.ReleasedByTimeout++
		}
		if f, ok := fixedLock[r.Run]; ok && !f.IsZero() && r.Locked.After(f) {
			p.LaterThanFixed++
		}
		p.OperatorActions += r.Actions
		if i > 0 && !r.Ready.IsZero() {
			// Waiting behind an earlier run: from its own readiness until the run before it went.
			if behind := minTime(prevLocked, r.Locked).Sub(r.Ready); behind > 0 {
				p.JamRunHours += behind.Hours()
			}
		}
		prevLocked = r.Locked
	}
	sort.Float64s(hours)
	p.MedianHours = round3(quantile(hours, 0.5))
	p.P90Hours = round3(quantile(hours, 0.9))
	if len(hours) > 0 {
		p.MaxHours = round3(hours[len(hours)-1])
		p.MeanHours = round3(sum / float64(len(hours)))
	}
	p.JamRunHours = round3(p.JamRunHours)
	return p
}

// quantile of sorted values, linear between the closest ranks; 0 for none.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
