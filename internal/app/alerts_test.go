package app

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/web"
)

// TestAlertsThroughTheApp: the evaluator wired in a whole process: a failed upload fires on the next
// step, shows in the API and on the board's header, goes to the configured webhook once, is silenced by
// an operator over the API (audited), and a restart on the same store tells nobody again.
func TestAlertsThroughTheApp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var mu sync.Mutex
	var told []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Status string `json:"status"`
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		for _, a := range p.Alerts {
			told = append(told, p.Status+" "+a.Labels["alertname"])
		}
		mu.Unlock()
	}))
	defer hook.Close()
	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(dir, "spy.db")
	cfg.Alerts.Webhooks = []config.WebhookNotifier{{Name: "bridge", URL: hook.URL, Timeout: 5 * time.Second, RetryFor: time.Hour}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC))
	ctx := t.Context()
	open := func() (*App, string) {
		t.Helper()
		a, err := New(ctx, Options{Config: cfg, Clock: clk, Stepped: true, OpenLoopback: true})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(a.Handler)
		t.Cleanup(hs.Close)
		return a, hs.URL
	}
	a, base := open()
	const run = 392680
	stop := clk.Now().Add(-2 * time.Hour)
	start := stop.Add(-3 * time.Hour)
	file := "Run392680@SiStripApvGain_pcl@0b1d6e5a-1111-2222-3333-444455556666.db"
	if err := a.Agency.Ingest(ctx, pcl.SourceOMS, []pcl.Observation{
		{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: run, At: stop, Seen: stop, RunInfo: &pcl.RunInfo{Start: start, Stop: &stop, Class: "Collisions26", BField: 3.8, LastUpdate: stop}},
		{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: run, At: start, Seen: start, Stream: "Express", Producers: []string{"PromptCalibProdSiStripGains"}},
		{Source: pcl.SourceHarvest, Kind: pcl.KindHarvestFile, Run: run, At: stop.Add(time.Hour), Seen: stop.Add(time.Hour), Workflow: "SiStripGains",
			InputTag: "SiStripApvGain_pcl", File: file, Destinations: []string{"SiStripApvGain_PCL_v0_hlt", "SiStripApvGain_PCL_v0_prompt"},
			Payloads: []pcl.IOV{{Since: run, Payload: "2f1a7c3e5b9d0c4e6f8a1b2c3d4e5f6071829304"}}},
		{Source: pcl.SourceDropbox, Kind: pcl.KindUploadStatus, Run: run, At: stop.Add(70 * time.Minute), Seen: stop.Add(70 * time.Minute),
			InputTag: "SiStripApvGain_pcl", File: file, FileHash: "9f3c0d1e2a", Tag: "SiStripApvGain_PCL_v0_prompt", Status: pcl.UploadFail, Info: "could not write"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Step(ctx); err != nil {
		t.Fatal(err)
	}
	var got struct{ Alerts []web.Alert }
	resp, err := http.Get(base + "/api/v1/alerts?state=firing")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	i := slices.IndexFunc(got.Alerts, func(a web.Alert) bool { return a.Name == "upload-failed" })
	if i < 0 || got.Alerts[i].Run != run || got.Alerts[i].Workflow != "SiStripGains" || got.Alerts[i].Labels["severity"] != "critical" ||
		!strings.HasSuffix(got.Alerts[i].Runbook, "/alerts/runbook#upload-failed") {
		t.Fatalf("firing alerts %+v", got.Alerts)
	}
	resp, err = http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	board, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(board), "run 392680 SiStripGains: upload failed") {
		t.Error("the board's header does not show the alert")
	}
	mu.Lock()
	if !slices.Contains(told, "firing upload-failed") {
		t.Errorf("the webhook was told %v", told)
	}
	firstTold := len(told)
	mu.Unlock()

	body := `{"matchers": [{"name": "run", "value": "392680"}], "reason": "being re-uploaded", "duration": "4h"}`
	resp, err = http.Post(base+"/api/v1/silences", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var s store.Silence
	_ = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || s.ID == 0 || s.Author == "" {
		t.Fatalf("silence: %d %+v", resp.StatusCode, s)
	}
	clk.Advance(time.Minute)
	if err := a.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if firing := a.Alerts.Firing(); slices.ContainsFunc(firing, func(x store.Alert) bool { return x.Run == run }) {
		t.Errorf("the silenced run's alerts still notify: %+v", firing)
	}
	audit, err := a.Store.Audit(ctx, store.AuditQuery{Actor: s.Author})
	if err != nil || len(audit) != 1 || audit[0].Action != "silence" {
		t.Errorf("audit %+v (err %v)", audit, err)
	}
	a.Close()

	// A restart: the alerts are still there, and nobody is told again.
	a, _ = open()
	defer a.Close()
	clk.Advance(time.Minute)
	if err := a.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if active := a.Alerts.Active(); !slices.ContainsFunc(active, func(x store.Alert) bool { return x.Rule == "upload-failed" && x.State == store.AlertFiring }) {
		t.Errorf("after the restart: %+v", active)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(told) != firstTold {
		t.Errorf("told %v after the silence and the restart, want nothing more than %d", told, firstTold)
	}
}
