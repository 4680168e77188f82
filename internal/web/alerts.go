package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// The Alerts page, the runbook, the alerts API and silences. The rules and their state live in the
// alert evaluator; the web reads them through AlertBook and makes and ends silences through Silences.
// Making or ending a silence needs the operator role, as overrides do, and from the page the same
// origin and form token checks (actions.go).

// AlertBook is the alert evaluator's read side.
type AlertBook interface {
	// Active are the alerts not resolved: pending and firing, silenced or not, oldest first.
	Active(ctx context.Context) ([]Alert, error)
	// History are resolved alerts, newest first.
	History(ctx context.Context, limit int) ([]Alert, error)
	Notifiers() []NotifierStatus
	Runbook() []RunbookEntry
}

// Silences makes, lists and ends silences; each change is audited where it is applied.
type Silences interface {
	// List returns the silences not ended yet, or all of them, newest first.
	List(ctx context.Context, all bool) ([]store.Silence, error)
	// Add checks and makes a silence (Starts zero: now); apperr.Invalid for what may not be made.
	Add(ctx context.Context, s store.Silence) (store.Silence, error)
	// Expire ends a silence now.
	Expire(ctx context.Context, id int64, actor string) (store.Silence, error)
}

// NotifierStatus is a notifier's health as the page and the API show it.
type NotifierStatus struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Healthy     bool      `json:"healthy"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Failures    int       `json:"failures"`
	GivenUp     int       `json:"given_up"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// RunbookEntry is one rule's entry of the runbook.
type RunbookEntry struct {
	Name     string `json:"name"`
	Severity string `json:"severity"`
	Enabled  bool   `json:"enabled"`
	Meaning  string `json:"meaning"`
	Action   string `json:"action"`
}

// AlertOf is a stored alert episode as the page and the API show it; runbook is its rule's link.
func AlertOf(a store.Alert, runbook string) Alert {
	v := Alert{ID: a.ID, Name: a.Rule, Severity: a.Severity, State: a.State, Labels: a.Labels, Summary: a.Summary, Details: a.Details,
		Since: a.Since, Run: a.Run, Workflow: a.Workflow, SilencedBy: slices.Clone(a.SilencedBy), InhibitedBy: a.InhibitedBy,
		StaleInputs: a.StaleInputs, Runbook: runbook, Fired: a.Fired, Resolved: a.Resolved}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if v.SilencedBy == nil {
		v.SilencedBy = []int64{}
	}
	return v
}

func (s *Server) alertRoutes() {
	s.mux.HandleFunc("GET /api/v1/alerts", s.alertsAPI)
	s.mux.HandleFunc("GET /api/v1/alerts/history", s.alertHistoryAPI)
	s.mux.HandleFunc("GET /api/v1/silences", s.silencesAPI)
	s.mux.HandleFunc("POST /api/v1/silences", s.addSilenceAPI)
	s.mux.HandleFunc("DELETE /api/v1/silences/{id}", s.expireSilenceAPI)
	s.mux.HandleFunc("GET /alerts", s.alertsPage)
	s.mux.HandleFunc("GET /alerts/runbook", s.runbookPage)
	s.mux.HandleFunc("POST /alerts/silences", s.addSilencePage)
	s.mux.HandleFunc("POST /alerts/silences/{id}/expire", s.expireSilencePage)
}

