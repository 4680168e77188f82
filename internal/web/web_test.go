package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/agency"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

var t0 = time.Date(2025, 5, 29, 12, 0, 0, 0, time.UTC)

// newServer serves a store holding one stopped run whose express config is known.
func newServer(t *testing.T, operator Operators) (*httptest.Server, *agency.Agency) {
	t.Helper()
	ctx := t.Context()
	clk := clock.NewFake(t0.Add(time.Hour))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat := pcl.DefaultCatalogue()
	ag, err := agency.New(ctx, agency.Options{Store: st, Catalogue: cat, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	stop := t0
	obs := []pcl.Observation{
		{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 392680, At: t0, RunInfo: &pcl.RunInfo{Start: t0.Add(-2 * time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: t0}},
		{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: 392680, At: t0, Stream: "Express", Producers: []string{"PromptCalibProdSiStripGains"}},
		{Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: 392680, At: t0, InputTag: "SiStripApvGain_pcl",
			File: `Run392680@SiStripApvGain_pcl@"><img src=x onerror=alert(1)>.db`},
	}
	if err := ag.Ingest(ctx, pcl.SourceOMS, obs); err != nil {
		t.Fatal(err)
	}
	if err := ag.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Store: st, Catalogue: cat, Clock: clk, Overrider: ag, Operator: operator, MaxBody: 4096})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs, ag
}

func get(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, body)
		}
	}
	return resp.StatusCode
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestRunsAPI(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t, nil)
	var list struct{ Runs []RunView }
	if code := get(t, hs.URL+"/api/v1/runs?class=Collisions*&limit=5", &list); code != 200 || len(list.Runs) != 1 {
		t.Fatalf("list: %d %+v", code, list)
	}
	r := list.Runs[0]
	if r.Run != 392680 || r.Class != "Collisions25" || r.Stop == nil || r.Readiness.State != pcl.ReadinessWaiting ||
		r.Readiness.Version != 1 || len(r.Readiness.Blocking) != 1 || r.Readiness.Blocking[0] != "SiStripGains" {
		t.Errorf("run view %+v", r)
	}
	var one RunView
	if code := get(t, hs.URL+"/api/v1/runs/392680", &one); code != 200 || len(one.Decisions) != 1 || one.Milestones["SiStripGains"].Harvested.IsZero() {
		t.Errorf("run: %d %+v", code, one)
	}
	var e map[string]string
	if code := get(t, hs.URL+"/api/v1/runs/1", &e); code != 404 || e["code"] != "not_found" {
		t.Errorf("unknown run: %d %v", code, e)
	}
	if code := get(t, hs.URL+"/api/v1/runs/abc", &e); code != 400 || e["code"] != "invalid" {
		t.Errorf("bad run: %d %v", code, e)
	}
	if code := get(t, hs.URL+"/api/v1/runs?limit=-3", &e); code != 400 {
		t.Errorf("bad limit: %d", code)
	}
	if code := get(t, hs.URL+"/api/v1/runs?readiness=maybe", &e); code != 400 {
		t.Errorf("bad readiness: %d", code)
	}
	if code := get(t, hs.URL+"/api/v1/nothing", &e); code != 404 || e["error"] == "" {
		t.Errorf("unknown endpoint: %d %v", code, e)
	}
	var wf struct{ Workflows []pcl.Workflow }
	if code := get(t, hs.URL+"/api/v1/workflows", &wf); code != 200 || len(wf.Workflows) != 18 {
		t.Errorf("workflows: %d %d", code, len(wf.Workflows))
	}
	for _, p := range []string{"/healthz", "/readyz", "/api/v1/sources", "/api/v1/audit?run=392680"} {
		if code := get(t, hs.URL+p, nil); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
}

