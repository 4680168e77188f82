package web

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/apperr"
)

// Who may do what is decided here, once, for every route, before its handler runs: each route pattern
// has a rule in routeRules, the mux records every pattern registered on it, and a pattern without a
// rule is refused (and fails the authorization matrix test, which is generated from the registered
// routes). So a route added later is closed until someone decides who may use it.

// Authenticator says who a request comes from (access.Guard does): the principal, or an error
// (apperr.Unauthorized) when credentials were presented and are not valid. Presenting nothing is
// the anonymous principal, not an error.
type Authenticator interface {
	Authenticate(r *http.Request) (access.Principal, error)
}

// Login is the OIDC login (sso.Login is): Begin returns the provider's URL to send the browser to,
// Finish completes the callback (a session cookie set) and says where to go, Logout ends the session
// and names whose it was.
type Login interface {
	Begin(w http.ResponseWriter, r *http.Request, next string) (string, error)
	Finish(w http.ResponseWriter, r *http.Request) (next string, err error)
	Logout(w http.ResponseWriter, r *http.Request) (user string, err error)
}

// rule is what a route needs.
type rule int

const (
	// rulePublic: health, static files, the login itself. Credentials are not looked at: an expired
	// session must still reach the login, and a load balancer's probe has none.
	rulePublic rule = iota + 1
	// ruleRead: open, unless reading needs a login (access.read: authenticated).
	ruleRead
	// rulePull: Tier-0's pull API; open, unless it needs a steer token (access.pull: token).
	rulePull
	// ruleOperate: operator actions (overrides, silences): the operator role or an operate token.
	ruleOperate
	// ruleAdmin: tokens and the configuration: an admin's login.
	ruleAdmin
)

func (r rule) String() string {
	return map[rule]string{rulePublic: "public", ruleRead: "read", rulePull: "pull", ruleOperate: "operate", ruleAdmin: "admin"}[r]
}

// routeRules is the rule of every route pattern, as registered.
var routeRules = map[string]rule{
	"GET /healthz":                     rulePublic,
	"GET /readyz":                      rulePublic,
	"GET /static/{file}":               rulePublic,
	"/api/":                            rulePublic, // the JSON 404 of unknown endpoints
	"GET /auth/login":                  rulePublic,
	"GET /auth/callback":               rulePublic,
	"POST /auth/logout":                rulePublic, // checks its own session and form token: an expired session may log out
	"GET /api/v1/runs":                 ruleRead,
	"GET /api/v1/runs/{run}":           ruleRead,
	"GET /api/v1/workflows":            ruleRead,
	"GET /api/v1/sources":              ruleRead,
	"GET /api/v1/audit":                ruleRead,
	"GET /api/v1/outbox":               ruleRead,
	"GET /api/v1/alerts":               ruleRead,
	"GET /api/v1/version":              ruleRead,
	"GET /api/v1/whoami":               ruleRead,
	"GET /api/v1/openapi.json":         ruleRead,
	"GET /api/v1/cluster":              ruleRead,
	"GET /metrics":                     ruleRead, // open unless reading needs a login: then a read token (Prometheus' bearer_token_file)
	"GET /{$}":                         ruleRead,
	"GET /runs/{run}":                  ruleRead,
	"GET /workflows":                   ruleRead,
	"GET /workflows/{name}":            ruleRead,
	"GET /sources":                     ruleRead,
	"GET /releases":                    ruleRead,
	"GET /events":                      ruleRead,
	"GET /t0/v1/ready_runs":            rulePull,
	"GET /t0/v1/first_unready_run":     rulePull,
	"POST /api/v1/runs/{run}/override": ruleOperate,
	"POST /runs/{run}/actions":         ruleOperate,
	"GET /api/v1/tokens":               ruleAdmin,
	"DELETE /api/v1/tokens/{name}":     ruleAdmin,
	"GET /api/v1/config":               ruleAdmin,
	"GET /admin":                       ruleAdmin,
	"POST /admin/tokens/{name}/revoke": ruleAdmin,
	// Silences (issue 14) are operator actions; reading them and the alerts page is reading.
	"GET /api/v1/silences":         ruleRead,
	"POST /api/v1/silences":        ruleOperate,
	"DELETE /api/v1/silences/{id}": ruleOperate,
	"GET /alerts":                  ruleRead,
	"GET /alerts/runbook":          ruleRead,
	"GET /api/v1/alerts/history":   ruleRead,
	// The Alerts page's silence forms: the same operator action as the API's, with a form token.
	"POST /alerts/silences":             ruleOperate,
	"POST /alerts/silences/{id}/expire": ruleOperate,
}

// routeMux is a ServeMux that remembers the patterns registered on it, for the authorization matrix.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func newRouteMux() *routeMux { return &routeMux{ServeMux: http.NewServeMux()} }

