package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStudyCommand runs the study on a short world with the policies that need no agency (the agency's
// own worlds are internal/study's test): the JSON has the contract's fields, the table its rows, the
// plot is written, and bad flags are usage errors.
func TestStudyCommand(t *testing.T) {
	t.Parallel()
	svg := filepath.Join(t.TempDir(), "study.svg")
	code, out, errs := run(t, "study", "--days", "2", "--seed", "2", "--policy", "fixed48h,oracle,oracle-unordered", "--json", "--svg", svg, "--log-level", "warn")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var doc struct {
		Policies []map[string]any `json:"policies"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("stdout is not the JSON: %v\n%s", err, out)
	}
	if len(doc.Policies) != 3 || doc.Policies[0]["policy"] != "fixed48h" || doc.Policies[1]["policy"] != "oracle" {
		t.Fatalf("policies: %v", doc.Policies)
	}
	for _, key := range []string{"median_release_latency_hours", "p90_release_latency_hours", "max_release_latency_hours", "safety_violations",
		"later_than_fixed", "released_by_timeout", "operator_actions", "jam_run_hours", "ratio_to_fixed48h", "ratio_to_oracle"} {
		if _, ok := doc.Policies[1][key]; !ok {
			t.Errorf("no %q in %v", key, doc.Policies[1])
		}
	}
	if m := doc.Policies[0]["median_release_latency_hours"].(float64); m < 47.4 || m > 47.6 {
		t.Errorf("fixed48h median %v h", m)
	}
	if b, err := os.ReadFile(svg); err != nil || !strings.HasPrefix(string(b), "<svg") {
		t.Errorf("the plot: %v %.40q", err, b)
	}
	code, out, _ = run(t, "study", "--days", "1", "--policy", "fixed48h,oracle-unordered", "--log-level", "warn")
	if code != 0 || !strings.Contains(out, "oracle-unordered") || !strings.Contains(out, "median") || strings.Contains(out, "{") {
		t.Errorf("the table: exit %d\n%s", code, out)
	}
	// --check fails naming the targets it cannot check without their policies (CI runs it on seed 1
	// with every policy, where it must pass).
	code, _, errs = run(t, "study", "--days", "1", "--policy", "fixed48h,oracle", "--log-level", "warn", "--check")
	if code != 1 || !strings.Contains(errs, "study targets missed") || !strings.Contains(errs, "policy agency was not run") ||
		!strings.Contains(errs, "policy agency+operator was not run") {
		t.Errorf("--check without the agency's policies: exit %d\n%s", code, errs)
	}
	for _, args := range [][]string{{"--days", "0"}, {"--faults", "awful"}, {"--policy", "magic"}, {"--policy", ","}, {"extra"}} {
		code, out, errs := run(t, append([]string{"study"}, args...)...)
		if code == 0 || out != "" || errs == "" {
			t.Errorf("study %v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}
