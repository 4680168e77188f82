package web

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// decided writes a decision the way the agency stores one (the next version, the run's state with it),
// without the agency: for readinesses such as blocked that this branch's reconcile does not produce.
func (w *world) decided(run uint32, at time.Time, rd pcl.Readiness, releasable bool, blocking []string, wfs ...pcl.WorkflowStatus) {
	w.t.Helper()
	prev, err := w.st.Decisions(w.ctx, run)
	if err != nil {
		w.t.Fatal(err)
	}
	if blocking == nil {
		blocking = []string{}
	}
	stop := at.Add(-time.Hour)
	d := pcl.Decision{Run: run, State: rd, Releasable: releasable, Blocking: blocking, Version: int64(len(prev)) + 1, Decided: at,
		Reason: fmt.Sprintf("%s (test)", rd)}
	rs := pcl.RunState{Run: run, Class: "Collisions25", Decision: d, Workflows: wfs,
		Info: &pcl.RunInfo{Start: stop.Add(-2 * time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: stop}}
	if _, err := w.st.SaveDecision(w.ctx, store.DecisionWrite{Decision: d, State: rs}); err != nil {
		w.t.Fatal(err)
	}
}

// queueWorld: run 392640 is blocked by SiStripGains' failed upload since 16 h, and seven newer runs are
// ready and wait behind it, the first of them since 14 h 20 m; one newer run still waits on its own, and
// one was released already.
func queueWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t)
	w.clk.Set(worldNow)
	failed := pcl.WorkflowStatus{Name: "SiStripGains", State: pcl.StateUploadFailed, Required: true}
	w.decided(392640, worldNow.Add(-20*time.Hour), pcl.ReadinessWaiting, false, []string{"SiStripGains"})
	w.decided(392640, worldNow.Add(-16*time.Hour), pcl.ReadinessBlocked, false, []string{"SiStripGains"}, failed)
	for i := range 7 {
		run := uint32(392641 + i)
		w.decided(run, worldNow.Add(-18*time.Hour), pcl.ReadinessWaiting, false, []string{"SiPixelAli"})
		first := worldNow.Add(-14*time.Hour - 20*time.Minute + time.Duration(i)*time.Hour)
		w.decided(run, first, pcl.ReadinessReady, true, nil)
		if i == 0 {
			// A later ready version (a new reason) does not reset how long the run has waited.
			w.decided(run, worldNow.Add(-2*time.Hour), pcl.ReadinessReady, true, nil)
		}
	}
	w.decided(392648, worldNow.Add(-time.Hour), pcl.ReadinessWaiting, false, []string{"SiPixelAli"})
	w.decided(392649, worldNow.Add(-3*time.Hour), pcl.ReadinessReady, true, nil)
	w.decided(392649, worldNow.Add(-time.Hour), pcl.ReadinessReleased, true, nil)
	return w
}

func TestHoldupSaysHowLongAndHowMany(t *testing.T) {
	t.Parallel()
	w := queueWorld(t)
	hs, srv := w.serve(t, func(o *Options) {
		o.FirstUnready = firstUnreadyIs(392640)
	})
	v := srv.holdup(w.ctx)
	if !v.Available || !v.Known || v.Run != 392640 || v.Readiness != pcl.ReadinessBlocked || v.Held != 7 || v.More ||
		v.HeldSince == nil || !v.HeldSince.Equal(worldNow.Add(-14*time.Hour-20*time.Minute)) {
		t.Fatalf("holdup %+v", v)
	}
	_, page, _ := fetch(t, hs.URL+"/")
	want := `run 392640 holds <span class="fu-held">7 newer runs</span> for <span class="fu-for" data-since="2025-05-28T21:40:00Z">14 h 20 m</span>: <span class="fu-why">blocked, SiStripGains upload-failed</span>`
	if !strings.Contains(page, want) {
		t.Errorf("the header does not say %q", want)
	}
	if !strings.Contains(page, `<span class="badge rd-blocked"><span aria-hidden="true">⊘</span> blocked</span>`) {
		t.Error("the first unready run's badge is not the blocked one")
	}
	// Nothing held: the header says so, with no duration.
	if _, srv := w.serve(t, func(o *Options) { o.FirstUnready = firstUnreadyIs(392648) }); true {
		if v := srv.holdup(w.ctx); v.Held != 0 || v.HeldSince != nil || heldText(v) != "no newer run" || v.Why != "waiting, SiPixelAli" {
			t.Errorf("holdup of the waiting run: %+v", v)
		}
	}
	// Above every known run: nothing holds the queue.
	if _, srv := w.serve(t, func(o *Options) { o.FirstUnready = firstUnreadyIs(392650) }); true {
		if v := srv.holdup(w.ctx); !v.Available || v.Known || v.Held != 0 {
			t.Errorf("holdup above every run: %+v", v)
		}
	}
}

