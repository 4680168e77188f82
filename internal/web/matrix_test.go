package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/access"
)

// matrixRules is what the authorization matrix expects of every route. It repeats routeRules on
// purpose: a route registered without an entry here fails the test, so whoever adds a route decides,
// in a test, who may use it.
var matrixRules = map[string]rule{
	"GET /healthz": rulePublic, "GET /readyz": rulePublic, "GET /static/{file}": rulePublic, "/api/": rulePublic,
	"GET /auth/login": rulePublic, "GET /auth/callback": rulePublic, "POST /auth/logout": rulePublic,
	"GET /api/v1/runs": ruleRead, "GET /api/v1/runs/{run}": ruleRead, "GET /api/v1/workflows": ruleRead,
	"GET /api/v1/sources": ruleRead, "GET /api/v1/audit": ruleRead, "GET /api/v1/outbox": ruleRead,
	"GET /api/v1/alerts": ruleRead, "GET /api/v1/version": ruleRead, "GET /api/v1/whoami": ruleRead, "GET /api/v1/openapi.json": ruleRead, "GET /metrics": ruleRead, "GET /api/v1/cluster": ruleRead,
	"GET /{$}": ruleRead, "GET /runs/{run}": ruleRead, "GET /workflows": ruleRead, "GET /workflows/{name}": ruleRead,
	"GET /sources": ruleRead, "GET /releases": ruleRead, "GET /events": ruleRead,
	"GET /t0/v1/ready_runs": rulePull, "GET /t0/v1/first_unready_run": rulePull,
	"POST /api/v1/runs/{run}/override": ruleOperate, "POST /runs/{run}/actions": ruleOperate,
	"GET /api/v1/tokens": ruleAdmin, "DELETE /api/v1/tokens/{name}": ruleAdmin, "GET /api/v1/config": ruleAdmin,
	"GET /admin": ruleAdmin, "POST /admin/tokens/{name}/revoke": ruleAdmin,
	"GET /alerts": ruleRead, "GET /alerts/runbook": ruleRead, "GET /api/v1/alerts/history": ruleRead,
	"GET /api/v1/silences": ruleRead, "POST /api/v1/silences": ruleOperate, "DELETE /api/v1/silences/{id}": ruleOperate,
	"POST /alerts/silences": ruleOperate, "POST /alerts/silences/{id}/expire": ruleOperate,
}

// setClock is a wall clock a test moves.
type setClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *setClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// pullStub answers the pull API as steering would, without the store.
type pullStub struct{}

func (pullStub) ReadyRuns(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{\"result\": [\n]}\n")
}

func (pullStub) FirstUnreadyRun(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{\"result\": [\n 392650\n]}\n")
}

type configStub struct{}

func (configStub) ConfigYAML() string { return "server:\n  addr: 127.0.0.1:8080\n" }

// credential is one way a client presents itself.
type credential struct {
	name   string
	token  string       // Authorization: Bearer
	cookie *http.Cookie // the session cookie
	csrf   string       // the session's form token
	// what it may do
	read, pull, operate, admin bool
	invalid                    bool // presented and not valid: 401 wherever credentials are looked at
}

// accessWorld is a seeded world served with real tokens and sessions.
type accessWorld struct {
	*world
	wall     *setClock
	tokens   *access.Tokens
	sessions *access.Sessions
	creds    []credential
}

