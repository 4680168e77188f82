package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// lockedBuffer collects log lines from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wallClock is a settable wall clock.
type wallClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *wallClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *wallClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SPYAGENCY_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium: CI must install Debian's chromium for the login test")
	}
	t.Skip("login test skipped: no Chromium (install Debian's chromium, or set SPYAGENCY_CHROMIUM)")
	return ""
}

// TestLoginFlowInABrowser drives Chromium through the whole login against a real OIDC provider: a
// person logs in, gets the operator role from a group claim, holds a run from the page (audited under
// their name), logs out (the old cookie is refused from then on), a viewer logs in and is offered no
// operator form, a hostile return address is ignored, a person without a listed group is refused, and
// a session past its lifetime is refused with a way to log in again. Throughout, no secret, token,
// code or cookie reaches the log.
func TestLoginFlowInABrowser(t *testing.T) {
	exe := chromium(t)
	ctx := t.Context()
	idpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + appLn.Addr().String()
	const clientSecret = "client-s3cret-7f2c9d"
	people := []idpUser{
		{"alice", "alice-pw-Xq81", []string{"cms-pcl-operators", "cms-users"}},
		{"bob", "bob-pw-Lm02", []string{"cms-pcl-viewers"}},
		{"mallory", "mallory-pw-Zz99", []string{"cms-users"}},
	}
	issuer := startIdP(t, idpLn, "spyagency", clientSecret, base+"/auth/callback", people)

	dir := t.TempDir()
	secretFile := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secretFile, []byte(clientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(dir, "spy.db")
	cfg.Server.PublicURL = base
	cfg.Access.OIDC = config.OIDC{Issuer: issuer, ClientID: "spyagency", ClientSecretFile: secretFile,
		Scopes: []string{"openid", "profile", "email"}, RolesClaim: "groups", SessionTTL: time.Hour,
		Roles: config.OIDCRoles{Viewer: []string{"cms-pcl-viewers"}, Operator: []string{"cms-pcl-operators"}, Admin: []string{"cms-pcl-admins"}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	wall := &wallClock{t: time.Now()}
	a, err := New(ctx, Options{Config: cfg, Logger: logger, WallNow: wall.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	stop := time.Now().Add(-time.Hour).UTC()
	if err := a.Agency.Ingest(ctx, pcl.SourceOMS, []pcl.Observation{
		{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 392680, At: stop, RunInfo: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: stop}},
		{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: 392680, At: stop, Stream: "Express", Producers: []string{"PromptCalibProdSiStripGains"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Agency.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(a.Handler)
	hs.Listener.Close()
	hs.Listener = appLn
	hs.Start()
	t.Cleanup(hs.Close)

	bctx := startChromium(t, exe)
	// What travels through the browser and must never be logged: the codes and states of the
	// callbacks.
	var seenMu sync.Mutex
	var secrets []string
	chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && strings.Contains(e.Request.URL, "/auth/callback?") {
			if u, err := http.NewRequest("GET", e.Request.URL, nil); err == nil {
				seenMu.Lock()
				for _, k := range []string{"code", "state"} {
					if v := u.URL.Query().Get(k); v != "" {
						secrets = append(secrets, v)
					}
				}
				seenMu.Unlock()
			}
		}
	})
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(c, chromedp.Evaluate[string](`String(`+expr+`)`))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	waitFor := func(what, expr string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); eval(`!!(`+expr+`)`) != "true"; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited 20 s for %s (%s)", what, expr)
			}
		}
	}
	text := func(sel string) string {
		return eval(`(document.querySelector(` + jsString(sel) + `)||{}).textContent`)
	}
	login := func(user, password string) {
		t.Helper()
		do("the provider's login page", chromedp.WaitVisible(chromedp.CSS("#username")),
			chromedp.SendKeys(chromedp.CSS("#username"), user), chromedp.SendKeys(chromedp.CSS("#password"), password),
			chromedp.Submit(chromedp.CSS("#username")), chromedp.WaitReady(chromedp.CSS("main")))
	}
	cookie := func() string {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		res, err := chromedp.Call(c, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, ck := range res.Cookies {
			if ck.Name == access.SessionCookie {
				if !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteLax {
					t.Errorf("session cookie %+v: want HttpOnly and SameSite=Lax", ck)
				}
				return ck.Value
			}
		}
		return ""
	}
	apiAs := func(sessionCookie, path string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.AddCookie(&http.Cookie{Name: access.SessionCookie, Value: sessionCookie})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// Anonymous: the page offers a login, and no operator form.
	do("the run page", chromedp.Navigate(base+"/runs/392680"), chromedp.WaitReady(chromedp.CSS("main")))
	if eval(`!!document.querySelector("#login")`) != "true" || eval(`!!document.querySelector("#act-form")`) != "false" {
		t.Fatalf("anonymous run page: login link %s, operator form %s", eval(`!!document.querySelector("#login")`), eval(`!!document.querySelector("#act-form")`))
	}

	// alice logs in from the run page and comes back to it as an operator.
	do("log in", chromedp.Click(chromedp.CSS("#login")))
	login("alice", "alice-pw-Xq81")
	if got := eval(`location.pathname`); got != "/runs/392680" {
		t.Errorf("after the login the browser is at %s, want the run page it came from", got)
	}
	if n, r := text("#who-name"), text("#who-role"); n != "alice" || r != "operator" {
		t.Fatalf("logged in as %q (%q), want alice (operator); page: %s", n, r, text("main"))
	}
	aliceCookie := cookie()
	if aliceCookie == "" {
		t.Fatal("no session cookie after the login")
	}

	// An override from the page: hold, confirm, and the audit log names alice.
	do("hold from the page", chromedp.WaitVisible(chromedp.CSS("#act-form")),
		chromedp.SetValue(chromedp.CSS(`#act-form select[name="action"]`), "hold"),
		chromedp.SendKeys(chromedp.CSS(`#act-form [name="reason"]`), "pixel alignment looks odd"),
		chromedp.Submit(chromedp.CSS(`#act-form [name="reason"]`)), chromedp.WaitReady(chromedp.CSS("main")))
	do("confirm", chromedp.Click(chromedp.CSS("#confirm")))
	waitFor("the run page after the hold", `location.search.includes("done=hold") && document.querySelector("main")`)
	rs, err := a.Store.RunState(ctx, 392680)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Decision.State != pcl.ReadinessHeld {
		t.Fatalf("after the hold from the page: %s (%s); page: %s", rs.Decision.State, rs.Decision.Reason, text("main"))
	}
	entries, err := a.Store.Audit(ctx, storeAuditQuery(392680))
	if err != nil {
		t.Fatal(err)
	}
	held := false
	for _, e := range entries {
		held = held || (e.Action == "hold" && e.Actor == "alice")
	}
	if !held {
		t.Errorf("no hold audited under alice: %+v", entries)
	}

	// Logout: back to anonymous, and the old cookie is refused from then on.
	do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitReady(chromedp.CSS("#login")))
	if c := cookie(); c != "" {
		t.Errorf("the browser kept a session cookie after logout")
	}
	if code := apiAs(aliceCookie, "/api/v1/runs"); code != http.StatusUnauthorized {
		t.Errorf("alice's cookie after logout: HTTP %d, want 401", code)
	}

	// bob is a viewer: no operator form; a hostile return address brings him home instead.
	do("log in with a hostile next", chromedp.Navigate(base+"/auth/login?next=//evil.example/steal"))
	login("bob", "bob-pw-Lm02")
	if got := eval(`location.host + location.pathname`); got != appLn.Addr().String()+"/" {
		t.Errorf("after a login with next=//evil.example the browser is at %s, want this server's /", got)
	}
	if r := text("#who-role"); r != "viewer" {
		t.Errorf("bob's role %q, want viewer", r)
	}
	do("the run page as a viewer", chromedp.Navigate(base+"/runs/392680"), chromedp.WaitReady(chromedp.CSS("main")))
	if eval(`!!document.querySelector("#act-form")`) != "false" {
		t.Error("a viewer is offered the operator form")
	}
	bobCookie := cookie()

	// The session expires: the page says so and offers to log in again.
	wall.Add(2 * time.Hour)
	do("reload after the session's lifetime", chromedp.Reload(), chromedp.WaitReady(chromedp.CSS("main")))
	if msg := text("#error"); !strings.Contains(msg, "expired") || eval(`!!document.querySelector("#login-again")`) != "true" {
		t.Errorf("an expired session's page: %q, login link %s", msg, eval(`!!document.querySelector("#login-again")`))
	}
	if code := apiAs(bobCookie, "/api/v1/runs"); code != http.StatusUnauthorized {
		t.Errorf("an expired session on the API: HTTP %d, want 401", code)
	}
	wall.Add(-2 * time.Hour) // back to the provider's time, whose ID tokens live an hour

	// mallory has no listed group: refused.
	do("mallory's login", chromedp.Navigate(base+"/auth/login"))
	login("mallory", "mallory-pw-Zz99")
	if msg := text("#error"); !strings.Contains(msg, "may not use") {
		t.Errorf("a person without a listed group: %q", msg)
	}

	// A token's use, for the log check below.
	tok, _, err := a.Tokens.Create(ctx, "tier0-prod", access.ScopeSteer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", base+"/t0/v1/first_unready_run", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	bad, _ := http.NewRequest("GET", base+"/api/v1/runs", nil)
	bad.Header.Set("Authorization", "Bearer "+tok[:len(tok)-4]+"AAAA")
	if resp, err := http.DefaultClient.Do(bad); err == nil {
		resp.Body.Close()
	}

	out := logs.String()
	if !strings.Contains(out, "login") || !strings.Contains(out, "alice") {
		t.Errorf("the log does not show the logins:\n%s", out)
	}
	seenMu.Lock()
	secrets = append(secrets, clientSecret, tok, tok[:len(tok)-4]+"AAAA", aliceCookie, bobCookie, "alice-pw-Xq81", "bob-pw-Lm02", "mallory-pw-Zz99")
	seenMu.Unlock()
	if len(secrets) < 14 {
		t.Errorf("only %d secrets collected (codes and states of 3 logins expected)", len(secrets))
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("the log holds a secret (%.6s…):\n%s", s, out)
		}
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func storeAuditQuery(run uint32) store.AuditQuery { return store.AuditQuery{Run: run, Limit: 100} }

// startChromium starts a headless Chromium of its own profile for the test and returns the context its
// steps run on (the browser starts on it, not on a step's shorter context); it ends with the test.
func startChromium(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless,
		chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true), chromedp.UserDataDir(t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return bctx
}
