package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/web"
)

// receiver is Tier-0's side of the webhook: it verifies signatures and counts idempotency keys.
type receiver struct {
	mu     sync.Mutex
	secret []byte
	keys   map[string]int
	bodies []steer.WebhookBody
	bad    int
	got    chan struct{}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !steer.VerifySignature(rc.secret, body, r.Header.Get(steer.HeaderSignature)) {
		rc.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	rc.keys[r.Header.Get(steer.HeaderIdempotencyKey)]++
	var b steer.WebhookBody
	_ = json.Unmarshal(body, &b)
	rc.bodies = append(rc.bodies, b)
	select {
	case rc.got <- struct{}{}:
	default:
	}
}

func TestAppPushesSignedDecisionsAndServesPull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("s3cret-shared-with-tier0\n"), 0o600)
	rc := &receiver{secret: []byte("s3cret-shared-with-tier0"), keys: map[string]int{}, got: make(chan struct{}, 1)}
	hook := httptest.NewServer(rc)
	defer hook.Close()

	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(dir, "spy.db")
	cfg.Steering.Targets = []config.PushTarget{{Name: "tier0", Type: "webhook", URL: hook.URL, SecretFile: secretFile}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	a, err := New(ctx, Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, "127.0.0.1:0") }()
	<-a.Started()
	base := "http://" + a.Addr().String()

	stop := time.Now().Add(-time.Hour).UTC()
	obs := []pcl.Observation{
		{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 392680, At: stop, RunInfo: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: stop}},
		{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: 392680, At: stop, Stream: "Express", Producers: []string{"PromptCalibProdSiStripGains"}},
	}
	if err := a.Agency.Ingest(ctx, pcl.SourceOMS, obs); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rc.got:
	case <-time.After(20 * time.Second):
		t.Fatal("no decision reached the webhook")
	}
	rc.mu.Lock()
	if rc.bad != 0 || len(rc.bodies) == 0 || rc.bodies[0].Run != 392680 || rc.keys["392680:1"] != 1 {
		t.Errorf("receiver: bad=%d bodies=%+v keys=%v", rc.bad, rc.bodies, rc.keys)
	}
	rc.mu.Unlock()

	resp, err := http.Get(base + "/t0/v1/first_unready_run")
	if err != nil {
		t.Fatal(err)
	}
	var first struct{ Result []uint32 }
	json.NewDecoder(resp.Body).Decode(&first)
	resp.Body.Close()
	if len(first.Result) != 1 || first.Result[0] != 392680 {
		t.Errorf("first_unready_run: %+v (the waiting run must block)", first)
	}
	resp, err = http.Get(base + "/api/v1/runs/392680")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("run: %v %v", err, resp)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestAppRefusesMissingSecret(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(t.TempDir(), "spy.db")
	cfg.Steering.Targets = []config.PushTarget{{Name: "tier0", Type: "webhook", URL: "http://127.0.0.1:1/", SecretFile: "/nonexistent/secret"}}
	if _, err := New(t.Context(), Options{Config: cfg}); err == nil {
		t.Fatal("an unreadable webhook secret was accepted")
	}
}

// TestShutdownWithOpenEventStream: a dashboard left open must not hold the shutdown until its deadline.
func TestShutdownWithOpenEventStream(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(t.TempDir(), "spy.db")
	cfg.Server.ShutdownTimeout = 30 * time.Second
	ctx, cancel := context.WithCancel(t.Context())
	a, err := New(ctx, Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, "127.0.0.1:0") }()
	<-a.Started()
	resp, err := http.Get("http://" + a.Addr().String() + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("shutdown took %s with an event stream open", d)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("shutdown waited for the event stream")
	}
}

// TestDeadLetterRaisesAnAlert: a decision the receiver refuses is given up and shown as a firing alert
// in the API; a later version that gets through clears it.
func TestDeadLetterRaisesAnAlert(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("s3cret"), 0o600)
	var refuse atomic.Bool
	refuse.Store(true)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() {
			http.Error(w, "unknown run", http.StatusUnprocessableEntity)
		}
	}))
	defer hook.Close()
	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(dir, "spy.db")
	cfg.Steering.Targets = []config.PushTarget{{Name: "tier0", Type: "webhook", URL: hook.URL, SecretFile: secretFile}}
	cfg.Alerts.Interval = time.Second // a dead letter is no agency event: the alerts see it at their next evaluation
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, err := New(ctx, Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, "127.0.0.1:0") }()
	<-a.Started()
	base := "http://" + a.Addr().String()
	alerts := func() []web.Alert {
		resp, err := http.Get(base + "/api/v1/alerts")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Alerts []web.Alert }
		json.NewDecoder(resp.Body).Decode(&out)
		return out.Alerts
	}
	waitFor := func(what string, ok func([]web.Alert) bool) {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if ok(alerts()) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: alerts %+v", what, alerts())
			}
		}
	}
	stop := time.Now().Add(-time.Hour).UTC()
	if err := a.Agency.Ingest(ctx, pcl.SourceOMS, []pcl.Observation{{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 392680, At: stop,
		RunInfo: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: stop}}}); err != nil {
		t.Fatal(err)
	}
	waitFor("a refused decision raises push-undeliverable", func(l []web.Alert) bool {
		for _, a := range l {
			if a.Name == "push-undeliverable" && a.State == "firing" && a.Run == 392680 && strings.Contains(a.Details, "422") {
				return true
			}
		}
		return false
	})
	refuse.Store(false)
	if err := a.Agency.Ingest(ctx, pcl.SourceTier0, []pcl.Observation{{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: 392680,
		At: stop, Stream: "Express", Producers: []string{"PromptCalibProdSiStripGains"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor("a later delivered version clears it", func(l []web.Alert) bool {
		return !slices.ContainsFunc(l, func(a web.Alert) bool { return a.Name == "push-undeliverable" })
	})
	cancel()
	<-done
}
