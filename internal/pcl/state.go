package pcl

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// State is where one workflow stands for one run (design.md, "The states"). It is always derived from
// observations, never set by hand.
type State string

const (
	StateNotExpected     State = "not-expected"
	StatePending         State = "pending"
	StateAwaitingHarvest State = "awaiting-harvest"
	StateNoPayload       State = "no-payload"
	StateHarvested       State = "harvested"
	StateUploading       State = "uploading"
	StateUploaded        State = "uploaded"
	StateUploadFailed    State = "upload-failed"
	StateTooLate         State = "too-late"
	StateInDB            State = "in-db"
	StateTimedOut        State = "timed-out"
	StateAccepted        State = "accepted"
)

// States lists every workflow state in the order of the loop.
var States = []State{StateNotExpected, StatePending, StateAwaitingHarvest, StateNoPayload, StateHarvested,
	StateUploading, StateUploaded, StateUploadFailed, StateTooLate, StateInDB, StateTimedOut, StateAccepted}

// Terminal says whether the state is final.
func (s State) Terminal() bool {
	switch s {
	case StateNotExpected, StateNoPayload, StateUploadFailed, StateTooLate, StateInDB, StateTimedOut, StateAccepted:
		return true
	}
	return false
}

// OK says whether a terminal state lets the run go: no-payload only where the policy allows it.
func (s State) OK(noPayloadOK bool) bool {
	switch s {
	case StateNotExpected, StateInDB, StateAccepted:
		return true
	case StateNoPayload:
		return noPayloadOK
	}
	return false
}

// Bad says whether the state is terminal and not ok.
func (s State) Bad(noPayloadOK bool) bool { return s.Terminal() && !s.OK(noPayloadOK) }

// Flag is a second opinion on a workflow that does not change its state but that an operator must see.
type Flag string

const (
	FlagAtRisk            Flag = "at-risk"            // will miss Tier-0's own lock of the run unless something changes (WorkflowStatus.AtRiskUntil)
	FlagUnchangedPayload  Flag = "unchanged-payload"  // the payload equals the previous IOV's: a "null" update
	FlagDetectorOff       Flag = "detector-off"       // the detector it calibrates was not in the run
	FlagSpecialRun        Flag = "special-run"        // not a standard run of its class (no field, commissioning)
	FlagLumiGap           Flag = "lumi-gap"           // a lumi-based payload starts after the run's first lumisection
	FlagUploadBurst       Flag = "upload-burst"       // more than one upload of the same input for the run
	FlagVetoed            Flag = "vetoed"             // DQM says the calibration is bad
	FlagRoutedToPrep      Flag = "routed-to-prep"     // uploaded with the prep (validation) metadata
	FlagPartialStatistics Flag = "partial-statistics" // harvested by Tier-0's timeout, not because input closed
	// FlagNoPayloadConfirmed: a no-payload that a source confirms (the DQM GUI's insufficient-statistics
	// verdict, or Tier-0 finishing the stream before its upload timeout): the harvest ran and wrote
	// nothing, and PromptReco goes on with the previous conditions (ClassPolicy.NoPayloadAccepted).
	FlagNoPayloadConfirmed Flag = "no-payload-confirmed"
)

// Readiness is whether a run may go to PromptReco.
type Readiness string

const (
	ReadinessOngoing Readiness = "ongoing"
	ReadinessWaiting Readiness = "waiting"
	// ReadinessBlocked: a required workflow is in a bad terminal state (or its absence is unconfirmed)
	// and nothing will change without a person; the reason names the workflow, its state and the
	// actions that unblock it.
	ReadinessBlocked  Readiness = "blocked"
	ReadinessReady    Readiness = "ready"
	ReadinessTimedOut Readiness = "timed-out"
	ReadinessHeld     Readiness = "held"
	ReadinessForced   Readiness = "forced"
	ReadinessReleased Readiness = "released"
)

// Readinesses lists every readiness.
var Readinesses = []Readiness{ReadinessOngoing, ReadinessWaiting, ReadinessBlocked, ReadinessReady, ReadinessTimedOut,
	ReadinessHeld, ReadinessForced, ReadinessReleased}

// Milestone names one step of a workflow for a run, for latencies and the timeline.
type Milestone string

const (
	MilestoneStop        Milestone = "stop"
	MilestoneExpressDone Milestone = "express-done"
	MilestoneHarvested   Milestone = "harvested"
	MilestoneUploadSent  Milestone = "upload-sent"
	MilestoneUploaded    Milestone = "uploaded"
	MilestoneInDB        Milestone = "in-db"
)

