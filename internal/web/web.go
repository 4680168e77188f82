// Package web serves Spy Agency over HTTP: the JSON API of design.md, health and readiness, and (until
// the full operators' page lands) a plain page listing runs and their states.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy"
	"github.com/cms-pcl/spyagency/internal/store"
)

// Overrider applies operator overrides (the agency does).
type Overrider interface {
	Override(ctx context.Context, run uint32, action pcl.OverrideAction, workflow, actor, reason string) (pcl.RunState, error)
}

// Options configure the server. Store, Catalogue and Clock are required.
type Options struct {
	Store     store.Store
	Catalogue *pcl.Catalogue
	Clock     clock.Clock
	Logger    *slog.Logger
	Overrider Overrider
	// Sources reports the spies' health.
	Sources func() []spy.Health
	// Operator says who may act on runs: it returns the actor's name, or an error (apperr.Unauthorized
	// or Forbidden) when the request may not. Nil refuses every operator action.
	Operator func(r *http.Request) (string, error)
	// Ready reports whether the process can serve (store reachable, loop running).
	Ready func(ctx context.Context) error
	// MaxBody is the largest request body accepted (default 1 MiB).
	MaxBody int64
	Version string
	// Banner is shown on the page (e.g. the demo's open operator access).
	Banner string
}

// Server is the HTTP handler.
type Server struct {
	o   Options
	mux *http.ServeMux
	log *slog.Logger
}

// New builds the handler.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Catalogue == nil || o.Clock == nil {
		return nil, errors.New("web: Store, Catalogue and Clock are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	s := &Server{o: o, mux: http.NewServeMux(), log: o.Logger}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /api/v1/runs", s.listRuns)
	s.mux.HandleFunc("GET /api/v1/runs/{run}", s.getRun)
	s.mux.HandleFunc("POST /api/v1/runs/{run}/override", s.override)
	s.mux.HandleFunc("GET /api/v1/workflows", s.workflows)
	s.mux.HandleFunc("GET /api/v1/sources", s.sources)
	s.mux.HandleFunc("GET /api/v1/audit", s.audit)
	s.mux.HandleFunc("GET /api/v1/version", s.version)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /{$}", s.page)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, apperr.Errorf(apperr.NotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// statusOf maps an error kind to its HTTP status, in one place.
func statusOf(code apperr.Code) int {
	switch code {
	case apperr.NotFound:
		return http.StatusNotFound
	case apperr.Invalid:
		return http.StatusBadRequest
	case apperr.Conflict:
		return http.StatusConflict
	case apperr.Unauthorized:
		return http.StatusUnauthorized
	case apperr.Forbidden:
		return http.StatusForbidden
	case apperr.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers with a JSON error. Internal errors are logged in full and shown blandly.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := apperr.CodeOf(err)
	msg := err.Error()
	if code == apperr.Internal {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error; see the server log"
	}
	writeJSON(w, statusOf(code), map[string]string{"error": msg, "code": string(code)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// decodeBody reads a JSON request body strictly: size-limited, unknown fields refused, one value only.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, into any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return apperr.Errorf(apperr.Invalid, "request body must be application/json, not %q", ct)
	}
	body := http.MaxBytesReader(w, r.Body, s.o.MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apperr.Errorf(apperr.Invalid, "request body over %d bytes", s.o.MaxBody)
		}
		return apperr.Errorf(apperr.Invalid, "bad request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apperr.Errorf(apperr.Invalid, "bad request body: more than one JSON value")
	}
	return nil
}

func parseRun(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, apperr.Errorf(apperr.Invalid, "bad run number %q", s)
	}
	return uint32(n), nil
}

func queryInt(r *http.Request, name string, def, max int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, apperr.Errorf(apperr.Invalid, "bad %s %q: want a non-negative number", name, v)
	}
	return min(n, max), nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.o.Ready != nil {
		if err := s.o.Ready(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": s.o.Version})
}

// ListenAndServe serves h on addr until ctx ends, then shuts down within grace. It reports the bound
// address through bound (useful with port 0).
func ListenAndServe(ctx context.Context, addr string, h http.Handler, grace time.Duration, bound func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if bound != nil {
		bound(ln.Addr())
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
