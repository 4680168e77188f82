// Package web serves Spy Agency over HTTP: the JSON API of design.md, health and readiness, and the
// operators' pages (run board, run page, workflow, sources, release and alerts pages) with live
// updates over server-sent events. The pages are rendered on the server with html/template; the little
// JavaScript there is, the CSS and the templates are embedded (assets/), and nothing is fetched from
// outside.
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

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/web/openapi"
)

// What the server needs from the rest of the process arrives as these small interfaces, each answered
// by the part that owns the answer (the agency, the app's spies, steering, access), so that the web
// imports the domain, the store and its own read models, and nothing of the loop, the configuration
// or the spies. A nil one turns its part off; it must be a nil interface, not a nil pointer in one.

// Overrider applies operator overrides (the agency does).
type Overrider interface {
	Override(ctx context.Context, run uint32, action pcl.OverrideAction, workflow, actor, reason string) (pcl.RunState, error)
}

// SourceHealth reports the spies' health (the app's spies do).
type SourceHealth interface {
	SourceHealth() []pcl.SourceHealth
}

// Operators says who may act on runs: the actor's name, or an error (apperr.Unauthorized or
// Forbidden) when the request may not. It is the check of a server without an Authenticator (tests);
// with one, the principal's role or scope decides.
type Operators interface {
	Operator(r *http.Request) (string, error)
}

// Readiness says whether the process can serve: store reachable, loop running.
type Readiness interface {
	Ready(ctx context.Context) error
}

// Events subscribes to the run states as they are stored (the agency publishes them); cancel releases
// the subscription.
type Events interface {
	Subscribe(buffer int) (events <-chan pcl.RunEvent, cancel func())
}

// FirstUnready is the first run Tier-0 may not release yet, as steering computes it.
type FirstUnready interface {
	FirstUnready(ctx context.Context) (uint32, error)
}

// Options configure the server. Store, Catalogue and Clock are required.
type Options struct {
	Store     store.Store
	Catalogue *pcl.Catalogue
	Clock     clock.Clock
	Logger    *slog.Logger
	Overrider Overrider
	// Sources reports the spies' health.
	Sources SourceHealth
	// Access says who each request comes from (access.Guard): logins, API tokens, the demo's loopback
	// operator. Nil: every request is anonymous, and Operator alone decides operator actions.
	Access Authenticator
	// Login is the OIDC login (sso.Login); nil: nobody logs in.
	Login Login
	// ReadNeedsLogin closes reading to anonymous clients (access.read: authenticated);
	// PullNeedsToken closes Tier-0's pull API to all but steer tokens (access.pull: token).
	ReadNeedsLogin, PullNeedsToken bool
	// Proxies are the reverse proxies whose X-Forwarded-* headers are believed (server.trusted_proxies).
	Proxies access.Proxies
	// FailedAuthLimit failed authentications per FailedAuthWindow from one client address are allowed;
	// past them its requests with credentials get 429 until the window ends (default 10 per minute).
	FailedAuthLimit  int
	FailedAuthWindow time.Duration
	// WallNow is the failed authentications' clock (default time.Now).
	WallNow func() time.Time
	// Pull answers Tier-0's pull API under /t0/v1/; nil: not served.
	Pull TierZeroPull
	// Tokens lists and revokes API tokens for admins; nil: none listed.
	Tokens TokenAdmin
	// Config shows admins the configuration in force; nil: empty.
	Config ConfigView
	// Operator says who may act on runs when Access is nil. Nil refuses every operator action.
	Operator Operators
	// Ready reports whether the process can serve; nil: always ready.
	Ready Readiness
	// MaxBody is the largest request body accepted (default 1 MiB).
	MaxBody int64
	Version string
	// Banner is shown on the page (e.g. the demo's open operator access).
	Banner string

	// Events feeds the live pages; nil: the pages are not live.
	Events Events
	// FirstUnready heads the board; nil: not shown.
	FirstUnready FirstUnready
	// Links are the base URLs of the CMS pages the run page links to; "" hides that kind of link.
	Links Links
	// Alerts lists the firing alerts for the board's header and the API; nil: the header says alerts
	// are not configured.
	Alerts AlertSource
	// AlertBook is the alert evaluator's read side for the Alerts page and the API; Silences makes and
	// ends silences (alerts.go). Nil: no Alerts page content, no silences.
	AlertBook AlertBook
	Silences  Silences
	// Heartbeat is how often an idle event stream sends a tick (default 15s of wall time).
	Heartbeat time.Duration
	// StreamWriteTimeout bounds each write of an event stream, which lifts the server's write timeout
	// for itself: a page that stops reading loses its stream, and its goroutine ends, once one write
	// has waited this long (default 20s).
	StreamWriteTimeout time.Duration
	// HeaderEvery is how often the header's sources and alerts are looked at for the live page
	// (default 2s of wall time); a part is sent only when it changed.
	HeaderEvery time.Duration
	// Cluster answers GET /api/v1/cluster; nil: a 404.
	Cluster ClusterInfo
	// Metrics serves GET /metrics (Prometheus' text format, internal/metrics); nil: 404.
	Metrics http.Handler
	// Requests is told of every request answered, by the route pattern it matched ("unmatched" when
	// none did), for the metrics; nil: nobody is.
	Requests RequestObserver
}

