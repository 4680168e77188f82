package agency

import (
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// TestOverridesOfOneInstantKeepTheirOrder: hold, clear and hold again with the clock standing still.
// Each takes effect in the order it was made, is stored at the clock's time as it is (not moved to
// make an order), and has its audit entry.
func TestOverridesOfOneInstantKeepTheirOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	now := h.clk.Now()
	for _, step := range []struct {
		action pcl.OverrideAction
		reason string
		want   pcl.Readiness
	}{
		{pcl.OverrideHold, "pixel alignment looks odd", pcl.ReadinessHeld},
		{pcl.OverrideClear, "checked, fine", pcl.ReadinessWaiting},
		{pcl.OverrideHold, "looks odd after all", pcl.ReadinessHeld},
	} {
		rs, err := h.ag.Override(h.ctx, run, step.action, "", "calib-shifter", step.reason)
		if err != nil {
			t.Fatal(err)
		}
		if rs.Decision.State != step.want {
			t.Fatalf("after %s %q in the same instant: %s (%s), want %s", step.action, step.reason, rs.Decision.State, rs.Decision.Reason, step.want)
		}
	}
	stored, err := h.st.Observations(h.ctx, store.ObservationQuery{Runs: []uint32{run}, Kinds: []pcl.Kind{pcl.KindOverride}})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 3 {
		t.Fatalf("%d overrides stored, want 3", len(stored))
	}
	for _, o := range stored {
		if !o.At.Equal(now) {
			t.Errorf("%s %q stored at %s, want the clock's %s: overrides are ordered by the store, not by moving their time",
				o.Action, o.Reason, o.At.Format("15:04:05.000000"), now.Format("15:04:05.000000"))
		}
	}
	audit, err := h.st.Audit(h.ctx, store.AuditQuery{Run: run, Actor: "calib-shifter"})
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 3 {
		t.Errorf("%d audit entries for 3 overrides", len(audit))
	}
}

// TestOverrideRefusals: what an override cannot be is refused with the error kind the API maps, and
// leaves nothing in the store.
func TestOverrideRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	for _, tc := range []struct {
		name     string
		run      uint32
		action   pcl.OverrideAction
		workflow string
		reason   string
		code     apperr.Code
	}{
		{"unknown workflow", run, pcl.OverrideAccept, "NoSuchWorkflow", "fine", apperr.Invalid},
		{"accept without a workflow", run, pcl.OverrideAccept, "", "fine", apperr.Invalid},
		{"unknown run", 1, pcl.OverrideHold, "", "no such run", apperr.NotFound},
		{"no reason", run, pcl.OverrideHold, "", "  ", apperr.Invalid},
		{"unknown action", run, "pause", "", "why not", apperr.Invalid},
	} {
		_, err := h.ag.Override(h.ctx, tc.run, tc.action, tc.workflow, "calib-shifter", tc.reason)
		if got := apperr.CodeOf(err); err == nil || got != tc.code {
			t.Errorf("%s: error %v (%s), want %s", tc.name, err, got, tc.code)
		}
	}
	if obs, _ := h.st.Observations(h.ctx, store.ObservationQuery{Kinds: []pcl.Kind{pcl.KindOverride}}); len(obs) != 0 {
		t.Errorf("refused overrides stored: %+v", obs)
	}
	if audit, _ := h.st.Audit(h.ctx, store.AuditQuery{Actor: "calib-shifter"}); len(audit) != 0 {
		t.Errorf("refused overrides audited: %+v", audit)
	}
}

// TestOverrideRepeatedInOneInstant: the same hold twice in one instant is one hold (a double click);
// the first hold again after a clear of the same instant cannot be told apart from the first, so it
// is refused rather than silently lost behind the clear.
func TestOverrideRepeatedInOneInstant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	hold := func() error {
		_, err := h.ag.Override(h.ctx, run, pcl.OverrideHold, "", "calib-shifter", "pixel alignment looks odd")
		return err
	}
	if err := hold(); err != nil {
		t.Fatal(err)
	}
	if err := hold(); err != nil {
		t.Fatalf("the same hold again: %v", err)
	}
	if _, err := h.ag.Override(h.ctx, run, pcl.OverrideClear, "", "calib-shifter", "checked"); err != nil {
		t.Fatal(err)
	}
	if err := hold(); !apperr.Is(err, apperr.Conflict) {
		t.Fatalf("the first hold again after the clear: %v, want a conflict", err)
	}
	if s := h.state().Decision.State; s == pcl.ReadinessHeld {
		t.Errorf("the refused hold holds the run")
	}
}

// TestOverrideOfAReleasedRunIsRefused: once Tier-0 released a run, hold and release change nothing; they
// are refused with a conflict that says when, and leave no observation and no audit entry behind.
func TestOverrideOfAReleasedRunIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ingest(pcl.SourceOMS, stoppedRun())
	h.ingest(pcl.SourceTier0, config())
	h.clk.Advance(time.Hour)
	releasedAt := h.clk.Now()
	h.ingest(pcl.SourceTier0, release(releasedAt))
	before := h.state()
	if before.Decision.State != pcl.ReadinessReleased {
		t.Fatalf("after the release: %s", before.Decision.State)
	}
	audits, _ := h.st.Audit(h.ctx, store.AuditQuery{Run: run})
	for _, action := range []pcl.OverrideAction{pcl.OverrideHold, pcl.OverrideRelease} {
		_, err := h.ag.Override(h.ctx, run, action, "", "calib-shifter", "pixel alignment looks odd")
		if !apperr.Is(err, apperr.Conflict) || !strings.Contains(err.Error(), "released by Tier-0 at "+releasedAt.Format(time.RFC3339)) {
			t.Errorf("%s of a released run: %v, want a conflict saying when it was released", action, err)
		}
	}
	overrides, err := h.st.Observations(h.ctx, store.ObservationQuery{Runs: []uint32{run}, Kinds: []pcl.Kind{pcl.KindOverride}})
	if err != nil || len(overrides) != 0 {
		t.Errorf("refused overrides stored %d observations (err %v)", len(overrides), err)
	}
	if after, _ := h.st.Audit(h.ctx, store.AuditQuery{Run: run}); len(after) != len(audits) {
		t.Errorf("refused overrides wrote %d audit entries", len(after)-len(audits))
	}
	if d := h.state().Decision; d.Version != before.Decision.Version {
		t.Errorf("a refused override made decision v%d", d.Version)
	}
}
