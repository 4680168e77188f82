package web

import (
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/web/plot"
)

const workflowRuns = 300 // recent runs a workflow page looks at

type workflowData struct {
	Workflow pcl.Workflow
	Tags     []link
	Runs     int // runs that expected the workflow
	Outcomes []outcome
	Plots    []template.HTML
	Quality  template.HTML
}

type outcome struct {
	Label  string
	State  pcl.State
	Symbol string
	Count  int
	Of     int
}

func (s *Server) workflowsPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "workflows", page{Title: "Workflows", Nav: "workflows", Data: s.o.Catalogue.Workflows()})
}

func (s *Server) workflowPage(w http.ResponseWriter, r *http.Request) {
	wf, ok := s.o.Catalogue.Workflow(r.PathValue("name"))
	if !ok {
		s.pageError(w, r, apperr.Errorf(apperr.NotFound, "no workflow %q in the catalogue", r.PathValue("name")))
		return
	}
	states, err := s.o.Store.RunStates(r.Context(), store.RunQuery{Limit: workflowRuns})
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	d := workflowData{Workflow: *wf}
	for _, in := range wf.Inputs {
		for _, t := range in.Destinations {
			if lk, ok := s.tagLink(t); ok {
				d.Tags = append(d.Tags, lk)
			} else {
				d.Tags = append(d.Tags, link{Label: t})
			}
		}
	}
	type span struct {
		id, title string
		from, to  pcl.Milestone
		values    []time.Duration
	}
	spans := []*span{
		{id: "lat-harvest", title: "run stop → harvested", from: pcl.MilestoneStop, to: pcl.MilestoneHarvested},
		{id: "lat-upload", title: "harvested → uploaded", from: pcl.MilestoneHarvested, to: pcl.MilestoneUploaded},
		{id: "lat-indb", title: "uploaded → in the condition DB", from: pcl.MilestoneUploaded, to: pcl.MilestoneInDB},
	}
	counts := map[pcl.State]int{}
	var trend []plot.TrendPoint
	var strip []plot.StripCell
	for _, rs := range states {
		ws, ok := rs.Workflow(wf.Name)
		if !ok || ws.State == pcl.StateNotExpected {
			continue
		}
		d.Runs++
		counts[ws.State]++
		for _, sp := range spans {
			a, b := ws.Milestones.Get(sp.from), ws.Milestones.Get(sp.to)
			if !a.IsZero() && !b.IsZero() {
				sp.values = append(sp.values, b.Sub(a))
			}
		}
		if stop, in := ws.Milestones.Stop, ws.Milestones.InDB; !stop.IsZero() && !in.IsZero() {
			trend = append(trend, plot.TrendPoint{Run: rs.Run, Value: in.Sub(stop), Class: "st-in-db"})
		}
		q := ws.Quality
		if q == "" {
			q = pcl.QualityUnknown
		}
		strip = append(strip, plot.StripCell{Run: rs.Run, Class: "q-" + string(q), Symbol: qualitySymbol(q), Title: "DQM quality " + string(q)})
	}
	for _, sp := range spans {
		d.Plots = append(d.Plots, plot.Histogram{ID: sp.id, Title: "Latency " + sp.title + " (" + wf.Name + ")", Values: sp.values}.Draw())
	}
	d.Plots = append(d.Plots, plot.Trend{ID: "trend", Title: "Run stop → in the condition DB, per run (" + wf.Name + ")", Points: trend}.Draw())
	d.Quality = plot.Strip{ID: "quality", Title: "DQM quality over runs (" + wf.Name + ")", Cells: strip}.Draw()
	for _, o := range []struct {
		label string
		st    pcl.State
	}{{"in the DB (success)", pcl.StateInDB}, {"upload failed", pcl.StateUploadFailed}, {"too late", pcl.StateTooLate},
		{"no payload", pcl.StateNoPayload}, {"timed out", pcl.StateTimedOut}, {"accepted by an operator", pcl.StateAccepted}} {
		d.Outcomes = append(d.Outcomes, outcome{Label: o.label, State: o.st, Symbol: stateSymbol(o.st), Count: counts[o.st], Of: d.Runs})
	}
	open := d.Runs
	for _, st := range pcl.States {
		if st.Terminal() {
			open -= counts[st]
		}
	}
	d.Outcomes = append(d.Outcomes, outcome{Label: "not final yet", State: pcl.StatePending, Symbol: stateSymbol(pcl.StatePending), Count: open, Of: d.Runs})
	s.render(w, r, http.StatusOK, "workflow", page{Title: "Workflow " + wf.Name, Nav: "workflows", Data: d})
}