func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

type principalKey struct{}

// principalOf is who the request comes from, as the middleware found it.
func principalOf(r *http.Request) access.Principal {
	p, _ := r.Context().Value(principalKey{}).(access.Principal)
	return p
}

func withPrincipal(r *http.Request, p access.Principal) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}

// securityHeaders go on every response, Tier-0's pull API and errors included.
func securityHeaders(h http.Header, secure bool) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if secure {
		// Only over TLS: a browser ignores it over plain HTTP, and a server reached over plain HTTP
		// on purpose (the demo, a test) must not be pinned to HTTPS.
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.o.Requests == nil {
		s.serve(w, r)
		return
	}
	start := time.Now() // wall time: a request takes real time whatever the agency's clock says
	rec := &statusRecorder{ResponseWriter: w}
	s.serve(rec, r)
	route := "unmatched"
	if _, pattern := s.mux.Handler(r); pattern != "" {
		route = pattern
	}
	s.o.Requests.ObserveRequest(route, rec.status(), time.Since(start))
}

// statusRecorder remembers the status a handler wrote. Unwrap lets http.ResponseController reach the
// connection (the event stream flushes and lifts its deadlines through it).
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	c := s.o.Proxies.Resolve(r)
	r = access.WithClient(r, c)
	securityHeaders(w.Header(), c.Secure)
	if r.ContentLength > s.o.MaxBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{
			"error": fmt.Sprintf("request body of %d bytes is over the limit of %d", r.ContentLength, s.o.MaxBody), "code": "too_large"})
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBody)
	}
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.mux.ServeHTTP(w, r) // not found, method not allowed, a redirect
		return
	}
	rl, ok := routeRules[pattern]
	if !ok {
		// Closed until someone decides: see routeRules.
		s.log.Error("route without an access rule refused", "pattern", pattern)
		s.refuse(w, r, pattern, apperr.Errorf(apperr.Forbidden, "%s has no access rule yet, so nobody may use it", pattern))
		return
	}
	if rl == rulePublic {
		s.mux.ServeHTTP(w, r)
		return
	}
	p, err := s.identify(r)
	if err == nil {
		p, err = s.allow(r, rl, p)
	}
	if err == nil {
		err = s.checkCSRF(r, p)
	}
	if err != nil {
		s.refuse(w, r, pattern, err)
		return
	}
	s.mux.ServeHTTP(w, withPrincipal(r, p))
}

// errTooMany is a client over the limit of failed authentications.
type errTooMany struct{ retry int }

func (e errTooMany) Error() string {
	return fmt.Sprintf("too many failed authentications from this address; try again in %d s", e.retry)
}

// identify is the request's principal. A client that failed to authenticate too often is refused
// whatever it presents now, until its window ends.
func (s *Server) identify(r *http.Request) (access.Principal, error) {
	if s.o.Access == nil {
		return access.Anonymous, nil
	}
	addr := access.ClientOf(r).Addr
	if retry, blocked := s.failures.blocked(addr); blocked && presents(r) {
		return access.Anonymous, errTooMany{retry}
	}
	p, err := s.o.Access.Authenticate(r)
	if apperr.Is(err, apperr.Unauthorized) {
		s.failures.fail(addr)
	}
	return p, err
}

// presents says whether a request carries credentials.
func presents(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" {
		return true
	}
	_, err := r.Cookie(access.SessionCookie)
	return err == nil
}

// allow checks a principal against a route's rule; it returns the principal the handler sees.
func (s *Server) allow(r *http.Request, rl rule, p access.Principal) (access.Principal, error) {
	need := func(ok bool, what string) error {
		switch {
		case ok:
			return nil
		case p.IsAnonymous():
			return apperr.Errorf(apperr.Unauthorized, "%s: log in, or send Authorization: Bearer <token>", what)
		}
		return apperr.Errorf(apperr.Forbidden, "%s; you are %s", what, p.Describe())
	}
	switch rl {
	case ruleRead:
		return p, need(!s.o.ReadNeedsLogin || p.CanRead(), "reading needs a login or an API token here")
	case rulePull:
		return p, need(!s.o.PullNeedsToken || p.CanPull(), "Tier-0's pull API needs a token of the steer scope here")
	case ruleAdmin:
		return p, need(p.CanAdmin(), "this needs an admin's login")
	case ruleOperate:
		if s.o.Access == nil {
			return s.legacyOperator(r)
		}
		return p, need(p.CanOperate(), "operator actions need the operator role or a token of the operate scope")
	}
	return p, apperr.Errorf(apperr.Forbidden, "unknown access rule")
}

