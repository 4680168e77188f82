package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// TestOverrideOfAReleasedRun: hold and release of a run Tier-0 already released answer 409 with the
// agency's reason, and audit nothing.
func TestOverrideOfAReleasedRun(t *testing.T) {
	t.Parallel()
	hs, ag := newServer(t, operatorFunc(func(*http.Request) (string, error) { return "shifter", nil }))
	ctx := t.Context()
	if err := ag.Ingest(ctx, pcl.SourceTier0, []pcl.Observation{{Source: pcl.SourceTier0, Kind: pcl.KindRelease, Run: 392680,
		At: t0.Add(30 * time.Minute), Dataset: "ZeroBias"}}); err != nil {
		t.Fatal(err)
	}
	if err := ag.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"hold", "release"} {
		code, out := post(t, hs.URL+"/api/v1/runs/392680/override", `{"action":"`+action+`","reason":"pixel alignment looks odd"}`)
		if msg, _ := out["error"].(string); code != http.StatusConflict || !strings.Contains(msg, "released by Tier-0 at") {
			t.Errorf("%s of a released run: %d %v, want 409 saying it was released", action, code, out)
		}
	}
	var audit struct{ Entries []map[string]any }
	get(t, hs.URL+"/api/v1/audit?actor=shifter", &audit)
	if len(audit.Entries) != 0 {
		t.Errorf("refused overrides were audited: %+v", audit.Entries)
	}
}
