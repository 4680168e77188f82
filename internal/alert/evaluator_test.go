package alert

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// TestFiringOnceAcrossRestart: an upload failure fires and is told once; restarts of the evaluator on
// the same store (the process killed and started again) neither forget it nor tell it again; its
// resolution is told once, and it becomes history.
func TestFiringOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	r := newRig(t, named("mail", rec))
	failed := runState(testRun, pcl.ReadinessBlocked, t0.Add(time.Hour), wf("SiStripGains", pcl.StateUploadFailed))
	r.w.set(failed)
	r.at(time.Hour)
	want := []string{"firing run-blocked run=400123", "firing upload-failed run=400123 workflow=SiStripGains"}
	if got := rec.notices(); !slices.Equal(got, want) {
		t.Fatalf("told %v, want %v", got, want)
	}
	for i := range 3 {
		r.open() // a restart
		r.at(time.Hour + time.Duration(i+1)*time.Minute)
		if a := r.active("upload-failed"); len(a) != 1 || a[0].State != store.AlertFiring {
			t.Fatalf("after restart %d: upload-failed alerts %+v, want the one firing", i+1, a)
		}
	}
	if got := rec.notices(); !slices.Equal(got, want) {
		t.Fatalf("after three restarts told %v, want only %v", got, want)
	}
	// Accepted: both resolve, each told once, even across another restart.
	acc := wf("SiStripGains", pcl.StateAccepted)
	r.w.set(runState(testRun, pcl.ReadinessReady, t0.Add(2*time.Hour), acc))
	r.at(2 * time.Hour)
	r.open()
	r.at(2*time.Hour + time.Minute)
	want = append(want, "resolved run-blocked run=400123", "resolved upload-failed run=400123 workflow=SiStripGains")
	if got := rec.notices(); !slices.Equal(got, want) {
		t.Fatalf("told %v, want %v", got, want)
	}
	if a := r.e.Active(); len(a) != 0 {
		t.Fatalf("active after resolution: %+v", a)
	}
	hist, err := r.e.History(context.Background(), store.AlertQuery{})
	if err != nil || len(hist) != 2 {
		t.Fatalf("history %+v (err %v), want the two episodes", hist, err)
	}
	if live, _ := r.st.LiveAlerts(context.Background()); len(live) != 0 {
		t.Fatalf("the store still has %d live alerts", len(live))
	}
}

// TestFlappingNotifiesOnce: a source that goes stale and fresh again every few minutes is one alert,
// told once, thanks to keep_firing_for; it resolves once it stayed fresh for longer than that.
func TestFlappingNotifiesOnce(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	r := newRig(t, named("mail", rec))
	for i := range 12 {
		stale := i%2 == 0
		r.w.setSources(pcl.SourceHealth{Name: pcl.SourceOMS, Stale: stale, Healthy: !stale, Failures: 3 * (1 - i%2), LastSuccess: t0})
		r.at(time.Duration(i) * 3 * time.Minute) // 3 min apart: within the 10 min keep-firing time
	}
	if got, want := rec.notices(), []string{"firing source-stale source=oms"}; !slices.Equal(got, want) {
		t.Fatalf("told %v for a flapping source, want %v", got, want)
	}
	r.at(33*time.Minute + 10*time.Minute) // fresh for more than 10 min since it was last seen stale
	if got := rec.notices(); len(got) != 2 || got[1] != "resolved source-stale source=oms" {
		t.Fatalf("told %v, want the resolution second", got)
	}
}

// TestForKeepsPending: with a `for`, a condition shorter than it never fires and notifies nobody.
func TestForKeepsPending(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	r := newRig(t, named("mail", rec))
	r.cfg.Rules.RunHeld.For = 30 * time.Minute
	r.cfg.Rules.RunHeld.After = 0
	r.open()
	held := runState(testRun, pcl.ReadinessHeld, t0, wf("SiStripGains", pcl.StateInDB))
	r.w.set(held)
	r.at(0)
	if a := r.active("run-held"); len(a) != 1 || a[0].State != store.AlertPending {
		t.Fatalf("run-held %+v, want pending", a)
	}
	r.w.set()
	r.at(10 * time.Minute)
	if a := r.active("run-held"); len(a) != 0 {
		t.Fatalf("a pending alert whose condition went is still there: %+v", a)
	}
	r.w.set(held)
	r.at(20 * time.Minute)
	r.at(49 * time.Minute)
	if len(rec.notices()) != 0 {
		t.Fatalf("told %v before the `for` passed", rec.notices())
	}
	r.at(50 * time.Minute)
	if a := r.active("run-held"); len(a) != 1 || a[0].State != store.AlertFiring || !a[0].Fired.Equal(t0.Add(50*time.Minute)) {
		t.Fatalf("run-held %+v, want firing since +50m", a)
	}
	if got := rec.notices(); !slices.Equal(got, []string{"firing run-held run=400123"}) {
		t.Fatalf("told %v", got)
	}
}

