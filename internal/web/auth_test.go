package web

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/access"
)

func (aw *accessWorld) cred(name string) credential {
	for _, c := range aw.creds {
		if c.name == name {
			return c
		}
	}
	panic("no credential " + name)
}

// TestCSRFWithSessions: a session's state-changing request without its form token, with another
// session's, or from another origin is refused (403) and changes nothing; with its own it acts.
func TestCSRFWithSessions(t *testing.T) {
	t.Parallel()
	aw := newAccessWorld(t)
	hs, _ := aw.serve(t, nil)
	op, viewer := aw.cred("operator"), aw.cred("viewer")
	post := func(ctype, body, origin, header string) int {
		req, _ := http.NewRequest("POST", hs.URL+"/api/v1/runs/392680/override", strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if header != "" {
			req.Header.Set("X-CSRF-Token", header)
		}
		req.AddCookie(op.cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	hold := `{"action":"hold","reason":"csrf test"}`
	for name, code := range map[string]int{
		"no token":              post("application/json", hold, hs.URL, ""),
		"wrong token":           post("application/json", hold, hs.URL, "not-the-token"),
		"another session's":     post("application/json", hold, hs.URL, viewer.csrf),
		"no origin":             post("application/json", hold, "", op.csrf),
		"another origin":        post("application/json", hold, "https://evil.example", op.csrf),
		"form with no token":    post("application/x-www-form-urlencoded", "action=hold&reason=x", hs.URL, ""),
		"form with wrong token": post("application/x-www-form-urlencoded", "action=hold&reason=x&token=nope", hs.URL, ""),
	} {
		if code != http.StatusForbidden {
			t.Errorf("%s: HTTP %d, want 403", name, code)
		}
	}
	var v RunView
	get(t, hs.URL+"/api/v1/runs/392680", &v)
	if v.Readiness.State == "held" {
		t.Fatal("a refused request held the run")
	}
	if code := post("application/json", hold, hs.URL, op.csrf); code != http.StatusOK {
		t.Errorf("with the session's token: HTTP %d", code)
	}
	var audit struct {
		Entries []struct{ Actor, Action string }
	}
	get(t, hs.URL+"/api/v1/audit?run=392680", &audit)
	holds := 0
	for _, e := range audit.Entries {
		if e.Action == "hold" {
			holds++
			if e.Actor != "alice" {
				t.Errorf("the hold is audited as %q, want the logged-in alice", e.Actor)
			}
		}
	}
	if holds != 1 {
		t.Errorf("%d holds audited, want 1: %+v", holds, audit.Entries)
	}
	// The page's own form, posted as the browser would.
	form := url.Values{"action": {"clear"}, "reason": {"checked"}, "token": {op.csrf}, "confirm": {"yes"}}
	req, _ := http.NewRequest("POST", hs.URL+"/runs/392680/actions", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", hs.URL)
	req.AddCookie(op.cookie)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the run page's form with the session's token: HTTP %d, want 303", resp.StatusCode)
	}
}

// TestSecurityHeadersEverywhere: every response carries nosniff, the CSP, frame and referrer rules,
// Tier-0's pull API, errors and refusals included; HSTS only when the client came over TLS.
func TestSecurityHeadersEverywhere(t *testing.T) {
	t.Parallel()
	aw := newAccessWorld(t)
	hs, srv := aw.serve(t, func(o *Options) {
		o.PullNeedsToken = true
		o.Proxies, _ = access.ParseProxies([]string{"127.0.0.1"})
	})
	for _, path := range []string{"/t0/v1/first_unready_run", "/t0/v1/ready_runs?from=1", "/", "/api/v1/runs", "/no/such/page",
		"/api/v1/nothing", "/static/app.js", "/healthz", "/api/v1/tokens", "/auth/login"} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") == "" {
			t.Errorf("%s (HTTP %d): headers %v", path, resp.StatusCode, h)
		}
		if h.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s: HSTS over plain HTTP", path)
		}
	}
	// Behind the trusted proxy that terminated TLS, and over TLS itself: HSTS.
	req, _ := http.NewRequest("GET", hs.URL+"/t0/v1/first_unready_run", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("behind a TLS proxy: no HSTS (%v)", resp.Header)
	}
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/healthz", nil)
	r.TLS = &tls.ConnectionState{}
	srv.ServeHTTP(rec, r)
	if rec.Header().Get("Strict-Transport-Security") == "" {
		t.Error("over TLS: no HSTS")
	}
}

