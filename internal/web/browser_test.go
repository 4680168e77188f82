package web

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// The browser tests drive Debian's Chromium with chromedp against a real server over a real SQLite
// store. They run one browser at a time (no t.Parallel) to spare the machine's two cores.

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SPYAGENCY_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Skip("browser tests skipped: no Chromium found (install Debian's chromium, or set SPYAGENCY_CHROMIUM to the binary)")
	return ""
}

// browser is one headless Chromium with a fresh profile, and what its page did that it should not.
type browser struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	dialogs []string
	errors  []string
	shots   []string // directories screenshots go to
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // starts the browser; its life is ctx's, not a timeout's
		t.Fatalf("start Chromium %s: %v", exe, err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *cdppage.EventJavascriptDialogOpening:
			b.dialogs = append(b.dialogs, string(e.Type)+": "+e.Message)
		case *runtime.EventExceptionThrown:
			b.errors = append(b.errors, e.ExceptionDetails.Text)
		}
	}); err != nil {
		t.Fatal(err)
	}
	art, err := os.MkdirTemp("", "spyagency-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", art)
	b.shots = []string{art}
	if dir := os.Getenv("SPYAGENCY_SCREENSHOTS"); dir != "" {
		b.shots = append(b.shots, dir)
	}
	return b
}

// do runs steps with a deadline.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// open navigates and waits for the page's main element.
func (b *browser) open(url string) {
	b.t.Helper()
	b.do("open "+url, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("main")))
}

