package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/cms-pcl/spyagency/internal/web/openapi"
)

// documented says whether a registered pattern belongs in the OpenAPI document: the JSON API, Tier-0's
// pull, the event stream and the health checks; not the HTML pages, the login's redirects or the
// static files.
func documented(pattern string) (openapi.Operation, bool) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		return openapi.Operation{}, false // "/api/": the JSON 404 of every unknown endpoint
	}
	if strings.HasPrefix(path, "/api/v1/") || strings.HasPrefix(path, "/t0/") || slices.Contains([]string{"/events", "/healthz", "/readyz", "/metrics"}, path) {
		return openapi.Operation{Method: method, Path: path}, true
	}
	return openapi.Operation{}, false
}

// TestOpenAPICoversTheRoutes: every route of the API the server registers is in the document, and every
// operation of the document is a registered route.
func TestOpenAPICoversTheRoutes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, srv := w.serve(t, func(o *Options) { o.Pull = pullStub{} })
	var registered []string
	for _, p := range srv.mux.patterns {
		if op, ok := documented(p); ok {
			registered = append(registered, op.String())
		}
	}
	ops, err := openapi.Operations()
	if err != nil {
		t.Fatal(err)
	}
	var inDoc []string
	for _, op := range ops {
		inDoc = append(inDoc, op.String())
	}
	for _, r := range registered {
		if !slices.Contains(inDoc, r) {
			t.Errorf("%s is served and not in internal/web/openapi/openapi.json", r)
		}
	}
	for _, d := range inDoc {
		if !slices.Contains(registered, d) {
			t.Errorf("%s is in openapi.json and not served", d)
		}
	}
	if len(registered) < 20 {
		t.Fatalf("only %d API routes found: %v", len(registered), registered)
	}
}

// TestOpenAPIDescribesTheReplies: the server's live replies, over the seeded world with alerts and
// silences, match the document's schemas field by field (no field undocumented, none missing, types
// and enumerations as written), errors included.
func TestOpenAPIDescribesTheReplies(t *testing.T) {
	t.Parallel()
	b := &book{active: sampleAlerts(), history: sampleAlerts()[:1]}
	_, base := seeded(t, func(o *Options) {
		o.Alerts, o.AlertBook, o.Silences, o.Operator, o.Pull = b, b, b, operatorLoopback, pullStub{}
		o.Cluster = clusterFunc(func(context.Context) (Cluster, error) {
			return Cluster{Self: "spyagency-0", Leader: "spyagency-0", Epoch: 1, Members: []string{"spyagency-0"}}, nil
		})
	})
	call := func(method, op, path, body string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if err := openapi.Validate(openapi.Operation{Method: method, Path: op}, resp.StatusCode, raw); err != nil {
			t.Errorf("%s %s (%d): %v\n%s", method, path, resp.StatusCode, err, raw)
		}
	}
	call("GET", "/api/v1/runs", "/api/v1/runs", "")
	call("GET", "/api/v1/runs", "/api/v1/runs?readiness=nonsense", "")
	for _, run := range []uint32{runTimedOut, runReleased, runReady, runFailed, runUploading, runHeld, runOngoing, 1} {
		call("GET", "/api/v1/runs/{run}", fmt.Sprintf("/api/v1/runs/%d", run), "")
	}
	call("POST", "/api/v1/runs/{run}/override", fmt.Sprintf("/api/v1/runs/%d/override", runUploading), `{"action": "hold", "reason": "checking the tag"}`)
	call("POST", "/api/v1/runs/{run}/override", fmt.Sprintf("/api/v1/runs/%d/override", runUploading), `{"action": "hold"}`)
	for _, p := range []string{"/api/v1/workflows", "/api/v1/sources", "/api/v1/audit", "/api/v1/outbox", "/api/v1/version",
		"/api/v1/whoami", "/api/v1/alerts", "/api/v1/alerts/history", "/api/v1/silences", "/api/v1/openapi.json", "/api/v1/cluster",
		"/t0/v1/first_unready_run", "/t0/v1/ready_runs", "/healthz", "/readyz"} {
		call("GET", p, p, "")
	}
	call("GET", "/api/v1/audit", "/api/v1/audit?from=yesterday", "")
	call("POST", "/api/v1/silences", "/api/v1/silences", `{"matchers": [{"name": "alertname", "value": "workflow-late"}], "reason": "replay", "duration": "2h"}`)
	call("GET", "/api/v1/silences", "/api/v1/silences?all=1", "")
	call("DELETE", "/api/v1/silences/{id}", "/api/v1/silences/1", "")
	call("DELETE", "/api/v1/silences/{id}", "/api/v1/silences/999", "")
	call("GET", "/api/v1/tokens", "/api/v1/tokens", "") // 403 without an admin's login: an error reply
}

type clusterFunc func(context.Context) (Cluster, error)

func (f clusterFunc) Cluster(ctx context.Context) (Cluster, error) { return f(ctx) }
