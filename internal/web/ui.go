package web

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/web/plot"
)

//go:embed assets
var assetsFS embed.FS

// ui holds the parsed page templates and the static files with their content hashes (for cache busting).
type ui struct {
	pages   map[string]*template.Template
	static  map[string][]byte
	version map[string]string
}

var pageNames = []string{"board", "run", "workflow", "workflows", "sources", "releases", "confirm", "error", "alerts", "runbook", "admin"}

func newUI() (*ui, error) {
	u := &ui{pages: map[string]*template.Template{}, static: map[string][]byte{}, version: map[string]string{}}
	for _, name := range []string{"style.css", "app.js"} {
		b, err := assetsFS.ReadFile("assets/static/" + name)
		if err != nil {
			return nil, fmt.Errorf("web: embedded %s: %w", name, err)
		}
		sum := sha256.Sum256(b)
		u.static[name], u.version[name] = b, hex.EncodeToString(sum[:6])
	}
	funcs := template.FuncMap{
		"ago":          ago,
		"until":        until,
		"hours":        plot.Hours,
		"when":         when,
		"rfc3339":      rfc3339,
		"stateSym":     stateSymbol,
		"readySym":     readinessSymbol,
		"pathEscape":   url.PathEscape,
		"static":       func(name string) string { return "/static/" + name + "?v=" + u.version[name] },
		"pct":          func(a, b int) string { return pct(a, b) },
		"join":         strings.Join,
		"deref":        func(t *time.Time) time.Time { return *t },
		"row":          rowHTML,
		"holdupArgs":   func(h holdupView, now time.Time) holdupArgs { return holdupArgs{H: h, Now: now} },
		"holdFor":      func(now time.Time, since *time.Time) string { return holdFor(now.Sub(*since)) },
		"heldText":     heldText,
		"observedNote": func() string { return observedNote },
		"silenceOf":    silenceMatchers,
		"matchers":     matcherText,
		"holdSpan":     func(now, t time.Time) string { return holdFor(now.Sub(t)) },
		"dict":         dict,
		"ptr":          func(t time.Time) *time.Time { return &t },
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assetsFS, "assets/templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: layout template: %w", err)
	}
	for _, p := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(assetsFS, "assets/templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("web: %s template: %w", p, err)
		}
		u.pages[p] = t
	}
	return u, nil
}

// holdupArgs is what the header's first-unready part needs.
type holdupArgs struct {
	H   holdupView
	Now time.Time
}

// page is what every page template sees; Data is the page's own.
type page struct {
	Title    string
	Nav      string
	Banner   string
	Now      time.Time
	Live     bool   // the page opens the event stream
	Position string // the event id the page's content is as new as
	Who      whoView
	Status   int // the page's HTTP status
	Data     any
}

// render executes a page into a buffer first, so that a template error becomes a clean 500 instead of
// half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Banner, p.Now, p.Who, p.Status = s.o.Banner, s.o.Clock.Now(), s.who(r), status
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer putPageBuffer(buf)
	if err := s.ui.pages[name].Execute(buf, p); err != nil {
		s.log.Error("render page", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageBuffers keeps the buffers pages are rendered into: a board page of 50 runs is a few hundred KB,
// and growing a new buffer to that size by doubling for every request was a third of the board's
// allocation.
var pageBuffers = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 64<<10)) }}

func putPageBuffer(b *bytes.Buffer) {
	if b.Cap() > 4<<20 {
		return // a rare huge page (a board of 200 runs with every workflow) is not kept
	}
	b.Reset()
	pageBuffers.Put(b)
}

// pageError shows an error as a page with the status of its kind (404 for an unknown run, ...).
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error) {
	code := apperr.CodeOf(err)
	msg := err.Error()
	if code == apperr.Internal {
		s.log.Error("page failed", "path", r.URL.Path, "err", err)
		msg = "internal error; see the server log"
	}
	s.render(w, r, apperr.HTTPStatus(code), "error", page{Title: http.StatusText(apperr.HTTPStatus(code)), Data: msg})
}

func (s *Server) pageRoutes() {
	s.mux.HandleFunc("GET /{$}", s.board)
	s.mux.HandleFunc("GET /runs/{run}", s.runPage)
	s.mux.HandleFunc("POST /runs/{run}/actions", s.runAction)
	s.mux.HandleFunc("GET /workflows", s.workflowsPage)
	s.mux.HandleFunc("GET /workflows/{name}", s.workflowPage)
	s.mux.HandleFunc("GET /sources", s.sourcesPage)
	s.mux.HandleFunc("GET /releases", s.releasesPage)
	s.mux.HandleFunc("GET /events", s.events)
	s.mux.HandleFunc("GET /static/{file}", s.staticFile)
}

func (s *Server) staticFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, ok := s.ui.static[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	ct := "text/css; charset=utf-8"
	if path.Ext(name) == ".js" {
		ct = "text/javascript; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	if r.URL.Query().Get("v") == s.ui.version[name] {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write(b)
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("web: make the form token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Symbols keep states apart without colour; the state's name is always in the label next to them.
var stateSymbols = map[pcl.State]string{
	pcl.StateNotExpected: "·", pcl.StatePending: "…", pcl.StateAwaitingHarvest: "◔", pcl.StateHarvested: "◑",
	pcl.StateUploading: "↑", pcl.StateUploaded: "◕", pcl.StateInDB: "✓", pcl.StateNoPayload: "∅",
	pcl.StateUploadFailed: "✗", pcl.StateTooLate: "⇤", pcl.StateTimedOut: "⊗", pcl.StateAccepted: "☑",
}

func stateSymbol(s pcl.State) string {
	if sym, ok := stateSymbols[s]; ok {
		return sym
	}
	return "?"
}

var readinessSymbols = map[pcl.Readiness]string{
	pcl.ReadinessOngoing: "▶", pcl.ReadinessWaiting: "◷", pcl.ReadinessBlocked: "⊘", pcl.ReadinessReady: "✓", pcl.ReadinessTimedOut: "⊗",
	pcl.ReadinessHeld: "‖", pcl.ReadinessForced: "»", pcl.ReadinessReleased: "✔",
}

func readinessSymbol(r pcl.Readiness) string {
	if sym, ok := readinessSymbols[r]; ok {
		return sym
	}
	return "?"
}

// ago is "3.2h ago"; "ongoing" for a nil stop.
func ago(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "ongoing"
	}
	return plot.Hours(now.Sub(*t).Round(time.Minute)) + " ago"
}

// until is the countdown to a deadline: "in 5.0h", or "passed 2.0h ago".
func until(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "—"
	}
	d := t.Sub(now).Round(time.Minute)
	if d < 0 {
		return "passed " + plot.Hours(-d) + " ago"
	}
	return "in " + plot.Hours(d)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 MST")
}

func rfc3339(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func pct(a, b int) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f %%", 100*float64(a)/float64(b))
}
