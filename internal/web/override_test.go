package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// recordingOverrider counts the overrides that reach it.
type recordingOverrider struct {
	mu    sync.Mutex
	calls int
}

func (o *recordingOverrider) Override(ctx context.Context, run uint32, action pcl.OverrideAction, workflow, actor, reason string) (pcl.RunState, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	return pcl.RunState{Run: run}, nil
}

// TestOverrideAPINeedsAReason: an override without a reason is refused at the API, before anything acts
// on it, for every action (clear included).
func TestOverrideAPINeedsAReason(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.seed()
	rec := &recordingOverrider{}
	srv, err := New(Options{Store: w.st, Catalogue: w.cat, Clock: w.clk, Overrider: rec,
		Operator: operatorFunc(func(*http.Request) (string, error) { return "tester", nil })})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	for _, body := range []string{
		`{"action": "clear"}`,
		`{"action": "clear", "reason": "   "}`,
		`{"action": "hold", "reason": ""}`,
		`{"action": "accept", "workflow": "SiStripGains"}`,
	} {
		code, out := post(t, hs.URL+"/api/v1/runs/392670/override", body)
		if code != http.StatusBadRequest || out["code"] != "invalid" {
			t.Errorf("%s: %d %v", body, code, out)
		}
	}
	if rec.calls != 0 {
		t.Errorf("%d overrides without a reason reached the overrider", rec.calls)
	}
	if code, out := post(t, hs.URL+"/api/v1/runs/392670/override", `{"action": "clear", "reason": "checked with the pixel expert"}`); code != http.StatusOK {
		t.Errorf("an override with a reason: %d %v", code, out)
	}
}
