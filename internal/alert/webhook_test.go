package alert

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// hookReceiver is a webhook receiver as one written for Alertmanager would be: it reads the payload as
// plain JSON and checks its shape.
type hookReceiver struct {
	t        *testing.T
	mu       sync.Mutex
	payloads []map[string]any
	auth     []string
	status   int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" || r.Method != http.MethodPost {
		h.t.Errorf("webhook got %s with Content-Type %q", r.Method, ct)
	}
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		h.t.Errorf("webhook body is not JSON: %v: %s", err, body)
	}
	h.payloads = append(h.payloads, p)
	h.auth = append(h.auth, r.Header.Get("Authorization"))
	if h.status != 0 {
		w.WriteHeader(h.status)
		io.WriteString(w, "not now")
	}
}

// checkShape fails unless p is Alertmanager's webhook payload (version 4) with every field of the right
// JSON type, and returns its alerts.
func checkShape(t *testing.T, p map[string]any) []map[string]any {
	t.Helper()
	for key, kind := range map[string]string{"version": "string", "groupKey": "string", "truncatedAlerts": "number",
		"status": "string", "receiver": "string", "groupLabels": "object", "commonLabels": "object",
		"commonAnnotations": "object", "externalURL": "string", "alerts": "array"} {
		if got := jsonKind(p[key]); got != kind {
			t.Errorf("payload %s is %s, want %s", key, got, kind)
		}
	}
	if p["version"] != "4" {
		t.Errorf("payload version %v, want \"4\"", p["version"])
	}
	var out []map[string]any
	list, _ := p["alerts"].([]any)
	for _, x := range list {
		a, _ := x.(map[string]any)
		for key, kind := range map[string]string{"status": "string", "labels": "object", "annotations": "object",
			"startsAt": "string", "endsAt": "string", "generatorURL": "string", "fingerprint": "string"} {
			if got := jsonKind(a[key]); got != kind {
				t.Errorf("alert %s is %s, want %s", key, got, kind)
			}
		}
		for _, key := range []string{"startsAt", "endsAt"} {
			if _, err := time.Parse(time.RFC3339, a[key].(string)); err != nil {
				t.Errorf("alert %s %q is not RFC 3339", key, a[key])
			}
		}
		out = append(out, a)
	}
	return out
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case nil:
		return "missing"
	}
	return "other"
}

// TestWebhookPayload: an evaluator with a real webhook notifier posts Alertmanager's webhook payload,
// one post per group, with the bearer token; a firing alert's endsAt is the zero time and a resolved
// one's the resolution.
func TestWebhookPayload(t *testing.T) {
	t.Parallel()
	h := &hookReceiver{t: t}
	srv := httptest.NewServer(h)
	defer srv.Close()
	r := newRig(t, NamedNotifier{Name: "bridge", Kind: "webhook", RetryFor: time.Hour, Notifier: NewWebhook("bridge", srv.URL, "t0ken", time.Second)})
	r.cfg.Rules.UploadFailed.GroupBy = []string{"alertname", "run"}
	r.cfg.Labels = map[string]string{"team": "alca"}
	r.open()
	r.w.set(runState(testRun, pcl.ReadinessBlocked, t0, wf("SiStripGains", pcl.StateUploadFailed), wf("SiPixelAli", pcl.StateUploadFailed)))
	r.at(time.Hour)
	h.mu.Lock()
	if len(h.payloads) != 2 {
		h.mu.Unlock()
		t.Fatalf("%d posts, want one per group: run-blocked, upload-failed of the run", len(h.payloads))
	}
	p := h.payloads[1]
	alerts := checkShape(t, p)
	if p["receiver"] != "bridge" || p["status"] != "firing" || p["externalURL"] != "https://spyagency.example.cern.ch" ||
		p["groupKey"] != "upload-failed/run=400123" || len(alerts) != 2 || h.auth[1] != "Bearer t0ken" {
		t.Errorf("payload %v (auth %q)", p, h.auth[1])
	}
	if gl := p["groupLabels"].(map[string]any); gl["alertname"] != "upload-failed" || gl["run"] != "400123" {
		t.Errorf("group labels %v", gl)
	}
	if cl := p["commonLabels"].(map[string]any); cl["team"] != "alca" || cl["severity"] != "critical" || cl["workflow"] != nil {
		t.Errorf("common labels %v", cl)
	}
	a := alerts[0]
	ann := a["annotations"].(map[string]any)
	if a["endsAt"] != "0001-01-01T00:00:00Z" || !strings.HasPrefix(a["generatorURL"].(string), "https://spyagency.example.cern.ch/alerts#alert-") ||
		ann["runbook_url"] != "https://spyagency.example.cern.ch/alerts/runbook#upload-failed" || ann["run_url"] != "https://spyagency.example.cern.ch/runs/400123" ||
		!strings.Contains(ann["summary"].(string), "upload failed") {
		t.Errorf("alert %v", a)
	}
	h.mu.Unlock()

	r.w.set()
	r.at(2 * time.Hour)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.payloads) != 4 {
		t.Fatalf("%d posts after the resolution, want 4", len(h.payloads))
	}
	resolved := checkShape(t, h.payloads[3])
	if h.payloads[3]["status"] != "resolved" || len(resolved) != 2 || resolved[0]["endsAt"] != t0.Add(2*time.Hour).Format(time.RFC3339) {
		t.Errorf("resolution %v", h.payloads[3])
	}
}

// TestHTTPVerdicts: what an HTTP notifier retries and what it gives up.
func TestHTTPVerdicts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		retry  bool
		ok     bool
	}{{200, false, true}, {204, false, true}, {400, false, false}, {401, false, false}, {404, false, false},
		{408, true, false}, {429, true, false}, {500, true, false}, {503, true, false}} {
		h := &hookReceiver{t: t, status: tc.status}
		srv := httptest.NewServer(h)
		retry, err := NewWebhook("x", srv.URL, "", time.Second).Notify(context.Background(), Message{})
		srv.Close()
		if retry != tc.retry || (err == nil) != tc.ok {
			t.Errorf("HTTP %d: retry=%v err=%v, want retry=%v ok=%v", tc.status, retry, err, tc.retry, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "not now") {
			t.Errorf("HTTP %d: the receiver's words are not in the error %q", tc.status, err)
		}
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nobody listens there now
	if retry, err := NewAlertmanager("x", url, "", time.Second).Notify(context.Background(), Message{}); !retry || err == nil {
		t.Errorf("unreachable: retry=%v err=%v, want a failure worth retrying", retry, err)
	}
}

// TestWebhookTruncates: a huge group is cut, and the payload says how many were left out.
func TestWebhookTruncates(t *testing.T) {
	t.Parallel()
	m := Message{Receiver: "x"}
	for i := range maxWebhookAlerts + 7 {
		m.Alerts = append(m.Alerts, Notice{Status: "firing", Labels: map[string]string{"alertname": "at-risk", "n": string(rune('a' + i%26))}})
	}
	p := m.Payload()
	if len(p.Alerts) != maxWebhookAlerts || p.TruncatedAlerts != 7 || !slices.ContainsFunc(p.Alerts, func(a WebhookAlert) bool { return a.Status == "firing" }) {
		t.Fatalf("%d alerts, %d truncated", len(p.Alerts), p.TruncatedAlerts)
	}
	if p.CommonLabels["alertname"] != "at-risk" || p.CommonLabels["n"] != "" {
		t.Errorf("common labels %v", p.CommonLabels)
	}
}
