package access

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

// wall is a settable wall clock.
type wall struct {
	mu sync.Mutex
	t  time.Time
}

func (w *wall) Now() time.Time { w.mu.Lock(); defer w.mu.Unlock(); return w.t }
func (w *wall) Add(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t = w.t.Add(d)
}

// countingStore counts the writes of a token's use.
type countingStore struct {
	*sqlite.Store
	mu   sync.Mutex
	used int
}

func (s *countingStore) TokenUsed(ctx context.Context, hash string, at time.Time) error {
	s.mu.Lock()
	s.used++
	s.mu.Unlock()
	return s.Store.TokenUsed(ctx, hash, at)
}

func openStore(t *testing.T) *countingStore { return openStoreF(t) }

func openStoreF(t testing.TB) *countingStore {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "s.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &countingStore{Store: st}
}

func withToken(tok string) *http.Request {
	r := httptest.NewRequest("GET", "/api/v1/runs", nil)
	r.RemoteAddr = "192.0.2.7:4000"
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

func TestTokens(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openStore(t)
	clk := &wall{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	toks := &Tokens{Store: st, Now: clk.Now}
	g := &Guard{Tokens: toks}
	op, rec, err := toks.Create(ctx, "calib-shifter", ScopeOperate, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Hash == op || strings.Contains(rec.Hash, op) || len(op) != tokenLen {
		t.Fatalf("token %q stored as %+v", op, rec)
	}
	reader, _, _ := toks.Create(ctx, "dashboard", ScopeRead, 0)
	revoked, _, _ := toks.Create(ctx, "old-script", ScopeSteer, 0)
	if _, err := toks.Revoke(ctx, "old-script"); err != nil {
		t.Fatal(err)
	}
	if p, err := g.Authenticate(withToken(op)); err != nil || p.Name != "token:calib-shifter" || !p.CanOperate() || p.CanPull() || p.CanAdmin() {
		t.Errorf("operate token: %+v %v", p, err)
	}
	if p, err := g.Authenticate(withToken(reader)); err != nil || p.CanOperate() || !p.CanRead() {
		t.Errorf("read token: %+v %v", p, err)
	}
	if p, err := g.Authenticate(withToken("")); err != nil || !p.IsAnonymous() {
		t.Errorf("no token: %+v %v", p, err)
	}
	for name, r := range map[string]*http.Request{
		"unknown":   withToken("sa_" + strings.Repeat("A", 43)),
		"malformed": withToken("sa_forged"),
		"revoked":   withToken(revoked),
		"scheme":    func() *http.Request { r := withToken(""); r.Header.Set("Authorization", "Basic "+op); return r }(),
		"twice":     func() *http.Request { r := withToken(op); r.Header.Add("Authorization", "Bearer "+op); return r }(),
	} {
		if _, err := g.Authenticate(r); !apperr.Is(err, apperr.Unauthorized) {
			t.Errorf("%s token: %v, want unauthorized", name, err)
		} else if strings.Contains(err.Error(), op) {
			t.Errorf("%s token: the error repeats the token: %v", name, err)
		}
	}
	clk.Add(25 * time.Hour)
	if _, err := g.Authenticate(withToken(op)); !apperr.Is(err, apperr.Unauthorized) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
	if _, _, err := toks.Create(ctx, "bad name!", ScopeRead, 0); err == nil {
		t.Error("bad name accepted")
	}
	if _, _, err := toks.Create(ctx, "x", "admin", 0); err == nil {
		t.Error("bad scope accepted")
	}
	if _, _, err := toks.Create(ctx, "dashboard", ScopeRead, 0); !apperr.Is(err, apperr.Conflict) {
		t.Errorf("a second live token of one name: %v", err)
	}
}

// TestTokenLastUsed: a token's use is recorded on the wall clock, at most once a minute, so that a
// poller does not turn every read into a write.
func TestTokenLastUsed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openStore(t)
	clk := &wall{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	toks := &Tokens{Store: st, Now: clk.Now}
	tok, rec, _ := toks.Create(ctx, "tier0-prod", ScopeSteer, 0)
	g := &Guard{Tokens: toks}
	for range 30 {
		if _, err := g.Authenticate(withToken(tok)); err != nil {
			t.Fatal(err)
		}
		clk.Add(5 * time.Second)
	}
	if st.used != 3 {
		t.Errorf("30 uses over 150 s wrote the last use %d times, want 3 (once a minute)", st.used)
	}
	got, _ := st.TokenByHash(ctx, rec.Hash)
	if want := rec.Created.Add(2 * time.Minute); !got.LastUsed.Equal(want) {
		t.Errorf("last used %s, want %s", got.LastUsed, want)
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p                               Principal
		read, pull, operate, administer bool
	}{
		{Anonymous, false, false, false, false},
		{Principal{Via: ViaSession, Role: RoleViewer}, true, false, false, false},
		{Principal{Via: ViaSession, Role: RoleOperator}, true, false, true, false},
		{Principal{Via: ViaSession, Role: RoleAdmin}, true, false, true, true},
		{Principal{Via: ViaLoopback, Role: RoleOperator}, true, false, true, false},
		{Principal{Via: ViaToken, Scope: ScopeRead}, true, false, false, false},
		{Principal{Via: ViaToken, Scope: ScopeSteer}, true, true, false, false},
		{Principal{Via: ViaToken, Scope: ScopeOperate}, true, false, true, false},
		{Principal{Via: ViaSession, Role: "superuser"}, false, false, false, false},
	} {
		if got := [4]bool{tc.p.CanRead(), tc.p.CanPull(), tc.p.CanOperate(), tc.p.CanAdmin()}; got != [4]bool{tc.read, tc.pull, tc.operate, tc.administer} {
			t.Errorf("%+v: read, pull, operate, admin = %v", tc.p, got)
		}
	}
}

// sessionCookie starts a session and returns its cookie.
func sessionCookie(t *testing.T, s *Sessions, user string, role Role) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	if _, err := s.Start(t.Context(), rec, httptest.NewRequest("GET", "/auth/callback", nil), user, role); err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == SessionCookie {
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != int(s.TTL()/time.Second) {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/ and the session's lifetime", c)
			}
			return c
		}
	}
	t.Fatal("no session cookie set")
	return nil
}

func withCookie(c *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(c)
	return r
}

func TestSessions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openStore(t)
	clk := &wall{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	s, err := NewSessions(ctx, st, time.Hour, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	g := &Guard{Tokens: &Tokens{Store: st, Now: clk.Now}, Sessions: s}
	c := sessionCookie(t, s, "alice", RoleOperator)
	p, err := g.Authenticate(withCookie(c))
	if err != nil || p.Name != "alice" || p.Via != ViaSession || !p.CanOperate() || p.CSRF == "" {
		t.Fatalf("session: %+v %v", p, err)
	}
	other := sessionCookie(t, s, "bob", RoleViewer)
	if q, _ := g.Authenticate(withCookie(other)); q.CSRF == p.CSRF {
		t.Error("two sessions share a form token")
	}
	// The same key after a restart: sessions survive it.
	s2, err := NewSessions(ctx, st, time.Hour, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if q, _, err := s2.Authenticate(withCookie(c)); err != nil || q.Name != "alice" {
		t.Errorf("after a restart: %+v %v", q, err)
	}

	tampered := *c
	tampered.Value = strings.Replace(c.Value, c.Value[:4], "AAAA", 1)
	forged := *c
	id, _, _ := strings.Cut(c.Value, ".")
	forged.Value = id + ".bm90IGEgc2lnbmF0dXJl"
	for name, ck := range map[string]*http.Cookie{"tampered": &tampered, "forged": &forged, "garbage": {Name: SessionCookie, Value: "x"}} {
		if _, err := g.Authenticate(withCookie(ck)); !apperr.Is(err, apperr.Unauthorized) {
			t.Errorf("%s cookie: %v, want unauthorized", name, err)
		}
	}
	// A bad token does not fall back to a good cookie.
	r := withCookie(c)
	r.Header.Set("Authorization", "Bearer sa_"+strings.Repeat("B", 43))
	if _, err := g.Authenticate(r); !apperr.Is(err, apperr.Unauthorized) {
		t.Errorf("bad token with a good cookie: %v", err)
	}

	// Logout ends the session for every copy of the cookie.
	rec := httptest.NewRecorder()
	if user, err := s.End(rec, withCookie(other)); err != nil || user != "bob" {
		t.Errorf("logout: %q %v", user, err)
	}
	if cl := rec.Result().Cookies(); len(cl) != 1 || cl[0].MaxAge >= 0 {
		t.Errorf("logout does not clear the cookie: %+v", cl)
	}
	if _, err := g.Authenticate(withCookie(other)); !apperr.Is(err, apperr.Unauthorized) || !strings.Contains(err.Error(), "logged out") {
		t.Errorf("after logout: %v", err)
	}
	clk.Add(time.Hour)
	if _, err := g.Authenticate(withCookie(c)); !apperr.Is(err, apperr.Unauthorized) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired session: %v", err)
	}
	// Without logins a session cookie is refused too.
	if _, err := (&Guard{}).Authenticate(withCookie(c)); !apperr.Is(err, apperr.Unauthorized) {
		t.Errorf("a session cookie where there are no logins: %v", err)
	}
}

// TestSecureCookieBehindTLS: the session cookie is Secure when the client came over TLS, directly or
// through a trusted proxy, and only then.
func TestSecureCookieBehindTLS(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	s, err := NewSessions(t.Context(), st, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	proxies, _ := ParseProxies([]string{"10.0.0.7"})
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		secure bool
	}{
		{"plain", func() *http.Request { return httptest.NewRequest("GET", "/", nil) }, false},
		{"tls", func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.TLS = &tls.ConnectionState{}
			return r
		}, true},
		{"trusted proxy", func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = "10.0.0.7:5000"
			r.Header.Set("X-Forwarded-Proto", "https")
			return r
		}, true},
		{"untrusted proxy", func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = "10.0.0.8:5000"
			r.Header.Set("X-Forwarded-Proto", "https")
			return r
		}, false},
	} {
		r := tc.req()
		r = WithClient(r, proxies.Resolve(r))
		rec := httptest.NewRecorder()
		if _, err := s.Start(t.Context(), rec, r, "alice", RoleViewer); err != nil {
			t.Fatal(err)
		}
		if c := rec.Result().Cookies()[0]; c.Secure != tc.secure {
			t.Errorf("%s: Secure = %v, want %v", tc.name, c.Secure, tc.secure)
		}
	}
}

