package storetest

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

func alertTests() []subtest {
	return []subtest{
		{"AlertLifecycle", testAlertLifecycle},
		{"AlertOneOpenEpisode", testAlertOneOpenEpisode},
		{"AlertInvalid", testAlertInvalid},
		{"AlertHistory", testAlertHistory},
		{"Silences", testSilences},
		{"SilenceExpire", testSilenceExpire},
		{"SilenceInvalid", testSilenceInvalid},
		{"DeadLetters", testDeadLetters},
	}
}

// firingAlert is an upload failure of SiStripGains for run 392671, firing since t.
func firingAlert(t time.Time) store.Alert {
	return store.Alert{Fingerprint: "upload-failed/run=392671/workflow=SiStripGains", Rule: "upload-failed", State: store.AlertFiring,
		Severity: "critical", Labels: map[string]string{"alertname": "upload-failed", "severity": "critical", "run": "392671", "workflow": "SiStripGains"},
		Summary: "run 392671 SiStripGains: upload of SiStripApvGain_pcl to SiStripApvGain_PCL_v0_prompt failed",
		Run:     392671, Workflow: "SiStripGains", Since: t.Add(-time.Minute), Active: t, Fired: t, LastSeen: t, NotifyFrom: t, Owed: true}
}

func saveAlerts(t *testing.T, s store.Store, w store.AlertWrite) []store.Alert {
	t.Helper()
	out, err := s.SaveAlerts(context.Background(), w)
	must(t, "save alerts", err)
	return out
}

func liveIDs(t *testing.T, s store.Store) []int64 {
	t.Helper()
	live, err := s.LiveAlerts(context.Background())
	must(t, "live alerts", err)
	var ids []int64
	for _, a := range live {
		ids = append(ids, a.ID)
	}
	return ids
}

// testAlertLifecycle: an episode is live from its first evaluation until it is resolved and no notifier
// is owed anything of it; then it is history. A pending episode that never fired can be forgotten.
func testAlertLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := epoch().Add(30 * time.Hour)
	a := firingAlert(t0)
	a.State, a.Fired, a.NotifyFrom = store.AlertPending, time.Time{}, time.Time{}
	pending := store.Alert{Fingerprint: "source-stale/source=dqm", Rule: "source-stale", State: store.AlertPending, Severity: "warning",
		Labels: map[string]string{"alertname": "source-stale", "source": "dqm"}, Summary: "dqm: no good answer for 3 polls", Active: t0, LastSeen: t0}
	saved := saveAlerts(t, s, store.AlertWrite{Save: []store.Alert{a, pending}})
	if saved[0].ID <= 0 || saved[1].ID <= 0 || saved[0].ID == saved[1].ID {
		t.Fatalf("new episodes got IDs %d and %d", saved[0].ID, saved[1].ID)
	}
	live, err := s.LiveAlerts(ctx)
	must(t, "live", err)
	if len(live) != 2 {
		t.Fatalf("%d live alerts, want 2", len(live))
	}
	sameJSON(t, "live alert as saved", saved[0], live[0])

	// It fires, with what a notifier was told; the other went before it fired and is forgotten.
	a = saved[0]
	a.State, a.Fired, a.NotifyFrom = store.AlertFiring, t0.Add(5*time.Minute), t0.Add(5*time.Minute)
	a.SilencedBy, a.StaleInputs = []int64{7}, []string{"dropbox"}
	a.Notified = map[string]store.Notified{"mail": {Epoch: a.NotifyFrom, Firing: t0.Add(6 * time.Minute)}, "am": {GaveUp: "HTTP 400"}}
	saveAlerts(t, s, store.AlertWrite{Save: []store.Alert{a}, Delete: []int64{saved[1].ID}})
	live, err = s.LiveAlerts(ctx)
	must(t, "live", err)
	if len(live) != 1 {
		t.Fatalf("%d live alerts after the pending one was forgotten, want 1", len(live))
	}
	sameJSON(t, "firing alert", a, live[0])

	// Resolved, but a notifier still owed the resolution: still live, not yet history.
	a.State, a.Resolved, a.Owed = store.AlertResolved, t0.Add(2*time.Hour), true
	saveAlerts(t, s, store.AlertWrite{Save: []store.Alert{a}})
	if ids := liveIDs(t, s); !slices.Equal(ids, []int64{a.ID}) {
		t.Fatalf("live %v: a resolved episode owed to a notifier must stay live", ids)
	}
	hist, err := s.AlertHistory(ctx, store.AlertQuery{})
	must(t, "history", err)
	if len(hist) != 1 || hist[0].ID != a.ID {
		t.Fatalf("history %+v, want the resolved episode", hist)
	}
	a.Owed = false
	saveAlerts(t, s, store.AlertWrite{Save: []store.Alert{a}})
	if ids := liveIDs(t, s); len(ids) != 0 {
		t.Fatalf("live %v after the last notice: want none", ids)
	}
	// A new episode of the same alert may start once the last one is resolved.
	b := firingAlert(t0.Add(3 * time.Hour))
	saved = saveAlerts(t, s, store.AlertWrite{Save: []store.Alert{b}})
	if saved[0].ID == a.ID {
		t.Fatal("a new episode reused the resolved one's ID")
	}
	_, err = s.SaveAlerts(ctx, store.AlertWrite{Save: []store.Alert{{ID: 987654, Fingerprint: "x", Rule: "x", State: store.AlertFiring}}})
	wantCode(t, "update an unknown episode", err, apperr.NotFound)
}

