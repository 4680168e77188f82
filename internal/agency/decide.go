package agency

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/reconcile"
	"github.com/cms-pcl/spyagency/internal/store"
)

// reconcileRun derives a run's state and stores it, with a new decision version when the readiness
// changed. The sources' views are read before the run's observations: every poll a view vouches for had
// its observations stored before the view was published, so they are all in what is gathered next, and
// an absence concluded from the view is true of the gathered facts. The decision's time is taken after
// the gathering, so that it is never before the evidence it rests on was seen. Called with
// a.reconcileMu held.
func (a *Agency) reconcileRun(ctx context.Context, run uint32) (bool, error) {
	sources := a.sources()
	obs, err := a.gather(ctx, run)
	if err != nil {
		return false, fmt.Errorf("agency: run %d: %w", run, err)
	}
	if !anchored(obs) {
		return false, nil
	}
	now := a.o.Clock.Now()
	rs := a.reconcile(reconcile.Input{Run: run, Observations: obs, Catalogue: a.o.Catalogue,
		Policy: a.o.Policy, Sources: sources, FCSR: a.fcsr.get(), Now: now, Synchronizations: a.syncs.snapshot()})
	prev, prevJSON, err := a.prevState(ctx, run)
	switch {
	case apperr.Is(err, apperr.NotFound):
	case err != nil:
		return false, fmt.Errorf("agency: run %d: %w", run, err)
	}
	a.index.settle(&rs, now)
	if err == nil && prev.Decision.Version > 0 && sameDecision(rs.Decision, prev.Decision) {
		rs.Decision.Version, rs.Decision.Decided = prev.Decision.Version, prev.Decision.Decided
		// PutRunState keeps the run's versioned decision, whatever rs's says (a released run's blocking
		// list, new evidence): what the store will hold, so what is compared and remembered, is rs with
		// prev's decision. Equal values encode alike, so the encoding is compared only when they differ
		// (a state read from the store may differ in form, not in content).
		held := rs
		held.Decision = prev.Decision
		if reflect.DeepEqual(held, prev) {
			return false, nil
		}
		if prevJSON == nil {
			prevJSON, _ = json.Marshal(prev)
		}
		cur, err := json.Marshal(held)
		if err == nil && string(cur) == string(prevJSON) {
			a.facts.setState(prev, prevJSON)
			return false, nil
		}
		if err := a.o.Store.PutRunState(ctx, rs); err != nil {
			a.facts.forget(run)
			return false, fmt.Errorf("agency: run %d: %w", run, err)
		}
		a.facts.setState(held, cur)
		a.events.publish(pcl.RunEvent{Run: run, State: rs})
		return false, nil
	}
	d := rs.Decision
	d.Version = prev.Decision.Version + 1
	d.Decided = now
	w := store.DecisionWrite{Decision: d, State: rs,
		Audit: []store.AuditEntry{{At: now, Run: run, Actor: "agency", Action: "decision", Detail: auditDetail(d)}}}
	body, err := json.Marshal(d)
	if err != nil {
		return false, fmt.Errorf("agency: run %d: %w", run, err)
	}
	for _, t := range a.o.Targets {
		w.Outbox = append(w.Outbox, store.OutboxEntry{Target: t, Run: run, Version: d.Version, Payload: body, Created: now, NextAttempt: now})
	}
	saved, err := a.o.Store.SaveDecision(ctx, w)
	if err != nil {
		a.facts.forget(run)
		return false, fmt.Errorf("agency: run %d: save decision v%d: %w", run, d.Version, err)
	}
	rs.Decision = saved
	a.facts.setState(rs, nil)
	a.log.Info("decision", "run", run, "version", saved.Version, "state", saved.State, "releasable", saved.Releasable, "reason", saved.Reason)
	a.events.publish(pcl.RunEvent{Run: run, DecisionChanged: true, State: rs})
	return true, nil
}

// sources is each source's view and staleness, as the reconcile takes them.
func (a *Agency) sources() map[pcl.Source]reconcile.SourceView {
	out := map[pcl.Source]reconcile.SourceView{}
	if a.o.Sources == nil {
		return out
	}
	for _, h := range a.o.Sources.SourceHealth() {
		out[h.Name] = reconcile.SourceView{View: h.View, Stale: h.Stale}
	}
	return out
}

// gather collects everything the reconcile of a run needs: the run's own observations and the IOVs
// that carry its harvested payloads (their since may point at another run).
//
// An open run's are kept in memory as they are stored (facts); another run's are read from the store.
func (a *Agency) gather(ctx context.Context, run uint32) ([]pcl.Observation, error) {
	if a.index.isOpen(run) {
		return a.facts.gather(ctx, a.o.Store, run)
	}
	return gatherStored(ctx, a.o.Store, run)
}

// gatherStored is gather from the store alone.
func gatherStored(ctx context.Context, st store.Store, run uint32) ([]pcl.Observation, error) {
	obs, err := st.Observations(ctx, store.ObservationQuery{Runs: []uint32{run}})
	if err != nil {
		return nil, err
	}
	var hashes []string
	for _, o := range obs {
		if o.Kind == pcl.KindHarvestFile {
			for _, p := range o.Payloads {
				hashes = append(hashes, p.Payload)
			}
		}
	}
	if len(hashes) > 0 {
		iovs, err := st.Observations(ctx, store.ObservationQuery{Kinds: []pcl.Kind{pcl.KindIOV}, Payloads: hashes})
		if err != nil {
			return nil, err
		}
		obs = append(obs, iovs...)
	}
	return obs, nil
}

// prevState is a run's stored state: remembered for an open run, read from the store otherwise.
// Its encoding comes with it when remembered (nil otherwise).
func (a *Agency) prevState(ctx context.Context, run uint32) (pcl.RunState, []byte, error) {
	if rs, encoded, ok := a.facts.state(run); ok {
		return rs, encoded, nil
	}
	rs, err := a.o.Store.RunState(ctx, run)
	if err == nil {
		a.facts.setState(rs, nil)
	}
	return rs, nil, err
}

// sameDecision says whether d tells Tier-0 nothing new after prev. A released run stays watched while
// its workflows settle (see index.watched), and their states may change what blocks it; but Tier-0 has
// released it, so no new version is made for that.
func sameDecision(d, prev pcl.Decision) bool {
	if d.State == pcl.ReadinessReleased && prev.State == pcl.ReadinessReleased && d.Releasable == prev.Releasable {
		return true
	}
	return d.Same(prev)
}

// auditDetail is a decision's audit text: its version, readiness and reason, and the store's sequence
// numbers of the observations it rests on, so that the audit log alone shows which facts, seen when,
// let a run be reported ready.
func auditDetail(d pcl.Decision) string {
	detail := fmt.Sprintf("v%d %s: %s", d.Version, d.State, d.Reason)
	if len(d.Evidence) == 0 {
		return detail
	}
	seqs := make([]string, len(d.Evidence))
	for i, n := range d.Evidence {
		seqs[i] = strconv.FormatInt(n, 10)
	}
	return detail + " (evidence: observations " + strings.Join(seqs, ", ") + ")"
}

// anchored says whether the observations make a run: IOVs and upload records point at runs by their
// since or file name, but a since moved up by the upload service names a run that may not exist.
func anchored(obs []pcl.Observation) bool {
	for _, o := range obs {
		switch o.Kind {
		case pcl.KindIOV, pcl.KindUploadStatus, pcl.KindFCSR:
		default:
			return true
		}
	}
	return false
}