func (b *browser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(`+expr+`)`))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it is true.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	for deadline := time.Now().Add(15 * time.Second); b.eval(`!!(`+expr+`)`) != "true"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.t.Fatalf("waited 15 s for %s (%s)", what, expr)
		}
	}
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	for _, dir := range b.shots {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// clean fails if the page opened a dialog or threw.
func (b *browser) clean() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.dialogs) > 0 {
		b.t.Errorf("the page opened dialogs: %q", b.dialogs)
	}
	if len(b.errors) > 0 {
		b.t.Errorf("the page threw: %q", b.errors)
	}
}

func cellClass(run uint32, wf string) string {
	return fmt.Sprintf(`document.querySelector('#run-%d td[data-wf="%s"]').className`, run, wf)
}

func TestBrowserBoardLiveRunPageAndFilter(t *testing.T) {
	w := newWorld(t)
	w.seed()
	hs, _ := w.serve(t, func(o *Options) {
		o.Operator = operatorLoopback
		o.Banner = "Demo: operator actions are open to loopback clients."
	})
	b := newBrowser(t)
	b.do("viewport", chromedp.EmulateViewport(1280, 800))

	// The board, live.
	b.open(hs.URL + "/")
	b.waitFor("the live stream", `document.getElementById('live').textContent.includes('connected')`)
	if got := b.eval(`Array.from(document.querySelectorAll('#board tbody tr')).map(r => r.dataset.run).join(',')`); got != "392690,392685,392680,392675,392670,392660,392650" {
		t.Fatalf("board rows %s", got)
	}
	if c := b.eval(cellClass(runUploading, "SiPixelAli")); !strings.Contains(c, "st-harvested") {
		t.Fatalf("SiPixelAli of %d before: %s", runUploading, c)
	}
	b.screenshot("board.png")

	// Tier-0 sends SiPixelAli's file to the dropBox: the cell changes without a reload.
	b.eval(`window.notReloaded = 1`)
	w.at(time.Minute, w.flow(runUploading, "SiPixelAli", worldNow.Add(-8*time.Hour), pcl.StateUploading)[1])
	b.waitFor("the cell to turn uploading", cellClass(runUploading, "SiPixelAli")+`.includes('st-uploading')`)
	if got := b.eval(`document.querySelector('#run-392680 td[data-wf="SiPixelAli"] .sr').textContent + '|' + document.querySelector('#run-392680 td[data-wf="SiPixelAli"]').title`); !strings.HasPrefix(got, "uploading,") || !strings.Contains(got, "|SiPixelAli: uploading,") {
		t.Errorf("cell label and title after the change: %q", got)
	}
	// A new run appears at the top, in the page's column order.
	w.at(2*time.Minute, runObs(392695, "Collisions25", worldNow, nil))
	b.waitFor("the new run's row", `document.querySelector('#board tbody tr').dataset.run === '392695'`)
	if got := b.eval(`document.querySelectorAll('#run-392695 td[data-wf]').length === document.querySelectorAll('#board thead th[data-wf]').length`); got != "true" {
		t.Error("the inserted row's cells do not match the columns")
	}
	if b.eval(`window.notReloaded`) != "1" {
		t.Error("the page reloaded instead of updating in place")
	}

	// Follow the run to its page: the timeline, and hostile strings as text.
	b.do("follow the run", chromedp.Click(chromedp.CSS(`#run-392680 th a`)), chromedp.WaitVisible(chromedp.CSS(`svg#timeline`)))
	if got := b.eval(`location.pathname`); got != "/runs/392680" {
		t.Fatalf("followed to %s", got)
	}
	if n := b.eval(`document.querySelectorAll('svg#timeline circle').length`); n == "0" {
		t.Error("the timeline has no milestone")
	}
	if got := b.eval(`Array.from(document.querySelectorAll('a')).some(a => a.textContent === '<script>alert(1)</script>')`); got != "true" {
		t.Error("the hostile tag name is not shown as text")
	}
	if got := b.eval(`document.scripts.length + ',' + document.querySelectorAll('img').length`); got != "1,0" {
		t.Errorf("scripts,images on the run page: %s (want only app.js, no image)", got)
	}
	b.screenshot("run.png")
	b.open(hs.URL + "/runs/392675")
	if got := b.eval(`document.getElementById('uploads').textContent.includes('"><img src=x onerror=alert(1)>')`); got != "true" {
		t.Error("the hostile upload info is not shown as text")
	}
	if got := b.eval(`document.querySelectorAll('img').length`); got != "0" {
		t.Error("the hostile upload info made an image element")
	}

	// Apply a filter with the form.
	b.open(hs.URL + "/")
	b.do("filter on held runs", chromedp.SetValue(chromedp.CSS(`#f-readiness`), "held"),
		chromedp.Click(chromedp.CSS(`form.filters button`)), chromedp.WaitReady(chromedp.CSS(`#board`)))
	b.waitFor("the filtered board", `location.search.includes('readiness=held')`)
	if got := b.eval(`Array.from(document.querySelectorAll('#board tbody tr')).map(r => r.dataset.run).join(',')`); got != "392685" {
		t.Errorf("held runs on the filtered board: %s", got)
	}

	// On a phone the page does not overflow sideways: only the board scrolls.
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulatePortrait))
	b.open(hs.URL + "/")
	if got := b.eval(`document.documentElement.scrollWidth <= window.innerWidth + 1`); got != "true" {
		t.Errorf("the board page overflows a phone's width: %s px", b.eval(`document.documentElement.scrollWidth`))
	}
	b.screenshot("board-phone.png")
	b.clean()
}

