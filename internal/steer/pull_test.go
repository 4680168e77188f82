package steer

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

func TestFirstUnreadyRun(t *testing.T) {
	t.Parallel()
	timedOut := func(run uint32, class string, releasable bool) pcl.RunState {
		return rs(run, class, pcl.ReadinessTimedOut, releasable)
	}
	undecided := ready(103)
	undecided.Decision.Version = 0
	cases := []struct {
		name   string
		states []pcl.RunState
		want   uint32
	}{
		{"no run known: nothing may go", nil, 1},
		{"all ready: above the highest", []pcl.RunState{ready(100), ready(101), ready(102)}, 103},
		{"a waiting run stops the boundary", []pcl.RunState{ready(100), waiting(101), ready(102)}, 101},
		{"the first run waits", []pcl.RunState{waiting(100), ready(101)}, 100},
		{"held blocks", []pcl.RunState{ready(100), rs(101, "Collisions25", pcl.ReadinessHeld, false), ready(102)}, 101},
		{"forced and released let go", []pcl.RunState{rs(100, "Collisions25", pcl.ReadinessReleased, true),
			rs(101, "Collisions25", pcl.ReadinessForced, true), ready(102)}, 103},
		{"timed out under release policy lets go", []pcl.RunState{ready(100), timedOut(101, "Collisions25", true)}, 102},
		{"timed out under hold policy blocks", []pcl.RunState{ready(100), timedOut(101, "Cosmics25", false), ready(102)}, 101},
		{"timed out decided as release, policy now hold: blocks", []pcl.RunState{ready(100), timedOut(101, "Cosmics25", true), ready(102)}, 101},
		{"ongoing blocks", []pcl.RunState{ready(100), rs(101, "Collisions25", pcl.ReadinessOngoing, false)}, 101},
		{"gaps in the numbering do not block", []pcl.RunState{ready(100), ready(105), ready(110)}, 111},
		{"a waiting run after a gap", []pcl.RunState{ready(100), waiting(105), ready(110)}, 105},
		{"a blocker of an out-of-order class still bounds N", []pcl.RunState{ready(100), rs(101, "Cosmics25", pcl.ReadinessWaiting, false), ready(102)}, 101},
		{"undecided (never persisted) blocks", []pcl.RunState{ready(100), ready(101), ready(102), undecided}, 103},
		{"ready state without releasable blocks", []pcl.RunState{ready(100), rs(101, "Collisions25", pcl.ReadinessReady, false)}, 101},
		{"unknown readiness blocks", []pcl.RunState{ready(100), rs(101, "Collisions25", "maybe", true)}, 101},
		{"input order does not matter", []pcl.RunState{ready(102), waiting(101), ready(100)}, 101},
		{"run 0 is ignored", []pcl.RunState{waiting(0), ready(100)}, 101},
		{"class from OMS info when the state has none", []pcl.RunState{ready(100),
			func() pcl.RunState {
				s := timedOut(101, "", true)
				s.Info = &pcl.RunInfo{Class: "Cosmics25"}
				return s
			}()}, 101},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := slices.Clone(c.states)
			if got := FirstUnreadyRun(c.states, testPolicy()); got != c.want {
				t.Errorf("FirstUnreadyRun = %d, want %d", got, c.want)
			}
			for i := range in {
				if in[i].Run != c.states[i].Run {
					t.Fatalf("FirstUnreadyRun reordered its input")
				}
			}
		})
	}
}