// ClusterInfo says which replicas serve and which of them leads (GET /api/v1/cluster).
type ClusterInfo interface {
	Cluster(ctx context.Context) (Cluster, error)
}

// Cluster is the replicas of one deployment: this one (Self), the one that runs the spies, the
// reconcile and the pushes (Leader, "" while none holds the lease), the lease's epoch (the fencing
// token), and every replica known to be alive. A single process on SQLite is its own leader.
type Cluster struct {
	Self    string   `json:"self"`
	Leader  string   `json:"leader"`
	Epoch   int64    `json:"epoch"`
	Members []string `json:"members"`
}

// RequestObserver counts answered requests (metrics.Requests is one).
type RequestObserver interface {
	ObserveRequest(route string, code int, d time.Duration)
}

// Links are the base URLs of the CMS web pages the run page links to (config.Links, which the app
// passes on); "" hides that kind of link.
type Links struct {
	CondDBBrowser string // a tag's IOVs: <base>/list/Prod/tags/<tag>
	UploadLog     string // an upload's log: <base>/getFileLog?fileHash=<sha1>
	DQMGUI        string // the DQM plots of a run
	OMS           string // a run's report: <base>/runs/report?cms_run=<run>
	RunRegistry   string // a run's class and certification
}

// Server is the HTTP handler.
type Server struct {
	o        Options
	mux      *routeMux
	log      *slog.Logger
	ui       *ui
	hub      *hub
	csrf     string // per-process token that the forms of principals without a session carry
	failures *failLimiter
	since    sinceMemo // when each held run became releasable, for the header
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
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.StreamWriteTimeout <= 0 {
		o.StreamWriteTimeout = defaultStreamWriteTimeout
	}
	if o.HeaderEvery <= 0 {
		o.HeaderEvery = 2 * time.Second
	}
	u, err := newUI()
	if err != nil {
		return nil, err
	}
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, mux: newRouteMux(), log: o.Logger, ui: u, csrf: token,
		failures: newFailLimiter(o.FailedAuthLimit, o.FailedAuthWindow, o.WallNow)}
	s.hub = newHub(o.Events, o.Clock, o.Logger)
	if o.FirstUnready != nil || o.Sources != nil || o.Alerts != nil {
		s.hub.watch = s.watchHeader
	}
	s.routes()
	return s, nil
}

// Close ends every open event stream and the subscription behind them. The server keeps answering
// other requests; ListenAndServe calls it when it shuts down, since open streams would otherwise hold
// the graceful shutdown until its deadline.
func (s *Server) Close() { s.hub.close() }

