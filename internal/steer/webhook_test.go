package steer

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

func TestSignature(t *testing.T) {
	t.Parallel()
	// The RFC 2104 example everybody quotes: HMAC-SHA256 with key "key".
	msg := []byte("The quick brown fox jumps over the lazy dog")
	const known = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
	if got := Sign([]byte("key"), msg); got != known {
		t.Errorf("Sign = %s, want %s", got, known)
	}
	cases := []struct {
		name   string
		secret string
		body   []byte
		header string
		want   bool
	}{
		{"valid", "key", msg, known, true},
		{"upper-case hex", "key", msg, "sha256=" + strings.ToUpper(known[7:]), true},
		{"surrounding space", "key", msg, " " + known + " ", true},
		{"body changed", "key", append([]byte{}, append(msg, '.')...), known, false},
		{"other secret", "kez", msg, known, false},
		{"empty secret never verifies", "", msg, Sign(nil, msg), false},
		{"no prefix", "key", msg, known[7:], false},
		{"other algorithm", "key", msg, "sha1=" + known[7:], false},
		{"truncated", "key", msg, known[:40], false},
		{"not hex", "key", msg, "sha256=" + strings.Repeat("zz", 32), false},
		{"empty header", "key", msg, "", false},
	}
	for _, c := range cases {
		if got := VerifySignature([]byte(c.secret), c.body, c.header); got != c.want {
			t.Errorf("%s: VerifySignature = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestSignatureShellRecipe runs the openssl recipe of docs/tier0-integration.md on a real delivery.
func TestSignatureShellRecipe(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not on the PATH; the recipe cannot be checked here")
	}
	var body []byte
	var header string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		header = r.Header.Get(HeaderSignature)
	}))
	defer srv.Close()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "webhook.secret")
	if err := os.WriteFile(secretFile, []byte("Tier0-and-SpyAgency share this\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hook, err := NewWebhook(WebhookOptions{Name: "tier0", URL: srv.URL, Secret: []byte("Tier0-and-SpyAgency share this")})
	if err != nil {
		t.Fatal(err)
	}
	d := pcl.Decision{Run: 386509, State: pcl.ReadinessReady, Releasable: true, Version: 3, Decided: t0, Reason: "every required workflow is in an ok final state"}
	if err := hook.Deliver(context.Background(), Delivery{Key: "386509:3", Decision: d}); err != nil {
		t.Fatal(err)
	}
	bodyFile := filepath.Join(dir, "body.json")
	if err := os.WriteFile(bodyFile, body, 0o600); err != nil {
		t.Fatal(err)
	}
	// The recipe, verbatim from the documentation.
	script := `sig="sha256=$(openssl dgst -sha256 -hmac "$(cat "$SECRET_FILE")" -r < "$BODY_FILE" | cut -d' ' -f1)"
[ "$sig" = "$HEADER" ] && echo valid || echo INVALID`
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "SECRET_FILE="+secretFile, "BODY_FILE="+bodyFile, "HEADER="+header)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "valid" {
		t.Errorf("openssl recipe says %q (err %v) for header %s", out, err, header)
	}
	cmd = exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "SECRET_FILE="+secretFile, "BODY_FILE="+bodyFile, "HEADER=sha256="+strings.Repeat("0", 64))
	if out, _ := cmd.CombinedOutput(); strings.TrimSpace(string(out)) != "INVALID" {
		t.Errorf("openssl recipe accepts a wrong signature: %q", out)
	}
}