func TestReadyRuns(t *testing.T) {
	t.Parallel()
	cosmicsWaiting := rs(101, "Cosmics25", pcl.ReadinessWaiting, false)
	undecided := ready(104)
	undecided.Decision.Version = 0
	type row struct {
		run   uint32
		ready bool
		state pcl.Readiness
	}
	cases := []struct {
		name     string
		states   []pcl.RunState
		from, to uint32
		want     []row
	}{
		{"empty", nil, 0, 0, []row{}},
		{"in order: a waiting run holds back the ready ones after it",
			[]pcl.RunState{ready(100), waiting(101), ready(102)}, 0, 0,
			[]row{{100, true, "ready"}, {101, false, "waiting"}, {102, false, "ready"}}},
		{"out-of-order class: its waiting run holds back nobody",
			[]pcl.RunState{ready(100), cosmicsWaiting, ready(102)}, 0, 0,
			[]row{{100, true, "ready"}, {101, false, "waiting"}, {102, true, "ready"}}},
		{"a held run holds back the rest",
			[]pcl.RunState{rs(100, "Collisions25", pcl.ReadinessHeld, false), rs(101, "Collisions25", pcl.ReadinessForced, true)}, 0, 0,
			[]row{{100, false, "held"}, {101, false, "forced"}}},
		{"a blocker below from still counts",
			[]pcl.RunState{waiting(100), ready(101), ready(102)}, 101, 0,
			[]row{{101, false, "ready"}, {102, false, "ready"}}},
		{"to bounds the list",
			[]pcl.RunState{ready(100), ready(101), ready(102), ready(103)}, 101, 102,
			[]row{{101, true, "ready"}, {102, true, "ready"}}},
		{"gaps are not listed and do not block",
			[]pcl.RunState{ready(100), ready(105)}, 100, 105,
			[]row{{100, true, "ready"}, {105, true, "ready"}}},
		{"timed out: release policy ready, hold policy not",
			[]pcl.RunState{rs(100, "Collisions25", pcl.ReadinessTimedOut, true), rs(101, "Cosmics25", pcl.ReadinessTimedOut, false), ready(102)}, 0, 0,
			[]row{{100, true, "timed-out"}, {101, false, "timed-out"}, {102, true, "ready"}}},
		{"undecided is listed as waiting and blocks",
			[]pcl.RunState{ready(103), undecided, ready(105)}, 0, 0,
			[]row{{103, true, "ready"}, {104, false, "waiting"}, {105, false, "ready"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := ReadyRuns(c.states, c.from, c.to, testPolicy())
			if got == nil {
				t.Fatal("ReadyRuns returned nil; the API must show [] for no run")
			}
			var rows []row
			for _, r := range got {
				rows = append(rows, row{r.Run, r.Ready, r.State})
				if (r.Version == 0) != (r.Decided == nil) {
					t.Errorf("run %d: version %d with decided %v: an undecided run has no time, a decided one has", r.Run, r.Version, r.Decided)
				}
			}
			if !slices.Equal(rows, c.want) && !(len(rows) == 0 && len(c.want) == 0) {
				t.Errorf("ReadyRuns(%d, %d):\n got %v\nwant %v", c.from, c.to, rows, c.want)
			}
		})
	}
}

// TestPullAgree checks on random histories that the two pull answers never contradict each other: every
// run below first_unready_run is ready in ready_runs, first_unready_run itself (when known) is not, and
// nothing that is not releasable is ever ready (the safety invariant, seen from the pull side).
func TestPullAgree(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 5))
	classes := []string{"Collisions25", "Cosmics25", "HIRun25", "Commissioning25"}
	for round := range 500 {
		var states []pcl.RunState
		run := uint32(386000)
		for range r.IntN(30) {
			run += 1 + uint32(r.IntN(4))
			s := rs(run, classes[r.IntN(len(classes))], pcl.Readinesses[r.IntN(len(pcl.Readinesses))], r.IntN(2) == 0)
			if r.IntN(10) == 0 {
				s.Decision.Version = 0
			}
			states = append(states, s)
		}
		r.Shuffle(len(states), func(i, j int) { states[i], states[j] = states[j], states[i] })
		p := testPolicy()
		n := FirstUnreadyRun(states, p)
		byNum := map[uint32]pcl.RunState{}
		for _, s := range states {
			byNum[s.Run] = s
		}
		for _, rr := range ReadyRuns(states, 0, 0, p) {
			if rr.Run < n && !rr.Ready {
				t.Fatalf("round %d: run %d below first unready %d is not ready", round, rr.Run, n)
			}
			if rr.Run == n && rr.Ready {
				t.Fatalf("round %d: first unready run %d is listed as ready", round, n)
			}
			if rr.Ready && !Releasable(byNum[rr.Run], p) {
				t.Fatalf("round %d: run %d (%s, releasable=%v) listed ready", round, rr.Run, rr.State, byNum[rr.Run].Decision.Releasable)
			}
		}
	}
}