// testAlertOneOpenEpisode: a second unresolved episode of one alert is refused, and the whole write with
// it.
func testAlertOneOpenEpisode(t *testing.T, s store.Store) {
	t0 := epoch().Add(30 * time.Hour)
	saveAlerts(t, s, store.AlertWrite{Save: []store.Alert{firingAlert(t0)}})
	other := firingAlert(t0)
	other.Fingerprint, other.Run = "upload-failed/run=392672/workflow=SiStripGains", 392672
	_, err := s.SaveAlerts(context.Background(), store.AlertWrite{Save: []store.Alert{other, firingAlert(t0.Add(time.Minute))}})
	wantCode(t, "second open episode", err, apperr.Conflict)
	if ids := liveIDs(t, s); len(ids) != 1 {
		t.Fatalf("%d live alerts after a refused write, want the 1 from before", len(ids))
	}
}

func testAlertInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := epoch()
	for name, mod := range map[string]func(*store.Alert){
		"no fingerprint":        func(a *store.Alert) { a.Fingerprint = "" },
		"no rule":               func(a *store.Alert) { a.Rule = " " },
		"unknown state":         func(a *store.Alert) { a.State = "sleeping" },
		"resolved without time": func(a *store.Alert) { a.State = store.AlertResolved },
		"time out of range":     func(a *store.Alert) { a.Fired = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"resolution out of date": func(a *store.Alert) {
			a.State, a.Resolved = store.AlertResolved, time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)
		},
	} {
		a := firingAlert(t0)
		mod(&a)
		_, err := s.SaveAlerts(ctx, store.AlertWrite{Save: []store.Alert{firingAlert(t0.Add(time.Hour)), a}})
		wantCode(t, name, err, apperr.Invalid)
	}
	if ids := liveIDs(t, s); len(ids) != 0 {
		t.Fatalf("refused writes left %d alerts", len(ids))
	}
}

// testAlertHistory: resolved episodes, newest first, by run, in pages.
func testAlertHistory(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := epoch().Add(40 * time.Hour)
	var ids []int64
	for i, run := range fixtureRuns() {
		a := firingAlert(t0.Add(time.Duration(i) * time.Hour))
		a.Run, a.Fingerprint = run, "workflow-late/run="+strconv.FormatUint(uint64(run), 10)
		a.State, a.Resolved, a.Owed = store.AlertResolved, a.Fired.Add(30*time.Minute), false
		ids = append(ids, saveAlerts(t, s, store.AlertWrite{Save: []store.Alert{a}})[0].ID)
	}
	saveAlerts(t, s, store.AlertWrite{Save: []store.Alert{firingAlert(t0)}}) // open: not history
	hist, err := s.AlertHistory(ctx, store.AlertQuery{Limit: 2})
	must(t, "history", err)
	if len(hist) != 2 || hist[0].ID != ids[4] || hist[1].ID != ids[3] {
		t.Fatalf("history page 1: %+v, want the last two resolved, newest first", hist)
	}
	hist, err = s.AlertHistory(ctx, store.AlertQuery{Before: hist[1].ID})
	must(t, "history page 2", err)
	if len(hist) != 3 || hist[0].ID != ids[2] {
		t.Fatalf("history page 2: %d episodes, want 3 from %d", len(hist), ids[2])
	}
	hist, err = s.AlertHistory(ctx, store.AlertQuery{Run: 392670})
	must(t, "history of a run", err)
	if len(hist) != 1 || hist[0].Run != 392670 {
		t.Fatalf("history of run 392670: %+v", hist)
	}
}

func silenceOf(t0 time.Time, d time.Duration, matchers ...store.Matcher) store.Silence {
	return store.Silence{Matchers: matchers, Author: "jdoe", Reason: "SiStripGains fit under study, CMSTALK thread 1234",
		Starts: t0, Ends: t0.Add(d)}
}

func auditActions(t *testing.T, s store.Store) []string {
	t.Helper()
	entries, err := s.Audit(context.Background(), store.AuditQuery{})
	must(t, "audit", err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Actor+" "+e.Action)
	}
	return out
}

