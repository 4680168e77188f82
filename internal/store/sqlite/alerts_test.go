package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/store"
)

// TestAlertQueriesUseIndexes: what the alert evaluator reads on every evaluation (the live episodes,
// the silences in force, the dead letters) comes from indexes of what is still current, so that the
// cost stays flat however long the history of alerts, silences and deliveries grows.
func TestAlertQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	s := openTemp(t, Options{})
	wantQueryPlan(t, s, liveAlertsQuery, nil, "alerts_live")
	wantQueryPlan(t, s, "SELECT body FROM silences INDEXED BY silences_ends WHERE ends > ? AND starts <= ? ORDER BY id DESC LIMIT ?",
		[]any{1, 1, 10}, "silences_ends")
	wantQueryPlan(t, s, deadLettersQuery, []any{10}, "outbox_dead")
	// The silences query is built from its filters: check the built one reads as the plan above.
	if _, err := s.Silences(context.Background(), store.SilenceQuery{ActiveAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLiveAlerts reads the live episodes beside a long history of resolved ones: the time per read
// must not grow with the history (docs/benchmarks.md).
func BenchmarkLiveAlerts(b *testing.B) {
	for _, history := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("history=%d", history), func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			t0 := time.Date(2026, 5, 4, 6, 0, 0, 0, time.UTC)
			const batch = 1000
			for i := 0; i < history; i += batch {
				var w store.AlertWrite
				for j := i; j < min(i+batch, history); j++ {
					w.Save = append(w.Save, store.Alert{Fingerprint: fmt.Sprintf("workflow-late/run=%d", 400000+j), Rule: "workflow-late",
						State: store.AlertResolved, Run: uint32(400000 + j), Summary: "late", Active: t0, Fired: t0, LastSeen: t0, Resolved: t0.Add(time.Hour)})
				}
				if _, err := s.SaveAlerts(ctx, w); err != nil {
					b.Fatal(err)
				}
			}
			var live store.AlertWrite
			for j := range 20 {
				live.Save = append(live.Save, store.Alert{Fingerprint: fmt.Sprintf("upload-failed/run=%d", 500000+j), Rule: "upload-failed",
					State: store.AlertFiring, Run: uint32(500000 + j), Summary: "failed", Active: t0, Fired: t0, LastSeen: t0})
			}
			if _, err := s.SaveAlerts(ctx, live); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				got, err := s.LiveAlerts(ctx)
				if err != nil || len(got) != 20 {
					b.Fatalf("%d live (err %v)", len(got), err)
				}
			}
		})
	}
}
