package study

import (
	"slices"
	"strings"
	"testing"
)

// Unmet names each missed target, and a target whose policies were not run.
func TestUnmet(t *testing.T) {
	t.Parallel()
	good := &Result{Policies: []PolicyResult{
		{Policy: Fixed48h}, {Policy: Oracle}, {Policy: OracleOperator},
		{Policy: Agency, RatioToOracle: 1.0},
		{Policy: AgencyOperator, RatioToOracleOperator: 0.8, SafetyViolations: 60}, // the operator's accepts
	}}
	if got := good.Unmet(); len(got) != 0 {
		t.Fatalf("all targets met, yet %v", got)
	}
	bad := &Result{Policies: slices.Clone(good.Policies)}
	bad.Policies[3] = PolicyResult{Policy: Agency, RatioToOracle: 1.2, SafetyViolations: 1, LaterThanFixed: 2, Unreleased: 3}
	bad.Policies[4].RatioToOracleOperator = 1.11
	got := strings.Join(bad.Unmet(), "\n")
	for _, want := range []string{"1 runs unsafely", "2 runs later than fixed48h", "3 runs unreleased", "1.200 × oracle's", "1.110 × oracle+operator's"} {
		if !strings.Contains(got, want) {
			t.Errorf("unmet targets %q do not say %q", got, want)
		}
	}
	partial := &Result{Policies: []PolicyResult{{Policy: Agency, RatioToOracle: 1}}}
	got = strings.Join(partial.Unmet(), "\n")
	for _, want := range []string{"policy fixed48h was not run", "policy oracle was not run", "policy agency+operator was not run"} {
		if !strings.Contains(got, want) {
			t.Errorf("unmet targets %q do not say %q", got, want)
		}
	}
}
