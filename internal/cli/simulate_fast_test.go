package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/sim"
	"github.com/cms-pcl/spyagency/internal/store"
)

// TestSimulateFast: --fast builds days of the world and the agency's store in virtual time; the store
// holds the world's runs with states and decisions the agency took, the runs Tier-0 released are
// released in it, the printed configuration serves it, and a second build into the same directory
// refuses.
func TestSimulateFast(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, out, errs := run(t, "simulate", "--fast", "--days", "2", "--data", dir, "--seed", "3", "--faults", "none",
		"--addr", "127.0.0.1:1", "--print-config")
	if code != 0 {
		t.Fatalf("simulate --fast: exit %d: %s", code, errs)
	}
	for _, want := range []string{"built 2026-05-04 to 2026-05-06", "runs ", "decisions", filepath.Join(dir, "spyagency.db"), "--print-config"} {
		if !strings.Contains(errs, want) {
			t.Errorf("the report does not say %q:\n%s", want, errs)
		}
	}
	var rec fastRecord
	b, err := os.ReadFile(filepath.Join(dir, fastMarker))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil || !rec.Complete {
		t.Fatalf("record: %v %+v", err, rec)
	}
	if rec.Runs < 10 || rec.StoredRuns != rec.Runs || rec.Released == 0 || rec.ByAgency != rec.Released || rec.HarvestFiles == 0 {
		t.Errorf("record %+v: want the world's runs (two days: at least 10) all stored, some released by the agency's word, harvest files", rec)
	}

	cfg, err := config.Parse("fast.yaml", []byte(out))
	if err != nil {
		t.Fatalf("the printed configuration does not parse: %v\n%s", err, out)
	}
	if cfg.Store.DSN != "sqlite:"+filepath.Join(dir, "spyagency.db") || cfg.Sources.Harvest.Dir != filepath.Join(dir, "cms", "harvest") {
		t.Errorf("configuration: store %q, harvest %q", cfg.Store.DSN, cfg.Sources.Harvest.Dir)
	}
	if end := sim.DefaultStart.Add(48 * time.Hour); !cfg.Clock.Epoch.Equal(end) || cfg.Clock.Speed != 1 {
		t.Errorf("clock %+v: want speed 1 from the world's end %s", cfg.Clock, end)
	}

	// The store: every run of the world, each with its decisions; the released ones as Tier-0 says.
	ctx := t.Context()
	st, err := app.OpenStore(ctx, cfg, cfgClock(cfg), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	states, err := st.RunStates(ctx, store.RunQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != rec.StoredRuns {
		t.Errorf("%d run states, the record says %d", len(states), rec.StoredRuns)
	}
	released := 0
	for _, rs := range states {
		if rs.Run < sim.DefaultParams().FirstRun || rs.Class == "" {
			t.Errorf("run %d class %q: not a classified run of the world", rs.Run, rs.Class)
		}
		ds, err := st.Decisions(ctx, rs.Run)
		if err != nil || len(ds) == 0 || ds[len(ds)-1].Version != rs.Decision.Version {
			t.Errorf("run %d: decisions %v %v, state's version %d", rs.Run, err, len(ds), rs.Decision.Version)
		}
		if rs.Decision.State == pcl.ReadinessReleased {
			released++
		}
		obs, err := st.Observations(ctx, store.ObservationQuery{Runs: []uint32{rs.Run}})
		if err != nil || len(obs) == 0 {
			t.Errorf("run %d: %d observations (%v)", rs.Run, len(obs), err)
		}
	}
	// Tier-0's last releases may have come after the last poll of Tier-0 within the final step.
	if released == 0 || released > rec.Released {
		t.Errorf("%d runs released in the store, Tier-0 released %d", released, rec.Released)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// serve on it, with the printed configuration: ready, and it shows the runs.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := app.New(sctx, app.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Run(sctx, "127.0.0.1:0") }()
	<-a.Started()
	resp, err := http.Get("http://" + a.Addr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz of serve on the fast store: %d", resp.StatusCode)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}

	// Again into the same directory: refused, and the world and store are left as they were.
	before, _ := os.Stat(filepath.Join(dir, "spyagency.db"))
	code, _, errs = run(t, "simulate", "--fast", "--days", "1", "--data", dir)
	if code == 0 || !strings.Contains(errs, "already holds a complete fast build (seed 3, 2 days") || !strings.Contains(errs, "does not resume") {
		t.Errorf("second build into the same directory: exit %d: %s", code, errs)
	}
	// A new directory, but a store that holds runs already: refused too.
	other := t.TempDir()
	code, _, errs = run(t, "simulate", "--fast", "--days", "1", "--data", other, "--store", cfg.Store.DSN)
	if code == 0 || !strings.Contains(errs, "already holds runs") {
		t.Errorf("a store with runs: exit %d: %s", code, errs)
	}
	if left, _ := os.ReadDir(other); len(left) != 0 {
		t.Errorf("the refused build left %d entries in its directory", len(left))
	}
	if after, _ := os.Stat(filepath.Join(dir, "spyagency.db")); after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		t.Error("the refused builds touched the store")
	}
}

// TestTallyPages: the record's counts do not depend on the store's page size (the store lists runs
// newest first).
func TestTallyPages(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	clk := clock.NewFake(sim.DefaultStart)
	s, err := sim.New(sim.Config{Seed: 1, Dir: filepath.Join(dir, "cms"), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg, _, err := fastConfig(s, "http://127.0.0.1:1", "sqlite:"+filepath.Join(dir, "spy.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := app.OpenStore(ctx, cfg, clk, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for run := uint32(400001); run <= 400011; run++ {
		rs := pcl.RunState{Run: run, Class: "Cosmics26", Decision: pcl.Decision{Run: run, State: pcl.ReadinessWaiting, Reason: "test", Version: 1}}
		if _, err := st.SaveDecision(ctx, store.DecisionWrite{Decision: rs.Decision, State: rs}); err != nil {
			t.Fatal(err)
		}
	}
	for _, page := range []int{1, 3, 11, 500} {
		rec := fastRecord{ReadinessMix: map[pcl.Readiness]int{}}
		if err := tally(ctx, st, s, &rec, page); err != nil {
			t.Fatal(err)
		}
		if rec.StoredRuns != 11 || rec.Decisions != 11 || rec.ReadinessMix[pcl.ReadinessWaiting] != 11 {
			t.Errorf("page %d: %d runs, %d decisions, %v; want 11 each", page, rec.StoredRuns, rec.Decisions, rec.ReadinessMix)
		}
	}
}

// cfgClock is the clock a serve of cfg runs on.
func cfgClock(cfg *config.Config) clock.Clock {
	return clock.NewScaledAt(cfg.Clock.Epoch, cfg.Clock.WallStart, cfg.Clock.Speed)
}

// TestSimulateFastRefuses: bad flags and directories that hold something else are refused before
// anything is written.
func TestSimulateFastRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--fast"}, "--fast needs --days"},
		{[]string{"--fast", "--days", "-3"}, "--fast needs --days"},
		{[]string{"--days", "3"}, "need --fast"},
		{[]string{"--store", "sqlite:x.db"}, "need --fast"},
		{[]string{"--fast", "--days", "1", "--step", "5s"}, "bad --step"},
		{[]string{"--fast", "--days", "1", "--retention", "1h"}, "bad --retention"},
		{[]string{"--fast", "--days", "1", "--retention", "soon"}, "bad --retention"},
		{[]string{"--fast", "--days", "1", "--faults", "lots"}, "bad --faults"},
		{[]string{"--fast", "--days", "1", "--store", "mysql://x"}, `unknown DSN scheme "mysql"`},
	} {
		dir := t.TempDir()
		code, _, errs := run(t, append([]string{"simulate", "--data", dir}, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, want an error saying %q: %s", c.args, code, c.want, errs)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("%v: the refused build left %d entries in its directory (%s...)", c.args, len(left), left[0].Name())
		}
	}
	// A directory a `simulate` served from, or an interrupted build.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "cms"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, "simulate", "--fast", "--days", "1", "--data", dir); code == 0 || !strings.Contains(errs, "would overwrite it") {
		t.Errorf("a directory holding cms/: exit %d: %s", code, errs)
	}
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, fastMarker), []byte(`{"seed": 9, "days": 40, "complete": false}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, "simulate", "--fast", "--days", "1", "--data", dir); code == 0 || !strings.Contains(errs, "an interrupted fast build (seed 9, 40 days") {
		t.Errorf("an interrupted build: exit %d: %s", code, errs)
	}
	if err := os.WriteFile(filepath.Join(dir, fastMarker), []byte(`garbage`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, "simulate", "--fast", "--days", "1", "--data", dir); code == 0 || !strings.Contains(errs, "not a fast build's record") {
		t.Errorf("a garbage record: exit %d: %s", code, errs)
	}
}
