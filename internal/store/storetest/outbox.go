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

func outboxTests() []subtest {
	return []subtest{
		{"OutboxLifecycle", testOutboxLifecycle},
		{"OutboxOrder", testOutboxOrder},
	}
}

// runVersion names an outbox entry by what the receiver sees: its idempotency key.
type runVersion struct {
	run     uint32
	version int64
}

func runVersions(es []store.OutboxEntry) []runVersion {
	out := make([]runVersion, len(es))
	for i, e := range es {
		out[i] = runVersion{e.Run, e.Version}
	}
	return out
}

// saveAt saves a decision decided at a known time, so that outbox times are known.
func saveAt(t *testing.T, s store.Store, w store.DecisionWrite, at time.Time) pcl.Decision {
	t.Helper()
	w.Decision.Decided = at
	d, err := s.SaveDecision(context.Background(), w)
	must(t, "save decision", err)
	return d
}

func testOutboxLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := epoch().Add(50 * time.Hour)
	saveAt(t, s, decisionWrite(392671, 1, pcl.ReadinessReady, "tier0", "webhook"), t0)
	pending, err := s.PendingOutbox(ctx, "tier0", t0.Add(-time.Second), 0)
	must(t, "pending before creation", err)
	if len(pending) != 0 {
		t.Fatalf("entry pending before its first attempt time: %+v", pending)
	}
	pending, err = s.PendingOutbox(ctx, "tier0", t0, 0)
	must(t, "pending", err)
	if len(pending) != 1 || pending[0].Target != "tier0" || string(pending[0].Payload) == "" {
		t.Fatalf("pending for tier0: %+v, want the one entry with its payload", pending)
	}
	e := pending[0]

	// A failed attempt: not due until its next attempt.
	retry := t0.Add(30 * time.Second)
	must(t, "mark failed", s.MarkFailed(ctx, e.ID, t0.Add(time.Second), retry, "POST https://cmsweb.cern.ch/t0wmadatasvc: 503 Service Unavailable", false))
	if p, err := s.PendingOutbox(ctx, "tier0", retry.Add(-time.Nanosecond), 0); err != nil || len(p) != 0 {
		t.Fatalf("entry pending before its retry time: %+v (err %v)", p, err)
	}
	p, err := s.PendingOutbox(ctx, "tier0", retry, 0)
	must(t, "pending at retry", err)
	if len(p) != 1 || p[0].Attempts != 1 || !p[0].NextAttempt.Equal(retry) || p[0].LastError == "" || p[0].Dead {
		t.Fatalf("after one failure: %+v, want 1 attempt, next at %s, the error kept", p, retry)
	}

	// Delivered: never pending again.
	delivered := retry.Add(2 * time.Second)
	must(t, "mark delivered", s.MarkDelivered(ctx, e.ID, delivered))
	if p, err := s.PendingOutbox(ctx, "tier0", delivered.Add(time.Hour), 0); err != nil || len(p) != 0 {
		t.Fatalf("delivered entry still pending: %+v (err %v)", p, err)
	}
	all, err := s.Outbox(ctx, "tier0", 0)
	must(t, "outbox", err)
	if len(all) != 1 || all[0].Delivered == nil || !all[0].Delivered.Equal(delivered) {
		t.Fatalf("tier0 outbox %+v, want the entry delivered at %s", all, delivered)
	}

	// The webhook gives up: dead, never pending again, still listed.
	w, err := s.PendingOutbox(ctx, "webhook", t0, 0)
	must(t, "pending webhook", err)
	if len(w) != 1 {
		t.Fatalf("webhook pending %+v, want 1", w)
	}
	must(t, "mark dead", s.MarkFailed(ctx, w[0].ID, t0.Add(time.Hour), t0.Add(2*time.Hour), "410 Gone", true))
	if p, err := s.PendingOutbox(ctx, "webhook", t0.Add(100*time.Hour), 0); err != nil || len(p) != 0 {
		t.Fatalf("dead entry still pending: %+v (err %v)", p, err)
	}
	listed, err := s.Outbox(ctx, "webhook", 0)
	must(t, "outbox webhook", err)
	if len(listed) != 1 || !listed[0].Dead || listed[0].Delivered != nil || listed[0].LastError != "410 Gone" {
		t.Fatalf("webhook outbox %+v, want the dead entry", listed)
	}

	wantCode(t, "deliver an unknown entry", s.MarkDelivered(ctx, 987654, t0), apperr.NotFound)
	wantCode(t, "fail an unknown entry", s.MarkFailed(ctx, 987654, t0, t0, "x", false), apperr.NotFound)
}

func testOutboxOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := epoch().Add(60 * time.Hour)
	// Decisions arrive out of run order; a run's later version is made before an earlier run's first.
	saveAt(t, s, decisionWrite(392673, 1, pcl.ReadinessWaiting, "tier0"), t0)
	saveAt(t, s, decisionWrite(392671, 1, pcl.ReadinessWaiting, "tier0", "webhook"), t0.Add(time.Minute))
	saveAt(t, s, decisionWrite(392673, 2, pcl.ReadinessReady, "tier0"), t0.Add(2*time.Minute))
	saveAt(t, s, decisionWrite(392672, 1, pcl.ReadinessReady, "tier0"), t0.Add(3*time.Minute))
	saveAt(t, s, decisionWrite(392671, 2, pcl.ReadinessReady, "tier0", "webhook"), t0.Add(4*time.Minute))

	now := t0.Add(time.Hour)
	got, err := s.PendingOutbox(ctx, "tier0", now, 0)
	must(t, "pending", err)
	want := []runVersion{{392671, 1}, {392671, 2}, {392672, 1}, {392673, 1}, {392673, 2}}
	if !slices.Equal(runVersions(got), want) {
		t.Fatalf("pending tier0 %v, want run then version order %v", runVersions(got), want)
	}
	got, err = s.PendingOutbox(ctx, "tier0", now, 2)
	must(t, "pending limit", err)
	if !slices.Equal(runVersions(got), want[:2]) {
		t.Fatalf("pending tier0 limit 2: %v, want %v", runVersions(got), want[:2])
	}
	got, err = s.PendingOutbox(ctx, "webhook", now, 0)
	must(t, "pending webhook", err)
	if want := []runVersion{{392671, 1}, {392671, 2}}; !slices.Equal(runVersions(got), want) {
		t.Fatalf("pending webhook %v, want %v", runVersions(got), want)
	}
	// Only entries due by now: the first tier0 entry was created at t0.
	got, err = s.PendingOutbox(ctx, "tier0", t0, 0)
	must(t, "pending at t0", err)
	if want := []runVersion{{392673, 1}}; !slices.Equal(runVersions(got), want) {
		t.Fatalf("pending at t0 %v, want %v", runVersions(got), want)
	}

	all, err := s.Outbox(ctx, "", 0)
	must(t, "outbox", err)
	if len(all) != 7 {
		t.Fatalf("outbox lists %d entries, want 7", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Created.After(all[i-1].Created) {
			t.Fatalf("outbox not newest first: %v", runVersions(all))
		}
	}
	last, err := s.Outbox(ctx, "tier0", 2)
	must(t, "outbox tier0", err)
	if want := []runVersion{{392671, 2}, {392672, 1}}; !slices.Equal(runVersions(last), want) {
		t.Fatalf("newest 2 tier0 entries %v, want %v", runVersions(last), want)
	}
}

func auditTests() []subtest {
	return []subtest{{"AuditFilters", testAuditFilters}}
}