// alertsAPI lists the alerts (design.md: GET /api/v1/alerts): with an AlertBook every alert not
// resolved (?state=firing or pending keeps one kind), else the firing ones of the header's source.
func (s *Server) alertsAPI(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	if state != "" && state != "firing" && state != "pending" {
		s.fail(w, r, apperr.Errorf(apperr.Invalid, "bad state %q: want firing or pending", state))
		return
	}
	out := map[string]any{"alerts": []Alert{}, "configured": s.o.AlertBook != nil || s.o.Alerts != nil}
	var list []Alert
	var err error
	switch {
	case s.o.AlertBook != nil:
		list, err = s.o.AlertBook.Active(r.Context())
		out["notifiers"] = nonNil(s.o.AlertBook.Notifiers())
	case s.o.Alerts != nil:
		list, err = s.o.Alerts.Firing(r.Context())
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	kept := []Alert{}
	for _, a := range list {
		if a.State == "" {
			a.State = "firing" // what an AlertSource lists
		}
		if a.Labels == nil {
			a.Labels = map[string]string{"alertname": a.Name, "severity": a.Severity}
		}
		if a.SilencedBy == nil {
			a.SilencedBy = []int64{}
		}
		if state == "" || a.State == state {
			kept = append(kept, a)
		}
	}
	out["alerts"] = kept
	writeJSON(w, http.StatusOK, out)
}

func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

func (s *Server) alertHistoryAPI(w http.ResponseWriter, r *http.Request) {
	if s.o.AlertBook == nil {
		writeJSON(w, http.StatusOK, map[string]any{"alerts": []Alert{}, "configured": false})
		return
	}
	limit, err := queryInt(r, "limit", 100, 1000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := s.o.AlertBook.History(r.Context(), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": nonNil(list), "configured": true})
}

// silenceOperator says who may make or end silences, or why nobody may.
func (s *Server) silenceOperator(r *http.Request) (string, error) {
	if s.o.Silences == nil {
		return "", apperr.Errorf(apperr.Forbidden, "silences are not enabled on this server (they need the operator role; see docs/alerts.md)")
	}
	return s.operatorFor(r, "make or end silences")
}

func (s *Server) silencesAPI(w http.ResponseWriter, r *http.Request) {
	if s.o.Silences == nil {
		writeJSON(w, http.StatusOK, map[string]any{"silences": []store.Silence{}, "configured": false})
		return
	}
	list, err := s.o.Silences.List(r.Context(), r.URL.Query().Get("all") == "1")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"silences": nonNil(list), "configured": true})
}

// silenceRequest is the body of POST /api/v1/silences: the matchers, a reason, and when it ends (an
// RFC 3339 time, or a duration from its start); it starts now unless starts_at says later.
type silenceRequest struct {
	Matchers []store.Matcher `json:"matchers"`
	Reason   string          `json:"reason"`
	StartsAt *time.Time      `json:"starts_at"`
	EndsAt   *time.Time      `json:"ends_at"`
	Duration string          `json:"duration"`
}

func (s *Server) addSilenceAPI(w http.ResponseWriter, r *http.Request) {
	actor, err := s.silenceOperator(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req silenceRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	si, err := s.silenceOf(req.Matchers, req.Reason, actor, req.StartsAt, req.EndsAt, req.Duration)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	added, err := s.o.Silences.Add(r.Context(), si)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, added)
}

// silenceOf builds the silence to make from what a person gave, in the agency's time.
func (s *Server) silenceOf(ms []store.Matcher, reason, actor string, starts, ends *time.Time, duration string) (store.Silence, error) {
	si := store.Silence{Matchers: ms, Reason: strings.TrimSpace(reason), Author: actor}
	for i := range si.Matchers {
		if si.Matchers[i].Op == "" {
			si.Matchers[i].Op = "="
		}
	}
	from := s.o.Clock.Now()
	if starts != nil {
		si.Starts, from = *starts, *starts
	}
	switch {
	case ends != nil && duration != "":
		return si, apperr.Errorf(apperr.Invalid, "give ends_at or duration, not both")
	case ends != nil:
		si.Ends = *ends
	case duration != "":
		d, err := time.ParseDuration(duration)
		if err != nil || d <= 0 {
			return si, apperr.Errorf(apperr.Invalid, "bad duration %q: want e.g. 2h or 90m", duration)
		}
		si.Ends = from.Add(d)
	default:
		return si, apperr.Errorf(apperr.Invalid, "a silence needs its end: ends_at or duration")
	}
	return si, nil
}

func (s *Server) expireSilenceAPI(w http.ResponseWriter, r *http.Request) {
	actor, err := s.silenceOperator(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, r, apperr.Errorf(apperr.Invalid, "bad silence id %q", r.PathValue("id")))
		return
	}
	ended, err := s.o.Silences.Expire(r.Context(), id, actor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ended)
}

// alertsData is what the Alerts page shows.
type alertsData struct {
	Configured bool
	Error      string
	Firing     []Alert // firing, told to people
	Muted      []Alert // firing, but silenced or inhibited
	Pending    []Alert
	History    []Alert
	Notifiers  []NotifierStatus
	Silences   []store.Silence
	SilenceErr string
	Form       silenceForm
	Done       string // what the last form did
	Now        time.Time
}

// silenceForm is what the page's silence forms need.
type silenceForm struct {
	Allowed bool
	Why     string
	Actor   string
	Token   string
	Longest string
}

