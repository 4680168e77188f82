package web

import (
	"cmp"
	"context"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

const (
	boardLimit   = 50   // rows per board page by default
	boardMax     = 200  // most rows a board page shows
	attentionMax = 5000 // most runs one "needs attention" page looks through
	scanPage     = 500
)

// boardRow is one run as the board shows it. The page renders it with html/template and the live
// updates send it as JSON, so that the JavaScript only copies text the server chose into place.
type boardRow struct {
	Run        uint32        `json:"run"`
	Class      string        `json:"class"`
	Stop       *time.Time    `json:"stop"`
	Deadline   *time.Time    `json:"deadline"`
	Readiness  pcl.Readiness `json:"readiness"`
	ReadySym   string        `json:"readiness_symbol"`
	Reason     string        `json:"reason"`
	Version    int64         `json:"version"`
	Releasable bool          `json:"releasable"`
	Attention  bool          `json:"attention"`
	Cells      []boardCell   `json:"workflows"`
}

// boardCell is one workflow of one run: the state by class (colour), symbol and name.
type boardCell struct {
	Name   string    `json:"name"`
	State  pcl.State `json:"state"`
	Class  string    `json:"class"`  // CSS classes: state, flags, quality
	Symbol string    `json:"symbol"` // the state's symbol
	Mark   string    `json:"mark"`   // "!" at risk, "Q" bad quality, "⚑" another flag
	Label  string    `json:"label"`  // the state (and flags) in words, for screen readers
	Title  string    `json:"title"`  // the hover text: label and reason
}

// liveRow is the data of one "run" event of the stream.
type liveRow struct {
	boardRow
	DecisionChanged bool      `json:"decision_changed"`
	Now             time.Time `json:"now"`
}

func liveRowOf(e pcl.RunEvent, now time.Time) liveRow {
	return liveRow{boardRow: rowOf(e.State, nil), DecisionChanged: e.DecisionChanged, Now: now.UTC()}
}

// rowOf builds a board row; with names, one cell per catalogue workflow in that order (a workflow the run
// has no status for gets an empty cell), else one cell per workflow the run has.
func rowOf(rs pcl.RunState, names []string) boardRow {
	row := boardRow{Run: rs.Run, Class: rs.Class, Readiness: rs.Decision.State, ReadySym: readinessSymbol(rs.Decision.State),
		Reason: rs.Decision.Reason, Version: rs.Decision.Version, Releasable: rs.Decision.Releasable, Attention: needsAttention(rs)}
	if rs.Info != nil {
		row.Stop = rs.Info.Stop
		if row.Class == "" {
			row.Class = rs.Info.Class
		}
	}
	row.Deadline = timePtr(rs.Deadline)
	if names == nil {
		for _, ws := range rs.Workflows {
			row.Cells = append(row.Cells, cellOf(ws, rs.Decision.Blocking))
		}
		return row
	}
	row.Cells = make([]boardCell, len(names))
	for i, n := range names {
		if ws, ok := rs.Workflow(n); ok {
			row.Cells[i] = cellOf(*ws, rs.Decision.Blocking)
		} else {
			row.Cells[i] = boardCell{Name: n, Class: "cell st-none", Symbol: " ", Label: "no state", Title: n + ": no state yet"}
		}
	}
	return row
}

func cellOf(ws pcl.WorkflowStatus, blocking []string) boardCell {
	c := boardCell{Name: ws.Name, State: ws.State, Symbol: stateSymbol(ws.State)}
	classes := []string{"cell", "st-" + string(ws.State)}
	words := []string{string(ws.State)}
	if ws.Required {
		classes = append(classes, "required")
	}
	if slices.Contains(blocking, ws.Name) {
		classes = append(classes, "blocking")
		words = append(words, "blocking")
	}
	for _, f := range ws.Flags {
		words = append(words, string(f))
		if ws.State == pcl.StateNotExpected {
			continue // named for screen readers and on hover, but no mark: nothing to do about it
		}
		if f == pcl.FlagAtRisk {
			classes = append(classes, "at-risk")
			c.Mark = "!"
		} else if c.Mark == "" {
			c.Mark = "⚑"
		}
	}
	if ws.Quality == pcl.QualityBad || ws.Quality == pcl.QualityWarning {
		classes = append(classes, "q-"+string(ws.Quality))
		words = append(words, "DQM quality "+string(ws.Quality))
		if ws.Quality == pcl.QualityBad {
			c.Mark = "Q" + c.Mark
		}
	}
	c.Class = strings.Join(classes, " ")
	c.Label = strings.Join(words, ", ")
	c.Title = ws.Name + ": " + c.Label
	if !ws.AtRiskUntil.IsZero() {
		c.Title += " (Tier-0 locks the run " + when(ws.AtRiskUntil) + ")"
	}
	if ws.Reason != "" {
		c.Title += " — " + ws.Reason
	}
	return c
}

// writeCells writes a row's workflow cells. It is the board's hot loop (rows × workflows), so it is
// written out here instead of in the template, whose escaper costs a reflective call per attribute: every
// value from a source goes through escapeTo, which escapes quotes too, so it is safe inside
// the quoted attributes and the text below. app.js fills the same structure from the same boardCell.
func writeCells(b *strings.Builder, cells []boardCell, hidden map[string]bool) {
	for _, c := range cells {
		b.WriteString(`<td class="`)
		escapeTo(b, c.Class)
		b.WriteString(`" data-wf="`)
		escapeTo(b, c.Name)
		b.WriteString(`" title="`)
		escapeTo(b, c.Title)
		b.WriteString(`"`)
		if hidden[c.Name] {
			b.WriteString(` hidden`)
		}
		b.WriteString(`><span class="sym" aria-hidden="true">`)
		escapeTo(b, c.Symbol)
		b.WriteString(`</span><span class="mark" aria-hidden="true">`)
		escapeTo(b, c.Mark)
		b.WriteString(`</span><span class="sr">`)
		escapeTo(b, c.Label)
		b.WriteString(`</span></td>`)
	}
}

// escapeTo writes s escaped for HTML text and quoted attributes, as html/template would: the five
// special characters as entities, and a NUL byte, which HTML does not allow, as U+FFFD.
func escapeTo(b *strings.Builder, s string) {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	b.WriteString(html.EscapeString(s))
}

// rowHTML renders one board row, cells included, for the same reason as writeCells: a page of 50 runs
// through the template's row was a third of the board's time. Every value that comes from the store
// goes through escapeTo (quotes escaped too), so it is safe in the quoted attributes and the text;
// TestRowHTMLIsTheTemplatesRow holds it to what the template wrote.
func rowHTML(row boardRow, hidden map[string]bool, now time.Time) template.HTML {
	var b strings.Builder
	b.Grow(1024 + len(row.Cells)*300)
	run := strconv.FormatUint(uint64(row.Run), 10)
	esc := func(s string) { escapeTo(&b, s) }
	b.WriteString(`<tr id="run-`)
	b.WriteString(run)
	b.WriteString(`" data-run="`)
	b.WriteString(run)
	b.WriteString(`" class="`)
	if row.Attention {
		b.WriteString("attention")
	}
	if row.Readiness == pcl.ReadinessBlocked {
		b.WriteString(" blocked")
	}
	b.WriteString("\">\n  <th scope=\"row\"><a href=\"/runs/")
	b.WriteString(run)
	b.WriteString(`">`)
	b.WriteString(run)
	b.WriteString("</a></th>\n  <td class=\"class\">")
	esc(row.Class)
	b.WriteString("</td>\n  <td class=\"rd\"><span class=\"badge rd-")
	esc(string(row.Readiness))
	b.WriteString(`" title="`)
	esc(string(row.Readiness))
	b.WriteString(" v")
	b.WriteString(strconv.FormatInt(row.Version, 10))
	b.WriteString(": ")
	esc(row.Reason)
	b.WriteString(`"><span aria-hidden="true" class="rsym">`)
	esc(row.ReadySym)
	b.WriteString(`</span> <span class="rtext">`)
	esc(string(row.Readiness))
	b.WriteString("</span></span></td>\n  <td class=\"since\" data-stop=\"")
	b.WriteString(rfc3339(row.Stop))
	b.WriteString(`">`)
	esc(ago(now, row.Stop))
	b.WriteString("</td>\n  <td class=\"countdown\" data-deadline=\"")
	b.WriteString(rfc3339(row.Deadline))
	b.WriteString(`">`)
	esc(until(now, row.Deadline))
	b.WriteString("</td>\n  ")
	writeCells(&b, row.Cells, hidden)
	b.WriteString("\n  <td class=\"reason\" title=\"")
	esc(row.Reason)
	b.WriteString(`">`)
	esc(row.Reason)
	b.WriteString("</td>\n</tr>")
	return template.HTML(b.String())
}

// needsAttention: the run is blocked, waits, is held or timed out, or one of its workflows is at risk or
// failed, while the run is not yet released (a released run needs nothing more from anyone).
func needsAttention(rs pcl.RunState) bool {
	switch rs.Decision.State {
	case pcl.ReadinessBlocked, pcl.ReadinessWaiting, pcl.ReadinessHeld, pcl.ReadinessTimedOut:
		return true
	case pcl.ReadinessReleased:
		return false
	}
	for _, ws := range rs.Workflows {
		if slices.Contains(ws.Flags, pcl.FlagAtRisk) {
			return true
		}
		switch ws.State {
		case pcl.StateUploadFailed, pcl.StateTooLate, pcl.StateTimedOut:
			return true
		case pcl.StateNoPayload:
			if slices.Contains(rs.Decision.Blocking, ws.Name) {
				return true
			}
		}
	}
	return false
}

// boardFilter is the board's query: what the filter form and the paging links carry.
type boardFilter struct {
	Class     string
	Readiness pcl.Readiness
	Attention bool
	Before    uint32
	Limit     int
}

func parseBoardFilter(q url.Values) (boardFilter, error) {
	f := boardFilter{Class: strings.TrimSpace(q.Get("class")), Readiness: pcl.Readiness(q.Get("readiness")),
		Attention: q.Get("attention") != "", Limit: boardLimit}
	if f.Class != "" {
		if _, err := path.Match(f.Class, ""); err != nil || len(f.Class) > 100 {
			return f, apperr.Errorf(apperr.Invalid, "bad class pattern %q", f.Class)
		}
	}
	if f.Readiness != "" && !slices.Contains(pcl.Readinesses, f.Readiness) {
		return f, apperr.Errorf(apperr.Invalid, "bad readiness %q", f.Readiness)
	}
	if b := q.Get("before"); b != "" {
		n, err := parseRun(b)
		if err != nil {
			return f, err
		}
		f.Before = n
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			return f, apperr.Errorf(apperr.Invalid, "bad limit %q: want a positive number", l)
		}
		f.Limit = min(n, boardMax)
	}
	return f, nil
}