// legacyOperator is the check of a server given Operators and no Authenticator (tests, older wiring):
// the Operators decides, and its operator acts like the demo's loopback one.
func (s *Server) legacyOperator(r *http.Request) (access.Principal, error) {
	if s.o.Operator == nil {
		return access.Anonymous, apperr.Errorf(apperr.Forbidden, "operator actions are not enabled on this server (they need the operator role; see docs/operator-guide.md)")
	}
	name, err := s.o.Operator.Operator(r)
	if err != nil {
		return access.Anonymous, err
	}
	return access.Principal{Name: name, Via: access.ViaLoopback, Role: access.RoleOperator}, nil
}

// unsafe says whether a method changes state.
func unsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// checkCSRF protects state-changing requests a browser could be made to send. A cookie session's must
// come from this origin and carry the session's form token (the X-CSRF-Token header, or the form's
// token field); the demo's loopback operator's must not be cross-site (its forms carry the process's
// token, checked by the form's handler). A token in the Authorization header is no cookie: a browser
// never adds it by itself, so such requests need neither.
func (s *Server) checkCSRF(r *http.Request, p access.Principal) error {
	if !unsafe(r.Method) {
		return nil
	}
	switch p.Via {
	case access.ViaSession:
		if err := sameOrigin(r); err != nil {
			return err
		}
		if !validToken(formToken(r), p.CSRF) {
			return apperr.Errorf(apperr.Forbidden, "the form token is missing or wrong (send X-CSRF-Token, or reload the page and post its form)")
		}
	case access.ViaLoopback:
		if access.CrossSite(r) {
			return apperr.Errorf(apperr.Forbidden, "a cross-site request may not act, even from this machine")
		}
	}
	return nil
}

// formToken is the CSRF token a request carries: the header, or the form's token field.
func formToken(r *http.Request) string {
	if t := r.Header.Get("X-CSRF-Token"); t != "" {
		return t
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if err := r.ParseForm(); err == nil {
			return r.PostForm.Get("token")
		}
	}
	return ""
}

func validToken(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// csrfFor is the form token the request's pages must carry: its session's, or the process's.
func (s *Server) csrfFor(r *http.Request) string {
	if p := principalOf(r); p.Via == access.ViaSession {
		return p.CSRF
	}
	return s.csrf
}

// isPage says whether a route answers with a page rather than JSON.
func isPage(pattern string) bool {
	_, path, _ := strings.Cut(pattern, " ")
	if path == "" {
		path = pattern
	}
	return !strings.HasPrefix(path, "/api/") && !strings.HasPrefix(path, "/t0/") && path != "/events"
}

// refuse answers a refused request: 429 with Retry-After for a client over its limit, otherwise the
// error's status, as a page for pages (with a way to log in) and as JSON for the API. A session
// cookie that was refused is cleared, so that the browser stops presenting it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, pattern string, err error) {
	if tm, ok := err.(errTooMany); ok {
		w.Header().Set("Retry-After", strconv.Itoa(tm.retry))
		if isPage(pattern) {
			s.render(w, r, http.StatusTooManyRequests, "error", page{Title: "Too many failed logins", Data: tm.Error()})
			return
		}
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": tm.Error(), "code": "too_many_requests"})
		return
	}
	if apperr.Is(err, apperr.Unauthorized) && r.Header.Get("Authorization") == "" {
		if _, cerr := r.Cookie(access.SessionCookie); cerr == nil {
			access.Clear(w, r)
		}
	}
	if isPage(pattern) {
		s.pageError(w, r, err)
		return
	}
	s.fail(w, r, err)
}

// operator says who may act on runs with the request, or why nobody may.
func (s *Server) operator(r *http.Request) (string, error) {
	if s.o.Overrider == nil {
		return "", apperr.Errorf(apperr.Forbidden, "operator actions are not enabled on this server (they need the operator role; see docs/operator-guide.md)")
	}
	return s.operatorFor(r, "act on runs")
}

// operatorFor says who is an operator with the request, for an operator action (overrides, silences),
// or why nobody may do it.
func (s *Server) operatorFor(r *http.Request, what string) (string, error) {
	if s.o.Access == nil {
		p, err := s.legacyOperator(r)
		return p.Name, err
	}
	p := principalOf(r)
	switch {
	case p.CanOperate():
		return p.Name, nil
	case p.IsAnonymous() && s.o.Login != nil:
		return "", apperr.Errorf(apperr.Unauthorized, "log in as an operator to %s", what)
	case p.IsAnonymous():
		return "", apperr.Errorf(apperr.Unauthorized, "operator actions need the operator role or a token of the operate scope")
	}
	return "", apperr.Errorf(apperr.Forbidden, "%s may not %s: that needs the operator role or a token of the operate scope", p.Describe(), what)
}