func testAuditFilters(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := epoch().Add(30 * time.Hour)
	entries := []store.AuditEntry{
		{At: t0, Run: 392671, Actor: "agency", Action: "decision", Detail: "run 392671 is waiting (version 1)"},
		{At: t0.Add(time.Minute), Run: 392671, Actor: "jdoe", Action: "hold", Detail: "SiPixelAli payload under review"},
		{At: t0.Add(2 * time.Minute), Run: 392672, Actor: "agency", Action: "decision", Detail: "run 392672 is ready (version 1)"},
		{At: t0.Add(3 * time.Minute), Run: 392671, Actor: "msmith", Action: "release", Detail: "alignment signed off"},
		{At: t0.Add(3 * time.Minute), Actor: "agency", Action: "dead-letter", Detail: "webhook gave up after 12 attempts"},
		{At: t0.Add(5 * time.Minute), Run: 392673, Actor: "jdoe", Action: "accept", Detail: "SiStripGains upload-failed accepted"},
	}
	for _, e := range entries {
		must(t, "append audit", s.AppendAudit(ctx, e))
	}
	details := func(es []store.AuditEntry) []string {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.Detail
		}
		return out
	}
	pick := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, entries[i].Detail)
		}
		return out
	}
	cases := []struct {
		name string
		q    store.AuditQuery
		want []string
	}{
		// Newest first; entries at the same time newest-written first.
		{"all", store.AuditQuery{}, pick(5, 4, 3, 2, 1, 0)},
		{"run", store.AuditQuery{Run: 392671}, pick(3, 1, 0)},
		{"actor", store.AuditQuery{Actor: "jdoe"}, pick(5, 1)},
		{"run and actor", store.AuditQuery{Run: 392671, Actor: "agency"}, pick(0)},
		{"from", store.AuditQuery{From: t0.Add(3 * time.Minute)}, pick(5, 4, 3)},
		{"to", store.AuditQuery{To: t0.Add(3 * time.Minute)}, pick(2, 1, 0)},
		{"window", store.AuditQuery{From: t0.Add(time.Minute), To: t0.Add(5 * time.Minute)}, pick(4, 3, 2, 1)},
		{"limit", store.AuditQuery{Limit: 2}, pick(5, 4)},
		{"nothing", store.AuditQuery{Actor: "nobody"}, nil},
	}
	for _, c := range cases {
		got, err := s.Audit(ctx, c.q)
		must(t, c.name, err)
		if !slices.Equal(details(got), c.want) {
			t.Errorf("audit %s: got %q, want %q", c.name, details(got), c.want)
		}
	}
	got, err := s.Audit(ctx, store.AuditQuery{Limit: 1})
	must(t, "newest", err)
	if len(got) != 1 || got[0].ID == 0 || !got[0].At.Equal(entries[5].At) || got[0].Run != 392673 || got[0].Actor != "jdoe" || got[0].Action != "accept" {
		t.Fatalf("newest audit entry %+v, want entry 5 with an ID", got)
	}
	// Without a time the store stamps one; without an actor the entry is refused.
	must(t, "append without time", s.AppendAudit(ctx, store.AuditEntry{Run: 392674, Actor: "agency", Action: "decision"}))
	got, err = s.Audit(ctx, store.AuditQuery{Run: 392674})
	must(t, "stamped", err)
	if len(got) != 1 || got[0].At.IsZero() {
		t.Fatalf("audit entry without time stored as %+v, want a time", got)
	}
	wantCode(t, "append without actor", s.AppendAudit(ctx, store.AuditEntry{Run: 392674, Action: "hold", Detail: "x"}), apperr.Invalid)
}

func kvTests() []subtest {
	return []subtest{{"Cursors", testCursors}, {"Settings", testSettings}}
}

func testSettings(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, ok, err := s.Setting(ctx, "release.paused"); err != nil || ok {
		t.Fatalf("missing setting: ok=%v err=%v, want absent", ok, err)
	}
	must(t, "set", s.SetSetting(ctx, "release.paused", "true"))
	must(t, "set empty", s.SetSetting(ctx, "banner", ""))
	must(t, "overwrite", s.SetSetting(ctx, "release.paused", "false"))
	for key, want := range map[string]string{"release.paused": "false", "banner": ""} {
		got, ok, err := s.Setting(ctx, key)
		must(t, "setting "+key, err)
		if !ok || got != want {
			t.Errorf("setting %s = %q (exists %v), want %q", key, got, ok, want)
		}
	}
}