func newAccessWorld(t testing.TB) *accessWorld {
	t.Helper()
	w := newWorld(t)
	w.seed()
	wall := &setClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	aw := &accessWorld{world: w, wall: wall, tokens: &access.Tokens{Store: w.st, Now: wall.Now}}
	var err error
	if aw.sessions, err = access.NewSessions(w.ctx, w.st, time.Hour, wall.Now); err != nil {
		t.Fatal(err)
	}
	tok := func(name string, scope access.Scope, made time.Time, ttl time.Duration) string {
		tt := &access.Tokens{Store: w.st, Now: func() time.Time { return made }}
		s, _, err := tt.Create(w.ctx, name, scope, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	session := func(s *access.Sessions, user string, role access.Role) (*http.Cookie, string) {
		rec := httptest.NewRecorder()
		if _, err := s.Start(w.ctx, rec, httptest.NewRequest("GET", "/auth/callback", nil), user, role); err != nil {
			t.Fatal(err)
		}
		c := rec.Result().Cookies()[0]
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(c)
		p, _, err := s.Authenticate(r)
		if err != nil {
			p = access.Principal{}
		}
		return c, p.CSRF
	}
	now := wall.Now()
	revoked := tok("old-script", access.ScopeOperate, now, 0)
	if _, err := aw.tokens.Revoke(w.ctx, "old-script"); err != nil {
		t.Fatal(err)
	}
	past, err := access.NewSessions(w.ctx, w.st, time.Hour, func() time.Time { return now.Add(-2 * time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	viewer, viewerCSRF := session(aw.sessions, "bob", access.RoleViewer)
	operator, operatorCSRF := session(aw.sessions, "alice", access.RoleOperator)
	admin, adminCSRF := session(aw.sessions, "carol", access.RoleAdmin)
	expiredSession, _ := session(past, "dave", access.RoleOperator)
	tampered := *operator
	tampered.Value = "A" + tampered.Value[1:]
	if tampered.Value == operator.Value {
		tampered.Value = "B" + tampered.Value[1:]
	}
	aw.creds = []credential{
		{name: "anonymous"},
		{name: "viewer", cookie: viewer, csrf: viewerCSRF, read: true},
		{name: "operator", cookie: operator, csrf: operatorCSRF, read: true, operate: true},
		{name: "admin", cookie: admin, csrf: adminCSRF, read: true, operate: true, admin: true},
		{name: "token read", token: tok("dashboard", access.ScopeRead, now, 0), read: true},
		{name: "token steer", token: tok("tier0-prod", access.ScopeSteer, now, 0), read: true, pull: true},
		{name: "token operate", token: tok("calib-script", access.ScopeOperate, now, 0), read: true, operate: true},
		{name: "expired token", token: tok("last-year", access.ScopeOperate, now.Add(-48*time.Hour), 24*time.Hour), invalid: true},
		{name: "revoked token", token: revoked, invalid: true},
		{name: "garbage token", token: "sa_" + strings.Repeat("Z", 43), invalid: true},
		{name: "malformed token", token: "hunter2", invalid: true},
		{name: "expired session", cookie: expiredSession, invalid: true},
		{name: "tampered session", cookie: &tampered, invalid: true},
	}
	return aw
}

func (aw *accessWorld) serve(t testing.TB, mod func(*Options)) (*httptest.Server, *Server) {
	t.Helper()
	return aw.world.serve(t, func(o *Options) {
		o.Access = &access.Guard{Tokens: aw.tokens, Sessions: aw.sessions}
		o.Pull, o.Tokens, o.Config = pullStub{}, aw.tokens, configStub{}
		b := &book{} // the alerts and silences, so that their routes reach their handlers
		o.Alerts, o.AlertBook, o.Silences = b, b, b
		o.WallNow = aw.wall.Now
		o.FailedAuthLimit = 1 << 20 // the matrix presents bad credentials on purpose; TestFailedAuthLimit tests the limit
		if mod != nil {
			mod(o)
		}
	})
}

// concrete makes a pattern a request path.
func concrete(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "GET", pattern
	}
	r := strings.NewReplacer("{run}", fmt.Sprint(runUploading), "{file}", "style.css", "{id}", "1", "{$}", "")
	path = r.Replace(path)
	switch {
	case path == "/api/":
		path = "/api/v1/no-such-endpoint"
	case strings.HasPrefix(path, "/workflows/"):
		path = "/workflows/SiStripGains"
	case strings.HasPrefix(path, "/api/v1/tokens/"):
		path = "/api/v1/tokens/no-such-token"
	case strings.HasPrefix(path, "/admin/tokens/"):
		path = "/admin/tokens/no-such-token/revoke"
	}
	return method, path
}

// send makes one request of a route with a credential; a session's state-changing request carries
// its form token and this origin, as the page's forms do.
func send(t *testing.T, base, pattern string, c credential) int {
	t.Helper()
	method, path := concrete(pattern)
	var body io.Reader
	ctype := ""
	switch {
	case strings.HasSuffix(pattern, "/override"):
		body, ctype = strings.NewReader(`{"action":"hold","reason":"authorization matrix"}`), "application/json"
	case strings.HasSuffix(pattern, "/actions"), strings.HasSuffix(pattern, "/logout"), strings.HasPrefix(pattern, "POST /alerts/silences"),
		strings.HasPrefix(pattern, "POST /admin/"):
		body, ctype = strings.NewReader(url.Values{"action": {"hold"}, "reason": {"matrix"}, "token": {c.csrf}}.Encode()), "application/x-www-form-urlencoded"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Origin", base)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
		if unsafe(method) && ctype != "application/x-www-form-urlencoded" {
			req.Header.Set("Origin", base)
			req.Header.Set("X-CSRF-Token", c.csrf)
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s as %s: %v", pattern, c.name, err)
	}
	resp.Body.Close() // the event stream too: its status is all the matrix needs
	return resp.StatusCode
}

// expected is the status a credential gets on a route under a configuration: 401 or 403 when it is
// refused, 0 when it reaches the handler (whatever the handler then answers, never 401, 403 or 429).
func expected(rl rule, c credential, readNeedsLogin, pullNeedsToken bool) int {
	if rl == rulePublic {
		return 0
	}
	if c.invalid {
		return http.StatusUnauthorized
	}
	anonymous := c.token == "" && c.cookie == nil
	need := func(ok bool) int {
		switch {
		case ok:
			return 0
		case anonymous:
			return http.StatusUnauthorized
		}
		return http.StatusForbidden
	}
	switch rl {
	case ruleRead:
		return need(!readNeedsLogin || c.read)
	case rulePull:
		return need(!pullNeedsToken || c.pull)
	case ruleOperate:
		return need(c.operate)
	case ruleAdmin:
		return need(c.admin)
	}
	return -1
}

// TestAuthorizationMatrix: every registered route × every kind of credential → the expected status,
// with reading and the pull API open (the default) and closed. The routes come from the server's own
// route table, so a route added without a rule fails here.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	aw := newAccessWorld(t)
	for _, cfg := range []struct{ read, pull bool }{{false, false}, {true, true}} {
		hs, srv := aw.serve(t, func(o *Options) { o.ReadNeedsLogin, o.PullNeedsToken = cfg.read, cfg.pull })
		patterns := slices.Clone(srv.mux.patterns)
		slices.Sort(patterns)
		if len(patterns) < len(matrixRules) {
			t.Errorf("%d routes registered, %d expected: %v", len(patterns), len(matrixRules), patterns)
		}
		for _, p := range patterns {
			want, ok := matrixRules[p]
			if !ok {
				t.Errorf("route %s has no expected rule in the authorization matrix: add it to matrixRules (and routeRules)", p)
				continue
			}
			if got := routeRules[p]; got != want {
				t.Errorf("route %s has rule %s, the matrix expects %s", p, got, want)
				continue
			}
			for _, c := range aw.creds {
				got := send(t, hs.URL, p, c)
				switch exp := expected(want, c, cfg.read, cfg.pull); {
				case exp == 0 && (got == 401 || got == 403 || got == 429):
					t.Errorf("read=%v pull=%v: %s as %s: HTTP %d, want it to reach the handler", cfg.read, cfg.pull, p, c.name, got)
				case exp != 0 && got != exp:
					t.Errorf("read=%v pull=%v: %s as %s: HTTP %d, want %d", cfg.read, cfg.pull, p, c.name, got, exp)
				}
			}
		}
	}
}

// TestRouteWithoutARuleIsClosed: a route registered without an access rule is refused to everyone,
// an admin included, until someone gives it one.
func TestRouteWithoutARuleIsClosed(t *testing.T) {
	t.Parallel()
	aw := newAccessWorld(t)
	hs, srv := aw.serve(t, nil)
	srv.mux.HandleFunc("GET /api/v1/new-thing", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") })
	for _, c := range aw.creds {
		if c.invalid {
			continue
		}
		if got := send(t, hs.URL, "GET /api/v1/new-thing", c); got != http.StatusForbidden {
			t.Errorf("a route without a rule, as %s: HTTP %d, want 403", c.name, got)
		}
	}
}
