package web

import (
	"context"
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
