package web

import (
	"context"
	"net/http"

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
	t, err := s.o.Tokens.Revoke(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	actor := principalOf(r).Name
	if err := s.o.Store.AppendAudit(r.Context(), store.AuditEntry{At: t.Revoked, Actor: actor, Action: "token-revoke", Detail: "revoked token " + t.Name + " (scope " + t.Scope + ")"}); err != nil {
		s.log.Error("audit a token's revocation", "token", t.Name, "err", err)
	}
	s.log.Info("token revoked", "token", t.Name, "actor", actor)
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) configView(w http.ResponseWriter, r *http.Request) {
	if s.o.Config == nil {
		writeJSON(w, http.StatusOK, map[string]string{"config": ""})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"config": s.o.Config.ConfigYAML()})
}