// AllMilestones lists the milestones in loop order.
var AllMilestones = []Milestone{MilestoneStop, MilestoneExpressDone, MilestoneHarvested, MilestoneUploadSent,
	MilestoneUploaded, MilestoneInDB}

// Milestones are the times a workflow passed each step for a run; zero for a step not (yet) passed.
type Milestones struct {
	Stop        time.Time `json:"stop,omitzero"`
	ExpressDone time.Time `json:"express_done,omitzero"`
	Harvested   time.Time `json:"harvested,omitzero"`
	UploadSent  time.Time `json:"upload_sent,omitzero"`
	Uploaded    time.Time `json:"uploaded,omitzero"`
	InDB        time.Time `json:"in_db,omitzero"`
	// Observed marks the milestones whose time is not one a source reported: express-done, which is
	// when the agency saw Tier-0 say the stream was done (Tier-0 gives no time), and any milestone
	// moved to keep the loop's order where clocks disagree: bounded by the next later milestone, or
	// raised to the stop. A latency ending at an observed milestone is an upper bound.
	Observed MilestoneSet `json:"observed,omitzero"`
}

// MilestoneSet is a set of milestones; its JSON form is the list of their names in loop order.
type MilestoneSet uint8

func milestoneBit(m Milestone) MilestoneSet {
	for i, k := range AllMilestones {
		if k == m {
			return 1 << i
		}
	}
	return 0
}

// Has says whether m is in the set.
func (s MilestoneSet) Has(m Milestone) bool { return s&milestoneBit(m) != 0 }

// Add puts m in the set.
func (s *MilestoneSet) Add(m Milestone) { *s |= milestoneBit(m) }

// List is the set's milestones in loop order.
func (s MilestoneSet) List() []Milestone {
	var out []Milestone
	for i, k := range AllMilestones {
		if s&(1<<i) != 0 {
			out = append(out, k)
		}
	}
	return out
}

// MarshalJSON writes the set as a list of milestone names.
func (s MilestoneSet) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, m := range s.List() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), m...), '"')
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads a list of milestone names; an unknown name is an error.
func (s *MilestoneSet) UnmarshalJSON(data []byte) error {
	var names []Milestone
	if err := json.Unmarshal(data, &names); err != nil {
		return err
	}
	*s = 0
	for _, m := range names {
		bit := milestoneBit(m)
		if bit == 0 {
			return fmt.Errorf("unknown milestone %q", m)
		}
		*s |= bit
	}
	return nil
}

// Get returns one milestone's time.
func (m *Milestones) Get(k Milestone) time.Time { return *m.field(k) }

// Set sets one milestone's time.
func (m *Milestones) Set(k Milestone, t time.Time) { *m.field(k) = t }

func (m *Milestones) field(k Milestone) *time.Time {
	switch k {
	case MilestoneStop:
		return &m.Stop
	case MilestoneExpressDone:
		return &m.ExpressDone
	case MilestoneHarvested:
		return &m.Harvested
	case MilestoneUploadSent:
		return &m.UploadSent
	case MilestoneUploaded:
		return &m.Uploaded
	case MilestoneInDB:
		return &m.InDB
	}
	panic("pcl: unknown milestone " + string(k))
}

// Latest is the newest milestone time.
func (m *Milestones) Latest() time.Time {
	t := m.Stop
	for _, v := range [...]*time.Time{&m.ExpressDone, &m.Harvested, &m.UploadSent, &m.Uploaded, &m.InDB} {
		if v.After(t) {
			t = *v
		}
	}
	return t
}

// WorkflowStatus is the derived status of one workflow for one run.
type WorkflowStatus struct {
	Name     string    `json:"name"`
	State    State     `json:"state"`
	Quality  Quality   `json:"quality"`
	Required bool      `json:"required"`
	Flags    []Flag    `json:"flags"`
	Reason   string    `json:"reason,omitempty"`
	Updated  time.Time `json:"updated,omitzero"`  // time of the newest observation that moved it
	Deadline time.Time `json:"deadline,omitzero"` // zero while the run is ongoing
	// AtRiskUntil is set with the at-risk flag: the moment Tier-0 locks the run on its own (stop + its
	// release delay − the lock offset), by which the workflow must be ok; the time left is it minus
	// now. Zero when the workflow is not at risk.
	AtRiskUntil time.Time  `json:"at_risk_until,omitzero"`
	Milestones  Milestones `json:"milestones"`
	Files       []string   `json:"files,omitempty"`
	Hashes      []string   `json:"hashes,omitempty"` // payload hashes harvested for this run
	// Evidence are the store's sequence numbers (Observation.Seq) of the observations the state rests
	// on: the IOVs that put the payload in the DB, the verdict that failed it, the override that
	// accepted it. Sorted, each once.
	Evidence []int64 `json:"evidence,omitempty"`
}

