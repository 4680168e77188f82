package web

import (
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// RunView is a run as the API shows it (design.md, "The HTTP interface").
type RunView struct {
	Run        uint32                    `json:"run"`
	Class      string                    `json:"class"`
	Start      *time.Time                `json:"start"`
	Stop       *time.Time                `json:"stop"`
	Readiness  ReadinessView             `json:"readiness"`
	Workflows  []WorkflowView            `json:"workflows"`
	Milestones map[string]pcl.Milestones `json:"milestones,omitempty"`
	Decisions  []pcl.Decision            `json:"decisions,omitempty"`
	// Compacted is set on GET /api/v1/runs/{run} when retention removed the run's raw observations.
	Compacted *store.Compaction `json:"compacted,omitempty"`
}

// ReadinessView is the run's current decision.
type ReadinessView struct {
	State      pcl.Readiness `json:"state"`
	Reason     string        `json:"reason"`
	Version    int64         `json:"version"`
	Decided    time.Time     `json:"decided"`
	Blocking   []string      `json:"blocking"`
	Releasable bool          `json:"releasable"`
}

// WorkflowView is one workflow of a run.
type WorkflowView struct {
	Name     string      `json:"name"`
	State    pcl.State   `json:"state"`
	Quality  pcl.Quality `json:"quality"`
	Required bool        `json:"required"`
	Flags    []pcl.Flag  `json:"flags"`
	Reason   string      `json:"reason,omitempty"`
	Updated  *time.Time  `json:"updated"`
	Deadline *time.Time  `json:"deadline"`
	// AtRiskUntil is Tier-0's own lock of the run, set while the workflow is flagged at-risk.
	AtRiskUntil *time.Time `json:"at_risk_until"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func viewOf(rs pcl.RunState) RunView {
	v := RunView{Run: rs.Run, Class: rs.Class, Workflows: make([]WorkflowView, 0, len(rs.Workflows)),
		Readiness: ReadinessView{State: rs.Decision.State, Reason: rs.Decision.Reason, Version: rs.Decision.Version,
			Decided: rs.Decision.Decided, Blocking: rs.Decision.Blocking, Releasable: rs.Decision.Releasable}}
	if v.Readiness.Blocking == nil {
		v.Readiness.Blocking = []string{}
	}
	if rs.Info != nil {
		v.Start = timePtr(rs.Info.Start)
		v.Stop = rs.Info.Stop
	}
	for _, ws := range rs.Workflows {
		flags := ws.Flags
		if flags == nil {
			flags = []pcl.Flag{}
		}
		v.Workflows = append(v.Workflows, WorkflowView{Name: ws.Name, State: ws.State, Quality: ws.Quality,
			Required: ws.Required, Flags: flags, Reason: ws.Reason, Updated: timePtr(ws.Updated), Deadline: timePtr(ws.Deadline),
			AtRiskUntil: timePtr(ws.AtRiskUntil)})
	}
	return v
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 100, 1000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rq := store.RunQuery{Class: q.Get("class"), Limit: limit}
	if rq.Class != "" {
		if _, err := path.Match(rq.Class, ""); err != nil {
			s.fail(w, r, apperr.Errorf(apperr.Invalid, "bad class pattern %q", rq.Class))
			return
		}
	}
	if b := q.Get("before"); b != "" {
		if rq.Before, err = parseRun(b); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if rd := q.Get("readiness"); rd != "" {
		rq.Readiness = pcl.Readiness(rd)
		valid := false
		for _, x := range pcl.Readinesses {
			valid = valid || x == rq.Readiness
		}
		if !valid {
			s.fail(w, r, apperr.Errorf(apperr.Invalid, "bad readiness %q", rd))
			return
		}
	}
	states, err := s.o.Store.RunStates(r.Context(), rq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]RunView, 0, len(states))
	for _, rs := range states {
		out = append(out, viewOf(rs))
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": out})
}

func (s *Server) runView(r *http.Request, run uint32) (RunView, error) {
	rs, err := s.o.Store.RunState(r.Context(), run)
	if err != nil {
		return RunView{}, err
	}
	v := viewOf(rs)
	v.Milestones = map[string]pcl.Milestones{}
	for _, ws := range rs.Workflows {
		v.Milestones[ws.Name] = ws.Milestones
	}
	if v.Decisions, err = s.o.Store.Decisions(r.Context(), run); err != nil {
		return RunView{}, err
	}
	if v.Compacted, err = s.compaction(r.Context(), run); err != nil {
		return RunView{}, err
	}
	return v, nil
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	run, err := parseRun(r.PathValue("run"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.runView(r, run)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// overrideRequest is the body of POST /api/v1/runs/{run}/override.
type overrideRequest struct {
	Action   pcl.OverrideAction `json:"action"`
	Workflow string             `json:"workflow"`
	Reason   string             `json:"reason"`
}

func (s *Server) override(w http.ResponseWriter, r *http.Request) {
	run, err := parseRun(r.PathValue("run"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	actor, err := s.operator(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req overrideRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if !req.Action.Valid() {
		s.fail(w, r, apperr.Errorf(apperr.Invalid, "action must be release, hold, clear or accept, not %q", req.Action))
		return
	}
	if strings.TrimSpace(req.Reason) == "" {
		// Checked here, not left to whoever applies the override: no action is taken without a reason
		// for the audit log, whatever Overrider is behind this server.
		s.fail(w, r, apperr.Errorf(apperr.Invalid, "a reason is required: it is kept in the audit log"))
		return
	}
	if len(req.Reason) > 2000 {
		s.fail(w, r, apperr.Errorf(apperr.Invalid, "reason over 2000 characters"))
		return
	}
	if err := s.refuseCompacted(r.Context(), run); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.o.Overrider.Override(r.Context(), run, req.Action, req.Workflow, actor, req.Reason); err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.runView(r, run)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) workflows(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"workflows": s.o.Catalogue.Workflows()})
}

func (s *Server) sources(w http.ResponseWriter, r *http.Request) {
	var list []any
	if s.o.Sources != nil {
		for _, h := range s.o.Sources.SourceHealth() {
			list = append(list, h)
		}
	}
	if list == nil {
		list = []any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sources": list})
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 100, 1000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	aq := store.AuditQuery{Actor: q.Get("actor"), Limit: limit}
	if v := q.Get("run"); v != "" {
		if aq.Run, err = parseRun(v); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	for name, dst := range map[string]*time.Time{"from": &aq.From, "to": &aq.To} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.fail(w, r, apperr.Errorf(apperr.Invalid, "bad %s %q: want RFC 3339", name, v))
				return
			}
			*dst = t
		}
	}
	entries, err := s.o.Store.Audit(r.Context(), aq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if entries == nil {
		entries = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

// outbox lists push deliveries, newest first: what was delivered, what waits for a retry, and the dead
// letters (given up: the receiver refused them or stayed down too long). ?dead=1 keeps only those.
func (s *Server) outbox(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r, "limit", 100, 1000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	entries, err := s.o.Store.Outbox(r.Context(), r.URL.Query().Get("target"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	onlyDead := r.URL.Query().Get("dead") == "1"
	out := make([]store.OutboxEntry, 0, len(entries))
	for _, e := range entries {
		if !onlyDead || e.Dead {
			e.Payload = nil // the decision is in the run's decisions; keep the listing small
			out = append(out, e)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
}