func TestHoldFor(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Minute: "0 m", 59 * time.Second: "0 m", 45 * time.Minute: "45 m", 14*time.Hour + 20*time.Minute + 30*time.Second: "14 h 20 m",
		47*time.Hour + 59*time.Minute: "47 h 59 m", 74 * time.Hour: "3 d 2 h",
	} {
		if got := holdFor(d); got != want {
			t.Errorf("holdFor(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestAttentionPutsBlockedRunsFirst: "needs attention" lists the blocked runs first, then the others
// newest first; blocked runs have their own style and filter.
func TestAttentionPutsBlockedRunsFirst(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.seed()
	failed := pcl.WorkflowStatus{Name: "SiStripGains", State: pcl.StateUploadFailed, Required: true}
	w.decided(392640, worldNow.Add(-30*time.Hour), pcl.ReadinessBlocked, false, []string{"SiStripGains"}, failed)
	w.decided(392645, worldNow.Add(-30*time.Hour), pcl.ReadinessBlocked, false, []string{"SiStripGains"}, failed)
	hs, _ := w.serve(t, nil)
	for _, c := range []struct {
		query string
		want  []uint32
	}{
		// runFailed's upload failed: the reconcile makes it blocked too.
		{"attention=1", []uint32{runFailed, 392645, 392640, runHeld, runUploading, runTimedOut}},
		{"attention=1&limit=2", []uint32{runFailed, 392645, 392640, runHeld, runUploading}},
		{"attention=1&limit=2&before=392680", []uint32{runTimedOut}}, // the blocked runs were on page 1
		{"readiness=blocked", []uint32{runFailed, 392645, 392640}},
		{"attention=1&readiness=blocked", []uint32{runFailed, 392645, 392640}},
		{"", []uint32{runOngoing, runHeld, runUploading, runFailed, runReady, runReleased, runTimedOut, 392645, 392640}},
	} {
		_, page, _ := fetch(t, hs.URL+"/?"+c.query)
		if got := boardRuns(page); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("?%s: %v, want %v", c.query, got, c.want)
		}
	}
	_, page, _ := fetch(t, hs.URL+"/")
	if !strings.Contains(page, `<tr id="run-392640" data-run="392640" class="attention blocked">`) ||
		!strings.Contains(page, `<span class="badge rd-blocked" title="blocked v1`) || !strings.Contains(page, `href="/?readiness=blocked"`) {
		t.Error("a blocked run lacks its row style or badge, or the board its blocked filter")
	}
}

// TestRunPageSaysWhichTimesAreObserved: milestones the agency observed (rather than the source
// reported) are marked in the timeline and the table, with a key.
func TestRunPageSaysWhichTimesAreObserved(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.clk.Set(worldNow)
	ms := pcl.Milestones{Stop: worldNow.Add(-10 * time.Hour), ExpressDone: worldNow.Add(-9 * time.Hour), Harvested: worldNow.Add(-8 * time.Hour)}
	ms.Observed.Add(pcl.MilestoneExpressDone)
	w.decided(392640, worldNow.Add(-8*time.Hour), pcl.ReadinessWaiting, false, []string{"SiStripGains"},
		pcl.WorkflowStatus{Name: "SiStripGains", State: pcl.StateHarvested, Required: true, Milestones: ms})
	hs, _ := w.serve(t, nil)
	_, page, _ := fetch(t, hs.URL+"/runs/392640")
	for _, s := range []string{
		`class="ms ms-express-done observed"><title>SiStripGains express-done at 2025-05-29 03:00 UTC, observed by the agency`,
		`class="ms ms-harvested"><title>SiStripGains harvested at 2025-05-29 04:00 UTC, reported by the source`,
		`<li class="observed" title="observed by the agency: the source gives no time of its own`,
		`<span class="sr">(observed by the agency, not reported by the source)</span>`,
		`id="timeline-key"`,
		`1 of the times observed by the agency`,
	} {
		if !strings.Contains(page, s) {
			t.Errorf("run page lacks %q", s)
		}
	}
	if strings.Count(page, `<li class="observed"`) != 1 {
		t.Error("a reported time is marked observed")
	}
}

// changing is a header source whose answers a test changes.
type changing struct {
	mu      sync.Mutex
	first   uint32
	alerts  []Alert
	sources []pcl.SourceHealth
}

func (c *changing) firstUnready(context.Context) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first, nil
}

func (c *changing) Firing(context.Context) ([]Alert, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Alert(nil), c.alerts...), nil
}

