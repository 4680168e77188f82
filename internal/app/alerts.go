package app

import (
	"context"
	"fmt"
	"sort"

	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/web"
)

// alertRules are the web's AlertSource: the firing alerts (one line of plain words each, details
// apart), derived from what is stored and from the spies' health, so they survive a restart and clear
// themselves when their cause is gone:
//   - push-undeliverable: a decision given up on (a dead letter) that no later version of the same run
//     has replaced at that target. Tier-0 may be acting on an older decision.
//   - source-stale: a spy whose source failed too often in a row; nothing is concluded from its silence.
//
// Rules over workflows (late, failed uploads, runs held too long), silences and notifiers are not built
// yet.
type alertRules struct {
	store   store.Store
	sources web.SourceHealth
}

// Firing lists the alerts firing now.
func (r alertRules) Firing(ctx context.Context) ([]web.Alert, error) {
	entries, err := r.store.Outbox(ctx, "", 5000)
	if err != nil {
		return nil, err
	}
	type key struct {
		target string
		run    uint32
	}
	delivered := map[key]int64{} // newest delivered version per target and run
	for _, e := range entries {
		if e.Delivered != nil && e.Version > delivered[key{e.Target, e.Run}] {
			delivered[key{e.Target, e.Run}] = e.Version
		}
	}
	var out []web.Alert
	for _, e := range entries {
		if !e.Dead || delivered[key{e.Target, e.Run}] > e.Version {
			continue
		}
		// A dead entry's NextAttempt is the moment it was given up.
		out = append(out, web.Alert{Name: "push-undeliverable", Severity: "critical", Run: e.Run, Since: e.NextAttempt,
			Summary: fmt.Sprintf("%s: decision v%d of run %d undeliverable", e.Target, e.Version, e.Run),
			Details: fmt.Sprintf("given up after %d attempt(s); Tier-0 may be acting on an older decision of the run. Last error: %s",
				e.Attempts, e.LastError)})
	}
	for _, h := range r.sources.SourceHealth() {
		if !h.Stale {
			continue
		}
		// Since the last good poll: the source has given nothing to trust from then on.
		al := web.Alert{Name: "source-stale", Severity: "warning", Since: h.LastSuccess,
			Summary: fmt.Sprintf("%s: no good answer for %d polls", h.Name, h.Failures),
			Details: fmt.Sprintf("nothing is concluded from what it would show until it answers again. Last error: %s", h.Error)}
		if h.LastSuccess.IsZero() {
			al.Summary = fmt.Sprintf("%s: no good answer in any of its %d polls", h.Name, h.Failures)
		}
		out = append(out, al)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Severity < out[j].Severity })
	return out, nil
}