func qualitySymbol(q pcl.Quality) string {
	switch q {
	case pcl.QualityGood:
		return "✓"
	case pcl.QualityWarning:
		return "!"
	case pcl.QualityBad:
		return "✗"
	}
	return "?"
}

func (s *Server) sourcesPage(w http.ResponseWriter, r *http.Request) {
	var list []pcl.SourceHealth
	if s.o.Sources != nil {
		list = s.o.Sources.SourceHealth()
	}
	s.render(w, r, http.StatusOK, "sources", page{Title: "Sources", Nav: "sources", Data: struct {
		Configured bool
		Sources    []pcl.SourceHealth
	}{s.o.Sources != nil, list}})
}

type releaseRow struct {
	Run      uint32
	State    pcl.Readiness
	Symbol   string
	Decided  time.Time
	Version  int64
	Reason   string
	ReadyAt  time.Time // when the run first became releasable
	ReadyWhy string
}

type heldRow struct {
	Run         uint32
	Since       time.Time
	Actor, Why  string
	DecidedWhen time.Time
}

type releasesData struct {
	Released []releaseRow
	Held     []heldRow
	Actions  []store.AuditEntry
}

func (s *Server) releasesPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var d releasesData
	for _, rd := range []pcl.Readiness{pcl.ReadinessReleased, pcl.ReadinessForced, pcl.ReadinessReady} {
		states, err := s.o.Store.RunStates(ctx, store.RunQuery{Readiness: rd, Limit: 30})
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		for _, rs := range states {
			row := releaseRow{Run: rs.Run, State: rs.Decision.State, Symbol: readinessSymbol(rs.Decision.State),
				Decided: rs.Decision.Decided, Version: rs.Decision.Version, Reason: rs.Decision.Reason}
			ds, err := s.o.Store.Decisions(ctx, rs.Run)
			if err != nil {
				s.pageError(w, r, err)
				return
			}
			// The first releasable version since the last one that was not: when and why Tier-0 was told
			// it may go.
			for i := len(ds) - 1; i >= 0 && ds[i].Releasable; i-- {
				row.ReadyAt, row.ReadyWhy = ds[i].Decided, ds[i].Reason
			}
			d.Released = append(d.Released, row)
		}
	}
	slices.SortFunc(d.Released, func(a, b releaseRow) int { return b.Decided.Compare(a.Decided) })
	held, err := s.o.Store.RunStates(ctx, store.RunQuery{Readiness: pcl.ReadinessHeld, Limit: 100})
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	for _, rs := range held {
		h := heldRow{Run: rs.Run, DecidedWhen: rs.Decision.Decided, Why: rs.Decision.Reason}
		entries, err := s.o.Store.Audit(ctx, store.AuditQuery{Run: rs.Run, Limit: 50})
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		for _, e := range entries { // newest first: the latest hold
			if e.Action == string(pcl.OverrideHold) {
				h.Since, h.Actor, h.Why = e.At, e.Actor, e.Detail
				break
			}
		}
		d.Held = append(d.Held, h)
	}
	all, err := s.o.Store.Audit(ctx, store.AuditQuery{Limit: 500})
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	for _, e := range all {
		if e.Actor != "agency" && len(d.Actions) < 100 {
			d.Actions = append(d.Actions, e)
		}
	}
	s.render(w, r, http.StatusOK, "releases", page{Title: "Releases", Nav: "releases", Data: d})
}
