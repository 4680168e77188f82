package web

import (
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserAlertsPageSilence: on the Alerts page an operator unfolds one firing alert's silence form,
// gives a reason and submits; the browser comes back to the page with the silence listed under the
// operator's name and exactly the alert's labels as matchers, and "End now" ends it under the same name.
// Nothing on the page throws or opens a dialog, hostile alert texts included.
func TestBrowserAlertsPageSilence(t *testing.T) {
	bk := &book{active: sampleAlerts()}
	w := newWorld(t)
	w.seed()
	hs, _ := w.serve(t, func(o *Options) { o.Alerts, o.AlertBook, o.Silences, o.Operator = bk, bk, bk, operatorLoopback })
	b := newBrowser(t)
	b.open(hs.URL + "/alerts")
	if got := b.eval(`document.querySelectorAll('#firing tbody tr[id^="alert-"]').length + ' ' + document.querySelectorAll('#pending tbody tr[id^="alert-"]').length + ' ' + document.querySelectorAll('#muted tbody tr[id^="alert-"]').length`); got != "1 1 1" {
		t.Errorf("firing, pending, silenced rows: %s, want 1 1 1", got)
	}
	if got := b.eval(`document.querySelector('#alert-1 .reason-full').textContent`); !strings.Contains(got, "<script>alert(1)</script>") {
		t.Errorf("the hostile summary is not shown as text: %q", got)
	}
	b.do("unfold the silence form", chromedp.Click(chromedp.CSS(`#alert-1 details.silence-one summary`)))
	b.waitFor("the form", `document.querySelector('#alert-1 details.silence-one').open`)
	b.do("fill and submit",
		chromedp.SendKeys(chromedp.CSS(`#alert-1 input[name="reason"]`), "re-upload under way"),
		chromedp.Click(chromedp.CSS(`#alert-1 button[type="submit"]`)),
		chromedp.WaitReady(chromedp.CSS("#silences-table")))
	b.waitFor("the redirect", `location.search === '?silenced=1'`)
	row := b.eval(`document.querySelector('#silence-1') ? document.querySelector('#silence-1').innerText : ''`)
	for _, want := range []string{`alertname="upload-failed"`, `run="392675"`, `workflow="SiPixelAli"`, "demo-operator", "re-upload under way"} {
		if !strings.Contains(row, want) {
			t.Errorf("the silence row %q lacks %q", row, want)
		}
	}
	// The new-silence form's label reads as one line of text above its box, not one word per line.
	if got := b.eval(`(() => { const l = document.querySelector('#new-silence label span'); return l && l.getBoundingClientRect().height < 40 })()`); got != "true" {
		t.Errorf("the matchers' label is broken over several lines (its height %s px)", b.eval(`document.querySelector('#new-silence label').getBoundingClientRect().height`))
	}
	b.screenshot("alerts-silenced.png")
	b.eval(`window.before = 1`)
	b.do("end the silence", chromedp.Click(chromedp.CSS(`#silence-1 button[type="submit"]`)))
	b.waitFor("the page after the form", `window.before === undefined && document.readyState === 'complete'`)
	bk.mu.Lock()
	expired := slices.Clone(bk.expired)
	bk.mu.Unlock()
	if len(expired) != 1 || expired[0] != "re-upload under way by demo-operator" {
		t.Errorf("ended silences %q, want the one made, by demo-operator", expired)
	}
	b.clean()
}
