package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// RunReopen checks that a store keeps everything across a restart: it writes through one store, closes
// it, opens the same place again and reads everything back. open opens (creating on first use) the store
// kept in dir; the suite closes each store it opens.
func RunReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	t.Run("Reopen", func(t *testing.T) {
		t.Parallel()
		testReopen(t, open)
	})
}

func testReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	ctx := context.Background()
	dir := t.TempDir()
	world := fixtureWorld()
	t0 := epoch().Add(70 * time.Hour)

	s := open(t, dir)
	_, err := s.AppendObservations(ctx, world)
	must(t, "append", err)
	must(t, "put state", s.PutRunState(ctx, stateOf(392669, "Cosmics25", pcl.ReadinessOngoing, t0.Add(time.Hour))))
	d := saveAt(t, s, decisionWrite(392671, 1, pcl.ReadinessReady, "tier0"), t0)
	pending, err := s.PendingOutbox(ctx, "tier0", t0, 0)
	must(t, "pending", err)
	if len(pending) != 1 {
		t.Fatalf("pending %+v, want 1", pending)
	}
	must(t, "mark failed", s.MarkFailed(ctx, pending[0].ID, t0, t0.Add(time.Minute), "connection refused", false))
	must(t, "audit", s.AppendAudit(ctx, store.AuditEntry{At: t0, Run: 392669, Actor: "jdoe", Action: "hold", Detail: "DT off"}))
	must(t, "cursor", s.SetCursor(ctx, "conddb", store.Cursor{Value: "2025-06-17T06:12:41Z", View: t0.Add(90 * time.Second)}))
	must(t, "setting", s.SetSetting(ctx, "release.paused", "true"))
	// A firing alert with what a notifier was told, and a silence: a restart must neither forget the
	// alert nor tell anyone again.
	firing := firingAlert(t0)
	firing.Notified = map[string]store.Notified{"shift-mail": {Epoch: t0, Firing: t0.Add(time.Minute)}}
	firing = saveAlerts(t, s, store.AlertWrite{Save: []store.Alert{firing}})[0]
	silence, err := s.AddSilence(ctx, silenceOf(t0, time.Hour, store.Matcher{Name: "run", Op: "=", Value: "392671"}),
		store.AuditEntry{Actor: "jdoe", Action: "silence"})
	must(t, "silence", err)
	must(t, "close", s.Close())

	s = open(t, dir)
	defer func() { _ = s.Close() }()
	obs, err := s.Observations(ctx, store.ObservationQuery{})
	must(t, "observations", err)
	if !slices.Equal(keys(obs), keys(sortedByAtKey(world))) {
		t.Fatalf("after reopening: %d observations, want %d", len(obs), len(world))
	}
	added, err := s.AppendObservations(ctx, world[:10])
	must(t, "append again", err)
	if len(added) != 0 {
		t.Fatalf("after reopening, known facts appended again as new: %d", len(added))
	}
	rs, err := s.RunState(ctx, 392671)
	must(t, "run state", err)
	sameJSON(t, "decision after reopening", d, rs.Decision)
	due, err := s.DueRuns(ctx, t0.Add(time.Hour), 0)
	must(t, "due", err)
	if !slices.Equal(due, []uint32{392669}) {
		t.Fatalf("due after reopening %v, want [392669]", due)
	}
	_, err = s.SaveDecision(ctx, decisionWrite(392671, 1, pcl.ReadinessReady, "tier0"))
	wantCode(t, "version 1 again after reopening", err, apperr.Conflict)
	out, err := s.PendingOutbox(ctx, "tier0", t0.Add(time.Minute), 0)
	must(t, "pending", err)
	if len(out) != 1 || out[0].Attempts != 1 || out[0].LastError != "connection refused" {
		t.Fatalf("outbox after reopening %+v, want the entry with its failed attempt", out)
	}
	audit, err := s.Audit(ctx, store.AuditQuery{})
	must(t, "audit", err)
	if len(audit) != 3 {
		t.Fatalf("audit after reopening has %d entries, want 3", len(audit))
	}
	live, err := s.LiveAlerts(ctx)
	must(t, "live alerts", err)
	if len(live) != 1 {
		t.Fatalf("%d live alerts after reopening, want 1", len(live))
	}
	sameJSON(t, "firing alert after reopening", firing, live[0])
	got, err := s.Silence(ctx, silence.ID)
	must(t, "silence", err)
	sameJSON(t, "silence after reopening", silence, got)
	if c, err := s.Cursor(ctx, "conddb"); err != nil || c.Value != "2025-06-17T06:12:41Z" || !c.View.Equal(t0.Add(90*time.Second)) {
		t.Fatalf("cursor after reopening %+v (err %v), want its value and view", c, err)
	}
	if v, ok, err := s.Setting(ctx, "release.paused"); err != nil || !ok || v != "true" {
		t.Fatalf("setting after reopening %q %v (err %v)", v, ok, err)
	}
}