func TestBrowserOperatorHoldFromThePage(t *testing.T) {
	w := newWorld(t)
	w.seed()
	hs, _ := w.serve(t, func(o *Options) { o.Operator = operatorLoopback })
	b := newBrowser(t)
	b.open(hs.URL + "/runs/392670")
	b.do("fill the form", chromedp.SetValue(chromedp.CSS(`#act-action`), "hold"),
		chromedp.SendKeys(chromedp.CSS(`#act-reason`), "alignment looks odd "+hostileTag),
		chromedp.Click(chromedp.CSS(`#act-form button`)), chromedp.WaitVisible(chromedp.CSS(`#confirm`)))
	b.do("confirm", chromedp.Click(chromedp.CSS(`#confirm`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if got := b.eval(`document.querySelector('h1 .badge').textContent.trim()`); !strings.HasSuffix(got, "held") {
		t.Errorf("readiness after the hold: %q", got)
	}
	rs, err := w.st.RunState(w.ctx, runReady)
	if err != nil || rs.Decision.State != pcl.ReadinessHeld {
		t.Errorf("stored readiness after the hold: %+v %v", rs.Decision, err)
	}
	b.clean()
}

// manyAlerts are n firing alerts as the rules would word them.
func manyAlerts(n int) []Alert {
	var out []Alert
	for i := range n {
		out = append(out, Alert{Name: "push-undeliverable", Severity: "critical", Run: uint32(392600 + i), Since: worldNow.Add(-time.Duration(i) * time.Minute),
			Summary: fmt.Sprintf("tier0-webhook: decision v2 of run %d undeliverable", 392600+i),
			Details: "given up after 100 attempt(s); last error: webhook tier0-webhook: POST https://cmsweb.cern.ch/t0/spyagency/decisions: 503 Service Unavailable " + hostileInfo})
	}
	return out
}

// TestBrowserHeaderLiveAndAlertsFold: the header's first unready run, sources and alerts change on the
// page without a reload; 30 alerts fold into one line each and leave the run board on the first screen
// of a shift-room screen (1400×1000) and of a phone (390×844).
func TestBrowserHeaderLiveAndAlertsFold(t *testing.T) {
	w := queueWorld(t)
	src := &changing{first: 392640, alerts: manyAlerts(30)}
	for _, s := range pcl.Sources {
		src.sources = append(src.sources, pcl.SourceHealth{Name: s, Healthy: true, LastSuccess: worldNow.Add(-time.Minute)})
	}
	hs, srv := w.serve(t, func(o *Options) {
		o.FirstUnready, o.Alerts, o.Sources, o.HeaderEvery = firstUnreadyFunc(src.firstUnready), src, healthFunc(src.health), 100*time.Millisecond
		o.Banner = "Demo: operator actions are open to loopback clients."
	})
	b := newBrowser(t)
	onFirstScreen := func(where string) {
		t.Helper()
		t.Logf("%s: the board's first row ends at %s px of %s", where, b.eval(`document.querySelector('#board tbody tr').getBoundingClientRect().bottom`), b.eval(`window.innerHeight`))
		if got := b.eval(`document.querySelector('#board tbody tr').getBoundingClientRect().bottom <= window.innerHeight`); got != "true" {
			t.Errorf("%s: the run board's first row is below the first screen (its bottom at %s px of %s)", where,
				b.eval(`document.querySelector('#board tbody tr').getBoundingClientRect().bottom`), b.eval(`window.innerHeight`))
		}
		if got := b.eval(`document.documentElement.scrollWidth <= window.innerWidth + 1`); got != "true" {
			t.Errorf("%s: the page overflows sideways", where)
		}
	}
	for _, vp := range []struct {
		name          string
		width, height int64
		opts          []chromedp.EmulateViewportOption
	}{
		{"screen", 1400, 1000, nil},
		{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulatePortrait}},
	} {
		b.do("viewport", chromedp.EmulateViewport(vp.width, vp.height, vp.opts...))
		b.open(hs.URL + "/")
		b.waitFor("the live stream", `document.getElementById('live').textContent.includes('connected')`)
		if got := b.eval(`document.querySelectorAll('#alerts li').length + ' ' + document.querySelector('#alerts .count').textContent`); got != "30 30" {
			t.Errorf("%s: alerts shown and counted: %s", vp.name, got)
		}
		onFirstScreen(vp.name + " with 30 alerts")
		// Unfolding one alert shows its details and still leaves the board on the first screen.
		b.do("unfold an alert", chromedp.Click(chromedp.CSS(`#alerts li:first-child summary`)))
		b.waitFor("the details", `document.querySelector('#alerts li:first-child details').open`)
		if got := b.eval(`document.querySelector('#alerts li:first-child details p').textContent`); !strings.Contains(got, `503 Service Unavailable "><img src=x`) {
			t.Errorf("%s: the unfolded details read %q", vp.name, got)
		}
		onFirstScreen(vp.name + " with an alert unfolded")
		b.screenshot("board-alerts-" + vp.name + ".png")
	}
	if got := b.eval(`document.querySelector('#first-unready .holdup').textContent`); got != "run 392640 holds 7 newer runs for 14 h 20 m: blocked, SiStripGains upload-failed" {
		t.Errorf("first unready run: %q", got)
	}

	// Everything in the header changes while the page stays open.
	b.eval(`window.notReloaded = 1`)
	src.set(func(c *changing) {
		c.alerts = c.alerts[:2]
		c.sources[1] = pcl.SourceHealth{Name: c.sources[1].Name, Stale: true, Failures: 10, Error: "no answer"}
		c.first = 392648
	})
	b.waitFor("the alerts to shrink", `document.querySelector('#alerts .count').textContent === '2'`)
	if got := b.eval(`document.querySelectorAll('#alerts li').length + ' ' + document.querySelector('#alerts li:first-child details').open`); got != "2 true" {
		t.Errorf("after the change: %s alerts, the unfolded one open: want 2 true", got)
	}
	b.waitFor("the stale source", `document.querySelector('#sources li.src-stale') !== null`)
	if got := b.eval(`document.querySelector('#sources li.src-stale').title + '|' + document.querySelector('#sources li.src-stale .sr').textContent`); got != "no answer|stale" {
		t.Errorf("stale source: %q", got)
	}
	// The first unready run is read again after a decision (or at the periodic refresh).
	w.decided(392648, worldNow.Add(time.Minute), pcl.ReadinessWaiting, false, []string{"SiPixelAli", "SiStripGains"})
	w.ag.Ingest(w.ctx, pcl.SourceOMS, []pcl.Observation{runObs(392650, "Collisions25", worldNow, nil)}) // a run event, to wake the header
	w.ag.Pass(w.ctx)
	b.waitFor("the new first unready run", `document.querySelector('#first-unready .big a').textContent === '392648'`)
	if got := b.eval(`document.querySelector('#first-unready .holdup').textContent`); got != "run 392648 holds no newer run: waiting, SiPixelAli, SiStripGains" {
		t.Errorf("first unready run after the change: %q", got)
	}
	src.set(func(c *changing) { c.alerts = nil })
	b.waitFor("no alert", `document.querySelector('#alerts .ok') !== null && document.querySelector('#alerts .count').textContent === '0'`)
	if b.eval(`window.notReloaded`) != "1" {
		t.Error("the page reloaded instead of updating its header in place")
	}

	// "Needs attention" keeps blocked runs first as they change live: a run that becomes blocked moves up
	// into them, a new waiting run goes below them. (This branch's reconcile makes no blocked run, so
	// the events are sent as the agency's would be.)
	b.open(hs.URL + "/?attention=1")
	b.waitFor("the live stream", `document.getElementById('live').textContent.includes('connected')`)
	rows := `Array.from(document.querySelectorAll('#board tbody tr')).map(r => r.dataset.run + (r.classList.contains('blocked') ? 'b' : '')).join(',')`
	if got := b.eval(rows); got != "392640b,392648" {
		t.Fatalf("attention rows: %s", got)
	}
	live := func(run uint32, rd pcl.Readiness) {
		st := pcl.RunState{Run: run, Class: "Collisions25", Decision: pcl.Decision{Run: run, State: rd, Version: 3, Reason: string(rd) + " (test)", Blocking: []string{"SiPixelAli"}}}
		body, err := json.Marshal(liveRowOf(pcl.RunEvent{Run: run, DecisionChanged: true, State: st}, w.clk.Now()))
		if err != nil {
			t.Fatal(err)
		}
		srv.hub.broadcast("run", body)
	}
	live(392648, pcl.ReadinessBlocked)
	b.waitFor("the blocked run to move up", rows+` === '392648b,392640b'`)
	live(392650, pcl.ReadinessWaiting)
	b.waitFor("the new run below the blocked ones", rows+` === '392648b,392640b,392650'`)
	b.clean()
}