func (s *Server) routes() {
	s.mux.HandleFunc("GET /api/v1/runs", s.listRuns)
	s.mux.HandleFunc("GET /api/v1/runs/{run}", s.getRun)
	s.mux.HandleFunc("POST /api/v1/runs/{run}/override", s.override)
	s.mux.HandleFunc("GET /api/v1/workflows", s.workflows)
	s.mux.HandleFunc("GET /api/v1/sources", s.sources)
	s.mux.HandleFunc("GET /api/v1/audit", s.audit)
	s.mux.HandleFunc("GET /api/v1/outbox", s.outbox)
	s.mux.HandleFunc("GET /api/v1/version", s.version)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.o.Metrics == nil {
			s.fail(w, r, apperr.Errorf(apperr.NotFound, "this process serves no metrics"))
			return
		}
		s.o.Metrics.ServeHTTP(w, r)
	})
	s.mux.HandleFunc("GET /api/v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		if s.o.Cluster == nil {
			s.fail(w, r, apperr.Errorf(apperr.NotFound, "this process does not know its cluster"))
			return
		}
		c, err := s.o.Cluster.Cluster(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if c.Members == nil {
			c.Members = []string{}
		}
		writeJSON(w, http.StatusOK, c)
	})
	s.mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(openapi.Document())
	})
	s.pageRoutes()
	s.authRoutes()
	s.adminRoutes()
	s.alertRoutes()
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, apperr.Errorf(apperr.NotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
}

// csp allows only this origin's script, style and images: no inline script, no inline style, nothing
// from elsewhere, so that a string from a source that slipped through could still run nothing. The
// login's form-action goes to this origin only: the provider is reached by a redirect, not a form.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// fail answers with a JSON error. Internal errors are logged in full and shown blandly.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := apperr.CodeOf(err)
	msg := err.Error()
	if code == apperr.Internal {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error; see the server log"
	}
	writeJSON(w, apperr.HTTPStatus(code), map[string]string{"error": msg, "code": string(code)})
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
	// Required, not only checked when present: a cross-site page can post without preflight only
	// text/plain, form or multipart bodies, so insisting on JSON keeps such forgeries out.
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
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
		if err := s.o.Ready.Ready(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": s.o.Version})
}

// Timeouts bound how long one client may hold a connection (config.Server's read_timeout and
// write_timeout). Without them a client that sends its headers and never its body holds a connection,
// and a goroutine, for good.
type Timeouts struct {
	// Read bounds reading a whole request, body included; 0 for no bound. ReadHeader bounds the headers
	// alone: default 10 s, and never longer than Read.
	Read, ReadHeader time.Duration
	// Write bounds writing a response; 0 for no bound. The event stream lifts it (and Read) for itself.
	Write time.Duration
	// Idle bounds a kept-alive connection waiting for its next request; default 2 min.
	Idle time.Duration
}

// newHTTPServer is the http.Server ListenAndServe runs, with the timeouts applied.
func newHTTPServer(h http.Handler, t Timeouts) *http.Server {
	if t.ReadHeader <= 0 {
		t.ReadHeader = 10 * time.Second
	}
	if t.Read > 0 && t.ReadHeader > t.Read {
		t.ReadHeader = t.Read
	}
	if t.Idle <= 0 {
		t.Idle = 2 * time.Minute
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle}
}

// ListenAndServe serves h on addr until ctx ends, then shuts down within grace. It reports the bound
// address through bound (useful with port 0).
func ListenAndServe(ctx context.Context, addr string, h http.Handler, grace time.Duration, t Timeouts, bound func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if bound != nil {
		bound(ln.Addr())
	}
	return Serve(ctx, ln, h, grace, t)
}

// Serve serves h on ln until ctx ends, then shuts down within grace and closes ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, t Timeouts) error {
	srv := newHTTPServer(h, t)
	if c, ok := h.(interface{ Close() }); ok {
		srv.RegisterOnShutdown(c.Close) // event streams never go idle by themselves
	}
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
		_ = srv.Close() // the grace ran out: drop what is left rather than leak it
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
