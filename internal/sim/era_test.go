package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/spy/oms"
)

// A world that runs over New Year names the new year's runs as CMS does: OMS `era` and Tier-0's
// acq_era Run2027A, the ALCAPROMPT datasets with 2027, and the fills begun in 2027 that year's HLT keys.
func TestEraFollowsTheCalendarYear(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 31, 6, 0, 0, 0, time.UTC)
	end := start.Add(48 * time.Hour)
	s, err := New(Config{Seed: 3, Dir: t.TempDir(), Clock: clock.NewFake(end), Start: start})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceTo(end); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	years, keys := map[int]int{}, map[int]int{}
	for _, r := range s.Runs() {
		year := r.Start.UTC().Year()
		years[year]++
		want := fmt.Sprintf("Run%dA", year)
		code, _, body := get(t, fmt.Sprintf("%s/agg/api/v1/runs?filter[run_number][EQ]=%d", srv.URL, r.Number))
		if code != http.StatusOK {
			t.Fatalf("OMS run %d: %d %s", r.Number, code, body)
		}
		p, err := oms.DecodeRuns(body)
		if err != nil || len(p.Runs) != 1 {
			t.Fatalf("OMS run %d: %v, %d runs", r.Number, err, len(p.Runs))
		}
		info := p.Runs[0].Info
		if info.Era != want {
			t.Errorf("run %d started %s: era %q, want %s", r.Number, r.Start, info.Era, want)
		}
		// A fill's menus are those of the year it began in: a turnaround's cosmics after midnight keep them.
		if strings.Contains(info.HLTKey, fmt.Sprint(year)) {
			keys[year]++
		} else if !strings.Contains(info.HLTKey, fmt.Sprint(year-1)) {
			t.Errorf("run %d started %s: hlt_key %q of neither year", r.Number, r.Start, info.HLTKey)
		}
		code, _, body = get(t, fmt.Sprintf("%s/t0wmadatasvc/prod/run_config?run=%d", srv.URL, r.Number))
		var cfg struct {
			Result []struct {
				AcqEra string `json:"acq_era"`
			} `json:"result"`
		}
		if err := json.Unmarshal(body, &cfg); code != http.StatusOK || err != nil || len(cfg.Result) != 1 || cfg.Result[0].AcqEra != want {
			t.Errorf("run %d: run_config %d %s, want acq_era %s", r.Number, code, body, want)
		}
		for _, w := range r.Workflows {
			if ds := s.dqmDataset(r.Start, w); !strings.Contains(ds, "/Run"+fmt.Sprint(year)+"A-") {
				t.Errorf("run %d: ALCAPROMPT dataset %s, want era %s", r.Number, ds, want)
			}
		}
	}
	if years[2026] == 0 || years[2027] == 0 || keys[2027] == 0 {
		t.Fatalf("runs by year %v, with that year's HLT key %v: the world should span New Year", years, keys)
	}
}