func TestOverrideAPI(t *testing.T) {
	t.Parallel()
	closed, _ := newServer(t, nil)
	if code, out := post(t, closed.URL+"/api/v1/runs/392680/override", `{"action":"hold","reason":"x"}`); code != 403 {
		t.Errorf("override without operator access: %d %v", code, out)
	}
	hs, _ := newServer(t, operatorFunc(func(*http.Request) (string, error) { return "shifter", nil }))
	cases := []struct {
		body string
		code int
	}{
		{`{"action":"hold","reason":"pixel alignment looks odd"}`, 200},
		{`{"action":"hold"}`, 400},                                              // no reason
		{`{"action":"nuke","reason":"x"}`, 400},                                 // unknown action
		{`{"action":"hold","reason":"x","extra":1}`, 400},                       // unknown field
		{`{"action":"accept","workflow":"Nope","reason":"x"}`, 400},             // unknown workflow
		{`{"action":"hold","reason":"` + strings.Repeat("a", 5000) + `"}`, 413}, // over the body limit: refused before it is read
		{`{"action":"hold","reason":"x"}{}`, 400},                               // two values
	}
	for _, c := range cases {
		if code, out := post(t, hs.URL+"/api/v1/runs/392680/override", c.body); code != c.code {
			t.Errorf("%.60s: %d %v, want %d", c.body, code, out, c.code)
		}
	}
	// What a cross-site page can send without preflight: refused, and nothing changes.
	resp, err := http.Post(hs.URL+"/api/v1/runs/392680/override", "text/plain", strings.NewReader(`{"action":"release","reason":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("a text/plain override: %d", resp.StatusCode)
	}
	var one RunView
	get(t, hs.URL+"/api/v1/runs/392680", &one)
	if one.Readiness.State != pcl.ReadinessHeld || !strings.Contains(one.Readiness.Reason, "shifter") {
		t.Errorf("after hold: %+v", one.Readiness)
	}
	var audit struct{ Entries []map[string]any }
	get(t, hs.URL+"/api/v1/audit?actor=shifter", &audit)
	if len(audit.Entries) != 1 {
		t.Errorf("audit by actor: %+v", audit)
	}
}

func TestPageEscapesSourceStrings(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t, nil)
	resp, err := http.Get(hs.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	if resp.StatusCode != 200 || !strings.Contains(page, "392680") {
		t.Fatalf("page: %d", resp.StatusCode)
	}
	if strings.Contains(page, "<img src=x") {
		t.Error("a file name from the harvest area reached the page unescaped")
	}
}

func TestOutboxAPI(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := clock.NewFake(t0.Add(time.Hour))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ag, err := agency.New(ctx, agency.Options{Store: st, Catalogue: pcl.DefaultCatalogue(), Clock: clk, Targets: []string{"tier0"}})
	if err != nil {
		t.Fatal(err)
	}
	stop := t0
	if err := ag.Ingest(ctx, pcl.SourceOMS, []pcl.Observation{{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 392680, At: t0,
		RunInfo: &pcl.RunInfo{Start: t0.Add(-time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: t0}}}); err != nil {
		t.Fatal(err)
	}
	if err := ag.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	pending, err := st.PendingOutbox(ctx, "tier0", clk.Now(), 10)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending %v %v", pending, err)
	}
	if err := st.MarkFailed(ctx, pending[0].ID, clk.Now(), clk.Now(), "HTTP 422: unknown run", true); err != nil {
		t.Fatal(err)
	}
	srv, _ := New(Options{Store: st, Catalogue: pcl.DefaultCatalogue(), Clock: clk})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	var out struct{ Entries []map[string]any }
	if code := get(t, hs.URL+"/api/v1/outbox?dead=1", &out); code != 200 || len(out.Entries) != 1 ||
		out.Entries[0]["dead"] != true || out.Entries[0]["last_error"] != "HTTP 422: unknown run" {
		t.Errorf("dead letters: %d %+v", code, out)
	}
	if code := get(t, hs.URL+"/api/v1/outbox?limit=x", nil); code != 400 {
		t.Errorf("bad limit: %d", code)
	}
}