func TestProxies(t *testing.T) {
	t.Parallel()
	p, err := ParseProxies([]string{"10.76.0.0/16", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"192.0.2.7:4000", "", "192.0.2.7"},
		{"192.0.2.7:4000", "127.0.0.1", "192.0.2.7"},                  // not a proxy: its header is ignored
		{"10.76.1.2:4000", "198.51.100.4", "198.51.100.4"},            // the proxy names the client
		{"10.76.1.2:4000", "127.0.0.1, 198.51.100.4", "198.51.100.4"}, // a claim to the left of the client proves nothing
		{"10.76.1.2:4000", "198.51.100.4, 10.76.3.3", "198.51.100.4"}, // two proxies
		{"10.76.1.2:4000", "not-an-address", "10.76.1.2"},             // garbage: the proxy, no loopback
		{"127.0.0.1:4000", "203.0.113.9", "203.0.113.9"},              // a proxy on this machine
		{"[::ffff:10.76.1.2]:4000", "198.51.100.4", "198.51.100.4"},   // IPv4 in IPv6
		{"10.76.1.2:4000", "10.76.9.9, 10.76.3.3", "10.76.9.9"},       // every hop a proxy
		{"192.0.2.7:4000", "", "192.0.2.7"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := p.Resolve(r).Addr.String(); got != tc.want {
			t.Errorf("%s with X-Forwarded-For %q: client %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
	for _, bad := range []string{"10.76.0.0/33", "proxy.cern.ch", ""} {
		if _, err := ParseProxies([]string{bad}); err == nil {
			t.Errorf("trusted proxy %q accepted", bad)
		}
	}
}

// TestLoopbackOperator: the demo's open operator role is for this machine only; a remote client
// behind a proxy on this machine is not this machine, and forged X-Forwarded-For does not make one.
func TestLoopbackOperator(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	g := &Guard{Tokens: &Tokens{Store: st, Now: time.Now}, LoopbackOperator: true}
	proxies, _ := ParseProxies([]string{"127.0.0.1"})
	req := func(remote, xff string) *http.Request {
		r := httptest.NewRequest("POST", "/api/v1/runs/1/override", nil)
		r.RemoteAddr = remote
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		return WithClient(r, proxies.Resolve(r))
	}
	if p, err := g.Authenticate(req("127.0.0.1:5000", "")); err != nil || p.Name != LoopbackOperator || !p.CanOperate() {
		t.Errorf("loopback: %+v %v", p, err)
	}
	if p, _ := g.Authenticate(req("127.0.0.1:5000", "198.51.100.4")); !p.IsAnonymous() {
		t.Errorf("a remote client through a proxy on this machine became %+v", p)
	}
	if p, _ := g.Authenticate(req("198.51.100.4:5000", "127.0.0.1")); !p.IsAnonymous() {
		t.Errorf("a remote client claiming to be loopback became %+v", p)
	}
	if p, _ := (&Guard{Tokens: g.Tokens}).Authenticate(req("127.0.0.1:5000", "")); !p.IsAnonymous() {
		t.Errorf("loopback opened outside the demo: %+v", p)
	}
}

func TestCrossSite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header, value string
		cross         bool
	}{
		{"Sec-Fetch-Site", "cross-site", true},
		{"Sec-Fetch-Site", "same-site", true},
		{"Origin", "http://evil.example", true},
		{"Origin", "null", true},
		{"Origin", "http://127.0.0.1:8080", false},
		{"Sec-Fetch-Site", "same-origin", false},
	} {
		r := httptest.NewRequest("POST", "http://127.0.0.1:8080/api/v1/runs/1/override", nil)
		r.Header.Set(tc.header, tc.value)
		if got := CrossSite(r); got != tc.cross {
			t.Errorf("%s: %s: cross-site %v, want %v", tc.header, tc.value, got, tc.cross)
		}
	}
}

var _ TokenStore = store.Store(nil)
var _ SessionStore = store.Store(nil)
