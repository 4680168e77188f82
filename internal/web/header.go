package web

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// The board's header strip: the first unready run and what it holds back, the spies' health, and the
// firing alerts. The page renders it, and the event stream keeps it live with one event per part
// ("first-unready", "sources", "alerts"), each sent when that part changed. These are state events: each
// carries the whole part, a newer one replaces an older one, and a page that (re)connects is sent the
// current ones first, so they need no replay and take no room in the replay ring.

// Alert is an alert as the board's header, the Alerts page and GET /api/v1/alerts show it.
type Alert struct {
	ID       int64  `json:"id,omitempty"`
	Name     string `json:"name"`     // the rule
	Severity string `json:"severity"` // critical, warning or info
	State    string `json:"state"`    // pending, firing or resolved
	// Labels identify it (alertname, severity, run, workflow, source, ...) and are what silences match.
	Labels map[string]string `json:"labels"`
	// Summary is the alert in plain words, one line, without its time ("oms: no good answer for 10
	// polls"); the page adds "since" and Since.
	Summary string `json:"summary"`
	// Details is what an operator reads once the line caught their eye (the last error, the attempts).
	Details  string    `json:"details,omitempty"`
	Since    time.Time `json:"since"` // when its condition began; zero when unknown
	Run      uint32    `json:"run"`   // 0: not about one run
	Workflow string    `json:"workflow"`
	// SilencedBy are the silences keeping it from notifying; InhibitedBy the alert holding it back (the
	// staleness of a source that explains it); StaleInputs the sources whose staleness keeps it from
	// resolving.
	SilencedBy  []int64   `json:"silenced_by"`
	InhibitedBy string    `json:"inhibited_by,omitempty"`
	StaleInputs []string  `json:"stale_inputs,omitempty"`
	Runbook     string    `json:"runbook,omitempty"`
	Fired       time.Time `json:"fired,omitzero"`
	Resolved    time.Time `json:"resolved,omitzero"`
}

// AlertSource lists the alerts firing now (and neither silenced nor inhibited): what the header shows.
// The web only shows them; the rules live elsewhere.
type AlertSource interface {
	Firing(ctx context.Context) ([]Alert, error)
}

// Bounds of the first-unready part, so that it costs the same however much history the store holds.
const (
	heldScanMax   = 2000 // newer runs looked at to count the ones held
	heldDetailMax = 100  // held runs whose decisions are read to learn since when they wait
	holdupRefresh = 30   // header polls between two reads of the first unready run without a decision
)

type headerStrip struct {
	FirstUnready holdupView
	Sources      []sourceChip
	HasSources   bool // a spy runs in this process
	Alerts       alertsView
}

// holdupView is the first unready run and the runs it holds back (the "first-unready" event).
type holdupView struct {
	// Available: the server knows the first unready run; Error says why it could not be read.
	Available bool   `json:"available"`
	Error     string `json:"error,omitempty"`
	// Run is the first unready run: every run below it may be released.
	Run uint32 `json:"run"`
	// Known: Run is a known run that holds the queue; false when every known run may be released
	// (Run is then the highest known run + 1).
	Known     bool          `json:"known"`
	Readiness pcl.Readiness `json:"readiness,omitempty"`
	Symbol    string        `json:"readiness_symbol,omitempty"`
	// Why is its readiness and what blocks it: "blocked, SiStripGains upload-failed".
	Why string `json:"why,omitempty"`
	// Held counts the newer runs that may go on their own merits but wait behind it; More says there
	// may be more than counted.
	Held int  `json:"held"`
	More bool `json:"more,omitempty"`
	// HeldSince is when the first of the held runs became releasable: how long the queue has been held
	// (nil when it holds none).
	HeldSince *time.Time `json:"held_since"`
}

// sourceChip is one spy in the header (one element of the "sources" event).
type sourceChip struct {
	Name   string `json:"name"`
	Class  string `json:"class"`  // src-ok, src-warn or src-stale
	Symbol string `json:"symbol"` // ✓, ! or ✗
	Word   string `json:"word"`   // healthy, failing or stale, for screen readers
	Title  string `json:"title"`  // the hover text: the last error, or the last good poll
}

// alertsView is the header's alerts card (the "alerts" event).
type alertsView struct {
	Configured bool        `json:"configured"`
	Error      string      `json:"error,omitempty"`
	Alerts     []alertLine `json:"alerts"`
}

// alertLine is one alert as one line in plain words, its details folded under it.
type alertLine struct {
	Name     string `json:"name"`
	Severity string `json:"severity"`
	Symbol   string `json:"symbol"` // ✗ critical, ! warning
	Line     string `json:"line"`
	Details  string `json:"details,omitempty"`
	Run      uint32 `json:"run,omitempty"`
}

// header gathers the board's header strip; a part that fails says so instead of failing the page.
func (s *Server) header(ctx context.Context) headerStrip {
	return headerStrip{FirstUnready: s.holdup(ctx), Sources: s.sourceChips(), HasSources: s.o.Sources != nil, Alerts: s.alertsCard(ctx)}
}