func (s *Server) alertsPage(w http.ResponseWriter, r *http.Request) {
	d := alertsData{Configured: s.o.AlertBook != nil, Now: s.o.Clock.Now(), Form: silenceForm{Token: s.csrfFor(r)}}
	switch q := r.URL.Query(); {
	case q.Get("silenced") != "":
		d.Done = "Silence " + q.Get("silenced") + " made."
	case q.Get("expired") != "":
		d.Done = "Silence " + q.Get("expired") + " ended."
	}
	if actor, err := s.silenceOperator(r); err != nil {
		d.Form.Why = err.Error()
	} else {
		d.Form.Allowed, d.Form.Actor = true, actor
	}
	if s.o.AlertBook != nil {
		active, err := s.o.AlertBook.Active(r.Context())
		if err != nil {
			d.Error = err.Error()
		}
		for _, a := range active {
			switch {
			case a.State == "pending":
				d.Pending = append(d.Pending, a)
			case len(a.SilencedBy) > 0 || a.InhibitedBy != "":
				d.Muted = append(d.Muted, a)
			default:
				d.Firing = append(d.Firing, a)
			}
		}
		if d.History, err = s.o.AlertBook.History(r.Context(), 50); err != nil && d.Error == "" {
			d.Error = err.Error()
		}
		d.Notifiers = s.o.AlertBook.Notifiers()
	}
	if s.o.Silences != nil {
		var err error
		if d.Silences, err = s.o.Silences.List(r.Context(), false); err != nil {
			d.SilenceErr = err.Error()
		}
	}
	s.render(w, r, http.StatusOK, "alerts", page{Title: "Alerts", Nav: "alerts", Data: d})
}

func (s *Server) runbookPage(w http.ResponseWriter, r *http.Request) {
	var entries []RunbookEntry
	if s.o.AlertBook != nil {
		entries = s.o.AlertBook.Runbook()
	}
	s.render(w, r, http.StatusOK, "runbook", page{Title: "Alerts runbook", Nav: "alerts", Data: entries})
}

// checkForm applies the page forms' checks: this origin, a body within the limit, this process's form
// token, the operator role. It returns who acts.
func (s *Server) checkForm(w http.ResponseWriter, r *http.Request) (string, error) {
	if err := s.parsePageForm(w, r, "the Alerts page"); err != nil {
		return "", err
	}
	return s.silenceOperator(r)
}

// parseMatchers reads one matcher per line: name=value, name!=value, name=~regexp, name!~regexp.
func parseMatchers(text string) ([]store.Matcher, error) {
	var out []store.Matcher
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		i := strings.IndexAny(line, "=!")
		if i <= 0 {
			return nil, apperr.Errorf(apperr.Invalid, "matcher %q: want name=value, name!=value, name=~regexp or name!~regexp", line)
		}
		name, rest := strings.TrimSpace(line[:i]), line[i:]
		var op string
		for _, o := range []string{"!~", "=~", "!=", "="} {
			if strings.HasPrefix(rest, o) {
				op = o
				break
			}
		}
		if op == "" {
			return nil, apperr.Errorf(apperr.Invalid, "matcher %q: want name=value, name!=value, name=~regexp or name!~regexp", line)
		}
		value := strings.TrimSpace(strings.TrimPrefix(rest, op))
		if uq, err := strconv.Unquote(value); err == nil {
			value = uq
		}
		out = append(out, store.Matcher{Name: name, Op: op, Value: value})
	}
	return out, nil
}

func (s *Server) addSilencePage(w http.ResponseWriter, r *http.Request) {
	actor, err := s.checkForm(w, r)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	// The text area holds one matcher per line; a silence button of one alert sends each as a field.
	ms, err := parseMatchers(strings.Join(append([]string{r.PostForm.Get("matchers")}, r.PostForm["matcher"]...), "\n"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	si, err := s.silenceOf(ms, r.PostForm.Get("reason"), actor, nil, nil, strings.TrimSpace(r.PostForm.Get("duration")))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	added, err := s.o.Silences.Add(r.Context(), si)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.log.Info("silence from the page", "silence", added.ID, "actor", actor)
	http.Redirect(w, r, fmt.Sprintf("/alerts?silenced=%d#silences", added.ID), http.StatusSeeOther)
}

func (s *Server) expireSilencePage(w http.ResponseWriter, r *http.Request) {
	actor, err := s.checkForm(w, r)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.pageError(w, r, apperr.Errorf(apperr.Invalid, "bad silence id %q", r.PathValue("id")))
		return
	}
	if _, err := s.o.Silences.Expire(r.Context(), id, actor); err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, "/alerts?expired="+url.QueryEscape(strconv.FormatInt(id, 10))+"#silences", http.StatusSeeOther)
}

// silenceMatchers are the matchers that silence exactly one alert: its rule and identifying labels.
func silenceMatchers(a Alert) []string {
	out := []string{"alertname=" + a.Name}
	for _, k := range []string{"run", "workflow", "source", "target", "notifier"} {
		if v := a.Labels[k]; v != "" {
			out = append(out, k+"="+strconv.Quote(v))
		}
	}
	return out
}

// matcherText is a silence's matchers as the page shows them.
func matcherText(ms []store.Matcher) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, m.Name+m.Op+strconv.Quote(m.Value))
	}
	return strings.Join(parts, ", ")
}

// dict makes a map of key, value pairs, to hand a template more than one value.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}
