package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// The tests against a real Alertmanager. The binary is Alertmanager v0.28.1 (later versions on the Go
// module proxy lack their web assets and do not build with go install): $SPYAGENCY_ALERTMANAGER when
// set (.ci/run builds it and sets it), else one built once with `go install` into the user's cache
// directory and kept there between runs. Without it the tests skip, saying why, unless
// $SPYAGENCY_REQUIRE_ALERTMANAGER is set (CI), where they fail.

const alertmanagerModule = "github.com/prometheus/alertmanager/cmd/alertmanager@v0.28.1"

var (
	amOnce sync.Once
	amPath string
	amErr  error
)

func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	amOnce.Do(func() { amPath, amErr = findAlertmanager() })
	if amErr != nil {
		if os.Getenv("SPYAGENCY_REQUIRE_ALERTMANAGER") != "" {
			t.Fatalf("no Alertmanager for the tests, and SPYAGENCY_REQUIRE_ALERTMANAGER is set: %v", amErr)
		}
		t.Skipf("no Alertmanager v0.28.1 (set SPYAGENCY_ALERTMANAGER, or let `go install %s` reach the module proxy): %v", alertmanagerModule, amErr)
	}
	return amPath
}

func findAlertmanager() (string, error) {
	if p := os.Getenv("SPYAGENCY_ALERTMANAGER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("SPYAGENCY_ALERTMANAGER=%s: %w", p, err)
		}
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "spyagency-test", "alertmanager-v0.28.1")
	bin := filepath.Join(dir, "alertmanager")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", alertmanagerModule)
	cmd.Dir = dir // outside this module: go install pkg@version builds it on its own
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s: %w: %s", alertmanagerModule, err, lastLines(string(out), 5))
	}
	return bin, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startAlertmanager runs Alertmanager on loopback, with no cluster, routing everything to the webhook
// at hookURL (resolutions included), and returns its base URL.
func startAlertmanager(t *testing.T, hookURL string) string {
	t.Helper()
	bin := alertmanagerBinary(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`, hookURL)
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager did not become ready: %s", logs.String())
		}
	}
}

// amAlert is an alert as Alertmanager's GET /api/v2/alerts lists it.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

func amAlerts(t *testing.T, base string) []amAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// amHook counts what Alertmanager itself sends on.
type amHook struct {
	mu     sync.Mutex
	status []string // "firing:upload-failed" per notification, in order
}

func (h *amHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var p WebhookPayload
	_ = json.Unmarshal(body, &p)
	h.mu.Lock()
	h.status = append(h.status, p.Status+":"+p.GroupLabels["alertname"])
	h.mu.Unlock()
}

func (h *amHook) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.status...)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

// TestAlertmanager: against a real Alertmanager, our alerts are listed with their labels and
// annotations; posting them again (the resend, and after a restart of the evaluator) makes Alertmanager
// notify nobody twice; and their resolution reaches it: it lists them no more and sends the resolution.
func TestAlertmanager(t *testing.T) {
	t.Parallel()
	hook := &amHook{}
	hs := httptest.NewServer(hook)
	defer hs.Close()
	base := startAlertmanager(t, hs.URL)

	r := newRig(t, NamedNotifier{Name: "am", Kind: "alertmanager", RetryFor: time.Hour, Resend: time.Second,
		Notifier: NewAlertmanager("am", base, "", 5*time.Second)})
	// Alertmanager lives in real time: the agency's clock must agree with it here, so each evaluation
	// below sets it to the real time first.
	start := time.Now().UTC().Truncate(time.Second)
	r.clk = clock.NewFake(start)
	evaluate := func() {
		t.Helper()
		r.clk.Set(time.Now().UTC())
		if err := r.e.Evaluate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	r.cfg.Rules.RunBlocked.Enabled = false
	r.cfg.Labels = map[string]string{"team": "alca"}
	r.open()
	r.w.set(runState(testRun, pcl.ReadinessBlocked, start, wf("SiStripGains", pcl.StateUploadFailed)))
	evaluate()
	fired := r.active("upload-failed")[0].Fired.Truncate(time.Millisecond) // Alertmanager keeps milliseconds
	var listed []amAlert
	waitFor(t, "Alertmanager lists the alert", func() bool { listed = amAlerts(t, base); return len(listed) == 1 })
	a := listed[0]
	for k, v := range map[string]string{"alertname": "upload-failed", "severity": "critical", "run": "400123", "workflow": "SiStripGains", "team": "alca"} {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], v, a.Labels)
		}
	}
	if a.Status.State != "active" || !strings.Contains(a.Annotations["summary"], "upload failed") ||
		a.Annotations["runbook_url"] != "https://spyagency.example.cern.ch/alerts/runbook#upload-failed" ||
		!strings.HasPrefix(a.GeneratorURL, "https://spyagency.example.cern.ch/alerts#alert-") || !a.StartsAt.Equal(fired) {
		t.Errorf("listed %+v", a)
	}
	waitFor(t, "Alertmanager notifies", func() bool { return len(hook.got()) == 1 })

	// A resend (its interval is a second here), then a restart of the evaluator and its first
	// evaluation: the same alert posted again, which Alertmanager takes as the same one.
	time.Sleep(1100 * time.Millisecond)
	evaluate()
	r.open()
	evaluate()
	time.Sleep(3 * time.Second) // two of Alertmanager's group intervals
	if got := hook.got(); len(got) != 1 || got[0] != "firing:upload-failed" {
		t.Fatalf("Alertmanager notified %v, want the firing once", got)
	}
	if listed = amAlerts(t, base); len(listed) != 1 || !listed[0].StartsAt.Equal(fired) {
		t.Fatalf("after the re-posts Alertmanager lists %+v", listed)
	}

	// Resolved: Alertmanager lists it no more and sends the resolution on.
	r.w.set()
	evaluate()
	waitFor(t, "Alertmanager drops the resolved alert", func() bool { return len(amAlerts(t, base)) == 0 })
	waitFor(t, "Alertmanager sends the resolution", func() bool {
		got := hook.got()
		return len(got) == 2 && got[1] == "resolved:upload-failed"
	})
	if h := r.e.Notifiers()[0]; !h.Healthy() {
		t.Errorf("notifier health %+v", h)
	}
}

// TestAlertmanagerRefusesGarbage: what Alertmanager refuses (an alert without labels) is a refusal, not
// worth retrying, and says why.
func TestAlertmanagerRefusesGarbage(t *testing.T) {
	t.Parallel()
	base := startAlertmanager(t, "http://127.0.0.1:1/")
	retry, err := NewAlertmanager("am", base, "", 5*time.Second).Notify(context.Background(),
		Message{Alerts: []Notice{{Status: "firing", Labels: map[string]string{}}}})
	if err == nil || retry {
		t.Fatalf("retry=%v err=%v, want a refusal", retry, err)
	}
	var none *exec.ExitError
	if errors.As(err, &none) {
		t.Fatal(err)
	}
}
