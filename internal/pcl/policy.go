package pcl

import (
	"fmt"
	"path"
	"time"
)

// OnTimeout is what happens to a run whose deadline passed with required workflows not ok.
type OnTimeout string

const (
	OnTimeoutRelease OnTimeout = "release" // release it and raise an alert (what Tier-0's blind delay does)
	OnTimeoutHold    OnTimeout = "hold"    // keep holding it until an operator acts
)

// ClassPolicy is the policy for the runs whose class matches Pattern (a shell pattern such as
// "Collisions*").
type ClassPolicy struct {
	// Pattern is the run classes this policy is for, a shell pattern (Collisions*); the first class
	// whose pattern matches applies.
	Pattern string `yaml:"pattern" json:"pattern"`
	// Required lists the workflows that must be ok before release; empty means every workflow the run
	// is expected to run.
	Required []string `yaml:"required" json:"required"`
	// NoPayloadOK lists the workflows for which any "no payload" is an acceptable outcome ("*" for all),
	// even one that nothing confirms. Without it, a no-payload is ok only where it is confirmed
	// (FlagNoPayloadConfirmed) and the workflow is not in RequirePayload.
	NoPayloadOK []string `yaml:"no_payload_ok" json:"no_payload_ok"`
	// RequirePayload lists the workflows that must deliver a payload ("*" for all): for them even a
	// confirmed no-payload is not ok, and the run needs a person.
	RequirePayload []string `yaml:"require_payload" json:"require_payload"`
	// WorkflowDeadline is how long after run stop a workflow may take to reach a terminal state.
	WorkflowDeadline time.Duration `yaml:"workflow_deadline" json:"workflow_deadline"`
	// RunDeadline is how long after run stop the run may wait for its workflows.
	RunDeadline time.Duration `yaml:"run_deadline" json:"run_deadline"`
	// OnTimeout is what a run past RunDeadline becomes: release (with an alert, as Tier-0's own delay
	// would) or hold (until an operator acts).
	OnTimeout OnTimeout `yaml:"on_timeout" json:"on_timeout"`
	// MinRunLength: shorter runs expect no workflow.
	MinRunLength time.Duration `yaml:"min_run_length" json:"min_run_length"`
	// InOrder: runs are released in run order, as Tier-0 does.
	InOrder bool `yaml:"in_order" json:"in_order"`
	// AtRiskFraction of the workflow deadline after which a workflow not yet terminal is flagged at-risk.
	AtRiskFraction float64 `yaml:"at_risk_fraction" json:"at_risk_fraction"`
}

// Policy is the ordered list of class policies; the first whose pattern matches a run's class applies.
type Policy struct {
	Classes []ClassPolicy `yaml:"classes" json:"classes"`
}

// Tier-0 releases PromptReco of a run a fixed delay after its stop and locks the run's settings a while
// before (cms-interfaces.md §1.7; dmwm/T0's defaultRecoTimeout and defaultRecoLockTimeout).
const (
	Tier0RecoTimeout     = 48 * time.Hour   // defaultRecoTimeout: PromptReco released this long after stop
	Tier0RecoLockTimeout = 30 * time.Minute // defaultRecoLockTimeout: settings locked this long before that
	// DefaultRunDeadline is the moment Tier-0 alone would lock the run. A run that times out then is
	// released by Spy Agency no later than Tier-0 would release it without Spy Agency; a deadline of the
	// full delay would time out only after Tier-0's lock, and the release would follow a poll later.
	DefaultRunDeadline = Tier0RecoTimeout - Tier0RecoLockTimeout
)

// DefaultPolicy mirrors Tier-0's timings (cms-interfaces.md §1): AlcaHarvest by 12 h after stop at the
// latest, uploads waited for until 18 h, PromptReco locked 47.5 h after stop. A workflow gets until the
// upload timeout plus a margin; the run, until Tier-0's own lock, so Spy Agency never releases later than
// Tier-0 alone would.
//
// No payload is handled as CMS handles it (cms-interfaces.md §1.3): a workflow that found too few
// events writes nothing and PromptReco goes on with the previous conditions. So in every class a
// confirmed no-payload is ok (flagged no-payload-confirmed), and an absence that nothing confirms is
// not: the run is blocked until the payload comes, a source confirms, or an operator accepts.
func DefaultPolicy() Policy {
	base := ClassPolicy{
		WorkflowDeadline: 20 * time.Hour,
		RunDeadline:      DefaultRunDeadline,
		OnTimeout:        OnTimeoutRelease,
		MinRunLength:     5 * time.Minute,
		InOrder:          true,
		AtRiskFraction:   0.75,
	}
	var classes []ClassPolicy
	for _, pattern := range []string{"Collisions*", "Cosmics*", "HI*", "*"} {
		c := base
		c.Pattern = pattern
		classes = append(classes, c)
	}
	return Policy{Classes: classes}
}

