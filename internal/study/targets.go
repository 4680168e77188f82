package study

import "fmt"

// TargetRatio is how far above its yardstick a policy's median may be: the agency's over the oracle
// in run order, and the agency with an operator's over the oracle with the operator's response time.
const TargetRatio = 1.10

// Unmet lists the study's targets (docs/study.md, "Targets") that this result misses, each as a
// sentence; empty when all are met. A target whose policies were not run is unmet too, saying which
// policy is missing: a check asked for is never passed by leaving it out.
//
//   - agency: no unsafe release, none later than fixed48h, median ≤ TargetRatio × oracle's;
//   - agency+operator: median ≤ TargetRatio × oracle+operator's.
func (r *Result) Unmet() []string {
	var out []string
	need := func(names ...string) bool {
		ok := true
		for _, n := range names {
			if _, found := r.Policy(n); !found {
				out = append(out, fmt.Sprintf("policy %s was not run, so its targets cannot be checked", n))
				ok = false
			}
		}
		return ok
	}
	if need(Agency, Fixed48h, Oracle) {
		a, _ := r.Policy(Agency)
		if a.SafetyViolations > 0 {
			out = append(out, fmt.Sprintf("agency released %d runs unsafely, want 0", a.SafetyViolations))
		}
		if a.LaterThanFixed > 0 {
			out = append(out, fmt.Sprintf("agency released %d runs later than fixed48h, want 0", a.LaterThanFixed))
		}
		if a.Unreleased > 0 {
			out = append(out, fmt.Sprintf("agency left %d runs unreleased at the end of the world", a.Unreleased))
		}
		if a.RatioToOracle > TargetRatio {
			out = append(out, fmt.Sprintf("agency's median is %.3f × oracle's, want at most %.2f ×", a.RatioToOracle, TargetRatio))
		}
	}
	if need(AgencyOperator, OracleOperator) {
		ao, _ := r.Policy(AgencyOperator)
		if ao.RatioToOracleOperator > TargetRatio {
			out = append(out, fmt.Sprintf("agency+operator's median is %.3f × oracle+operator's, want at most %.2f ×", ao.RatioToOracleOperator, TargetRatio))
		}
	}
	return out
}