// query is the URL of the board with this filter and another before.
func (f boardFilter) query(before uint32) string {
	v := url.Values{}
	if f.Class != "" {
		v.Set("class", f.Class)
	}
	if f.Readiness != "" {
		v.Set("readiness", string(f.Readiness))
	}
	if f.Attention {
		v.Set("attention", "1")
	}
	if before > 0 {
		v.Set("before", strconv.FormatUint(uint64(before), 10))
	}
	if f.Limit != boardLimit {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	if len(v) == 0 {
		return "/"
	}
	return "/?" + v.Encode()
}

// runsFor reads the runs of a board page and the run to continue below (0: no older run).
func (s *Server) runsFor(ctx context.Context, f boardFilter) ([]pcl.RunState, uint32, error) {
	if !f.Attention {
		q := store.RunQuery{Class: f.Class, Readiness: f.Readiness, Before: f.Before, Limit: f.Limit + 1}
		states, err := s.o.Store.RunStates(ctx, q)
		if err != nil || len(states) <= f.Limit {
			return states, 0, err
		}
		states = states[:f.Limit]
		return states, states[len(states)-1].Run, nil
	}
	// "Needs attention" is not a column of the store, but it is mostly readiness, which is indexed: the
	// newest page of each readiness that can need attention, merged, holds the newest page of all.
	// Released runs never need attention, so the bulk of a year of runs is never read.
	//
	// Blocked runs come first: nothing changes for them without a person. With no readiness chosen, the
	// first page starts with every blocked run (newest first, up to boardMax), and the pages below it
	// hold the other runs that need attention.
	var blocked []pcl.RunState
	readinesses := []pcl.Readiness{pcl.ReadinessBlocked, pcl.ReadinessWaiting, pcl.ReadinessHeld, pcl.ReadinessTimedOut,
		pcl.ReadinessOngoing, pcl.ReadinessReady, pcl.ReadinessForced}
	if f.Readiness == "" {
		readinesses = readinesses[1:]
		if f.Before == 0 {
			var err error
			if blocked, err = s.o.Store.RunStates(ctx, store.RunQuery{Class: f.Class, Readiness: pcl.ReadinessBlocked, Limit: boardMax}); err != nil {
				return nil, 0, err
			}
		}
	}
	var out []pcl.RunState
	floor := uint32(0) // below this run, some readiness was not looked through
	for _, rd := range readinesses {
		if f.Readiness != "" && f.Readiness != rd {
			continue
		}
		got, fl, err := s.attentionOf(ctx, f, rd)
		if err != nil {
			return nil, 0, err
		}
		out, floor = append(out, got...), max(floor, fl)
	}
	slices.SortFunc(out, func(a, b pcl.RunState) int { return cmp.Compare(b.Run, a.Run) })
	out = slices.DeleteFunc(out, func(rs pcl.RunState) bool { return rs.Run < floor })
	more := floor > 0
	if len(out) > f.Limit {
		out, more = out[:f.Limit], true
	}
	switch {
	case !more:
		return append(blocked, out...), 0, nil
	case len(out) == 0:
		return blocked, floor, nil
	}
	return append(blocked, out...), out[len(out)-1].Run, nil
}

// attentionOf returns the newest runs of one readiness that need attention, up to the page size, and
// the run below which it did not look (0: it saw every older run). Readinesses where only some runs need
// attention (a ready run with a failed optional workflow) are looked through page by page, up to a bound.
func (s *Server) attentionOf(ctx context.Context, f boardFilter, rd pcl.Readiness) ([]pcl.RunState, uint32, error) {
	q := store.RunQuery{Class: f.Class, Readiness: rd, Before: f.Before, Limit: f.Limit + 1}
	var out []pcl.RunState
	for scanned := 0; scanned < attentionMax; {
		states, err := s.o.Store.RunStates(ctx, q)
		if err != nil {
			return nil, 0, err
		}
		for _, rs := range states {
			if needsAttention(rs) {
				if len(out) == f.Limit {
					return out, out[len(out)-1].Run, nil
				}
				out = append(out, rs)
			}
		}
		if len(states) < q.Limit {
			return out, 0, nil
		}
		scanned += len(states)
		q.Before, q.Limit = states[len(states)-1].Run, scanPage
	}
	return out, q.Before, nil
}

type boardData struct {
	Filter      boardFilter
	Columns     []string
	Hidden      map[string]bool
	Rows        []boardRow
	Older       string // URL of the next page, "" when none
	Newest      string // URL of the first page when not on it
	FirstPage   bool
	Readinesses []pcl.Readiness
	Legend      []legendItem
	Header      headerStrip
}

type legendItem struct {
	State  pcl.State
	Symbol string
}

func (s *Server) board(w http.ResponseWriter, r *http.Request) {
	f, err := parseBoardFilter(r.URL.Query())
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	pos := s.hub.position() // before the read, so the stream replays anything newer than the page
	states, older, err := s.runsFor(r.Context(), f)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	names := s.o.Catalogue.Names()
	d := boardData{Filter: f, Columns: names, Hidden: map[string]bool{}, FirstPage: f.Before == 0,
		Readinesses: pcl.Readinesses, Header: s.header(r.Context())}
	expected := map[string]bool{}
	for _, rs := range states {
		d.Rows = append(d.Rows, rowOf(rs, names))
		for _, ws := range rs.Workflows {
			if ws.State != pcl.StateNotExpected {
				expected[ws.Name] = true
			}
		}
	}
	for _, n := range names {
		d.Hidden[n] = !expected[n]
	}
	if older > 0 {
		d.Older = f.query(older)
	}
	if f.Before > 0 {
		d.Newest = f.query(0)
	}
	for _, st := range pcl.States {
		d.Legend = append(d.Legend, legendItem{State: st, Symbol: stateSymbol(st)})
	}
	s.render(w, r, http.StatusOK, "board", page{Title: "Run board", Nav: "board", Live: s.o.Events != nil, Position: pos, Data: d})
}
