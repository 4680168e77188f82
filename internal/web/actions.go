package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Operator actions from the page: a plain form (it works without JavaScript) that posts to
// /runs/{run}/actions, shows a confirmation page, and applies the override only on the confirming
// post. A post must come from this origin (Origin or Referer) and carry the process's form token, so
// another site cannot make an operator's browser act.

type actionForm struct {
	Allowed   bool
	Why       string // why the form is not shown
	Actor     string
	Token     string
	Run       uint32
	Actions   []pcl.OverrideAction
	Workflows []string // the run's workflows, for accept and clear
}

type confirmData struct {
	Run      uint32
	Action   pcl.OverrideAction
	Workflow string
	Reason   string
	Actor    string
	Token    string
	Readable string // the action in words
}

func (s *Server) actionForm(r *http.Request, rs pcl.RunState) actionForm {
	f := actionForm{Run: rs.Run, Token: s.csrfFor(r), Actions: []pcl.OverrideAction{pcl.OverrideHold, pcl.OverrideRelease, pcl.OverrideClear, pcl.OverrideAccept}}
	actor, err := s.operator(r)
	if err != nil {
		f.Why = err.Error()
		return f
	}
	f.Allowed, f.Actor = true, actor
	for _, ws := range rs.Workflows {
		if ws.State != pcl.StateNotExpected {
			f.Workflows = append(f.Workflows, ws.Name)
		}
	}
	return f
}

// sameOrigin accepts a post whose Origin (or, without one, Referer) names this host.
func sameOrigin(r *http.Request) error {
	from := r.Header.Get("Origin")
	if from == "" || from == "null" {
		from = r.Header.Get("Referer")
	}
	if from == "" {
		return apperr.Errorf(apperr.Forbidden, "the form post names no origin; post it from the run page")
	}
	u, err := url.Parse(from)
	if err != nil || !strings.EqualFold(u.Host, access.ClientOf(r).Host) {
		return apperr.Errorf(apperr.Forbidden, "the form post comes from another site (%q)", from)
	}
	return nil
}

func (s *Server) runAction(w http.ResponseWriter, r *http.Request) {
	run, err := parseRun(r.PathValue("run"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	if err := s.parsePageForm(w, r, "the run page"); err != nil {
		s.pageError(w, r, err)
		return
	}
	actor, err := s.operator(r)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	c := confirmData{Run: run, Action: pcl.OverrideAction(r.PostForm.Get("action")), Workflow: r.PostForm.Get("workflow"),
		Reason: strings.TrimSpace(r.PostForm.Get("reason")), Actor: actor, Token: s.csrfFor(r)}
	if err := checkAction(c); err != nil {
		s.pageError(w, r, err)
		return
	}
	if _, err := s.o.Store.RunState(r.Context(), run); err != nil {
		s.pageError(w, r, err)
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		c.Readable = describeAction(c)
		s.render(w, r, http.StatusOK, "confirm", page{Title: fmt.Sprintf("Confirm: %s run %d", c.Action, run), Nav: "board", Data: c})
		return
	}
	if err := s.refuseCompacted(r.Context(), run); err != nil {
		s.pageError(w, r, err)
		return
	}
	if _, err := s.o.Overrider.Override(r.Context(), run, c.Action, c.Workflow, actor, c.Reason); err != nil {
		s.pageError(w, r, err)
		return
	}
	s.log.Info("operator action from the page", "run", run, "action", c.Action, "workflow", c.Workflow, "actor", actor)
	http.Redirect(w, r, fmt.Sprintf("/runs/%d?done=%s", run, url.QueryEscape(string(c.Action))), http.StatusSeeOther)
}

func checkAction(c confirmData) error {
	switch {
	case !c.Action.Valid():
		return apperr.Errorf(apperr.Invalid, "action must be hold, release, clear or accept, not %q", c.Action)
	case c.Reason == "":
		return apperr.Errorf(apperr.Invalid, "a reason is required")
	case len(c.Reason) > 2000:
		return apperr.Errorf(apperr.Invalid, "reason over 2000 characters")
	case c.Action == pcl.OverrideAccept && c.Workflow == "":
		return apperr.Errorf(apperr.Invalid, "accept needs a workflow")
	}
	return nil
}

func describeAction(c confirmData) string {
	switch c.Action {
	case pcl.OverrideHold:
		return fmt.Sprintf("Hold run %d: Tier-0 will not be told it may release it until the hold is cleared.", c.Run)
	case pcl.OverrideRelease:
		return fmt.Sprintf("Force the release of run %d, whatever its workflows say.", c.Run)
	case pcl.OverrideAccept:
		return fmt.Sprintf("Accept the bad final state of %s for run %d, so the run can become ready.", c.Workflow, c.Run)
	}
	if c.Workflow != "" {
		return fmt.Sprintf("Undo the accept of %s for run %d.", c.Workflow, c.Run)
	}
	return fmt.Sprintf("Clear the hold or forced release of run %d.", c.Run)
}

// parsePageForm reads a form posted from one of this server's pages (page names it for the error). A
// browser's post carries its cookie (or comes from the demo's loopback) by itself, so it must prove it
// comes from this server's page: the same origin and the form token of its session (or of the
// process). A token in the Authorization header is never added by a browser, and needs no such proof.
func (s *Server) parsePageForm(w http.ResponseWriter, r *http.Request, page string) error {
	fromBrowser := principalOf(r).Via != access.ViaToken
	if err := sameOrigin(r); fromBrowser && err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apperr.Errorf(apperr.Invalid, "form over %d bytes", s.o.MaxBody)
		}
		return apperr.Errorf(apperr.Invalid, "bad form: %v", err)
	}
	if fromBrowser && !validToken(r.PostForm.Get("token"), s.csrfFor(r)) {
		return apperr.Errorf(apperr.Forbidden, "the form is stale or was not made by this server; reload %s", page)
	}
	return nil
}
