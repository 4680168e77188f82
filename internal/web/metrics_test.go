package web

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

type seenRequest struct {
	route string
	code  int
}

type requestLog struct {
	mu   sync.Mutex
	seen []seenRequest
}

func (l *requestLog) ObserveRequest(route string, code int, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, seenRequest{route, code})
}

func (l *requestLog) has(route string, code int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.seen {
		if s.route == route && s.code == code {
			return true
		}
	}
	return false
}

// TestRequestsObserved: every answered request is told to the observer under the route pattern it
// matched and the status it got, refusals and unknown paths included; the event stream still streams
// through the recorder.
func TestRequestsObserved(t *testing.T) {
	t.Parallel()
	log := &requestLog{}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "spyagency_up 1\n") })
	_, base := seeded(t, func(o *Options) { o.Requests, o.Metrics = log, metrics })
	for _, p := range []string{"/api/v1/runs", "/api/v1/runs/392670", "/api/v1/runs/1", "/api/v1/nothing", "/nothing", "/metrics"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := http.Post(base+"/api/v1/runs/392670/override", "application/json", strings.NewReader(`{"action": "hold", "reason": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithCancel(t.Context())
	stream := openStream(t, ctx, base, "")
	next(t, stream, "tick", 5*time.Second)
	cancel()
	for _, want := range []seenRequest{
		{"GET /api/v1/runs", 200}, {"GET /api/v1/runs/{run}", 200}, {"GET /api/v1/runs/{run}", 404},
		{"/api/", 404}, {"unmatched", 404}, {"GET /metrics", 200},
		{"POST /api/v1/runs/{run}/override", 403},
	} {
		if !log.has(want.route, want.code) {
			t.Errorf("not observed: %s %d (seen %v)", want.route, want.code, log.seen)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !log.has("GET /events", 200) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !log.has("GET /events", 200) {
		t.Error("the ended event stream was not observed")
	}
}

func TestMetricsWithoutRegistry(t *testing.T) {
	t.Parallel()
	_, base := seeded(t, nil)
	var e map[string]string
	if code := get(t, base+"/metrics", &e); code != 404 || e["code"] != "not_found" {
		t.Errorf("/metrics without metrics: %d %v", code, e)
	}
}
