package web

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// book is an alert evaluator's read side and silences as a test sets them; it checks silences as
// little as the web may rely on (the evaluator's own checks are tested in internal/alert).
type book struct {
	mu       sync.Mutex
	active   []Alert
	history  []Alert
	silences []store.Silence
	expired  []string // "id by actor"
}

func (b *book) Active(context.Context) ([]Alert, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.active), nil
}

func (b *book) History(_ context.Context, limit int) ([]Alert, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.history[:min(limit, len(b.history))], nil
}

func (b *book) Notifiers() []NotifierStatus {
	return []NotifierStatus{{Name: "alca-shift", Kind: "email", Healthy: false, Failures: 3, LastError: "SMTP 451 " + hostileInfo}}
}

func (b *book) Runbook() []RunbookEntry {
	return []RunbookEntry{{Name: "upload-failed", Severity: "critical", Enabled: true, Meaning: "The upload failed.", Action: "Re-upload it."}}
}

func (b *book) Firing(ctx context.Context) ([]Alert, error) {
	all, _ := b.Active(ctx)
	return slices.DeleteFunc(all, func(a Alert) bool { return a.State != "firing" || len(a.SilencedBy) > 0 }), nil
}

func (b *book) List(_ context.Context, all bool) ([]store.Silence, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.silences), nil
}