// TestSilenceStopsOneNotItsNeighbour: a silence of one workflow's alerts keeps them from notifying but
// not the other workflow's; when the silence is ended early, the one still firing is told.
func TestSilenceStopsOneNotItsNeighbour(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	r := newRig(t, named("mail", rec))
	r.cfg.Rules.RunBlocked.Enabled = false
	r.open()
	s, err := r.e.AddSilence(context.Background(), store.Silence{Author: "jdoe", Reason: "SiStripGains under study",
		Matchers: []store.Matcher{{Name: "workflow", Op: "=", Value: "SiStripGains"}, {Name: "alertname", Op: "=~", Value: "upload-.*"}},
		Ends:     t0.Add(4 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	r.w.set(runState(testRun, pcl.ReadinessBlocked, t0, wf("SiStripGains", pcl.StateUploadFailed), wf("SiPixelAli", pcl.StateUploadFailed)))
	r.at(time.Minute)
	if got, want := rec.notices(), []string{"firing upload-failed run=400123 workflow=SiPixelAli"}; !slices.Equal(got, want) {
		t.Fatalf("told %v, want only the neighbour %v", got, want)
	}
	for _, a := range r.active("upload-failed") {
		if silenced := slices.Equal(a.SilencedBy, []int64{s.ID}); silenced != (a.Workflow == "SiStripGains") {
			t.Errorf("%s silenced by %v", a.Workflow, a.SilencedBy)
		}
	}
	if firing := r.e.Firing(); len(firing) != 1 || firing[0].Workflow != "SiPixelAli" {
		t.Errorf("Firing (what people are told) %+v, want the neighbour only", firing)
	}
	r.at(time.Hour)
	if len(rec.notices()) != 1 {
		t.Fatalf("told %v while the silence held", rec.notices())
	}
	if _, err := r.e.ExpireSilence(context.Background(), s.ID, "asmith"); err != nil {
		t.Fatal(err)
	}
	r.at(time.Hour + time.Minute)
	if got := rec.notices(); len(got) != 2 || got[1] != "firing upload-failed run=400123 workflow=SiStripGains" {
		t.Fatalf("told %v after the silence ended, want the silenced alert second", got)
	}
	audit, _ := r.st.Audit(context.Background(), store.AuditQuery{})
	var actions []string
	for _, e := range audit {
		actions = append(actions, e.Actor+" "+e.Action)
	}
	if !slices.Equal(actions, []string{"asmith silence-expire", "jdoe silence"}) {
		t.Errorf("audit %v", actions)
	}
}

// TestSilenceRunsOut: a silence that ends by itself lets a still-firing alert notify again.
func TestSilenceRunsOut(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	r := newRig(t, named("mail", rec))
	r.w.set(runState(testRun, pcl.ReadinessBlocked, t0, wf("SiStripGains", pcl.StateUploadFailed)))
	r.at(0)
	if len(rec.notices()) != 2 {
		t.Fatalf("told %v", rec.notices())
	}
	if _, err := r.e.AddSilence(context.Background(), store.Silence{Author: "jdoe", Reason: "known, being fixed",
		Matchers: []store.Matcher{{Name: "run", Op: "=", Value: "400123"}}, Ends: t0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	r.at(time.Hour)
	r.at(2*time.Hour - time.Minute)
	if len(rec.notices()) != 2 {
		t.Fatalf("told %v while silenced", rec.notices())
	}
	r.at(2 * time.Hour)
	if got := rec.notices(); len(got) != 4 || !strings.HasPrefix(got[2], "firing") || !strings.HasPrefix(got[3], "firing") {
		t.Fatalf("told %v, want both alerts again once the silence ran out", got)
	}
}

// TestSilenceChecks: what an operator may not make.
func TestSilenceChecks(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ok := []store.Matcher{{Name: "alertname", Op: "=", Value: "workflow-late"}}
	for name, s := range map[string]store.Silence{
		"no matcher":         {Author: "jdoe", Reason: "x", Ends: t0.Add(time.Hour)},
		"matches all":        {Author: "jdoe", Reason: "x", Ends: t0.Add(time.Hour), Matchers: []store.Matcher{{Name: "run", Op: "=~", Value: ".*"}}},
		"bad regexp":         {Author: "jdoe", Reason: "x", Ends: t0.Add(time.Hour), Matchers: []store.Matcher{{Name: "run", Op: "=~", Value: "("}}},
		"bad label":          {Author: "jdoe", Reason: "x", Ends: t0.Add(time.Hour), Matchers: []store.Matcher{{Name: "a-b", Op: "=", Value: "1"}}},
		"no reason":          {Author: "jdoe", Reason: " ", Ends: t0.Add(time.Hour), Matchers: ok},
		"ends in the past":   {Author: "jdoe", Reason: "x", Starts: t0.Add(-2 * time.Hour), Ends: t0.Add(-time.Hour), Matchers: ok},
		"longer than a week": {Author: "jdoe", Reason: "x", Ends: t0.Add(8 * 24 * time.Hour), Matchers: ok},
	} {
		if _, err := r.e.AddSilence(context.Background(), s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if list, _ := r.e.Silences(context.Background(), true, 0); len(list) != 0 {
		t.Fatalf("refused silences kept: %+v", list)
	}
}

// TestStaleInputDoesNotResolve: an upload failure whose condition is no longer found while the upload
// log's spy is stale keeps firing and says why; once the source answers again it resolves.
func TestStaleInputDoesNotResolve(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	r := newRig(t, named("mail", rec))
	r.cfg.Rules.RunBlocked.Enabled = false
	r.open()
	r.w.set(runState(testRun, pcl.ReadinessBlocked, t0, wf("SiStripGains", pcl.StateUploadFailed)))
	r.w.setSources(pcl.SourceHealth{Name: pcl.SourceDropbox, Healthy: true})
	r.at(0)
	r.w.set() // the run is no longer found failing...
	r.w.setSources(pcl.SourceHealth{Name: pcl.SourceDropbox, Stale: true, Failures: 5})
	r.at(time.Hour) // ...while the upload log cannot be read
	a := r.active("upload-failed")
	if len(a) != 1 || a[0].State != store.AlertFiring || !slices.Equal(a[0].StaleInputs, []string{"dropbox"}) {
		t.Fatalf("upload-failed %+v, want still firing, saying dropbox is stale", a)
	}
	r.w.setSources(pcl.SourceHealth{Name: pcl.SourceDropbox, Healthy: true})
	r.at(2 * time.Hour)
	if a := r.active("upload-failed"); len(a) != 0 {
		t.Fatalf("upload-failed %+v after the source answered, want resolved", a)
	}
	if got := rec.notices(); !slices.Equal(got, []string{"firing upload-failed run=400123 workflow=SiStripGains",
		"firing source-stale source=dropbox", "resolved source-stale source=dropbox", "resolved upload-failed run=400123 workflow=SiStripGains"}) {
		t.Errorf("told %v", got)
	}
}

// TestStaleSourceInhibitsLateness: while the harvest area's spy is stale, the workflows that look late
// because nothing is seen are held back by its one source-stale alert: one broken source is one
// notification, not one per workflow. When the source answers and they are still late, they are told.
func TestStaleSourceInhibitsLateness(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	r := newRig(t, named("mail", rec))
	var wss []pcl.WorkflowStatus
	for _, name := range []string{"SiStripGains", "SiPixelAli", "SiStripQuality", "BeamSpotHP", "EcalPedestals"} {
		wss = append(wss, wf(name, pcl.StateAwaitingHarvest))
	}
	r.w.set(runState(testRun, pcl.ReadinessWaiting, t0, wss...))
	r.w.setSources(pcl.SourceHealth{Name: pcl.SourceHarvest, Stale: true, Failures: 20})
	r.at(11 * time.Hour)
	if got := rec.notices(); !slices.Equal(got, []string{"firing source-stale source=harvest"}) {
		t.Fatalf("told %v, want only the stale source", got)
	}
	late := r.active("workflow-late")
	if len(late) != 5 || late[0].InhibitedBy != "source-stale/source=harvest" {
		t.Fatalf("workflow-late %+v, want 5 alerts held back by the stale source", late)
	}
	r.w.setSources(pcl.SourceHealth{Name: pcl.SourceHarvest, Healthy: true})
	r.at(12 * time.Hour)
	if got := rec.notices(); len(got) != 7 || got[1] != "resolved source-stale source=harvest" {
		t.Fatalf("told %v, want the source's resolution and the five late workflows once it answered", got)
	}
	// One message for the group: the rule's five alerts went out together.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := len(rec.messages); n != 3 || len(rec.messages[2].Alerts) != 5 {
		t.Fatalf("%d messages, want the stale source's two and one of five late workflows", n)
	}
}

// TestNotifierRetriesAndGivesUp: a notifier that cannot be reached is retried with backoff until it
// answers; one that refuses gives the notice up at once; either failure is an alert told through the
// other notifier.
func TestNotifierRetriesAndGivesUp(t *testing.T) {
	t.Parallel()
	flaky, mail := &recorder{}, &recorder{}
	r := newRig(t, named("flaky", flaky), named("mail", mail))
	r.cfg.Rules.NotifierFailing.Count = 2
	r.cfg.Rules.RunBlocked.Enabled = false
	r.open()
	flaky.failWith(errDown, true)
	r.w.set(runState(testRun, pcl.ReadinessBlocked, t0, wf("SiStripGains", pcl.StateUploadFailed)))
	r.at(0)
	h := r.e.Notifiers()[0]
	if h.Failures != 1 || h.NextAttempt.IsZero() || !strings.Contains(h.LastError, "refused") {
		t.Fatalf("flaky health %+v, want one failure and a retry planned", h)
	}
	r.wall.Advance(500 * time.Millisecond)
	r.at(time.Minute) // within the backoff: not tried
	if flaky.attempts != 1 {
		t.Fatalf("%d attempts within the backoff", flaky.attempts)
	}
	r.wall.Advance(time.Second)
	r.at(2 * time.Minute) // the second failure...
	r.at(3 * time.Minute) // ...seen by the next evaluation: notifier-failing fires, told by mail
	if got := mail.notices(); !slices.Contains(got, "firing notifier-failing notifier=flaky") {
		t.Fatalf("mail told %v, want the failing notifier", got)
	}
	flaky.failWith(nil, false)
	r.wall.Advance(10 * time.Second)
	r.at(4 * time.Minute)
	if got := flaky.notices(); !slices.Contains(got, "firing upload-failed run=400123 workflow=SiStripGains") {
		t.Fatalf("flaky told %v once it answered", got)
	}
	if h := r.e.Notifiers()[0]; !h.Healthy() || h.GivenUp != 0 {
		t.Fatalf("flaky health %+v after a delivery", h)
	}
	// A refusal is given up at once and counted.
	before := flaky.attempts
	flaky.failWith(errors.New("HTTP 400 Bad Request"), false)
	r.w.set(runState(testRun, pcl.ReadinessBlocked, t0, wf("SiStripGains", pcl.StateUploadFailed), wf("SiPixelAli", pcl.StateTooLate)))
	r.at(5 * time.Minute)
	r.at(6 * time.Minute)
	if h := r.e.Notifiers()[0]; h.GivenUp != 1 || flaky.attempts != before+1 {
		t.Fatalf("flaky health %+v after %d attempts, want the notice given up after one", h, flaky.attempts-before)
	}
	for _, a := range r.active("too-late") {
		if a.Notified["flaky"].GaveUp == "" || a.Notified["mail"].Firing.IsZero() {
			t.Fatalf("too-late notified %+v", a.Notified)
		}
	}
}

// TestStoreTrouble: too little free space on the store's file system fires store-trouble.
func TestStoreTrouble(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.cfg.Rules.StoreTrouble.MinFreeBytes = 1 << 62 // no disk has that much free
	r.open()
	r.e.o.DiskPath = r.dir
	r.at(0)
	a := r.active("store-trouble")
	if len(a) != 1 || !strings.Contains(a[0].Summary, "free of") {
		t.Fatalf("store-trouble %+v", a)
	}
	r.cfg.Rules.StoreTrouble.MinFreeBytes = 1
	r.open()
	r.e.o.DiskPath = r.dir
	r.at(time.Hour) // its 10 min keep-firing time passed
	if a := r.active("store-trouble"); len(a) != 0 {
		t.Fatalf("store-trouble %+v with room to spare", a)
	}
}

// refusing is a store whose writes fail while refuse is set, as a full disk or a read-only file would.
type refusing struct {
	Store
	refuse atomic.Bool
}

func (f *refusing) SaveAlerts(ctx context.Context, w store.AlertWrite) ([]store.Alert, error) {
	if f.refuse.Load() {
		return nil, errors.New("database or disk is full")
	}
	return f.Store.SaveAlerts(ctx, w)
}

func (f *refusing) SetSetting(ctx context.Context, k, v string) error {
	if f.refuse.Load() {
		return errors.New("database or disk is full")
	}
	return f.Store.SetSetting(ctx, k, v)
}

// TestStoreRefusesWrites: when the store stops writing, the alerts are kept in memory, store-trouble
// fires (shown and notified, though it cannot be stored), and nothing is lost once it writes again.
func TestStoreRefusesWrites(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	r := newRig(t, named("mail", rec))
	fs := &refusing{Store: r.st}
	e, err := New(context.Background(), Options{Store: fs, Clock: r.clk, Runs: r.w, Config: r.cfg, Notifiers: r.notes, Wall: r.wall.Now})
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	fs.refuse.Store(true)
	r.w.set(runState(testRun, pcl.ReadinessBlocked, t0, wf("SiStripGains", pcl.StateUploadFailed)))
	r.at(0)
	r.at(time.Minute)
	if a := r.active("store-trouble"); len(a) != 1 || !strings.Contains(a[0].Summary, "refused a write") {
		t.Fatalf("store-trouble %+v", a)
	}
	if got := rec.notices(); !slices.Contains(got, "firing store-trouble") || !slices.Contains(got, "firing upload-failed run=400123 workflow=SiStripGains") {
		t.Fatalf("told %v", got)
	}
	fs.refuse.Store(false)
	r.at(2 * time.Minute)
	live, err := r.st.LiveAlerts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, a := range live {
		rules = append(rules, a.Rule)
		if a.Notified["mail"].Firing.IsZero() {
			t.Errorf("%s stored without its notice", a.Fingerprint)
		}
	}
	if !slices.Contains(rules, "upload-failed") || !slices.Contains(rules, "store-trouble") {
		t.Fatalf("stored %v once the store wrote again", rules)
	}
	// Restarted now, nothing is told again.
	r.open()
	r.at(3 * time.Minute)
	if n := len(rec.notices()); n != 3 {
		t.Fatalf("told %v", rec.notices())
	}
}

// TestPendingGoneWhileStoreRefuses: a pending alert whose condition went while the store refused writes,
// then came back, is a new pending episode; once the store writes, the old one is deleted and the new
// one kept, with no conflict between them.
func TestPendingGoneWhileStoreRefuses(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.cfg.Rules.RunHeld.For, r.cfg.Rules.RunHeld.After = time.Hour, 0
	fs := &refusing{Store: r.st}
	e, err := New(context.Background(), Options{Store: fs, Clock: r.clk, Runs: r.w, Config: r.cfg, Wall: r.wall.Now})
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	held := runState(testRun, pcl.ReadinessHeld, t0, wf("SiStripGains", pcl.StateInDB))
	r.w.set(held)
	r.at(0) // stored
	fs.refuse.Store(true)
	r.w.set()
	r.at(10 * time.Minute) // gone, not deleted
	r.w.set(held)
	r.at(20 * time.Minute) // back: a new episode
	fs.refuse.Store(false)
	r.at(30 * time.Minute)
	stored, err := r.st.LiveAlerts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	live := slices.DeleteFunc(stored, func(a store.Alert) bool { return a.Rule != "run-held" })
	if len(live) != 1 || live[0].State != store.AlertPending || !live[0].Active.Equal(t0.Add(20*time.Minute)) {
		t.Fatalf("stored %+v, want the new pending episode only", live)
	}
}

// TestSeenRefreshesShareWrites: the stored LastSeen of alerts that hold is refreshed every few
// minutes; alerts that began at different minutes come to be refreshed by the same writes, so that
// many firing alerts do not each cost a write of their own, and none is stored more than seenEvery
// behind.
func TestSeenRefreshesShareWrites(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	a := runState(testRun, pcl.ReadinessBlocked, t0, wf("SiStripGains", pcl.StateUploadFailed))
	b := runState(testRun+1, pcl.ReadinessBlocked, t0, wf("SiStripGains", pcl.StateUploadFailed))
	r.w.set(a)
	r.at(time.Hour)
	r.w.set(a, b)
	r.at(time.Hour + 3*time.Minute) // b's alerts begin three minutes after a's
	var seen map[uint32]time.Time
	for m := 4; m <= 40; m++ {
		now := time.Hour + time.Duration(m)*time.Minute
		r.at(now)
		live, err := r.st.LiveAlerts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		seen = map[uint32]time.Time{}
		for _, al := range live {
			if al.Rule != "upload-failed" {
				continue
			}
			seen[al.Run] = al.LastSeen
			if lag := t0.Add(now).Sub(al.LastSeen); lag >= seenEvery {
				t.Fatalf("at +%d min the stored LastSeen of run %d is %s behind", m, al.Run, lag)
			}
		}
	}
	if len(seen) != 2 || !seen[testRun].Equal(seen[testRun+1]) {
		t.Fatalf("stored LastSeen %v: the two alerts are still refreshed by writes of their own", seen)
	}
}
