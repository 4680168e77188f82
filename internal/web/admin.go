package web

import (
	"context"
	"net/http"
	"net/url"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// What an admin may see and do over HTTP: the API tokens (listed and revoked, never shown) and the
// configuration in force, with its secrets' places but never the secrets.

// TokenAdmin lists and revokes API tokens (access.Tokens does).
type TokenAdmin interface {
	List(ctx context.Context) ([]store.APIToken, error)
	Revoke(ctx context.Context, name string) (store.APIToken, error)
}

// ConfigView is the configuration in force, as YAML fit to show (the app's redacted configuration).
type ConfigView interface {
	ConfigYAML() string
}

// TierZeroPull answers Tier-0's pull API (steering does), served here so that the pull API has the
// same headers, limits and access rules as everything else.
type TierZeroPull interface {
	ReadyRuns(w http.ResponseWriter, r *http.Request)
	FirstUnreadyRun(w http.ResponseWriter, r *http.Request)
}

func (s *Server) adminRoutes() {
	s.mux.HandleFunc("GET /api/v1/tokens", s.listTokens)
	s.mux.HandleFunc("DELETE /api/v1/tokens/{name}", s.revokeToken)
	s.mux.HandleFunc("GET /api/v1/config", s.configView)
	s.mux.HandleFunc("GET /admin", s.adminPage)
	s.mux.HandleFunc("POST /admin/tokens/{name}/revoke", s.revokeTokenPage)
	if s.o.Pull != nil {
		s.mux.HandleFunc("GET /t0/v1/ready_runs", s.o.Pull.ReadyRuns)
		s.mux.HandleFunc("GET /t0/v1/first_unready_run", s.o.Pull.FirstUnreadyRun)
	}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	if s.o.Tokens == nil {
		writeJSON(w, http.StatusOK, map[string]any{"tokens": []store.APIToken{}})
		return
	}
	list, err := s.o.Tokens.List(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list == nil {
		list = []store.APIToken{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": list})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if s.o.Tokens == nil {
		http.NotFound(w, r)
		return
	}
	t, err := s.revoke(r, r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// revoke revokes a live token and audits it under the admin who asked.
func (s *Server) revoke(r *http.Request, name string) (store.APIToken, error) {
	t, err := s.o.Tokens.Revoke(r.Context(), name)
	if err != nil {
		return store.APIToken{}, err
	}
	actor := principalOf(r).Name
	if err := s.o.Store.AppendAudit(r.Context(), store.AuditEntry{At: t.Revoked, Actor: actor, Action: "token-revoke", Detail: "revoked token " + t.Name + " (scope " + t.Scope + ")"}); err != nil {
		s.log.Error("audit a token's revocation", "token", t.Name, "err", err)
	}
	s.log.Info("token revoked", "token", t.Name, "actor", actor)
	return t, nil
}

type adminData struct {
	Tokens    []store.APIToken
	Config    string
	FormToken string
	Done      string
}

// adminPage shows an admin the tokens (never a token itself) with a revoke button each, and the
// configuration in force.
func (s *Server) adminPage(w http.ResponseWriter, r *http.Request) {
	d := adminData{FormToken: s.csrfFor(r)}
	if s.o.Tokens != nil {
		list, err := s.o.Tokens.List(r.Context())
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		d.Tokens = list
	}
	if s.o.Config != nil {
		d.Config = s.o.Config.ConfigYAML()
	}
	if n := r.URL.Query().Get("revoked"); n != "" {
		d.Done = "Token " + n + " revoked."
	}
	s.render(w, r, http.StatusOK, "admin", page{Title: "Admin", Nav: "admin", Data: d})
}

func (s *Server) revokeTokenPage(w http.ResponseWriter, r *http.Request) {
	if err := s.parsePageForm(w, r, "the Admin page"); err != nil {
		s.pageError(w, r, err)
		return
	}
	if s.o.Tokens == nil {
		s.pageError(w, r, apperr.Errorf(apperr.NotFound, "this server keeps no tokens"))
		return
	}
	t, err := s.revoke(r, r.PathValue("name"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, "/admin?revoked="+url.QueryEscape(t.Name)+"#h-tokens", http.StatusSeeOther)
}

func (s *Server) configView(w http.ResponseWriter, r *http.Request) {
	if s.o.Config == nil {
		writeJSON(w, http.StatusOK, map[string]string{"config": ""})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"config": s.o.Config.ConfigYAML()})
}