func (s *Server) sourceChips() []sourceChip {
	if s.o.Sources == nil {
		return nil
	}
	out := []sourceChip{} // an empty list, not null, for the page's script
	for _, h := range s.o.Sources.SourceHealth() {
		out = append(out, chipOf(h))
	}
	return out
}

func chipOf(h pcl.SourceHealth) sourceChip {
	c := sourceChip{Name: string(h.Name), Class: "src-warn", Symbol: "!", Word: "failing"}
	switch {
	case h.Stale:
		c.Class, c.Symbol, c.Word = "src-stale", "✗", "stale"
	case h.Healthy:
		c.Class, c.Symbol, c.Word = "src-ok", "✓", "healthy"
	}
	// Minute resolution: the chip changes when something an operator would notice changes, not at
	// every poll.
	c.Title = "last good poll " + when(h.LastSuccess)
	if h.Error != "" {
		c.Title = h.Error
	}
	return c
}

func (s *Server) alertsCard(ctx context.Context) alertsView {
	v := alertsView{Alerts: []alertLine{}}
	if s.o.Alerts == nil {
		return v
	}
	v.Configured = true
	list, err := s.o.Alerts.Firing(ctx)
	if err != nil {
		s.log.Warn("firing alerts", "err", err)
		v.Error = err.Error()
		return v
	}
	now := s.o.Clock.Now()
	for _, a := range list {
		v.Alerts = append(v.Alerts, lineOf(a, now))
	}
	return v
}

func lineOf(a Alert, now time.Time) alertLine {
	l := alertLine{Name: a.Name, Severity: a.Severity, Symbol: "!", Line: oneLine(a.Summary), Details: a.Details, Run: a.Run}
	if a.Severity == "critical" {
		l.Symbol = "✗"
	}
	if l.Line == "" {
		l.Line = a.Name
	}
	if !a.Since.IsZero() {
		l.Line += " since " + clockAt(a.Since, now)
	}
	return l
}

// oneLine folds a text to one line of at most 160 characters: the header shows one line per alert.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 160 {
		s = string(r[:159]) + "…"
	}
	return s
}

// clockAt is a moment as the header says it: "03:12" today (in the agency's time, UTC), "May 28 03:12"
// on another day.
func clockAt(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.Year() == now.Year() && t.YearDay() == now.YearDay() {
		return t.Format("15:04")
	}
	return t.Format("Jan 2 15:04")
}

// holdup reads the first unready run and what it holds back from the store's read models: the run's
// state, the newer runs' decision summaries, and the decisions of the held ones (a bounded number).
func (s *Server) holdup(ctx context.Context) holdupView {
	var v holdupView
	if s.o.FirstUnready == nil {
		return v
	}
	n, err := s.o.FirstUnready.FirstUnready(ctx)
	if err != nil {
		s.log.Warn("first unready run", "err", err)
		v.Error = "not available: " + err.Error()
		return v
	}
	v.Available, v.Run = true, n
	rs, err := s.o.Store.RunState(ctx, n)
	switch {
	case apperr.Is(err, apperr.NotFound):
		return v // above every known run: nothing holds the queue
	case err != nil:
		v.Error = "not available: " + err.Error()
		return v
	}
	v.Known, v.Readiness, v.Symbol, v.Why = true, rs.Decision.State, readinessSymbol(rs.Decision.State), whyUnready(rs)
	newer, err := s.o.Store.RunStates(ctx, store.RunQuery{From: n + 1, Limit: heldScanMax + 1, Summary: true})
	if err != nil {
		v.Error = "held runs not available: " + err.Error()
		return v
	}
	if len(newer) > heldScanMax {
		newer, v.More = newer[:heldScanMax], true
	}
	var held []pcl.RunState
	for _, r := range newer {
		if waitsBehind(r) {
			held = append(held, r)
		}
	}
	v.Held = len(held)
	// Oldest runs first: they most likely waited longest, and they are the ones read when there are
	// more held runs than are read.
	slices.SortFunc(held, func(a, b pcl.RunState) int { return cmp.Compare(a.Run, b.Run) })
	var since time.Time
	for i, r := range held {
		start := r.Decision.Decided
		if i < heldDetailMax && r.Decision.Version > 1 {
			key := sinceKey{r.Run, r.Decision.Version, r.Decision.Decided.UnixNano()}
			t, ok := s.since.get(key)
			if !ok {
				ds, err := s.o.Store.Decisions(ctx, r.Run)
				if err != nil {
					v.Error = "held runs not available: " + err.Error()
					return v
				}
				t = releasableSince(ds, start)
				s.since.put(key, t)
			}
			start = t
		}
		if !start.IsZero() && (since.IsZero() || start.Before(since)) {
			since = start
		}
	}
	v.HeldSince = timePtr(since)
	return v
}

