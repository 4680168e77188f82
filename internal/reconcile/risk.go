package reconcile

import (
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// The prediction of a miss: will a workflow be ok before Tier-0 locks its run on its own? It needs no
// Tier-0 integration, only Tier-0's published timings (cms-interfaces.md §1): AlcaHarvest runs at the
// latest 12 h after stop, the upload loop waits for a run at most 18 h after stop, and PromptReco is
// released 48 h after stop with the run's settings locked 30 min earlier, in run order. Runs stop in
// run order, so the lock in run order is each run's own stop + 47.5 h.
//
// A workflow is on schedule while its current step can still be done by Tier-0's automation: a harvest
// until the harvest timeout (plus an hour for the files to be written, scanned and sent), an upload and
// its IOV until the upload timeout. Past that, nothing in Tier-0 will finish it by itself; a person has
// hours before the lock to fix it, which is the point of saying so early. A workflow in a bad final state
// will miss unless a person acts, so it is at risk at once. The policy's at_risk_fraction of the workflow
// deadline can make the warning earlier still.

// ConditionUploadTimeout is Tier-0's conditionUploadTimeout: the upload loop waits for a run at most this
// long after its stop (cms-interfaces.md §1).
const ConditionUploadTimeout = 18 * time.Hour

// harvestGrace is how long after the harvest timeout a harvest still counts as on schedule: Tier-0 writes
// the files at the timeout, the harvest spy's next scan finds them, the upload loop sends them.
const harvestGrace = time.Hour

// LockAt is when Tier-0 alone locks the PromptReco settings of a run that stopped at stop (its release
// delay minus the lock offset): a workflow not ok by then misses PromptReco.
func LockAt(stop time.Time) time.Time {
	return stop.Add(pcl.Tier0RecoTimeout - pcl.Tier0RecoLockTimeout)
}

// riskAt is when a workflow that is not final falls behind Tier-0's schedule for the step it is at.
// Only for a stopped run (ws.Deadline is set).
func (d *deriver) riskAt(ws *pcl.WorkflowStatus) time.Time {
	onSchedule := ConditionUploadTimeout // harvested, uploading, uploaded: the upload and its IOV
	if ws.State == pcl.StatePending || ws.State == pcl.StateAwaitingHarvest {
		onSchedule = AlcaHarvestTimeout + harvestGrace
	}
	if early := time.Duration(float64(d.cp.WorkflowDeadline) * d.cp.AtRiskFraction); early < onSchedule {
		onSchedule = early
	}
	return d.f.info.Stop.Add(onSchedule)
}

// atRisk says whether a workflow of a stopped run will miss Tier-0's lock unless something changes.
func (d *deriver) atRisk(ws *pcl.WorkflowStatus) bool {
	if ws.State == pcl.StateNotExpected || ws.Deadline.IsZero() {
		return false
	}
	if ws.State.Terminal() {
		return ws.State.Bad(d.cp.NoPayloadAccepted(ws))
	}
	if !d.in.Now.Before(d.riskAt(ws)) {
		return true
	}
	// Once the first condition-safe run passed this run, a pcl-synchronized upload of it is too late.
	return d.in.FCSR > d.f.run && (ws.State == pcl.StateAwaitingHarvest || ws.State == pcl.StateHarvested || ws.State == pcl.StateUploading)
}