// For returns the class policy of a run class; the last resort is the built-in default.
func (p Policy) For(class string) ClassPolicy {
	for _, c := range p.Classes {
		if ok, _ := path.Match(c.Pattern, class); ok {
			return c
		}
	}
	d := DefaultPolicy().Classes
	return d[len(d)-1]
}

// AllowsNoPayload says whether no payload is fine for the workflow under this policy.
func (c ClassPolicy) AllowsNoPayload(workflow string) bool {
	for _, w := range c.NoPayloadOK {
		if w == "*" || w == workflow {
			return true
		}
	}
	return false
}

// RequiresPayload says whether the workflow must deliver a payload: no no-payload is ok for it, however
// confirmed (unless NoPayloadOK names it too, which accepts any absence).
func (c ClassPolicy) RequiresPayload(workflow string) bool {
	for _, w := range c.RequirePayload {
		if w == "*" || w == workflow {
			return true
		}
	}
	return false
}

// NoPayloadAccepted says whether a workflow's no-payload lets the run go: any absence where NoPayloadOK
// names the workflow, else a confirmed one (the no-payload-confirmed flag) where the workflow is not
// required to deliver. It is the noPayloadOK argument of State.OK and State.Bad for that workflow.
func (c ClassPolicy) NoPayloadAccepted(ws *WorkflowStatus) bool {
	if c.AllowsNoPayload(ws.Name) {
		return true
	}
	return !c.RequiresPayload(ws.Name) && ws.HasFlag(FlagNoPayloadConfirmed)
}

// Validate checks the policy against the catalogue: known workflows, sane durations and patterns.
func (p Policy) Validate(cat *Catalogue) error {
	if len(p.Classes) == 0 {
		return fmt.Errorf("policy has no class")
	}
	for i, c := range p.Classes {
		where := fmt.Sprintf("policy class %d (%q)", i+1, c.Pattern)
		if c.Pattern == "" {
			return fmt.Errorf("policy class %d has no pattern", i+1)
		}
		if _, err := path.Match(c.Pattern, ""); err != nil {
			return fmt.Errorf("%s: bad pattern: %w", where, err)
		}
		for _, w := range c.Required {
			if _, ok := cat.Workflow(w); !ok {
				return fmt.Errorf("%s: required workflow %q is not in the catalogue", where, w)
			}
		}
		for _, w := range c.NoPayloadOK {
			if _, ok := cat.Workflow(w); !ok && w != "*" {
				return fmt.Errorf("%s: no_payload_ok workflow %q is not in the catalogue", where, w)
			}
		}
		for _, w := range c.RequirePayload {
			if _, ok := cat.Workflow(w); !ok && w != "*" {
				return fmt.Errorf("%s: require_payload workflow %q is not in the catalogue", where, w)
			}
		}
		if c.WorkflowDeadline <= 0 {
			return fmt.Errorf("%s: workflow_deadline must be positive, got %s", where, c.WorkflowDeadline)
		}
		if c.RunDeadline <= 0 {
			return fmt.Errorf("%s: run_deadline must be positive, got %s", where, c.RunDeadline)
		}
		if c.RunDeadline < c.WorkflowDeadline {
			return fmt.Errorf("%s: run_deadline %s is before workflow_deadline %s: the run would time out before its workflows could", where, c.RunDeadline, c.WorkflowDeadline)
		}
		if c.OnTimeout != OnTimeoutRelease && c.OnTimeout != OnTimeoutHold {
			return fmt.Errorf("%s: on_timeout must be release or hold, got %q", where, c.OnTimeout)
		}
		if c.MinRunLength < 0 {
			return fmt.Errorf("%s: min_run_length must not be negative", where)
		}
		if c.AtRiskFraction < 0 || c.AtRiskFraction > 1 {
			return fmt.Errorf("%s: at_risk_fraction must be between 0 and 1, got %g", where, c.AtRiskFraction)
		}
	}
	return nil
}
