package web

import (
	"net/http"
	"net/url"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/apperr"
)

// The login pages: /auth/login sends the browser to the OIDC provider, /auth/callback comes back from
// it with a session, /auth/logout ends the session. They are public routes (an expired session must
// reach them); the callback's failures count towards the client's limit like a bad token's.

func (s *Server) authRoutes() {
	s.mux.HandleFunc("GET /auth/login", s.login)
	s.mux.HandleFunc("GET /auth/callback", s.callback)
	s.mux.HandleFunc("POST /auth/logout", s.logout)
	s.mux.HandleFunc("GET /api/v1/whoami", s.whoami)
}

func (s *Server) noLogin(w http.ResponseWriter, r *http.Request) bool {
	if s.o.Login != nil {
		return false
	}
	s.pageError(w, r, apperr.Errorf(apperr.NotFound, "this server has no login (no OIDC provider is configured); see docs/operator-guide.md"))
	return true
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.noLogin(w, r) {
		return
	}
	to, err := s.o.Login.Begin(w, r, access.SafeNext(r.URL.Query().Get("next")))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, to, http.StatusFound)
}

func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	if s.noLogin(w, r) {
		return
	}
	addr := access.ClientOf(r).Addr
	if retry, blocked := s.failures.blocked(addr); blocked {
		s.refuse(w, r, "GET /auth/callback", errTooMany{retry})
		return
	}
	next, err := s.o.Login.Finish(w, r)
	if err != nil {
		if apperr.Is(err, apperr.Unauthorized) {
			s.failures.fail(addr)
		}
		s.log.Warn("login failed", "err", err)
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, access.SafeNext(next), http.StatusSeeOther)
}

// logout ends the session. Its form carries the session's token, so that another site cannot log an
// operator out in the middle of a shift; a session that is no longer valid is simply forgotten.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if s.noLogin(w, r) {
		return
	}
	if s.o.Access != nil {
		if p, err := s.o.Access.Authenticate(r); err == nil && p.Via == access.ViaSession {
			if err := sameOrigin(r); err != nil {
				s.pageError(w, r, err)
				return
			}
			if !validToken(formToken(r), p.CSRF) {
				s.pageError(w, r, apperr.Errorf(apperr.Forbidden, "the logout form is stale or was not made by this server; reload the page"))
				return
			}
		}
	}
	user, err := s.o.Login.Logout(w, r)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	if user != "" {
		s.log.Info("logout", "user", user)
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// whoView is who the page or the API says is there.
type whoView struct {
	Name       string `json:"name,omitempty"`
	Via        string `json:"via"`
	Role       string `json:"role,omitempty"`
	Scope      string `json:"scope,omitempty"`
	CanAct     bool   `json:"can_act"`
	CanAdmin   bool   `json:"can_admin"`
	LoginURL   string `json:"-"` // "" when there is no login
	LogoutCSRF string `json:"-"` // the logout form's token, for a session
}

func (s *Server) who(r *http.Request) whoView {
	p := principalOf(r)
	v := whoView{Name: p.Name, Via: string(p.Via), Role: string(p.Role), Scope: string(p.Scope), CanAdmin: p.CanAdmin()}
	if v.Via == "" {
		v.Via = "anonymous"
	}
	_, err := s.operator(r)
	v.CanAct = err == nil
	if s.o.Login != nil {
		next := "/"
		if r.Method == http.MethodGet && isPage(r.Pattern) {
			next = r.URL.RequestURI()
		}
		v.LoginURL = "/auth/login?next=" + url.QueryEscape(access.SafeNext(next))
		if p.Via == access.ViaSession {
			v.LogoutCSRF = p.CSRF
		}
	}
	return v
}

// whoami tells a client who the server takes it for.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.who(r))
}
