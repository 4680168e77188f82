package steer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

type sourceFunc func(ctx context.Context, upTo uint32) ([]pcl.RunState, error)

// Snapshot gives every state f returns: a release view may hold more than the open work.
func (f sourceFunc) Snapshot(ctx context.Context, _, upTo uint32) (store.ReleaseView, error) {
	states, err := f(ctx, upTo)
	return store.ReleaseView{Runs: states}, err
}

func get(t *testing.T, h http.HandlerFunc, method, target string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(method, target, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body), rec.Result().Header
}

func TestPullHandlersEnvelope(t *testing.T) {
	t.Parallel()
	var asked []uint32
	src := sourceFunc(func(_ context.Context, upTo uint32) ([]pcl.RunState, error) {
		asked = append(asked, upTo)
		return []pcl.RunState{ready(100), waiting(101), ready(102)}, nil
	})
	readyRuns, first := PullHandlers(src, testPolicy())

	code, body, h := get(t, first, http.MethodGet, "/t0/v1/first_unready_run")
	if code != 200 || body != "{\"result\": [\n 101\n]}\n" {
		t.Errorf("first_unready_run: %d %q, want Tier-0's layout with [101]", code, body)
	}
	if h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: %v", h)
	}

	code, body, _ = get(t, readyRuns, http.MethodGet, "/t0/v1/ready_runs?from=100&to=102")
	if code != 200 {
		t.Fatalf("ready_runs: %d %s", code, body)
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) != 5 || lines[0] != `{"result": [` || !strings.HasPrefix(lines[1], " {") ||
		!strings.HasPrefix(lines[2], ",{") || !strings.HasPrefix(lines[3], ",{") || lines[4] != "]}" {
		t.Errorf("ready_runs is not in Tier-0's one-element-per-line layout:\n%s", body)
	}
	var env struct {
		Result []map[string]any `json:"result"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("ready_runs is not JSON: %v", err)
	}
	if len(env.Result) != 3 {
		t.Fatalf("ready_runs: %d elements, want 3", len(env.Result))
	}
	want := []map[string]any{
		{"run": 100.0, "ready": true, "state": "ready", "version": 1.0},
		{"run": 101.0, "ready": false, "state": "waiting", "version": 1.0},
		{"run": 102.0, "ready": false, "state": "ready", "version": 1.0},
	}
	for i, w := range want {
		for k, v := range w {
			if env.Result[i][k] != v {
				t.Errorf("element %d: %s = %v, want %v", i, k, env.Result[i][k], v)
			}
		}
		if d, _ := env.Result[i]["decided"].(string); d == "" || len(env.Result[i]) != 5 {
			t.Errorf("element %d: %v, want exactly run, ready, state, version, decided", i, env.Result[i])
		}
	}
	if len(asked) != 2 || asked[0] != 0 || asked[1] != 102 {
		t.Errorf("snapshots asked up to %v, want [0 102]: ready_runs needs every run up to to", asked)
	}

	code, body, _ = get(t, readyRuns, http.MethodGet, "/t0/v1/ready_runs?from=200")
	if code != 200 || body != "{\"result\": [\n]}\n" {
		t.Errorf("empty range: %d %q", code, body)
	}
}

func TestPullHandlersErrors(t *testing.T) {
	t.Parallel()
	ok := sourceFunc(func(context.Context, uint32) ([]pcl.RunState, error) { return nil, nil })
	readyRuns, first := PullHandlers(ok, testPolicy())
	cases := []struct {
		name   string
		h      http.HandlerFunc
		method string
		url    string
		status int
		code   string
	}{
		{"from not a number", readyRuns, "GET", "/t0/v1/ready_runs?from=abc", 400, "invalid"},
		{"to negative", readyRuns, "GET", "/t0/v1/ready_runs?to=-5", 400, "invalid"},
		{"leading zero", readyRuns, "GET", "/t0/v1/ready_runs?from=0100", 400, "invalid"},
		{"beyond 32 bits", readyRuns, "GET", "/t0/v1/ready_runs?to=99999999999", 400, "invalid"},
		{"from above to", readyRuns, "GET", "/t0/v1/ready_runs?from=200&to=100", 400, "invalid"},
		{"given twice", readyRuns, "GET", "/t0/v1/ready_runs?from=1&from=2", 400, "invalid"},
		{"misspelt parameter", readyRuns, "GET", "/t0/v1/ready_runs?form=100", 400, "invalid"},
		{"parameter on first_unready_run", first, "GET", "/t0/v1/first_unready_run?run=5", 400, "invalid"},
		{"POST", first, "POST", "/t0/v1/first_unready_run", 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			status, body, _ := get(t, c.h, c.method, c.url)
			var e map[string]string
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("error reply is not JSON: %q", body)
			}
			if status != c.status || e["code"] != c.code || e["error"] == "" {
				t.Errorf("%s %s: %d %v, want %d with code %s and a message", c.method, c.url, status, e, c.status, c.code)
			}
		})
	}

	t.Run("source errors", func(t *testing.T) {
		t.Parallel()
		down := sourceFunc(func(context.Context, uint32) ([]pcl.RunState, error) {
			return nil, apperr.Errorf(apperr.Unavailable, "store is closed")
		})
		_, first := PullHandlers(down, testPolicy())
		if status, body, _ := get(t, first, "GET", "/t0/v1/first_unready_run"); status != 503 || !strings.Contains(body, "store is closed") {
			t.Errorf("unavailable store: %d %s, want 503 with the reason", status, body)
		}
		broken := sourceFunc(func(context.Context, uint32) ([]pcl.RunState, error) {
			return nil, errors.New("disk I/O error at /secret/path")
		})
		readyRuns, _ := PullHandlers(broken, testPolicy())
		status, body, _ := get(t, readyRuns, "GET", "/t0/v1/ready_runs")
		if status != 500 || strings.Contains(body, "/secret/path") || !strings.Contains(body, `"internal"`) {
			t.Errorf("internal error: %d %s, want 500 with a bland message", status, body)
		}
	})
}

// TestStoreSource reads the pull answers from a real store: decisions written through SaveDecision, one
// snapshot per request, and a refusal when the store holds more runs than one snapshot may read.
func TestStoreSource(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	st := openStore(t, clk)
	decide(t, st, t0, 100, pcl.ReadinessReady, true)
	decide(t, st, t0, 101, pcl.ReadinessWaiting, false)
	decide(t, st, t0, 102, pcl.ReadinessReady, true)
	readyRuns, first := PullHandlers(StoreSource{Store: st}, testPolicy())
	if code, body, _ := get(t, first, "GET", "/t0/v1/first_unready_run"); code != 200 || body != "{\"result\": [\n 101\n]}\n" {
		t.Errorf("first_unready_run: %d %q", code, body)
	}
	decide(t, st, t0.Add(time.Minute), 101, pcl.ReadinessReady, true)
	if code, body, _ := get(t, first, "GET", "/t0/v1/first_unready_run"); code != 200 || body != "{\"result\": [\n 103\n]}\n" {
		t.Errorf("first_unready_run after run 101 became ready: %d %q", code, body)
	}
	code, body, _ := get(t, readyRuns, "GET", "/t0/v1/ready_runs?from=101&to=101")
	if code != 200 || !strings.Contains(body, `"run":101,"ready":true,"state":"ready","version":2`) {
		t.Errorf("ready_runs for 101: %d %s", code, body)
	}

	// Released runs are left out of the snapshot but still count: above them all, the answer is the
	// highest + 1, and a range lists them.
	for _, run := range []uint32{100, 101, 102} {
		decide(t, st, t0.Add(2*time.Minute), run, pcl.ReadinessReleased, true)
	}
	if code, body, _ := get(t, first, "GET", "/t0/v1/first_unready_run"); code != 200 || body != "{\"result\": [\n 103\n]}\n" {
		t.Errorf("first_unready_run with every run released: %d %q", code, body)
	}
	decide(t, st, t0.Add(3*time.Minute), 103, pcl.ReadinessWaiting, false)
	code, body, _ = get(t, readyRuns, "GET", "/t0/v1/ready_runs")
	if code != 200 || strings.Count(body, `"ready":true`) != 3 || !strings.Contains(body, `"run":103,"ready":false`) {
		t.Errorf("ready_runs over released history: %d %s", code, body)
	}
	code, body, _ = get(t, readyRuns, "GET", "/t0/v1/ready_runs?from=102")
	if code != 200 || strings.Contains(body, `"run":101`) || !strings.Contains(body, `"run":102,"ready":true,"state":"released"`) {
		t.Errorf("ready_runs from 102: %d %s", code, body)
	}
}
