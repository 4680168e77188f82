package study

import (
	"encoding/xml"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// TestStudyInvariants runs one seed of a short world under every policy and checks what must hold
// whatever the numbers: the agency never releases unsafely nor later than Tier-0's fixed delay, the
// oracle is never slower than the agency, fixed48h locks at 47.5 h, and the operator acts on blocked
// runs and shortens the wait. Timing is docs/benchmarks.md's business, not this test's. The step is 5
// simulated minutes (the spies whose interval is shorter poll every step); under the race detector, 30
// minutes and no operator's world.
func TestStudyInvariants(t *testing.T) {
	if testing.Short() {
		t.Skip("three simulated worlds of three days")
	}
	t.Parallel()
	o := Options{Days: 1, Seed: 3, Faults: "default", Step: 5 * time.Minute, Dir: t.TempDir()}
	if raceEnabled {
		// Within go test's 10 minutes under the race detector on a busy 2-core machine: one agency
		// world, in 30-minute steps (every spy then polls every step).
		o.Step = 30 * time.Minute
		o.Policies = []string{Fixed48h, Agency, Oracle, OracleUnordered}
	}
	if testing.Verbose() {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	res, err := Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) PolicyResult {
		p, ok := res.Policy(name)
		if !ok {
			t.Fatalf("no result for %s", name)
		}
		t.Logf("%-17s runs %3d median %6.2f p90 %6.2f max %6.2f unsafe %d timeout %d later %d actions %d jam %.1f unreleased %d",
			p.Policy, p.Runs, p.MedianHours, p.P90Hours, p.MaxHours, p.SafetyViolations, p.ReleasedByTimeout, p.LaterThanFixed, p.OperatorActions, p.JamRunHours, p.Unreleased)
		return p
	}
	fixed, agency := get(Fixed48h), get(Agency)
	oracle, unordered := get(Oracle), get(OracleUnordered)
	op := agency // under the race detector there is no operator's world
	if !raceEnabled {
		op = get(AgencyOperator)
	}
	if fixed.Runs < 5 {
		t.Fatalf("only %d runs measured", fixed.Runs)
	}
	for _, p := range res.Policies {
		if p.Unreleased > 0 {
			t.Errorf("%s: %d runs never released", p.Policy, p.Unreleased)
		}
	}
	if agency.SafetyViolations != 0 {
		t.Errorf("agency: %d unsafe releases: %v", agency.SafetyViolations, agency.Violations)
	}
	if agency.LaterThanFixed != 0 || op.LaterThanFixed != 0 {
		t.Errorf("later than fixed48h: agency %d, agency+operator %d", agency.LaterThanFixed, op.LaterThanFixed)
	}
	if math.Abs(fixed.MedianHours-47.5) > 0.05 || fixed.ReleasedByTimeout != fixed.Runs {
		t.Errorf("fixed48h: median %.3f h, %d of %d by timeout; want 47.5 h, all", fixed.MedianHours, fixed.ReleasedByTimeout, fixed.Runs)
	}
	if oracle.MedianHours > agency.MedianHours || unordered.MedianHours > oracle.MedianHours {
		t.Errorf("medians: oracle-unordered %.2f ≤ oracle %.2f ≤ agency %.2f does not hold", unordered.MedianHours, oracle.MedianHours, agency.MedianHours)
	}
	if oracle.SafetyViolations != 0 || unordered.SafetyViolations != 0 || unordered.JamRunHours != 0 {
		t.Errorf("the oracles: unsafe %d and %d, unordered jam %.1f; want none", oracle.SafetyViolations, unordered.SafetyViolations, unordered.JamRunHours)
	}
	if agency.OperatorActions != 0 {
		t.Errorf("agency alone: %d operator actions", agency.OperatorActions)
	}
	if !raceEnabled && agency.ReleasedByTimeout > 0 && (op.OperatorActions == 0 || op.MedianHours > agency.MedianHours) {
		t.Errorf("runs timed out, yet the operator made %d actions and the median went %.2f → %.2f", op.OperatorActions, agency.MedianHours, op.MedianHours)
	}
	if agency.RatioToFixed48h <= 0 || agency.RatioToFixed48h > 1 {
		t.Errorf("agency ratio to fixed48h %.3f", agency.RatioToFixed48h)
	}
	var doc struct{ XMLName xml.Name }
	svg := SVG(res)
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil || doc.XMLName.Local != "svg" {
		t.Errorf("the plot is not well-formed SVG: %v", err)
	}
	for _, want := range []string{Agency, Oracle, "In-order jam"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the plot lacks %q", want)
		}
	}
}
