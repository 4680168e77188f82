package app

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// TestMetricsAndClusterServed: a running process is its own leader in /api/v1/cluster, and serves /metrics that Prometheus' linter accepts and its text
// parser reads back, with the spies' polls, the open runs by readiness, the outbox and the requests
// counted as they happened.
func TestMetricsAndClusterServed(t *testing.T) {
	t.Parallel()
	cfg := fullConfig(t, t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, err := New(ctx, Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	base := "http://" + a.Addr().String()
	stop := time.Now().Add(-time.Hour).UTC()
	if err := a.Agency.Ingest(ctx, pcl.SourceOMS, []pcl.Observation{
		{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 392680, At: stop, RunInfo: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: stop}},
		{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: 392680, At: stop, Stream: "Express", Producers: []string{"PromptCalibProdSiStripGains"}},
	}); err != nil {
		t.Fatal(err)
	}
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := http.Get(base + "/api/v1/runs"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err = parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("the scraped text does not parse: %v", err)
		}
		// Every metric is recorded a moment after the fact it counts: a request's after its response
		// was written, a store operation's when it returned, a decision's when the agency's event
		// reached the metrics. So the scrape is repeated until all are there, or the deadline says one
		// never came.
		missing := missingMetrics(fams)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s:\n%v\n%v", strings.Join(missing, ", "), fams["spyagency_runs"], fams["spyagency_decisions_total"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := gaugeOf(fams["spyagency_first_unready_run"]); got != 392680 {
		t.Errorf("first unready run %v, want 392680", got)
	}
	if got := gaugeOf(fams["spyagency_outbox_pending"], "target", "tier0-db"); got < 0 {
		t.Errorf("outbox pending %v", got)
	}
	resp, err := http.Get(base + "/api/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	var cl struct {
		Self, Leader string
		Epoch        int64
		Members      []string
	}
	json.NewDecoder(resp.Body).Decode(&cl)
	resp.Body.Close()
	if cl.Self == "" || cl.Leader != cl.Self || cl.Epoch != 1 || len(cl.Members) != 1 || cl.Members[0] != cl.Self {
		t.Errorf("cluster of a single process %+v: it is its own leader", cl)
	}
	problems, err := testutil.GatherAndLint(a.metrics.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "spyagency_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// missingMetrics names what the scrape fams lacks of what the test waits for: both spies polled, the
// waiting run, its decision counted and its save timed, and every family the process serves.
func missingMetrics(fams map[string]*dto.MetricFamily) []string {
	var missing []string
	if !polled(fams) {
		missing = append(missing, "both spies polled")
	}
	if gaugeOf(fams["spyagency_runs"], "readiness", "waiting") != 1 {
		missing = append(missing, "one waiting run")
	}
	if storeOps(fams, "save_decision") < 1 {
		missing = append(missing, "save_decision timed")
	}
	for _, name := range []string{"spyagency_source_healthy", "spyagency_source_lag_seconds", "spyagency_first_unready_run",
		"spyagency_outbox_pending", "spyagency_alerts", "spyagency_http_requests_total", "spyagency_workflows",
		"spyagency_decisions_total", "spyagency_store_operation_duration_seconds", "spyagency_late_observations_total", "go_goroutines",
		"process_resident_memory_bytes"} {
		if fams[name] == nil {
			missing = append(missing, name)
		}
	}
	return missing
}

// storeOps is how many times the store operation op was timed.
func storeOps(fams map[string]*dto.MetricFamily, op string) uint64 {
	f := fams["spyagency_store_operation_duration_seconds"]
	if f == nil {
		return 0
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == "op" && l.GetValue() == op {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

// polled: both configured spies polled at least once.
func polled(fams map[string]*dto.MetricFamily) bool {
	f := fams["spyagency_source_polls_total"]
	if f == nil || len(f.Metric) < 2 {
		return false
	}
	for _, m := range f.Metric {
		if m.Counter.GetValue() < 1 {
			return false
		}
	}
	return true
}

// gaugeOf is the value of the family's metric with the labels (a counter's too), -1 when absent.
func gaugeOf(f *dto.MetricFamily, labels ...string) float64 {
	if f == nil {
		return -1
	}
	for _, m := range f.Metric {
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		if m.Gauge != nil {
			return m.Gauge.GetValue()
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
	}
	return -1
}
