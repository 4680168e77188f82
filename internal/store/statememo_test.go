package store

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

func encodedState(t *testing.T, run uint32, reason string) []byte {
	t.Helper()
	rs := pcl.RunState{Run: run, Class: "Collisions26",
		Workflows: []pcl.WorkflowStatus{{Name: "BeamSpotByLumi", State: pcl.StateInDB, Flags: []pcl.Flag{pcl.FlagAtRisk}, Evidence: []int64{1, 2}}},
		Decision:  pcl.Decision{Run: run, State: pcl.ReadinessReady, Reason: reason, Blocking: []string{"SiPixelAli"}}}
	raw, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestStateMemoAnswersOnlyTheSameBytes(t *testing.T) {
	var m StateMemo
	a := encodedState(t, 7, "first")
	got, err := m.Decode(7, a)
	if err != nil || got.Decision.Reason != "first" {
		t.Fatalf("first decode: %+v, %v", got.Decision, err)
	}
	// The caller owns what it got: changing it, or the bytes it passed, changes nothing remembered.
	got.Workflows[0].Flags[0] = "changed"
	got.Decision.Blocking[0] = "changed"
	copy(a, strings.Repeat(" ", len(a)))
	again, err := m.Decode(7, encodedState(t, 7, "first"))
	if err != nil || again.Workflows[0].Flags[0] != pcl.FlagAtRisk || again.Decision.Blocking[0] != "SiPixelAli" {
		t.Fatalf("remembered state was changed through a copy: %+v, %v", again, err)
	}
	// New bytes for the run are decoded, never answered with the old state.
	moved, err := m.Decode(7, encodedState(t, 7, "second"))
	if err != nil || moved.Decision.Reason != "second" {
		t.Fatalf("after the state changed: %+v, %v", moved.Decision, err)
	}
	if n, _ := m.Len(); n != 1 {
		t.Fatalf("%d states remembered for one run", n)
	}
	if _, err := m.Decode(8, []byte(`{"run": 8, "workflows": [`)); err == nil || !strings.Contains(err.Error(), "run 8") {
		t.Fatalf("garbage decoded: %v", err)
	}
}

func TestStateMemoStaysWithinItsBound(t *testing.T) {
	one := len(encodedState(t, 1, "r"))
	m := StateMemo{MaxBytes: 10 * one}
	for run := range uint32(100) {
		if _, err := m.Decode(run, encodedState(t, run, "r")); err != nil {
			t.Fatal(err)
		}
		if _, b := m.Len(); b > m.MaxBytes {
			t.Fatalf("after run %d: %d bytes kept, bound %d", run, b, m.MaxBytes)
		}
	}
	if n, b := m.Len(); n < 5 || n > 10 || b > m.MaxBytes {
		t.Fatalf("%d states, %d bytes kept (one is %d bytes)", n, b, one)
	}
	huge := StateMemo{MaxBytes: 2 * one}
	if _, err := huge.Decode(1, encodedState(t, 1, strings.Repeat("x", one))); err != nil {
		t.Fatal(err)
	}
	if n, _ := huge.Len(); n != 0 {
		t.Fatal("a state of over a quarter of the bound was kept")
	}
}
