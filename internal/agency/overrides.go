package agency

import (
	"context"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// overrides records the operators' actions on runs. An override is an observation, so the reconcile
// sees it like any fact, and it is written with its audit entry in one transaction
// (store.AppendOverride): the log never shows an action that was not taken, nor misses one that was.
// The reconcile orders a run's overrides by the store's sequence number, so two made in the same
// instant (a fast script, a fake clock) keep the order they were made in.
type overrides struct {
	store store.Store
	cat   *pcl.Catalogue
	clock clock.Clock
	// mu makes the time an override takes and its sequence number follow one order, so that the audit
	// log (by time) and the reconcile (by sequence) tell the same story.
	mu sync.Mutex
}

// record checks an override and stores it with its audit entry. It refuses what would do nothing or
// the wrong thing: an unknown workflow or run, an accept without a workflow, a hold or release of a run
// Tier-0 already released.
func (ov *overrides) record(ctx context.Context, run uint32, action pcl.OverrideAction, workflow, actor, reason string) (pcl.Observation, error) {
	if workflow != "" {
		if _, ok := ov.cat.Workflow(workflow); !ok {
			return pcl.Observation{}, apperr.Errorf(apperr.Invalid, "unknown workflow %q", workflow)
		}
	}
	if action == pcl.OverrideAccept && workflow == "" {
		return pcl.Observation{}, apperr.Errorf(apperr.Invalid, "accept needs a workflow")
	}
	if _, err := ov.store.RunState(ctx, run); err != nil {
		return pcl.Observation{}, err
	}
	if action == pcl.OverrideHold || action == pcl.OverrideRelease {
		// Tier-0 already started PromptReco: holding or releasing the run changes nothing, and an
		// audited hold that did nothing would mislead whoever reads the log.
		released, err := ov.store.Observations(ctx, store.ObservationQuery{Runs: []uint32{run}, Kinds: []pcl.Kind{pcl.KindRelease}, Limit: 1})
		if err != nil {
			return pcl.Observation{}, err
		}
		if len(released) > 0 {
			return pcl.Observation{}, apperr.Errorf(apperr.Conflict, "run %d was released by Tier-0 at %s (PromptReco started); a %s changes nothing now",
				run, released[0].At.UTC().Format(time.RFC3339), action)
		}
	}
	ov.mu.Lock()
	defer ov.mu.Unlock()
	now := ov.clock.Now()
	o := pcl.Observation{Source: pcl.SourceOperator, Kind: pcl.KindOverride, Run: run, At: now, Seen: now,
		Action: action, Workflow: workflow, Actor: actor, Reason: reason}
	if err := o.Validate(); err != nil {
		return pcl.Observation{}, apperr.Errorf(apperr.Invalid, "%v", err)
	}
	detail := reason
	if workflow != "" {
		detail = workflow + ": " + reason
	}
	return ov.store.AppendOverride(ctx, o, store.AuditEntry{At: now, Run: run, Actor: actor, Action: string(action), Detail: detail})
}