func TestWebhookRequest(t *testing.T) {
	t.Parallel()
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	clk := clock.NewFake(t0.Add(90 * time.Second))
	hook, err := NewWebhook(WebhookOptions{Name: "tier0", URL: srv.URL + "/hook?x=1", Secret: testSecret, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	d := pcl.Decision{Run: 386509, State: pcl.ReadinessTimedOut, Releasable: true, Version: 4, Decided: t0.In(time.FixedZone("CEST", 7200)),
		Reason: "deadline passed", Blocking: nil}
	if err := hook.Deliver(context.Background(), Delivery{Key: IdempotencyKey(386509, 4), Decision: d}); err != nil {
		t.Fatal(err)
	}
	if got.Method != "POST" || got.URL.Path != "/hook" || got.URL.RawQuery != "x=1" {
		t.Errorf("request %s %s", got.Method, got.URL)
	}
	h := got.Header
	if h.Get("Content-Type") != "application/json" || h.Get(HeaderIdempotencyKey) != "386509:4" ||
		h.Get(HeaderTimestamp) != "2025-06-14T08:14:11Z" || !VerifySignature(testSecret, body, h.Get(HeaderSignature)) {
		t.Errorf("headers %v", h)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"run": 386509.0, "state": "timed-out", "ready": true, "version": 4.0,
		"reason": "deadline passed", "decided": "2025-06-14T08:12:41Z", "blocking": []any{}}
	if len(m) != len(want) {
		t.Errorf("body %s, want exactly %v", body, want)
	}
	for k, v := range want {
		if a, b := jsonString(m[k]), jsonString(v); a != b {
			t.Errorf("body %s = %s, want %s", k, a, b)
		}
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestWebhookClassifiesErrors(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	var redirected atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			redirected.Store(true)
			return
		}
		if s := int(status.Load()); s == http.StatusFound {
			http.Redirect(w, r, "/elsewhere", s)
			return
		}
		w.WriteHeader(int(status.Load()))
		_, _ = io.WriteString(w, "receiver says\nno")
	}))
	defer srv.Close()
	hook, err := NewWebhook(WebhookOptions{Name: "tier0", URL: srv.URL, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	d := Delivery{Key: "100:1", Decision: pcl.Decision{Run: 100, Version: 1, State: pcl.ReadinessReady}}
	for _, c := range []struct {
		status    int
		permanent bool
	}{{200, false}, {204, false}, {400, true}, {401, true}, {403, true}, {404, true}, {409, true}, {422, true},
		{408, false}, {425, false}, {429, false}, {500, false}, {502, false}, {503, false}, {504, false}, {302, true}} {
		status.Store(int32(c.status))
		err := hook.Deliver(context.Background(), d)
		if c.status/100 == 2 {
			if err != nil {
				t.Errorf("%d: %v, want delivered", c.status, err)
			}
			continue
		}
		if err == nil || isPermanent(err) != c.permanent {
			t.Errorf("%d: err %v permanent=%v, want permanent=%v", c.status, err, isPermanent(err), c.permanent)
		}
		if err != nil && c.status != 302 && !strings.Contains(err.Error(), "receiver says no") {
			t.Errorf("%d: %v, want the receiver's words on one line", c.status, err)
		}
	}
	if redirected.Load() {
		t.Error("a redirect was followed")
	}
}

func TestWebhookTransportErrorsAreRetryable(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	d := Delivery{Key: "100:1", Decision: pcl.Decision{Run: 100, Version: 1}}
	hook, _ := NewWebhook(WebhookOptions{Name: "tier0", URL: slow.URL, Secret: testSecret, Timeout: 50 * time.Millisecond})
	if err := hook.Deliver(context.Background(), d); err == nil || isPermanent(err) {
		t.Errorf("timeout: %v, want a retryable error", err)
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	url := gone.URL
	gone.Close()
	hook, _ = NewWebhook(WebhookOptions{Name: "tier0", URL: url, Secret: testSecret})
	if err := hook.Deliver(context.Background(), d); err == nil || isPermanent(err) {
		t.Errorf("connection refused: %v, want a retryable error", err)
	}
}

func TestWebhookReadsBoundedReply(t *testing.T) {
	t.Parallel()
	written := make(chan int64, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		var n int64
		for n < 256<<20 {
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		written <- n
	}))
	defer srv.Close()
	hook, _ := NewWebhook(WebhookOptions{Name: "tier0", URL: srv.URL, Secret: testSecret})
	if err := hook.Deliver(context.Background(), Delivery{Key: "1:1", Decision: pcl.Decision{Run: 1, Version: 1}}); err != nil {
		t.Fatal(err)
	}
	if n := <-written; n >= 256<<20 {
		t.Errorf("the receiver could write %d bytes: the reply was read without a limit", n)
	}
}

func TestNewWebhookRefuses(t *testing.T) {
	t.Parallel()
	for _, o := range []WebhookOptions{
		{URL: "https://t0.cern.ch/hook", Secret: testSecret},
		{Name: "t", URL: "ftp://t0.cern.ch/hook", Secret: testSecret},
		{Name: "t", URL: "https:///hook", Secret: testSecret},
		{Name: "t", URL: "https://t0.cern.ch/hook"},
		{Name: "t", URL: "://", Secret: testSecret},
	} {
		if _, err := NewWebhook(o); err == nil {
			t.Errorf("NewWebhook(%+v) accepted", o)
		}
	}
	if got := httpx.ParseRetryAfter("Sun, 15 Jun 2025 08:12:41 GMT", t0); got != 24*time.Hour {
		t.Errorf("Retry-After as a date: %s", got)
	}
	if got := httpx.ParseRetryAfter("soon", t0); got != 0 {
		t.Errorf("Retry-After garbage: %s", got)
	}
}

// A webhook URL with credentials never puts them into an error, which goes to the log and the audit log.
func TestWebhookErrorsHideCredentials(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	down := gone.URL
	gone.Close()
	for _, base := range []string{srv.URL, down} {
		u := strings.Replace(base, "http://", "http://tier0:hunter2@", 1) + "/hook?token=hunter2"
		hook, err := NewWebhook(WebhookOptions{Name: "tier0", URL: u, Secret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		err = hook.Deliver(context.Background(), Delivery{Key: "1:1", Decision: pcl.Decision{Run: 1, Version: 1}})
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "tier0:xxxxx@") {
			t.Errorf("%s: %v, want an error without the password", base, err)
		}
	}
}
