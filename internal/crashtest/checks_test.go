//go:build unix

package crashtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cms-pcl/spyagency/internal/demo"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store"
)

// checkDeliveries: every decision version the store holds reached the receiver with the payload the
// store holds; a key that came twice (a crash between the delivery and its mark: legal at least once)
// came with the same bytes; no key came that the store does not have; every request was signed.
func (h *harness) checkDeliveries(t *testing.T, after snapshot) {
	keys, bad, _ := h.hook.snapshot()
	for _, b := range bad {
		t.Errorf("the receiver got a request it had to refuse: %s", b)
	}
	outbox := map[string]store.OutboxEntry{}
	for _, e := range after.outbox {
		outbox[steer.IdempotencyKey(e.Run, e.Version)] = e
	}
	stored := map[string]bool{}
	lost := 0
	for _, run := range sortedRuns(after.decisions) {
		for _, d := range after.decisions[run] {
			key := steer.IdempotencyKey(run, d.Version)
			stored[key] = true
			got, ok := keys[key]
			if !ok {
				lost++
				e, queued := outbox[key]
				t.Errorf("LOST: run %d v%d (%s) never reached the receiver (outbox entry: %v, attempts %d, dead %v, last error %q)",
					run, d.Version, d.State, queued, e.Attempts, e.Dead, e.LastError)
				continue
			}
			for _, other := range got.differing {
				t.Errorf("DOUBLED: key %s came again with another payload:\nfirst: %s\nlater: %s", key, got.raw, other)
			}
			want, _ := json.Marshal(steer.NewWebhookBody(d))
			gotBody, _ := json.Marshal(got.body)
			if !bytes.Equal(want, gotBody) {
				t.Errorf("key %s: the receiver got\n  %s\nbut the store holds\n  %s", key, gotBody, want)
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		if !stored[key] {
			t.Errorf("the receiver got key %s, which is no decision version in the store: %s", key, keys[key].raw)
		}
	}
	if after.versions() == 0 {
		t.Error("the store holds no decision at all: the suite exercised nothing")
	}
	if lost == 0 {
		t.Logf("%d decision versions, each delivered", after.versions())
	}
}

// checkRestarts: on a frozen world, restarts alone changed no decision, wrote no outbox entry, and
// rewrote no stored version. A run that was already due by time when the baseline stopped (its NextWake
// passed in the few milliseconds between the agency's last tick and the stop) may change at the first
// restart for a reason that is not the restart: such runs are listed, not counted.
func (h *harness) checkRestarts(t *testing.T, baseline, after snapshot, fr frozenRun) {
	var lines, dueLines []string
	changed, withdrawn, due := map[uint32]bool{}, 0, map[uint32]bool{}
	transitions := map[string]int{}
	for _, run := range sortedRuns(after.decisions) {
		old, now := baseline.decisions[run], after.decisions[run]
		for i, d := range old {
			if i >= len(now) || !sameDecision(d, now[i]) {
				t.Errorf("run %d: stored version %d changed or vanished across restarts", run, d.Version)
			}
		}
		prev := pcl.Decision{State: "(none)"}
		if len(old) > 0 {
			prev = old[len(old)-1]
		}
		wake := baseline.states[run].NextWake
		isDue := !wake.IsZero() && !wake.After(fr.until)
		for _, d := range now[min(len(old), len(now)):] {
			tr := fmt.Sprintf("%s → %s", describe(prev), describe(d))
			line := fmt.Sprintf("  run %d v%d: %s: %s", run, d.Version, tr, d.Reason)
			withdraws := prev.Releasable && !d.Releasable
			prev = d
			if isDue {
				due[run] = true
				dueLines = append(dueLines, line+fmt.Sprintf(" (due by time: its wake-up %s had come)", wake.UTC().Format("15:04:05.000")))
				continue
			}
			changed[run] = true
			if withdraws {
				withdrawn++
			}
			transitions[tr]++
			lines = append(lines, line)
		}
	}
	newOutbox := 0
	known := map[int64]bool{}
	for _, e := range baseline.outbox {
		known[e.ID] = true
	}
	for _, e := range after.outbox {
		if !known[e.ID] && !due[e.Run] {
			newOutbox++
		}
	}
	if len(dueLines) > 0 {
		t.Logf("not counted, due by time when the baseline stopped:\n%s", strings.Join(dueLines, "\n"))
	}
	if len(lines) == 0 && newOutbox == 0 {
		t.Logf("%d restarts on the frozen world (%v): no new decision, no new outbox entry", len(fr.restarts), fr.restarts)
		return
	}
	var summary []string
	for _, tr := range slices.Sorted(maps.Keys(transitions)) {
		summary = append(summary, fmt.Sprintf("%d× %s", transitions[tr], tr))
	}
	// Everything counted here was caused by restarts: the simulator's clock stood still, and the
	// agency's moved by a few milliseconds from where the baseline stopped.
	t.Errorf("RESTART-CAUSED: %d restarts on a frozen world (%v; the agency's clock %s, at %s when the last stopped) made %d new decision versions "+
		"for %d runs (%d of them withdraw a releasable run) and %d new outbox entries.\nTransitions: %s\nEvery new version:\n%s",
		len(fr.restarts), fr.restarts, describeClock(fr.clock), fr.until.UTC().Format("15:04:05.000"), len(lines), len(changed), withdrawn,
		newOutbox, strings.Join(summary, "; "), strings.Join(lines, "\n"))
}

func describe(d pcl.Decision) string {
	if d.Releasable {
		return string(d.State) + " (releasable)"
	}
	return string(d.State)
}

// sameDecision compares two stored decisions as JSON: a stored version never changes.
func sameDecision(a, b pcl.Decision) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// auditVersion reads the version an agency decision's audit entry is about ("v3 ready: ...").
var auditVersion = regexp.MustCompile(`^v(\d+)\b`)

// checkAudit: every run's versions are 1, 2, 3, ... without a gap, and each has exactly one audit entry.
func checkAudit(t *testing.T, after snapshot) {
	for _, run := range sortedRuns(after.decisions) {
		ds := after.decisions[run]
		for i, d := range ds {
			if d.Version != int64(i+1) {
				t.Errorf("run %d: versions %v are not 1..%d", run, versionsOf(ds), len(ds))
				break
			}
		}
		audited := map[int64]int{}
		for _, e := range after.audit[run] {
			m := auditVersion.FindStringSubmatch(e.Detail)
			if m == nil {
				t.Errorf("run %d: a decision's audit entry does not say its version: %q", run, e.Detail)
				continue
			}
			v, _ := strconv.ParseInt(m[1], 10, 64)
			audited[v]++
		}
		for _, d := range ds {
			switch audited[d.Version] {
			case 1:
			case 0:
				t.Errorf("run %d v%d (%s) has no audit entry", run, d.Version, d.State)
			default:
				t.Errorf("run %d v%d (%s) has %d audit entries", run, d.Version, d.State, audited[d.Version])
			}
			delete(audited, d.Version)
		}
		for v := range audited {
			t.Errorf("run %d: an audit entry for v%d, which is not a stored version", run, v)
		}
	}
}

// checkReleases: no run was released by the simulated Tier-0 on the agency's word against the truth.
// Releases by the fixed delay (the agency was down, as it often is here) are Tier-0's own.
func (h *harness) checkReleases(t *testing.T) {
	n := 0
	for _, rel := range h.world.sim.Releases() {
		if !rel.ByAgency {
			continue
		}
		n++
		truth, ok := h.world.sim.Truth(rel.Run)
		if !ok {
			t.Errorf("run %d released but unknown to the simulator", rel.Run)
			continue
		}
		for _, v := range demo.CheckRelease(truth, rel, h.policy) {
			t.Error(v)
		}
	}
	t.Logf("%d releases on the agency's word checked against the simulator's truth", n)
}

func sortedRuns[V any](m map[uint32]V) []uint32 { return slices.Sorted(maps.Keys(m)) }

func versionsOf(ds []pcl.Decision) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.Version
	}
	return out
}
