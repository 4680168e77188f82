package metrics

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

func parts() Parts {
	return Parts{
		Health: func() []pcl.SourceHealth {
			return []pcl.SourceHealth{
				{Name: pcl.SourceOMS, Healthy: true, LagSeconds: 12},
				{Name: pcl.SourceDQM, Stale: true, LagSeconds: 10800, Failures: 5, Error: "HTTP 503"},
			}
		},
		Counts: func() []SourceCount {
			return []SourceCount{{Source: pcl.SourceOMS, Polls: 40, Failed: 1, Observations: 321, LastPoll: 150 * time.Millisecond},
				{Source: pcl.SourceDQM, Polls: 9, Failed: 5}}
		},
		Runs: func(context.Context) ([]pcl.RunState, error) {
			return []pcl.RunState{
				{Run: 400001, Decision: pcl.Decision{State: pcl.ReadinessReady, Releasable: true},
					Workflows: []pcl.WorkflowStatus{{Name: "SiStripGains", State: pcl.StateInDB}, {Name: "SiPixelAli", State: pcl.StateInDB}}},
				{Run: 400002, Decision: pcl.Decision{State: pcl.ReadinessBlocked},
					Workflows: []pcl.WorkflowStatus{{Name: "SiStripGains", State: pcl.StateUploadFailed}, {Name: "SiPixelAli", State: pcl.StateInDB}}},
				{Run: 400003, Decision: pcl.Decision{State: pcl.ReadinessWaiting},
					Workflows: []pcl.WorkflowStatus{{Name: "SiStripGains", State: pcl.StateUploading}}},
			}, nil
		},
		FirstUnready: func(context.Context) (uint32, error) { return 400002, nil },
		Pending: func(_ context.Context, target string, limit int) ([]store.OutboxEntry, error) {
			if target == "t0-webhook" {
				return []store.OutboxEntry{{Created: now.Add(-90 * time.Second)}, {Created: now.Add(-30 * time.Second)}}, nil
			}
			return nil, nil
		},
		Targets: []string{"t0-webhook", "t0-sql"},
		Alerts: func() []store.Alert {
			return []store.Alert{{State: store.AlertFiring, Severity: "critical"}, {State: store.AlertPending, Severity: "warning"},
				{State: store.AlertFiring, Severity: "critical"}}
		},
		Now: func() time.Time { return now },
	}
}

// scrape serves the registry as Prometheus would scrape it and parses the text back.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the scraped text does not parse: %v", err)
	}
	return fams
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("%s not scraped", name)
	}
	for _, m := range f.Metric {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("%s%v not scraped", name, labels)
	return 0
}

func TestCollector(t *testing.T) {
	t.Parallel()
	c := NewCollector(parts())
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	fams := scrape(t, reg)
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"spyagency_source_healthy", []string{"source", "oms"}, 1},
		{"spyagency_source_healthy", []string{"source", "dqm"}, 0},
		{"spyagency_source_stale", []string{"source", "dqm"}, 1},
		{"spyagency_source_lag_seconds", []string{"source", "dqm"}, 10800},
		{"spyagency_source_consecutive_failures", []string{"source", "dqm"}, 5},
		{"spyagency_source_polls_total", []string{"source", "oms"}, 40},
		{"spyagency_source_poll_errors_total", []string{"source", "dqm"}, 5},
		{"spyagency_observations_ingested_total", []string{"source", "oms"}, 321},
		{"spyagency_source_last_poll_duration_seconds", []string{"source", "oms"}, 0.15},
		{"spyagency_runs", []string{"readiness", "ready"}, 1},
		{"spyagency_runs", []string{"readiness", "blocked"}, 1},
		{"spyagency_runs", []string{"readiness", "held"}, 0},
		{"spyagency_workflows", []string{"state", "in-db"}, 3},
		{"spyagency_workflows", []string{"state", "upload-failed"}, 1},
		{"spyagency_workflows", []string{"state", "pending"}, 0},
		{"spyagency_first_unready_run", nil, 400002},
		{"spyagency_outbox_pending", []string{"target", "t0-webhook"}, 2},
		{"spyagency_outbox_pending", []string{"target", "t0-sql"}, 0},
		{"spyagency_outbox_oldest_pending_seconds", []string{"target", "t0-webhook"}, 90},
		{"spyagency_alerts", []string{"state", "firing", "severity", "critical"}, 2},
		{"spyagency_alerts", []string{"state", "pending", "severity", "warning"}, 1},
		{"spyagency_alerts", []string{"state", "firing", "severity", "info"}, 0},
	}
	for _, c := range checks {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, "spyagency_") {
			t.Errorf("%s is not prefixed spyagency_", name)
		}
	}
	if _, ok := fams["spyagency_scrape_errors"]; ok {
		t.Error("scrape errors reported where every part answered")
	}
}

