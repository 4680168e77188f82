package study

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/sim"
)

var t0 = sim.DefaultStart

func h(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }

// TestSummarize: latencies, quantiles, timeouts, later-than-fixed and the jam, on a hand-made series.
func TestSummarize(t *testing.T) {
	t.Parallel()
	rs := []RunRelease{
		{Run: 1, Stop: h(0), Ready: h(47.5), Locked: h(47.5), ByTimeout: true},           // the jam's cause
		{Run: 2, Stop: h(1), Ready: h(5), Locked: h(47.5)},                               // waits 42.5 h behind run 1
		{Run: 3, Stop: h(2), Ready: h(50), Locked: h(50), Unsafe: []string{"SAFETY: x"}}, // later than fixed (49.5)
		{Run: 4, Stop: h(3), Ready: h(6), Locked: h(51), Actions: 2},                     // waits 44 h behind run 3
		{Run: 5, Stop: h(4)}, // never released
	}
	fixed := map[uint32]time.Time{1: h(47.5), 2: h(48.5), 3: h(49.5), 4: h(50.5), 5: h(51.5)}
	p := summarize("x", rs, fixed)
	if p.Runs != 5 || p.Unreleased != 1 || p.SafetyViolations != 1 || p.ReleasedByTimeout != 1 || p.OperatorActions != 2 {
		t.Errorf("counts: %+v", p)
	}
	if p.LaterThanFixed != 2 { // runs 3 and 4
		t.Errorf("later than fixed: %d, want 2", p.LaterThanFixed)
	}
	// Latencies 47.5, 46.5, 48, 48: median 47.75, p90 48, max 48.
	if p.MedianHours != 47.75 || p.P90Hours != 48 || p.MaxHours != 48 {
		t.Errorf("median %v p90 %v max %v", p.MedianHours, p.P90Hours, p.MaxHours)
	}
	if math.Abs(p.JamRunHours-(42.5+44)) > 1e-9 {
		t.Errorf("jam %v run-hours, want 86.5", p.JamRunHours)
	}
	if n := waitingAt(rs, h(20)); n != 2 {
		t.Errorf("waiting at 20 h: %d, want 2", n)
	}
	if n := waitingAt(rs, h(49)); n != 1 {
		t.Errorf("waiting at 49 h: %d, want 1 (run 4 behind run 3)", n)
	}
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    []float64
		q    float64
		want float64
	}{{nil, 0.5, 0}, {[]float64{3}, 0.9, 3}, {[]float64{1, 2, 3, 4}, 0.5, 2.5}, {[]float64{0, 10}, 0.9, 9}} {
		if got := quantile(tc.v, tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.v, tc.q, got, tc.want)
		}
	}
}

// TestOracle: in order, a run never safe holds the later ones to its deadline; unordered it does not;
// with an operator, the blocked run goes the response time after its stream was marked done without
// the payload.
func TestOracle(t *testing.T) {
	t.Parallel()
	payload := func(inDB time.Time) sim.WorkflowTruth {
		return sim.WorkflowTruth{Workflow: "SiStripGains", Stream: "Express", Outcome: sim.OutcomePayload, Harvested: true,
			Files: []sim.FileTruth{{Tags: []sim.TagTruth{{Tag: "SiStripApvGain_PCL_v0_prompt", Status: "ok", InDB: inDB}}}}}
	}
	run := func(n uint32, stop time.Time, ws ...sim.WorkflowTruth) sim.RunTruth {
		r := sim.RunTruth{Class: "Collisions26", Workflows: ws, Streams: []sim.StreamTruth{{Name: "Express", Done: stop.Add(18 * time.Hour)}}}
		r.Number, r.Start, r.Stop = n, stop.Add(-2*time.Hour), stop
		return r
	}
	missing := sim.WorkflowTruth{Workflow: "SiPixelAli", Stream: "Express", Outcome: sim.OutcomeMissing}
	fixed := &world{truth: map[uint32]sim.RunTruth{
		1: run(1, h(0), payload(h(3))),
		2: run(2, h(1), payload(h(4)), missing),
		3: run(3, h(2), payload(h(5))),
		4: run(4, h(3), payload(h(60))), // in the DB only after its deadline: released at the deadline
	}}
	runs := []uint32{1, 2, 3, 4}
	p := pcl.DefaultPolicy()
	at := func(rs []RunRelease) []float64 {
		var out []float64
		for _, r := range rs {
			out = append(out, r.Locked.Sub(t0).Hours())
		}
		return out
	}
	eq := func(name string, got, want []float64) {
		t.Helper()
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-9 {
				t.Errorf("%s: locks at %v h, want %v", name, got, want)
				return
			}
		}
	}
	ordered := oracle(fixed, runs, p, true, 0)
	eq("ordered", at(ordered), []float64{3, 48.5, 48.5, 50.5})
	eq("unordered", at(oracle(fixed, runs, p, false, 0)), []float64{3, 48.5, 5, 50.5})
	withOp := oracle(fixed, runs, p, true, time.Hour)
	eq("operator", at(withOp), []float64{3, 20, 20, 50.5}) // stream done at 1+18 h, plus an hour
	if len(withOp[1].Unsafe) == 0 || !strings.Contains(withOp[1].Unsafe[0], "never delivered") {
		t.Errorf("accepting a missing payload is unsafe by the truth: %v", withOp[1].Unsafe)
	}
	if !ordered[1].ByTimeout || ordered[2].ByTimeout || !ordered[3].ByTimeout || len(ordered[1].Unsafe) != 0 || len(ordered[3].Unsafe) != 0 {
		t.Errorf("ordered: run 2 by timeout %v (unsafe %v), run 3 by timeout %v", ordered[1].ByTimeout, ordered[1].Unsafe, ordered[2].ByTimeout)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{Days: -1}, {Faults: "awful"}, {Policies: []string{"agency", "magic"}}, {Step: time.Millisecond}, {OperatorResponse: -time.Minute}} {
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	o, err := Options{}.withDefaults()
	if err != nil || o.Days != 28 || o.Seed != 1 || o.Faults != "default" || len(o.Policies) != len(Policies) || o.Step != time.Minute || o.OperatorResponse != time.Hour {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}