func (b *book) Add(_ context.Context, s store.Silence) (store.Silence, error) {
	if s.Reason == "" || len(s.Matchers) == 0 {
		return store.Silence{}, apperr.Errorf(apperr.Invalid, "a silence needs matchers and a reason")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s.ID = int64(len(b.silences) + 1)
	b.silences = append(b.silences, s)
	return s, nil
}

func (b *book) Expire(_ context.Context, id int64, actor string) (store.Silence, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.silences {
		if s.ID == id {
			b.expired = append(b.expired, strings.Join([]string{s.Reason, actor}, " by "))
			return s, nil
		}
	}
	return store.Silence{}, apperr.Errorf(apperr.NotFound, "silence %d does not exist", id)
}

func sampleAlerts() []Alert {
	return []Alert{
		{ID: 1, Name: "upload-failed", Severity: "critical", State: "firing", Summary: "run 392675 SiPixelAli: upload failed " + hostileTag,
			Details: hostileInfo, Run: 392675, Workflow: "SiPixelAli", Since: worldNow.Add(-time.Hour), Fired: worldNow.Add(-time.Hour),
			Labels: map[string]string{"alertname": "upload-failed", "severity": "critical", "run": "392675", "workflow": "SiPixelAli"}, SilencedBy: []int64{}},
		{ID: 2, Name: "workflow-late", Severity: "warning", State: "pending", Summary: "run 392680 SiStripGains: not final 10 h after the run's stop",
			Run: 392680, Workflow: "SiStripGains", Labels: map[string]string{"alertname": "workflow-late", "run": "392680", "workflow": "SiStripGains"}},
		{ID: 3, Name: "source-stale", Severity: "warning", State: "firing", Summary: "dqm: stale", SilencedBy: []int64{7},
			Labels: map[string]string{"alertname": "source-stale", "source": "dqm"}},
	}
}

// TestAlertsAPI: GET /api/v1/alerts lists every alert not resolved with the fields of design.md, and
// ?state keeps one kind.
func TestAlertsAPI(t *testing.T) {
	t.Parallel()
	b := &book{active: sampleAlerts()}
	_, base := seeded(t, func(o *Options) { o.Alerts, o.AlertBook, o.Silences = b, b, b })
	var raw struct {
		Alerts     []map[string]any `json:"alerts"`
		Configured bool             `json:"configured"`
		Notifiers  []NotifierStatus `json:"notifiers"`
	}
	if code := get(t, base+"/api/v1/alerts", &raw); code != 200 || len(raw.Alerts) != 3 || !raw.Configured || len(raw.Notifiers) != 1 {
		t.Fatalf("alerts: %d %+v", code, raw)
	}
	for _, key := range []string{"name", "severity", "state", "labels", "summary", "since", "run", "workflow", "silenced_by"} {
		for _, a := range raw.Alerts {
			if _, ok := a[key]; !ok {
				t.Errorf("alert %v lacks %q", a["name"], key)
			}
		}
	}
	if a := raw.Alerts[0]; a["run"] != float64(392675) || a["workflow"] != "SiPixelAli" || a["state"] != "firing" {
		t.Errorf("first alert %v", a)
	}
	var firing struct{ Alerts []Alert }
	if code := get(t, base+"/api/v1/alerts?state=pending", &firing); code != 200 || len(firing.Alerts) != 1 || firing.Alerts[0].Name != "workflow-late" {
		t.Errorf("pending: %d %+v", code, firing)
	}
	var e map[string]string
	if code := get(t, base+"/api/v1/alerts?state=asleep", &e); code != 400 {
		t.Errorf("bad state: %d", code)
	}
}

// TestSilencesAPI: making and ending silences needs the operator role; the author is who acts, never
// what the body says; bodies are strict.
func TestSilencesAPI(t *testing.T) {
	t.Parallel()
	b := &book{}
	_, base := seeded(t, func(o *Options) { o.AlertBook, o.Silences, o.Operator = b, b, operatorLoopback })
	body := `{"matchers": [{"name": "alertname", "value": "workflow-late"}, {"name": "run", "op": "=~", "value": "3926.*"}], "reason": "Tier-0 replay", "duration": "2h"}`
	code, out := post(t, base+"/api/v1/silences", body)
	if code != 201 || out["author"] != "demo-operator" || out["id"] != float64(1) {
		t.Fatalf("add: %d %v", code, out)
	}
	b.mu.Lock()
	s := b.silences[0]
	b.mu.Unlock()
	if s.Matchers[0].Op != "=" || s.Matchers[1].Op != "=~" || !s.Ends.Equal(worldNow.Add(2*time.Hour)) {
		t.Errorf("silence %+v: want = by default and an end 2 h from now", s)
	}
	for name, bad := range map[string]string{
		"an author in the body": `{"matchers": [{"name": "run", "value": "1"}], "reason": "x", "duration": "1h", "author": "someone else"}`,
		"no end":                `{"matchers": [{"name": "run", "value": "1"}], "reason": "x"}`,
		"both ends":             `{"matchers": [{"name": "run", "value": "1"}], "reason": "x", "duration": "1h", "ends_at": "2025-05-29T14:00:00Z"}`,
		"bad duration":          `{"matchers": [{"name": "run", "value": "1"}], "reason": "x", "duration": "soon"}`,
		"no reason":             `{"matchers": [{"name": "run", "value": "1"}], "duration": "1h"}`,
	} {
		if code, out := post(t, base+"/api/v1/silences", bad); code != 400 {
			t.Errorf("%s: %d %v", name, code, out)
		}
	}
	var list struct{ Silences []store.Silence }
	if code := get(t, base+"/api/v1/silences", &list); code != 200 || len(list.Silences) != 1 {
		t.Errorf("list: %d %+v", code, list)
	}
	del := func(path string) int {
		req, _ := http.NewRequest(http.MethodDelete, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := del("/api/v1/silences/1"); code != 200 {
		t.Errorf("expire: %d", code)
	}
	if code := del("/api/v1/silences/99"); code != 404 {
		t.Errorf("expire an unknown silence: %d", code)
	}
	if code := del("/api/v1/silences/x"); code != 400 {
		t.Errorf("expire a bad id: %d", code)
	}
	if len(b.expired) != 1 || b.expired[0] != "Tier-0 replay by demo-operator" {
		t.Errorf("expired %v", b.expired)
	}

	// Without the operator role: refused, nothing made.
	_, closed := seeded(t, func(o *Options) {
		o.AlertBook, o.Silences = b, b
		o.Operator = operatorFunc(func(*http.Request) (string, error) {
			return "", apperr.Errorf(apperr.Unauthorized, "a token of the operate scope is needed")
		})
	})
	if code, _ := post(t, closed+"/api/v1/silences", body); code != 401 {
		t.Errorf("add without a token: %d", code)
	}
	_, none := seeded(t, func(o *Options) { o.AlertBook = b })
	if code, _ := post(t, none+"/api/v1/silences", body); code != 403 {
		t.Errorf("add where silences are not enabled: %d", code)
	}
}

// TestAlertsPage: the Alerts page shows firing, pending and silenced alerts apart, each with its run,
// workflow and runbook links, the notifiers' health and the history; nothing from a source becomes
// markup; an operator makes and ends silences from it, through the form checks of the run page.
func TestAlertsPage(t *testing.T) {
	t.Parallel()
	b := &book{active: sampleAlerts(), history: []Alert{{ID: 9, Name: "too-late", Severity: "warning", State: "resolved",
		Summary: "run 392600 SiStripGains: too late", Run: 392600, Fired: worldNow.Add(-30 * time.Hour), Resolved: worldNow.Add(-20 * time.Hour)}}}
	_, base := seeded(t, func(o *Options) { o.Alerts, o.AlertBook, o.Silences, o.Operator = b, b, b, operatorLoopback })
	code, page, _ := fetch(t, base+"/alerts")
	if code != 200 {
		t.Fatalf("alerts page: %d", code)
	}
	noHostileMarkup(t, "alerts page", page)
	section := func(id string) string {
		return regexp.MustCompile(`(?s)<table class="list[^"]*" id="` + id + `">.*?</table>`).FindString(page)
	}
	if s := section("firing"); !strings.Contains(s, `href="/runs/392675"`) || !strings.Contains(s, `href="/workflows/SiPixelAli"`) ||
		!strings.Contains(s, `href="/alerts/runbook#upload-failed"`) || strings.Contains(s, "source-stale") {
		t.Errorf("firing section: %s", s)
	}
	if s := section("pending"); !strings.Contains(s, "workflow-late") {
		t.Errorf("pending section: %s", s)
	}
	if s := section("muted"); !strings.Contains(s, "source-stale") || !strings.Contains(s, `href="#silence-7"`) {
		t.Errorf("silenced section: %s", s)
	}
	if s := section("history"); !strings.Contains(s, "too late") {
		t.Errorf("history: %s", s)
	}
	if s := section("notifiers"); !strings.Contains(s, "alca-shift") || !strings.Contains(s, "failing") {
		t.Errorf("notifiers: %s", s)
	}
	if !strings.Contains(page, `id="new-silence"`) || !strings.Contains(page, `name="matcher" value="alertname=upload-failed"><input type="hidden" name="matcher" value="run=&#34;392675&#34;"><input type="hidden" name="matcher" value="workflow=&#34;SiPixelAli&#34;">`) {
		t.Fatal("the page lacks the silence forms")
	}
	token := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page)[1]
	send := func(path, origin string, form url.Values) (int, string) {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Location")
	}
	form := url.Values{"token": {token}, "matchers": {"alertname=upload-failed\nrun=392675"}, "matcher": {`workflow=~"SiPixel.*"`}, "duration": {"3h"}, "reason": {"fix under way"}}
	if code, _ := send("/alerts/silences", "https://evil.example", form); code != 403 {
		t.Errorf("cross-site post: %d", code)
	}
	if code, _ := send("/alerts/silences", base, url.Values{"token": {"forged"}, "matchers": {"run=1"}, "duration": {"1h"}, "reason": {"x"}}); code != 403 {
		t.Errorf("forged token: %d", code)
	}
	if code, _ := send("/alerts/silences", base, url.Values{"token": {token}, "matchers": {"run"}, "duration": {"1h"}, "reason": {"x"}}); code != 400 {
		t.Errorf("bad matcher: %d", code)
	}
	code, loc := send("/alerts/silences", base, form)
	if code != 303 || loc != "/alerts?silenced=1#silences" {
		t.Fatalf("silence from the page: %d %q", code, loc)
	}
	b.mu.Lock()
	s := b.silences[0]
	b.mu.Unlock()
	want := []store.Matcher{{Name: "alertname", Op: "=", Value: "upload-failed"}, {Name: "run", Op: "=", Value: "392675"}, {Name: "workflow", Op: "=~", Value: "SiPixel.*"}}
	if !slices.Equal(s.Matchers, want) || s.Author != "demo-operator" || s.Reason != "fix under way" || !s.Ends.Equal(worldNow.Add(3*time.Hour)) {
		t.Errorf("silence %+v", s)
	}
	_, page, _ = fetch(t, base+loc)
	if !strings.Contains(page, "Silence 1 made.") || !strings.Contains(page, `id="silence-1"`) {
		t.Error("the page does not show the new silence")
	}
	if code, loc := send("/alerts/silences/1/expire", base, url.Values{"token": {token}}); code != 303 || !strings.HasPrefix(loc, "/alerts?expired=1") {
		t.Errorf("end a silence from the page: %d %q", code, loc)
	}
	if len(b.expired) != 1 {
		t.Errorf("expired %v", b.expired)
	}
	code, page, _ = fetch(t, base+"/alerts/runbook")
	if code != 200 || !strings.Contains(page, `id="upload-failed"`) || !strings.Contains(page, "Re-upload it.") {
		t.Errorf("runbook page: %d", code)
	}
}

// TestAlertsPageWithoutOperator: the page shows the alerts and says why there is no silence form.
func TestAlertsPageWithoutOperator(t *testing.T) {
	t.Parallel()
	b := &book{active: sampleAlerts()}
	_, base := seeded(t, func(o *Options) { o.AlertBook, o.Silences = b, b })
	_, page, _ := fetch(t, base+"/alerts")
	if strings.Contains(page, `id="new-silence"`) || strings.Contains(page, `class="silence-one"`) || !strings.Contains(page, "Silences need the operator role") {
		t.Error("a client without the operator role sees silence forms, or is not told why not")
	}
}

// TestAtRiskTimeLeft: a workflow flagged at-risk says until when, in the API and on the run page.
func TestAtRiskTimeLeft(t *testing.T) {
	t.Parallel()
	w, base := seeded(t, nil)
	rs, err := w.st.RunState(w.ctx, runFailed)
	if err != nil {
		t.Fatal(err)
	}
	lock := rs.Info.Stop.Add(47*time.Hour + 30*time.Minute)
	var v RunView
	if code := get(t, base+"/api/v1/runs/392675", &v); code != 200 {
		t.Fatalf("run: %d", code)
	}
	i := slices.IndexFunc(v.Workflows, func(x WorkflowView) bool { return x.Name == "SiPixelAli" })
	if i < 0 || v.Workflows[i].AtRiskUntil == nil || !v.Workflows[i].AtRiskUntil.Equal(lock) {
		t.Fatalf("SiPixelAli %+v, want at risk until %s", v.Workflows[i], lock)
	}
	for _, x := range v.Workflows {
		if x.AtRiskUntil != nil && !slices.Contains(x.Flags, "at-risk") {
			t.Errorf("%s has at_risk_until without the flag", x.Name)
		}
	}
	_, page, _ := fetch(t, base+"/runs/392675")
	if !strings.Contains(page, `class="bad at-risk-left">Tier-0 locks the run in `) {
		t.Error("the run page does not say how long is left before Tier-0's lock")
	}
}

// FuzzParseMatchers: the silence form's matcher text never panics the parser, and what it accepts has
// a label name and one of the four operators.
func FuzzParseMatchers(f *testing.F) {
	for _, s := range []string{"alertname=workflow-late\nrun=400123", `workflow=~"SiPixel.*"`, "source!~oms|dqm", "run!=1", "=x", "a", "a=\"unterminated", "\n\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ms, err := parseMatchers(text)
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Name == "" || !slices.Contains([]string{"=", "!=", "=~", "!~"}, m.Op) {
				t.Fatalf("accepted %+v from %q", m, text)
			}
		}
	})
}
