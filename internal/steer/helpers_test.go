package steer

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

// t0 is a moment of the 2025 run: decisions in tests are taken from here on.
var t0 = time.Date(2025, time.June, 14, 8, 12, 41, 0, time.UTC)

// testPolicy: collisions released in order and on timeout; cosmics out of order and held on timeout; the
// rest in order and released.
func testPolicy() pcl.Policy {
	p := pcl.DefaultPolicy()
	for i := range p.Classes {
		if p.Classes[i].Pattern == "Cosmics*" {
			p.Classes[i].InOrder = false
			p.Classes[i].OnTimeout = pcl.OnTimeoutHold
		}
	}
	return p
}

// rs makes a run state with a persisted decision (version 1) of the given readiness.
func rs(run uint32, class string, state pcl.Readiness, releasable bool) pcl.RunState {
	return pcl.RunState{Run: run, Class: class, Decision: pcl.Decision{Run: run, State: state, Releasable: releasable,
		Version: 1, Decided: t0.Add(time.Duration(run%100) * time.Minute), Blocking: []string{}}}
}

func ready(run uint32) pcl.RunState   { return rs(run, "Collisions25", pcl.ReadinessReady, true) }
func waiting(run uint32) pcl.RunState { return rs(run, "Collisions25", pcl.ReadinessWaiting, false) }

func openStore(t *testing.T, clk clock.Clock) *sqlite.Store { return openStoreB(t, clk) }

func openStoreB(t testing.TB, clk clock.Clock) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "agency.db"), sqlite.Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// decide writes a decision the way the agency does: the next version, with one outbox entry per target
// carrying the decision's JSON, in the decision's transaction.
func decide(t *testing.T, st store.Store, now time.Time, run uint32, state pcl.Readiness, releasable bool, targets ...string) pcl.Decision {
	t.Helper()
	ctx := context.Background()
	prev, err := st.Decisions(ctx, run)
	if err != nil {
		t.Fatalf("decisions of %d: %v", run, err)
	}
	d := pcl.Decision{Run: run, State: state, Releasable: releasable, Reason: "test: " + string(state),
		Blocking: []string{}, Version: int64(len(prev)) + 1, Decided: now}
	if !releasable {
		d.Blocking = []string{"SiPixelAli"}
	}
	body, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	w := store.DecisionWrite{Decision: d, State: pcl.RunState{Run: run, Class: "Collisions25", Decision: d}}
	for _, tg := range targets {
		w.Outbox = append(w.Outbox, store.OutboxEntry{Target: tg, Run: run, Version: d.Version, Payload: body, Created: now, NextAttempt: now})
	}
	saved, err := st.SaveDecision(ctx, w)
	if err != nil {
		t.Fatalf("save decision run %d v%d: %v", run, d.Version, err)
	}
	return saved
}