// waitsBehind says whether a run above the first unready one could go on its own merits: its decision
// lets Tier-0 release it, and Tier-0 has not yet.
func waitsBehind(rs pcl.RunState) bool {
	d := rs.Decision
	return d.Version > 0 && d.Releasable && d.State != pcl.ReadinessReleased
}

// sinceMemo remembers releasableSince of the held runs by their newest decision: versions are
// append-only and never rewritten, so the history up to a version (and when the run became
// releasable in it) is the same for as long as that version is the newest. The header would otherwise
// read up to heldDetailMax decision histories on every page. Bounded; emptied when full.
type sinceMemo struct {
	mu sync.Mutex
	m  map[sinceKey]time.Time
}

// sinceKey is a run's newest decision: its version and when it was taken.
type sinceKey struct {
	run     uint32
	version int64
	decided int64
}

const sinceMemoMax = 4 * heldDetailMax

func (m *sinceMemo) get(k sinceKey) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.m[k]
	return t, ok
}

func (m *sinceMemo) put(k sinceKey, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil || len(m.m) >= sinceMemoMax {
		m.m = make(map[sinceKey]time.Time, sinceMemoMax)
	}
	m.m[k] = t
}

// releasableSince is when a run became releasable for the last time: the first version of the run of
// releasable versions that ends its history (fallback when the history says nothing else).
func releasableSince(ds []pcl.Decision, fallback time.Time) time.Time {
	t := fallback
	for i := len(ds) - 1; i >= 0 && ds[i].Releasable; i-- {
		t = ds[i].Decided
	}
	return t
}

// whyUnready is the first unready run's readiness and what blocks it, in the header's words:
// "blocked, SiStripGains upload-failed", or the decision's reason when no workflow blocks it (a hold).
func whyUnready(rs pcl.RunState) string {
	var parts []string
	for _, name := range rs.Decision.Blocking {
		if ws, ok := rs.Workflow(name); ok {
			parts = append(parts, name+" "+string(ws.State))
		} else {
			parts = append(parts, name)
		}
	}
	why := strings.Join(parts, ", ")
	if why == "" {
		why = oneLine(rs.Decision.Reason)
	}
	if why == "" {
		return string(rs.Decision.State)
	}
	return string(rs.Decision.State) + ", " + why
}

// holdFor is how long the queue has been held, as the header says it: "45 m", "14 h 20 m", "3 d 2 h".
// app.js has the same rule, for the live count.
func holdFor(d time.Duration) string {
	m := int64(max(d, 0) / time.Minute)
	switch {
	case m < 60:
		return fmt.Sprintf("%d m", m)
	case m < 48*60:
		return fmt.Sprintf("%d h %d m", m/60, m%60)
	}
	return fmt.Sprintf("%d d %d h", m/(24*60), m%(24*60)/60)
}

// heldText is the count of held runs in words: "7 newer runs", "1 newer run", "no newer run",
// "2000+ newer runs".
func heldText(v holdupView) string {
	plus := ""
	if v.More {
		plus = "+"
	}
	switch {
	case v.Held == 0 && !v.More:
		return "no newer run"
	case v.Held == 1 && !v.More:
		return "1 newer run"
	}
	return fmt.Sprintf("%d%s newer runs", v.Held, plus)
}

// watchHeader keeps the header's state events current while the hub lives: the sources and the alerts
// every every, the first unready run when a decision changed (decisions come in bursts: one read per
// poll at most) and every holdupRefresh polls anyway.
func (s *Server) watchHeader(stop <-chan struct{}, decided <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	tick := time.NewTicker(s.o.HeaderEvery)
	defer tick.Stop()
	s.publishHeader(ctx, true)
	dirty := false
	for n := 1; ; n++ {
		select {
		case <-stop:
			return
		case <-decided:
			dirty = true
			n-- // not a poll
		case <-tick.C:
			if !s.hub.viewed() {
				// No page open: nothing to keep current. The first page to connect gets what was
				// sent last, then a fresh first unready run at the next poll.
				dirty = true
				continue
			}
			s.publishHeader(ctx, dirty || n%holdupRefresh == 0)
			dirty = false
		}
	}
}

// publishHeader hands the header's parts to the hub, which sends each one only when it changed.
func (s *Server) publishHeader(ctx context.Context, withHoldup bool) {
	parts := []struct {
		event string
		value func() any
		on    bool
	}{
		{"first-unready", func() any { return s.holdup(ctx) }, withHoldup && s.o.FirstUnready != nil},
		{"sources", func() any { return s.sourceChips() }, s.o.Sources != nil},
		{"alerts", func() any { return s.alertsCard(ctx) }, s.o.Alerts != nil},
	}
	for _, p := range parts {
		if !p.on || ctx.Err() != nil {
			continue
		}
		body, err := json.Marshal(p.value())
		if err != nil {
			s.log.Error("encode header event", "event", p.event, "err", err)
			continue
		}
		s.hub.setState(p.event, body)
	}
}
