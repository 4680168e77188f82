package study

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/demo"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/sim"
	"github.com/cms-pcl/spyagency/internal/store"
)

// runFixed runs the world with Tier-0 in its fixed mode: no agency, lock 47.5 h after stop in run order.
func runFixed(ctx context.Context, o Options, w window) (*world, error) {
	clk := clock.NewFake(w.start)
	s, err := sim.New(sim.Config{Seed: o.Seed, Dir: filepath.Join(o.Dir, "fixed"), Faults: o.Faults, Clock: clk,
		Tier0Mode: sim.Tier0Fixed, Logger: o.Logger.With("world", Fixed48h)})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	for now := w.start; now.Before(w.end); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		now = minTime(now.Add(time.Hour), w.end)
		clk.Set(now)
		if err := s.AdvanceTo(now); err != nil {
			return nil, err
		}
	}
	return collect(s), nil
}

// collect reads a world's truth and releases.
func collect(s *sim.Sim) *world {
	wd := &world{truth: map[uint32]sim.RunTruth{}, releases: map[uint32]sim.Release{}, ready: map[uint32]time.Time{}, actions: map[uint32]int{}}
	for _, r := range s.Runs() {
		wd.truth[r.Number] = r
	}
	for _, r := range s.Releases() {
		wd.releases[r.Run] = r
	}
	return wd
}

// operatorName is who the simulated operator's overrides are audited under.
const operatorName = "study-operator"

// runAgency runs the world with the whole agency in it (the stepped demo): each step moves simulated
// time on by o.Step, the simulator first (its Tier-0 asks the agency's pull API over HTTP), then every
// spy whose interval passed polls and the agency reconciles. The HTTP requests, spies' and Tier-0's,
// reach the simulator's and the agency's handlers in process (demo.Options.InProcess), without sockets. With operator, a simulated shift operator
// looks at the blocked runs after every step.
func runAgency(ctx context.Context, o Options, w window, operator bool) (*world, error) {
	name := Agency
	if operator {
		name = AgencyOperator
	}
	log := o.Logger.With("world", name)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clk := clock.NewFake(w.start)
	var slack time.Duration // the default, unless the study's own directory is on tmpfs
	if o.tmpfs {
		slack = tmpfsMtimeSlack
	}
	d, err := demo.New(ctx, demo.Options{DataDir: filepath.Join(o.Dir, name), Seed: o.Seed, Faults: o.Faults, Clock: clk,
		Stepped: true, InProcess: true, Addr: "127.0.0.1:0", Tier0Backstop: true, Logger: slog.New(slog.DiscardHandler),
		HarvestMtimeSlack: slack})
	if err != nil {
		return nil, err
	}
	defer d.Close()

	policy := d.Config.Policy
	op := &shiftOperator{response: o.OperatorResponse, blockedSince: map[uint32]time.Time{}, actions: map[uint32]int{}, policy: policy}
	nextLog := w.start.Add(24 * time.Hour)
	began := time.Now()
	for now := w.start.Add(o.Step); !now.After(w.end); now = now.Add(o.Step) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := d.Step(ctx, now); err != nil {
			return nil, fmt.Errorf("step at %s: %w", now.Format(time.DateTime), err)
		}
		if operator {
			if err := op.act(ctx, d, now); err != nil {
				return nil, err
			}
		}
		if !now.Before(nextLog) {
			log.Info("study: simulated day done", "day", int(now.Sub(w.start)/(24*time.Hour)), "releases", len(d.Sim.Releases()),
				"elapsed", time.Since(began).Round(time.Millisecond))
			nextLog = nextLog.Add(24 * time.Hour)
		}
	}
	wd := collect(d.Sim)
	wd.actions = op.actions
	for run, rel := range wd.releases {
		decisions, err := d.App.Store.Decisions(ctx, run)
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("the decisions of run %d: %w", run, err)
		}
		for _, dec := range decisions {
			if dec.Releasable && dec.State != pcl.ReadinessReleased {
				if t, ok := wd.ready[run]; !ok || dec.Decided.Before(t) {
					wd.ready[run] = dec.Decided
				}
			}
		}
		if t, ok := wd.ready[run]; !ok || t.After(rel.Locked) {
			wd.ready[run] = rel.Locked // released by Tier-0's own delay before the agency said so
		}
	}
	return wd, nil
}

// shiftOperator is a simulated shift operator: once a run has been blocked for the response time, it
// accepts each required workflow of the run in a bad final state, as a shifter who checked the logs would
// (an accept is audited and shows in the run's reason). Each accept is one action.
type shiftOperator struct {
	response     time.Duration
	policy       pcl.Policy
	blockedSince map[uint32]time.Time
	actions      map[uint32]int
}

func (op *shiftOperator) act(ctx context.Context, d *demo.Demo, now time.Time) error {
	blocked, err := d.App.Store.RunStates(ctx, store.RunQuery{Readiness: pcl.ReadinessBlocked, Limit: 10000})
	if err != nil {
		return fmt.Errorf("the operator's view of the blocked runs: %w", err)
	}
	for _, rs := range blocked {
		since, seen := op.blockedSince[rs.Run]
		if !seen {
			op.blockedSince[rs.Run] = now
			continue
		}
		if now.Sub(since) < op.response {
			continue
		}
		cp := op.policy.For(rs.Class)
		for i := range rs.Workflows {
			ws := &rs.Workflows[i]
			if !ws.Required || !ws.State.Bad(cp.NoPayloadAccepted(ws)) {
				continue
			}
			reason := fmt.Sprintf("study: blocked since %s, accepted after the operator's %s response time", since.Format(time.DateTime), op.response)
			if _, err := d.App.Agency.Override(ctx, rs.Run, pcl.OverrideAccept, ws.Name, operatorName, reason); err != nil {
				return fmt.Errorf("the operator's accept of %s in run %d: %w", ws.Name, rs.Run, err)
			}
			op.actions[rs.Run]++
		}
		delete(op.blockedSince, rs.Run) // blocked again later (another workflow) is a new episode
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