// TestBodyLimits: a body over the limit is refused with 413 before any handler reads it, on every
// route that takes one.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	aw := newAccessWorld(t)
	hs, _ := aw.serve(t, func(o *Options) { o.MaxBody = 1024 })
	big := strings.Repeat("x", 2048)
	for _, path := range []string{"/api/v1/runs/392680/override", "/runs/392680/actions", "/auth/logout", "/api/v1/runs"} {
		req, _ := http.NewRequest("POST", hs.URL+path, strings.NewReader(big))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+aw.cred("token operate").token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s with 2 KiB: HTTP %d, want 413", path, resp.StatusCode)
		}
	}
}

// TestFailedAuthLimit: after the limit of failed authentications from one address, its requests with
// credentials get 429 and a Retry-After, a good token included, until the window ends; anonymous
// reading goes on, and another address is not affected.
func TestFailedAuthLimit(t *testing.T) {
	t.Parallel()
	aw := newAccessWorld(t)
	hs, srv := aw.serve(t, func(o *Options) {
		o.FailedAuthLimit, o.FailedAuthWindow = 3, time.Minute
		o.Proxies, _ = access.ParseProxies([]string{"127.0.0.1"})
	})
	do := func(token, from string) *http.Response {
		req, _ := http.NewRequest("GET", hs.URL+"/api/v1/runs?limit=1", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("X-Forwarded-For", from)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	bad, good := "sa_"+strings.Repeat("Q", 43), aw.cred("token read").token
	for i := range 3 {
		if c := do(bad, "198.51.100.4").StatusCode; c != 401 {
			t.Fatalf("bad token #%d: HTTP %d, want 401", i+1, c)
		}
	}
	resp := do(good, "198.51.100.4")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a good token after 3 failures: HTTP %d, want 429", resp.StatusCode)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Errorf("Retry-After %q, want the seconds left of the window", resp.Header.Get("Retry-After"))
	}
	if c := do("", "198.51.100.4").StatusCode; c != 200 {
		t.Errorf("anonymous reading from the limited address: HTTP %d", c)
	}
	if c := do(good, "203.0.113.9").StatusCode; c != 200 {
		t.Errorf("another address: HTTP %d", c)
	}
	aw.wall.mu.Lock()
	aw.wall.t = aw.wall.t.Add(61 * time.Second)
	aw.wall.mu.Unlock()
	if c := do(good, "198.51.100.4").StatusCode; c != 200 {
		t.Errorf("after the window: HTTP %d", c)
	}
	_ = srv
}

// TestHostileRedirectsRefused: the page a login returns to is a path on this server, whatever the
// query string says.
func TestHostileRedirectsRefused(t *testing.T) {
	t.Parallel()
	for next, want := range map[string]string{
		"/runs/392680":                  "/runs/392680",
		"/runs/392680?done=hold":        "/runs/392680?done=hold",
		"https://evil.example/":         "/",
		"//evil.example/":               "/",
		"/\\evil.example":               "/",
		"\\\\evil.example":              "/",
		"javascript:alert(1)":           "/",
		"/%0d%0aSet-Cookie:x":           "/%0d%0aSet-Cookie:x", // stays escaped: a path, not a header
		"/\r\nSet-Cookie: x=1":          "/",
		"http:evil.example":             "/",
		"/auth/login?next=/":            "/",
		"":                              "/",
		"evil.example":                  "/",
		"/ok/../../x":                   "/ok/../../x",
		"///evil.example":               "/",
		"/" + strings.Repeat("a", 3000): "/",
	} {
		if got := access.SafeNext(next); got != want {
			t.Errorf("SafeNext(%q) = %q, want %q", next, got, want)
		}
	}
}
