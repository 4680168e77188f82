package web

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/web/plot"
)

type runData struct {
	View      RunView
	Row       boardRow
	Deadline  *time.Time
	Timeline  template.HTML
	Workflows []runWorkflow
	Decisions []pcl.Decision // newest first
	Audit     []store.AuditEntry
	Uploads   []uploadRow
	Links     []link
	Actions   actionForm
	Done      string // the action just applied, from the redirect after a form post
	// Compacted is what retention kept of the run's raw observations; nil when they are all stored.
	Compacted *store.Compaction
}

// refuseCompacted refuses an override of a compacted run: the agency would re-derive the run from the
// few facts left, not from what it decided on.
func (s *Server) refuseCompacted(ctx context.Context, run uint32) error {
	c, err := s.compaction(ctx, run)
	if err != nil {
		return err
	}
	if c != nil {
		return apperr.Errorf(apperr.Conflict, "run %d's raw observations were compacted on %s (store.retention); it cannot be overridden any more",
			run, c.At.Format(time.RFC3339))
	}
	return nil
}

// compaction reads what retention kept of a run's observations: nil when the run is not compacted.
func (s *Server) compaction(ctx context.Context, run uint32) (*store.Compaction, error) {
	c, err := s.o.Store.Compaction(ctx, run)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

type runWorkflow struct {
	Status     pcl.WorkflowStatus
	Symbol     string
	Milestones []milestoneAt
	TagLinks   []link
}

type milestoneAt struct {
	Name string
	At   time.Time
	// Observed: the time is when the agency saw the step (bounded by the evidence around it), not a
	// time the source reported.
	Observed bool
}

// observedNote is what the page says of an observed time, in the table's and the timeline's hover text.
const observedNote = "observed by the agency: the source gives no time of its own, so this is when a spy saw it, bounded by the evidence around it"

type uploadRow struct {
	Kind, File, Tag, Status, Info string
	At                            time.Time
	Log                           string // link to the upload log, "" when none
}

type link struct {
	Label, URL string
}

// webBase accepts a configured base URL only if it is http(s), so a bad configuration cannot turn a
// link into script; "" hides the link.
func webBase(base string) string {
	u, err := url.Parse(base)
	if base == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return strings.TrimRight(base, "/")
}

func (s *Server) omsLink(run uint32) (link, bool) {
	b := webBase(s.o.Links.OMS)
	return link{"OMS run report", b + "/runs/report?cms_run=" + strconv.FormatUint(uint64(run), 10)}, b != ""
}

func (s *Server) dqmLink(run uint32) (link, bool) {
	b := webBase(s.o.Links.DQMGUI)
	return link{"DQM GUI", b + "/start?runnr=" + strconv.FormatUint(uint64(run), 10)}, b != ""
}

func (s *Server) tagLink(tag string) (link, bool) {
	b := webBase(s.o.Links.CondDBBrowser)
	return link{tag, b + "/list/Prod/tags/" + url.PathEscape(tag)}, b != ""
}

// uploadLogLink points at an upload's log: by file hash when known, else a search by file name.
func (s *Server) uploadLogLink(hash, file string) string {
	b := webBase(s.o.Links.UploadLog)
	switch {
	case b == "":
		return ""
	case hash != "":
		return b + "/getFileLog?fileHash=" + url.QueryEscape(hash)
	case file != "":
		return b + "/searchUserLog?fileName=" + url.QueryEscape(file)
	}
	return ""
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	run, err := parseRun(r.PathValue("run"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	ctx := r.Context()
	rs, err := s.o.Store.RunState(ctx, run)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	d := runData{View: viewOf(rs), Row: rowOf(rs, nil), Deadline: timePtr(rs.Deadline), Done: r.URL.Query().Get("done")}
	if d.View.Decisions, err = s.o.Store.Decisions(ctx, run); err != nil {
		s.pageError(w, r, err)
		return
	}
	d.Decisions = slices.Clone(d.View.Decisions)
	slices.Reverse(d.Decisions)
	if d.Audit, err = s.o.Store.Audit(ctx, store.AuditQuery{Run: run, Limit: 200}); err != nil {
		s.pageError(w, r, err)
		return
	}
	obs, err := s.o.Store.Observations(ctx, store.ObservationQuery{Runs: []uint32{run},
		Kinds: []pcl.Kind{pcl.KindHarvestFile, pcl.KindUploadMarker, pcl.KindUploadStatus}})
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	d.Uploads = s.uploads(obs)
	if d.Compacted, err = s.compaction(ctx, run); err != nil {
		s.pageError(w, r, err)
		return
	}
	for _, l := range []func(uint32) (link, bool){s.omsLink, s.dqmLink} {
		if lk, ok := l(run); ok {
			d.Links = append(d.Links, lk)
		}
	}
	for _, ws := range rs.Workflows {
		if ws.State == pcl.StateNotExpected {
			continue
		}
		d.Workflows = append(d.Workflows, s.runWorkflow(ws, obs))
	}
	d.Timeline = s.timeline(rs, d.Audit)
	d.Actions = s.actionForm(r, rs)
	s.render(w, r, http.StatusOK, "run", page{Title: fmt.Sprintf("Run %d", run), Nav: "board", Data: d})
}

func (s *Server) runWorkflow(ws pcl.WorkflowStatus, obs []pcl.Observation) runWorkflow {
	rw := runWorkflow{Status: ws, Symbol: stateSymbol(ws.State)}
	for _, m := range pcl.AllMilestones {
		if t := ws.Milestones.Get(m); !t.IsZero() {
			rw.Milestones = append(rw.Milestones, milestoneAt{Name: string(m), At: t, Observed: ws.Milestones.Observed.Has(m)})
		}
	}
	// The destination tags: from the harvested files' metadata, else the catalogue's.
	var tags []string
	for _, o := range obs {
		if o.Kind == pcl.KindHarvestFile && o.Workflow == ws.Name {
			tags = append(tags, o.Destinations...)
		}
	}
	if wf, ok := s.o.Catalogue.Workflow(ws.Name); ok && len(tags) == 0 {
		for _, in := range wf.Inputs {
			tags = append(tags, in.Destinations...)
		}
	}
	slices.Sort(tags)
	for _, t := range slices.Compact(tags) {
		if lk, ok := s.tagLink(t); ok {
			rw.TagLinks = append(rw.TagLinks, lk)
		} else {
			rw.TagLinks = append(rw.TagLinks, link{Label: t})
		}
	}
	return rw
}

func (s *Server) uploads(obs []pcl.Observation) []uploadRow {
	var out []uploadRow
	for _, o := range obs {
		u := uploadRow{Kind: string(o.Kind), File: o.File, Tag: o.Tag, Status: string(o.Status), Info: o.Info, At: o.At}
		switch o.Kind {
		case pcl.KindHarvestFile:
			u.Tag = strings.Join(o.Destinations, ", ")
		case pcl.KindUploadStatus:
			u.Log = s.uploadLogLink(o.FileHash, o.File)
		}
		out = append(out, u)
	}
	return out
}

// timeline draws the run from its start: the run's span, each expected workflow's milestones, the
// deadlines, now (while the run is open) and the operators' actions.
func (s *Server) timeline(rs pcl.RunState, audit []store.AuditEntry) template.HTML {
	now := s.o.Clock.Now()
	var from, to time.Time
	stretch := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if from.IsZero() || t.Before(from) {
			from = t
		}
		if t.After(to) {
			to = t
		}
	}
	tl := plot.Timeline{ID: "timeline", Title: fmt.Sprintf("Timeline of run %d", rs.Run)}
	runLane := plot.Lane{Label: "run " + strconv.FormatUint(uint64(rs.Run), 10), Class: "lane-run"}
	open := rs.Decision.State != pcl.ReadinessReleased
	if rs.Info != nil {
		stretch(rs.Info.Start)
		end, title := now, "run ongoing since "+when(rs.Info.Start)
		if rs.Info.Stop != nil {
			end, title = *rs.Info.Stop, "run from "+when(rs.Info.Start)+" to "+when(*rs.Info.Stop)
			stretch(end)
		}
		runLane.Bars = append(runLane.Bars, plot.Bar{From: rs.Info.Start, To: end, Class: "run-bar", Title: title})
	}
	tl.Lanes = append(tl.Lanes, runLane)
	wfDeadline := time.Time{}
	observed := 0
	for _, ws := range rs.Workflows {
		if ws.State == pcl.StateNotExpected {
			continue
		}
		lane := plot.Lane{Label: ws.Name + " " + stateSymbol(ws.State), Class: "st-" + string(ws.State)}
		prev := time.Time{}
		for _, m := range pcl.AllMilestones {
			t := ws.Milestones.Get(m)
			if t.IsZero() {
				continue
			}
			stretch(t)
			if !prev.IsZero() {
				lane.Bars = append(lane.Bars, plot.Bar{From: prev, To: t, Class: "seg", Title: fmt.Sprintf("%s: %s to %s", ws.Name, plot.Hours(t.Sub(prev)), m)})
			}
			p := plot.Point{At: t, Class: "ms ms-" + string(m), Title: fmt.Sprintf("%s %s at %s, reported by the source", ws.Name, m, when(t))}
			if ws.Milestones.Observed.Has(m) {
				p.Class += " observed"
				p.Title = fmt.Sprintf("%s %s at %s, %s", ws.Name, m, when(t), observedNote)
				observed++
			}
			lane.Points = append(lane.Points, p)
			prev = t
		}
		if !ws.Deadline.IsZero() && (wfDeadline.IsZero() || ws.Deadline.Before(wfDeadline)) {
			wfDeadline = ws.Deadline
		}
		tl.Lanes = append(tl.Lanes, lane)
	}
	for _, a := range audit {
		if a.Actor == "agency" {
			continue
		}
		stretch(a.At)
		tl.Actions = append(tl.Actions, plot.Point{At: a.At, Class: "action", Title: fmt.Sprintf("%s by %s at %s: %s", a.Action, a.Actor, when(a.At), a.Detail)})
	}
	if open {
		stretch(now)
		stretch(rs.Deadline)
		stretch(wfDeadline)
		tl.Lines = append(tl.Lines, plot.VLine{At: now, Class: "now", Label: "now"})
	}
	if !rs.Deadline.IsZero() && !rs.Deadline.After(to) {
		tl.Lines = append(tl.Lines, plot.VLine{At: rs.Deadline, Class: "deadline", Label: "run deadline"})
	}
	if !wfDeadline.IsZero() && !wfDeadline.After(to) {
		tl.Lines = append(tl.Lines, plot.VLine{At: wfDeadline, Class: "deadline wf-deadline", Label: "workflow deadline"})
	}
	tl.From, tl.To = from, to.Add(to.Sub(from)/40)
	tl.Desc = fmt.Sprintf("From %s to %s: the run, %d workflows with their milestones (stop, express done, harvested, upload sent, uploaded, in DB; %d of the times observed by the agency rather than reported by the source), deadlines and %d operator actions. The table below lists the same times.",
		when(from), when(to), len(tl.Lanes)-1, observed, len(tl.Actions))
	return tl.Draw()
}