func (c *changing) health() []pcl.SourceHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]pcl.SourceHealth(nil), c.sources...)
}

func (c *changing) set(f func(c *changing)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

// TestHeaderIsLive: the header's parts reach the page as state events, at once on connecting and then
// whenever one changes; the first unready run is read again when a decision changes.
func TestHeaderIsLive(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.seed()
	src := &changing{first: runFailed, sources: []pcl.SourceHealth{{Name: pcl.SourceOMS, Healthy: true, LastSuccess: worldNow}}}
	hs, _ := w.serve(t, func(o *Options) {
		o.FirstUnready, o.Alerts, o.Sources, o.HeaderEvery = firstUnreadyFunc(src.firstUnready), src, healthFunc(src.health), 50*time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := openStream(t, ctx, hs.URL, "")
	decode := func(e sseEvent, into any) {
		t.Helper()
		if e.id != "" {
			t.Errorf("state event %s has an id (%s): it would move the page's replay position", e.event, e.id)
		}
		if err := json.Unmarshal([]byte(e.data), into); err != nil {
			t.Fatalf("%s event %q: %v", e.event, e.data, err)
		}
	}
	var hv holdupView
	decode(next(t, stream, "first-unready", 5*time.Second), &hv)
	if hv.Run != runFailed || !hv.Known {
		t.Errorf("first-unready on connect: %+v", hv)
	}
	var av alertsView
	decode(next(t, stream, "alerts", 5*time.Second), &av)
	if !av.Configured || len(av.Alerts) != 0 {
		t.Errorf("alerts on connect: %+v", av)
	}

	// A source goes stale and an alert fires: both parts are sent again.
	src.set(func(c *changing) {
		c.sources[0] = pcl.SourceHealth{Name: pcl.SourceOMS, Stale: true, Failures: 10, LastSuccess: worldNow.Add(-3 * time.Hour), Error: "HTTP 503"}
		c.alerts = []Alert{{Name: "source-stale", Severity: "warning", Summary: "oms: no good answer for 10 polls", Since: worldNow.Add(-3 * time.Hour),
			Details: "last error: HTTP 503"}}
	})
	var chips []sourceChip
	decode(next(t, stream, "sources", 5*time.Second), &chips)
	if len(chips) != 1 || chips[0].Class != "src-stale" || chips[0].Word != "stale" || chips[0].Title != "HTTP 503" {
		t.Errorf("sources after the change: %+v", chips)
	}
	decode(next(t, stream, "alerts", 5*time.Second), &av)
	if len(av.Alerts) != 1 || av.Alerts[0].Line != "oms: no good answer for 10 polls since 09:00" || av.Alerts[0].Details != "last error: HTTP 503" {
		t.Errorf("alerts after the change: %+v", av)
	}

	// The held run is released by an operator: the decision changes, and the first unready run is read
	// again without waiting for the periodic refresh.
	src.set(func(c *changing) { c.first = runUploading })
	w.clk.Set(worldNow.Add(time.Minute))
	if _, err := w.ag.Override(w.ctx, runFailed, pcl.OverrideRelease, "", "calib-shifter", "SiPixelAli checked by hand"); err != nil {
		t.Fatal(err)
	}
	decode(next(t, stream, "first-unready", 5*time.Second), &hv)
	if hv.Run != runUploading || hv.Why != "waiting, SiStripGains uploading, SiPixelAli harvested" {
		t.Errorf("first-unready after the decision: %+v", hv)
	}

	// A page that reconnects gets the current header first, before anything else is sent.
	again := openStream(t, ctx, hs.URL, "")
	seen := map[string]bool{}
	for len(seen) < 3 {
		var e sseEvent
		select {
		case e = <-again:
		case <-time.After(5 * time.Second):
			t.Fatalf("the reconnected stream sent only %v of the header", seen)
		}
		switch e.event {
		case "first-unready":
			decode(e, &hv)
			if hv.Run != runUploading {
				t.Errorf("first-unready on reconnect: %+v", hv)
			}
		case "sources", "alerts":
		case "tick":
			continue
		default:
			t.Fatalf("a %s event before the header", e.event)
		}
		seen[e.event] = true
	}
}

// TestAlertLines: one line of plain words per alert, with since when known.
func TestAlertLines(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 5, 29, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		a    Alert
		want string
	}{
		{Alert{Name: "source-stale", Summary: "oms: no good answer for 10 polls", Since: now.Add(-8*time.Hour - 48*time.Minute)}, "oms: no good answer for 10 polls since 03:12"},
		{Alert{Name: "source-stale", Summary: "dqm: no good answer for 3 polls", Since: now.Add(-14 * time.Hour)}, "dqm: no good answer for 3 polls since May 28 22:00"},
		{Alert{Name: "x", Summary: "two\nlines"}, "two lines"},
		{Alert{Name: "nameless"}, "nameless"},
		{Alert{Name: "long", Summary: strings.Repeat("a", 300)}, strings.Repeat("a", 159) + "…"},
	} {
		if got := lineOf(c.a, now).Line; got != c.want {
			t.Errorf("%+v: %q, want %q", c.a, got, c.want)
		}
	}
}

// decisionReads counts the store's reads of decision histories.
type decisionReads struct {
	store.Store
	mu sync.Mutex
	n  int
}

func (d *decisionReads) Decisions(ctx context.Context, run uint32) ([]pcl.Decision, error) {
	d.mu.Lock()
	d.n++
	d.mu.Unlock()
	return d.Store.Decisions(ctx, run)
}

func (d *decisionReads) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// The header reads a held run's decision history once per newest decision: a page with nothing new
// reads none, and a new version of a held run is read again, so the held time follows it.
func TestHoldupRemembersWhenHeldRunsBecameReleasable(t *testing.T) {
	t.Parallel()
	w := queueWorld(t)
	reads := &decisionReads{Store: w.st}
	_, srv := w.serve(t, func(o *Options) {
		o.FirstUnready = firstUnreadyIs(392640)
		o.Store = reads
	})
	first := worldNow.Add(-14*time.Hour - 20*time.Minute)
	if v := srv.holdup(w.ctx); v.Held != 7 || v.HeldSince == nil || !v.HeldSince.Equal(first) {
		t.Fatalf("holdup %+v", v)
	}
	if n := reads.count(); n != 7 {
		t.Fatalf("the first header read %d decision histories, want the 7 held runs'", n)
	}
	if v := srv.holdup(w.ctx); reads.count() != 7 || v.HeldSince == nil || !v.HeldSince.Equal(first) {
		t.Fatalf("a header with nothing new read %d histories in all (want 7), held since %v", reads.count(), v.HeldSince)
	}
	// The longest-held run goes back to waiting and is ready again an hour ago: it has waited an hour,
	// and the next longest (392642, ready since 13 h 20 m) sets the time.
	w.decided(392641, worldNow.Add(-90*time.Minute), pcl.ReadinessWaiting, false, []string{"SiPixelAli"})
	w.decided(392641, worldNow.Add(-time.Hour), pcl.ReadinessReady, true, nil)
	v := srv.holdup(w.ctx)
	if want := worldNow.Add(-13*time.Hour - 20*time.Minute); v.HeldSince == nil || !v.HeldSince.Equal(want) {
		t.Fatalf("after run 392641's new versions: held since %v, want %v", v.HeldSince, want)
	}
	if n := reads.count(); n != 8 {
		t.Fatalf("after one held run changed the header read %d histories in all, want 8", n)
	}
}