// HasFlag says whether the workflow carries the flag.
func (ws *WorkflowStatus) HasFlag(f Flag) bool {
	for _, g := range ws.Flags {
		if g == f {
			return true
		}
	}
	return false
}

// Decision is the run's readiness as decided at one moment: what steering tells Tier-0.
type Decision struct {
	Run      uint32    `json:"run"`
	State    Readiness `json:"state"`
	Reason   string    `json:"reason"`
	Blocking []string  `json:"blocking"`
	// Releasable is what Tier-0 is told: ready, forced, released, or timed out under a release policy.
	Releasable bool  `json:"releasable"`
	Version    int64 `json:"version"`
	// Decided is when the decision was taken: the moment its run was reconciled, never before the
	// evidence it rests on was seen.
	Decided time.Time `json:"decided"`
	// Evidence are the sequence numbers of the observations the readiness rests on (the required
	// workflows' evidence, the override, the release), so that the audit log can prove the safety rule.
	// It is not compared by Same: new evidence for the same readiness is no new decision.
	Evidence []int64 `json:"evidence,omitempty"`
}

// Same says whether two decisions tell Tier-0 the same thing, so that no new version is needed.
func (d Decision) Same(o Decision) bool {
	if d.State != o.State || d.Releasable != o.Releasable || d.Reason != o.Reason || len(d.Blocking) != len(o.Blocking) {
		return false
	}
	for i := range d.Blocking {
		if d.Blocking[i] != o.Blocking[i] {
			return false
		}
	}
	return true
}

// RunState is everything the reconcile derives for a run.
type RunState struct {
	Run       uint32           `json:"run"`
	Info      *RunInfo         `json:"info,omitempty"`
	Class     string           `json:"class"`
	Workflows []WorkflowStatus `json:"workflows"`
	Decision  Decision         `json:"decision"` // Version and Decided are the store's to set
	Deadline  time.Time        `json:"deadline,omitzero"`
	// NextWake is when the run must be looked at again even if nothing is observed (a deadline, a risk
	// threshold); zero when no time-based change can come.
	NextWake time.Time `json:"next_wake,omitzero"`
	// WaitsFor are the sources whose next fresh view can change the state by itself: a conclusion from
	// absence (no harvest file after the stream was done) waits for a view of the source taken after
	// the fact it waits for. The agency reconciles the run again as soon as such a source's view
	// advances.
	WaitsFor []Source `json:"waits_for,omitempty"`
}

// Workflow finds a workflow's status by name.
func (rs *RunState) Workflow(name string) (*WorkflowStatus, bool) {
	for i := range rs.Workflows {
		if rs.Workflows[i].Name == name {
			return &rs.Workflows[i], true
		}
	}
	return nil, false
}

// RunEvent tells subscribers (the page, steering, alerts) that a run's state was stored;
// DecisionChanged when its readiness changed.
type RunEvent struct {
	Run             uint32   `json:"run"`
	DecisionChanged bool     `json:"decision_changed"`
	State           RunState `json:"state"`
}

// Clone is a deep copy of the state: no slice or pointer of the copy is shared with rs, so either can
// be changed without the other seeing it (the store hands out states it also keeps decoded).
func (rs RunState) Clone() RunState {
	c := rs
	if rs.Info != nil {
		info := *rs.Info
		if info.Stop != nil {
			stop := *info.Stop
			info.Stop = &stop
		}
		if info.Fill != nil {
			fill := *info.Fill
			info.Fill = &fill
		}
		info.Components = slices.Clone(info.Components)
		c.Info = &info
	}
	c.Workflows = slices.Clone(rs.Workflows)
	for i := range c.Workflows {
		ws := &c.Workflows[i]
		ws.Flags, ws.Files, ws.Hashes, ws.Evidence = slices.Clone(ws.Flags), slices.Clone(ws.Files), slices.Clone(ws.Hashes), slices.Clone(ws.Evidence)
	}
	c.Decision.Blocking, c.Decision.Evidence = slices.Clone(rs.Decision.Blocking), slices.Clone(rs.Decision.Evidence)
	c.WaitsFor = slices.Clone(rs.WaitsFor)
	return c
}
