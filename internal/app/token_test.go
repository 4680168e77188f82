package app

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// TestTokensLiveInWallTime: an API token's expiry is judged on the wall clock, as `token create` stamps
// it, not on the agency's clock: a simulated clock far ahead does not expire a fresh token, and one far
// behind does not revive an expired one.
func TestTokensLiveInWallTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		agency   time.Time // the agency's (simulated) clock
		made     time.Time // when the token was made, on the wall clock
		ttl      time.Duration
		wantCode int
	}{
		{"fresh token, agency clock a month ahead", time.Now().Add(30 * 24 * time.Hour), time.Now(), time.Hour, http.StatusOK},
		{"expired token, agency clock a year behind", time.Now().Add(-365 * 24 * time.Hour), time.Now().Add(-2 * time.Hour), time.Hour, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.Store.DSN = "sqlite:" + filepath.Join(t.TempDir(), "spy.db")
			a, err := New(t.Context(), Options{Config: cfg, Clock: clock.NewFake(tc.agency)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			stop := tc.agency.Add(-time.Hour)
			if err := a.Agency.Ingest(t.Context(), pcl.SourceOMS, []pcl.Observation{{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 392680, At: stop,
				RunInfo: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: stop}}}); err != nil {
				t.Fatal(err)
			}
			if err := a.Agency.Pass(t.Context()); err != nil {
				t.Fatal(err)
			}
			made := &access.Tokens{Store: a.Store, Now: func() time.Time { return tc.made }}
			tok, _, err := made.Create(t.Context(), "calib-shifter", access.ScopeOperate, tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(a.Handler)
			defer srv.Close()
			req, _ := http.NewRequest("POST", srv.URL+"/api/v1/runs/392680/override", strings.NewReader(`{"action": "hold", "reason": "pixel alignment looks odd"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Errorf("override with the token: HTTP %d, want %d", resp.StatusCode, tc.wantCode)
			}
		})
	}
}