// testSilences: a silence is kept with its audit entry, and read back by what is in force when.
func testSilences(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := epoch().Add(50 * time.Hour)
	gains := store.Matcher{Name: "workflow", Op: "=", Value: "SiStripGains"}
	pixel := store.Matcher{Name: "workflow", Op: "=~", Value: "SiPixel.*"}
	a, err := s.AddSilence(ctx, silenceOf(t0, 2*time.Hour, gains, store.Matcher{Name: "alertname", Op: "!=", Value: "at-risk"}),
		store.AuditEntry{Actor: "jdoe", Action: "silence", Detail: "workflow=SiStripGains for 2h"})
	must(t, "add", err)
	if a.ID <= 0 || a.Created.IsZero() {
		t.Fatalf("added silence %+v: want an ID and a creation time", a)
	}
	b, err := s.AddSilence(ctx, silenceOf(t0.Add(3*time.Hour), time.Hour, pixel), store.AuditEntry{Actor: "jdoe", Action: "silence"})
	must(t, "add a later one", err)
	got, err := s.Silence(ctx, a.ID)
	must(t, "get", err)
	sameJSON(t, "silence read back", a, got)
	_, err = s.Silence(ctx, 987654)
	wantCode(t, "unknown silence", err, apperr.NotFound)

	ids := func(q store.SilenceQuery) []int64 {
		t.Helper()
		list, err := s.Silences(ctx, q)
		must(t, "silences", err)
		var out []int64
		for _, si := range list {
			out = append(out, si.ID)
		}
		return out
	}
	if got := ids(store.SilenceQuery{}); !slices.Equal(got, []int64{b.ID, a.ID}) {
		t.Errorf("all silences %v, want newest first", got)
	}
	if got := ids(store.SilenceQuery{ActiveAt: t0.Add(time.Hour)}); !slices.Equal(got, []int64{a.ID}) {
		t.Errorf("in force at +1h: %v, want the first", got)
	}
	if got := ids(store.SilenceQuery{ActiveAt: t0.Add(2 * time.Hour)}); len(got) != 0 {
		t.Errorf("in force at its end: %v, want none (the end is excluded)", got)
	}
	if got := ids(store.SilenceQuery{NotEndedAt: t0.Add(2 * time.Hour)}); !slices.Equal(got, []int64{b.ID}) {
		t.Errorf("not ended at +2h: %v, want the one still to come", got)
	}
	if got := ids(store.SilenceQuery{Limit: 1}); len(got) != 1 {
		t.Errorf("limit 1: %v", got)
	}
	if got := auditActions(t, s); !slices.Equal(got, []string{"jdoe silence", "jdoe silence"}) {
		t.Errorf("audit %v, want one entry per silence", got)
	}
}

// testSilenceExpire: ending a silence early moves its end, names who did it, is audited, and happens
// once.
func testSilenceExpire(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := epoch().Add(50 * time.Hour)
	si, err := s.AddSilence(ctx, silenceOf(t0, 4*time.Hour, store.Matcher{Name: "run", Op: "=", Value: "392671"}),
		store.AuditEntry{Actor: "jdoe", Action: "silence"})
	must(t, "add", err)
	ended, err := s.ExpireSilence(ctx, si.ID, t0.Add(time.Hour), "asmith", store.AuditEntry{Actor: "asmith", Action: "silence-expire"})
	must(t, "expire", err)
	if !ended.Ends.Equal(t0.Add(time.Hour)) || ended.ExpiredBy != "asmith" {
		t.Fatalf("expired silence %+v: want its end at +1h, by asmith", ended)
	}
	if list, err := s.Silences(ctx, store.SilenceQuery{ActiveAt: t0.Add(90 * time.Minute)}); err != nil || len(list) != 0 {
		t.Fatalf("in force after its early end: %+v (err %v)", list, err)
	}
	_, err = s.ExpireSilence(ctx, si.ID, t0.Add(2*time.Hour), "asmith", store.AuditEntry{Actor: "asmith", Action: "silence-expire"})
	wantCode(t, "expire twice", err, apperr.Conflict)
	_, err = s.ExpireSilence(ctx, 987654, t0, "asmith", store.AuditEntry{Actor: "asmith", Action: "silence-expire"})
	wantCode(t, "expire an unknown silence", err, apperr.NotFound)
	// A silence still to come, ended before it began, never was in force.
	later, err := s.AddSilence(ctx, silenceOf(t0.Add(10*time.Hour), time.Hour, store.Matcher{Name: "run", Op: "=", Value: "392672"}),
		store.AuditEntry{Actor: "jdoe", Action: "silence"})
	must(t, "add a later one", err)
	ended, err = s.ExpireSilence(ctx, later.ID, t0.Add(5*time.Hour), "asmith", store.AuditEntry{Actor: "asmith", Action: "silence-expire"})
	must(t, "expire before its start", err)
	if ended.Starts.After(ended.Ends) {
		t.Fatalf("a silence ended before it began: %+v", ended)
	}
	want := []string{"asmith silence-expire", "asmith silence-expire", "jdoe silence", "jdoe silence"}
	if got := auditActions(t, s); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Errorf("audit %v, want %v", got, want)
	}
}

func testSilenceInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := epoch()
	ok := store.Matcher{Name: "alertname", Op: "=", Value: "workflow-late"}
	for name, si := range map[string]store.Silence{
		"no matcher":        silenceOf(t0, time.Hour),
		"nameless matcher":  silenceOf(t0, time.Hour, store.Matcher{Op: "=", Value: "x"}),
		"unknown operator":  silenceOf(t0, time.Hour, store.Matcher{Name: "run", Op: "~", Value: "1"}),
		"ends before start": silenceOf(t0, -time.Hour, ok),
		"no author":         func() store.Silence { x := silenceOf(t0, time.Hour, ok); x.Author = ""; return x }(),
		"no reason":         func() store.Silence { x := silenceOf(t0, time.Hour, ok); x.Reason = "  "; return x }(),
	} {
		_, err := s.AddSilence(ctx, si, store.AuditEntry{Actor: "jdoe", Action: "silence"})
		wantCode(t, name, err, apperr.Invalid)
	}
	_, err := s.AddSilence(ctx, silenceOf(t0, time.Hour, ok), store.AuditEntry{Action: "silence"})
	wantCode(t, "audit entry without actor", err, apperr.Invalid)
	if list, err := s.Silences(ctx, store.SilenceQuery{}); err != nil || len(list) != 0 {
		t.Fatalf("refused silences were kept: %+v (err %v)", list, err)
	}
	if got := auditActions(t, s); len(got) != 0 {
		t.Fatalf("refused silences were audited: %v", got)
	}
}

// testDeadLetters: a dead letter is listed until a later version of its run is delivered at its
// target; a delivery elsewhere, or a later version that is dead too, does not replace it.
func testDeadLetters(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := epoch().Add(60 * time.Hour)
	saveAt(t, s, decisionWrite(392671, 1, pcl.ReadinessWaiting, "tier0", "webhook"), t0)
	saveAt(t, s, decisionWrite(392672, 1, pcl.ReadinessReady, "tier0"), t0)
	pending, err := s.PendingOutbox(ctx, "tier0", t0, 0)
	must(t, "pending", err)
	for _, e := range pending {
		must(t, "give up", s.MarkFailed(ctx, e.ID, t0, t0, "HTTP 422 unknown run", true))
	}
	web, err := s.PendingOutbox(ctx, "webhook", t0, 0)
	must(t, "pending webhook", err)
	must(t, "deliver to the webhook", s.MarkDelivered(ctx, web[0].ID, t0))
	dead := func() []runVersion {
		t.Helper()
		es, err := s.DeadLetters(ctx, 0)
		must(t, "dead letters", err)
		return runVersions(es)
	}
	if got, want := dead(), []runVersion{{392672, 1}, {392671, 1}}; !slices.Equal(got, want) {
		t.Fatalf("dead letters %v, want %v", got, want)
	}
	// Version 2 of 392671 is given up too: both stay.
	saveAt(t, s, decisionWrite(392671, 2, pcl.ReadinessReady, "tier0", "webhook"), t0.Add(time.Hour))
	p, err := s.PendingOutbox(ctx, "tier0", t0.Add(time.Hour), 0)
	must(t, "pending v2", err)
	must(t, "give up v2", s.MarkFailed(ctx, p[0].ID, t0.Add(time.Hour), t0.Add(time.Hour), "HTTP 422", true))
	if got, want := dead(), []runVersion{{392671, 2}, {392672, 1}, {392671, 1}}; !slices.Equal(got, want) {
		t.Fatalf("dead letters %v, want %v", got, want)
	}
	// Version 3 gets through: it replaces both of 392671 at tier0.
	saveAt(t, s, decisionWrite(392671, 3, pcl.ReadinessReady, "tier0"), t0.Add(2*time.Hour))
	p, err = s.PendingOutbox(ctx, "tier0", t0.Add(2*time.Hour), 0)
	must(t, "pending v3", err)
	must(t, "deliver v3", s.MarkDelivered(ctx, p[0].ID, t0.Add(2*time.Hour)))
	if got, want := dead(), []runVersion{{392672, 1}}; !slices.Equal(got, want) {
		t.Fatalf("dead letters %v after a later delivery, want %v", got, want)
	}
	if got, err := s.DeadLetters(ctx, 1); err != nil || len(got) != 1 {
		t.Fatalf("dead letters limit 1: %d (err %v)", len(got), err)
	}
}