// TestCollectorPartFails: a part that cannot be read is reported as a scrape error of that part; the
// rest is still scraped.
func TestCollectorPartFails(t *testing.T) {
	t.Parallel()
	p := parts()
	p.Runs = func(context.Context) ([]pcl.RunState, error) { return nil, errors.New("store gone") }
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(p))
	fams := scrape(t, reg)
	if got := value(t, fams, "spyagency_scrape_errors", "part", "runs"); got != 1 {
		t.Errorf("scrape errors of runs = %v", got)
	}
	if _, ok := fams["spyagency_runs"]; ok {
		t.Error("runs scraped from a store that failed")
	}
	if got := value(t, fams, "spyagency_source_polls_total", "source", "oms"); got != 40 {
		t.Errorf("the other parts: polls = %v", got)
	}
}

func TestRequests(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	r, err := NewRequests(reg)
	if err != nil {
		t.Fatal(err)
	}
	r.ObserveRequest("GET /api/v1/runs", 200, 3*time.Millisecond)
	r.ObserveRequest("GET /api/v1/runs", 200, 4*time.Millisecond)
	r.ObserveRequest("GET /api/v1/runs/{run}", 404, time.Millisecond)
	if _, err := NewRequests(reg); err == nil {
		t.Error("registered twice on one registry")
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP spyagency_http_requests_total HTTP requests answered, by route pattern and status code.
# TYPE spyagency_http_requests_total counter
spyagency_http_requests_total{code="200",route="GET /api/v1/runs"} 2
spyagency_http_requests_total{code="404",route="GET /api/v1/runs/{run}"} 1
`
	if err := testutil.GatherAndCompare(reg, bytes.NewBufferString(want), "spyagency_http_requests_total"); err != nil {
		t.Error(err)
	}
	fams := scrape(t, reg)
	if h := fams["spyagency_http_request_duration_seconds"]; h == nil || h.Metric[0].Histogram.GetSampleCount() == 0 {
		t.Errorf("durations: %v", h)
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	e, err := NewEvents(reg)
	if err != nil {
		t.Fatal(err)
	}
	e.Detected(pcl.SourceHarvest, []pcl.Observation{
		{At: now, Seen: now.Add(90 * time.Second)}, {At: now, Seen: now.Add(30 * time.Second)}, {Seen: now}})
	e.Decided(pcl.RunState{Decision: pcl.Decision{State: pcl.ReadinessReady, Decided: now.Add(time.Hour)},
		Workflows: []pcl.WorkflowStatus{{Updated: now}, {Updated: now.Add(59 * time.Minute)}}})
	e.Decided(pcl.RunState{Decision: pcl.Decision{State: pcl.ReadinessBlocked, Decided: now}})
	e.Delivered(store.OutboxEntry{Target: "t0-webhook", Created: now}, now.Add(45*time.Second))
	e.Delivered(store.OutboxEntry{Target: "t0-webhook"}, now) // no creation time: not counted
	var nilEvents *Events
	nilEvents.Detected(pcl.SourceOMS, []pcl.Observation{{At: now, Seen: now}}) // a process without metrics
	nilEvents.Decided(pcl.RunState{})
	nilEvents.Delivered(store.OutboxEntry{Created: now}, now)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	fams := scrape(t, reg)
	det := fams["spyagency_detection_latency_seconds"].Metric[0].Histogram
	if det.GetSampleCount() != 2 || det.GetSampleSum() != 120 {
		t.Errorf("detection: %d samples, sum %v; want 2 and 120 (the one without a source time left out)", det.GetSampleCount(), det.GetSampleSum())
	}
	if got := value(t, fams, "spyagency_decisions_total", "readiness", "ready"); got != 1 {
		t.Errorf("ready decisions %v", got)
	}
	dec := fams["spyagency_decision_latency_seconds"].Metric[0].Histogram
	if dec.GetSampleCount() != 1 || dec.GetSampleSum() != 60 {
		t.Errorf("decision latency: %d samples, sum %v; want 1 of 60 s (from the newest workflow change)", dec.GetSampleCount(), dec.GetSampleSum())
	}
	del := fams["spyagency_delivery_latency_seconds"].Metric
	if len(del) != 1 || del[0].GetLabel()[0].GetValue() != "t0-webhook" || del[0].Histogram.GetSampleCount() != 1 || del[0].Histogram.GetSampleSum() != 45 {
		t.Errorf("delivery latency: %v; want one sample of 45 s for t0-webhook", del)
	}
}
