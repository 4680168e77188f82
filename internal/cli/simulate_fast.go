package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/agency"
	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/sim"
	"github.com/cms-pcl/spyagency/internal/spy/runner"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store"
)

// simulate --fast: N days of the simulated world in virtual time, with no serving and no sleeping, and
// the store a Spy Agency watching it would have written. The world writes its files (harvest area,
// condition DB) under DIR/cms as `simulate` does; the agency is the product's: its spies (their query
// code and decoders) read the simulator's services through an in-process transport and its files from
// disk, its Ingest stores what they saw, its passes reconcile and decide, Tier-0 (agency mode) follows
// its first_unready_run as the pull API computes it, and retention compacts released runs as serve's
// retention pass does. Time advances in coarse steps (--step); every step is one feeder cycle's
// question to the agency, one poll of every source and one reconcile pass.

// fastMarker is the file in DIR that records a fast build: a second build into DIR refuses, since the
// world lives in memory and cannot be extended from its files.
const fastMarker = "fast-build.json"

// fastOptions configure one fast build.
type fastOptions struct {
	Days      int
	Dir       string
	StoreDSN  string // "" : sqlite:DIR/spyagency.db
	Seed      uint64
	Faults    string
	Step      time.Duration
	Retention time.Duration // 0: off
	// Resync is how often every open run is reconciled although nothing woke it (default every third
	// step, or agency.resync_interval if longer).
	Resync   time.Duration
	BaseURL  string // where the printed configuration points the HTTP sources
	Logger   *slog.Logger
	Progress io.Writer
}

// fastRecord is the marker's content and what the build reports.
type fastRecord struct {
	Seed      uint64    `json:"seed"`
	Days      int       `json:"days"`
	Faults    string    `json:"faults"`
	Step      string    `json:"step"`
	Retention string    `json:"retention"`
	Store     string    `json:"store"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished,omitzero"`
	Complete  bool      `json:"complete"`

	Runs         int                   `json:"runs"`        // runs the world started
	StoredRuns   int                   `json:"stored_runs"` // run states in the store
	Decisions    int                   `json:"decisions"`   // decision versions stored
	Released     int                   `json:"released"`    // runs Tier-0 released
	ByAgency     int                   `json:"released_by_agency"`
	Compacted    int                   `json:"compacted"`     // runs whose raw observations retention compacted
	Observations int                   `json:"observations"`  // observations the spies returned
	HarvestFiles int                   `json:"harvest_files"` // files in the harvest area
	StoreBytes   int64                 `json:"store_bytes"`   // SQLite only: the database files
	WallSeconds  float64               `json:"wall_seconds"`
	ReadinessMix map[pcl.Readiness]int `json:"readiness"`
}

// checkFastDir refuses a directory that already holds a world or a store.
func checkFastDir(dir string) error {
	r, err := readRecord(dir)
	switch {
	case err == nil:
		state := "a complete"
		if !r.Complete {
			state = "an interrupted"
		}
		return fmt.Errorf("%s already holds %s fast build (seed %d, %d days, started %s, store %s): a world lives in memory and cannot be extended from its files, so --fast does not resume; use another --data, or remove %s to build again",
			dir, state, r.Seed, r.Days, r.Started.UTC().Format(time.RFC3339), r.Store, dir)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	for _, name := range []string{"cms", "spyagency.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%s already holds %s (a simulator or an agency used it): --fast builds a new world and would overwrite it; use another --data or remove it", dir, name)
		}
	}
	return nil
}

// readRecord reads a fast build's record in dir (an error wrapping fs.ErrNotExist when there is none).
func readRecord(dir string) (fastRecord, error) {
	var r fastRecord
	b, err := os.ReadFile(filepath.Join(dir, fastMarker))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return r, err
		}
		return r, fmt.Errorf("read %s: %w", filepath.Join(dir, fastMarker), err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s holds %s, which is not a fast build's record (%v); use another --data or remove it", dir, fastMarker, err)
	}
	return r, nil
}

// storeAgency answers the simulated Tier-0's question as the pull API's first_unready_run does: one
// snapshot of the open work, FirstUnreadyIn under the policy.
type storeAgency struct {
	st     store.Store
	policy pcl.Policy
}

func (a storeAgency) FirstUnreadyRun(ctx context.Context) (uint32, error) {
	v, err := steer.StoreSource{Store: a.st}.Snapshot(ctx, 0, 0)
	if err != nil {
		return 0, err
	}
	return steer.FirstUnreadyIn(v, a.policy), nil
}

// runnerHealths report the fast build's runners' health to its agency.
type runnerHealths []*runner.Runner

func (h runnerHealths) SourceHealth() []pcl.SourceHealth {
	out := make([]pcl.SourceHealth, 0, len(h))
	for _, r := range h {
		out = append(out, r.Health())
	}
	return out
}

// fastConfig is the serve configuration of the fast build: the simulator's sources and the store.
func fastConfig(s *sim.Sim, base, dsn string, retention time.Duration) (*config.Config, []byte, error) {
	ret := "off"
	if retention > 0 {
		ret = retention.String()
	}
	y := append(s.ServeConfig(base), fmt.Sprintf("store:\n  dsn: %q\n  retention: %s\n", dsn, ret)...)
	cfg, err := config.Parse("simulate --fast", y)
	return cfg, y, err
}

// buildFast builds the world and the store. It writes the marker first (incomplete) and last
// (complete), so an interrupted build is recognised.
func buildFast(ctx context.Context, o fastOptions) (rec fastRecord, cfgYAML []byte, err error) {
	if o.Days < 1 {
		return rec, nil, fmt.Errorf("bad --days %d: want at least 1", o.Days)
	}
	if o.Step < time.Minute || o.Step > 6*time.Hour {
		return rec, nil, fmt.Errorf("bad --step %s: want between 1m and 6h", o.Step)
	}
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return rec, nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return rec, nil, fmt.Errorf("data directory: %w", err)
	}
	if err := checkFastDir(dir); err != nil {
		return rec, nil, err
	}
	dsn := o.StoreDSN
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(dir, "spyagency.db")
	}
	wall := time.Now()
	start := sim.DefaultStart
	end := start.Add(time.Duration(o.Days) * 24 * time.Hour)
	rec = fastRecord{Seed: o.Seed, Days: o.Days, Faults: o.Faults, Step: o.Step.String(), Retention: "off",
		Store: redactDSN(dsn), From: start, To: end, Started: wall.UTC(), ReadinessMix: map[pcl.Readiness]int{}}
	if o.Retention > 0 {
		rec.Retention = o.Retention.String()
	}
	marker := func() error {
		b, _ := json.MarshalIndent(rec, "", "  ")
		return os.WriteFile(filepath.Join(dir, fastMarker), append(b, '\n'), 0o644)
	}
	if err := marker(); err != nil {
		return rec, nil, fmt.Errorf("write %s: %w", fastMarker, err)
	}
	// Until the first step, an error leaves DIR as it was: what was made here is removed (checkFastDir
	// saw none of it). Registered first, it runs after the world and the store are closed.
	stepping := false
	defer func() {
		if err == nil || stepping {
			return
		}
		_ = os.Remove(filepath.Join(dir, fastMarker))
		_ = os.RemoveAll(filepath.Join(dir, "cms"))
		if o.StoreDSN == "" {
			for _, suf := range []string{"", "-wal", "-shm"} {
				_ = os.Remove(filepath.Join(dir, "spyagency.db") + suf)
			}
		}
	}()

	clk := clock.NewFake(start)
	ag := &switchAgency{}
	s, err := sim.New(sim.Config{Seed: o.Seed, Dir: filepath.Join(dir, "cms"), Faults: o.Faults, Clock: clk,
		Tier0Mode: sim.Tier0Agency, Agency: ag, Logger: o.Logger.With("part", "sim")})
	if err != nil {
		return rec, nil, err
	}
	defer s.Close()
	cfg, cfgYAML, err := fastConfig(s, o.BaseURL, dsn, o.Retention)
	if err != nil {
		return rec, nil, fmt.Errorf("the fast build's configuration: %w", err)
	}
	st, err := app.OpenStore(ctx, cfg, clk, o.Logger)
	if err != nil {
		return rec, nil, err
	}
	defer st.Close()
	if got, err := st.RunStates(ctx, store.RunQuery{Limit: 1, Summary: true}); err != nil {
		return rec, nil, fmt.Errorf("read the store: %w", err)
	} else if len(got) > 0 {
		return rec, nil, fmt.Errorf("store %s already holds runs (run %d): --fast writes a new store; give an empty one", redactDSN(dsn), got[0].Run)
	}
	cat, err := cfg.Catalogue()
	if err != nil {
		return rec, nil, err
	}
	classes, err := config.NewClassifier(cfg.RunClasses)
	if err != nil {
		return rec, nil, err
	}
	var healths runnerHealths
	agy, err := agency.New(ctx, agency.Options{Store: st, Catalogue: cat, Policy: cfg.Policy, Clock: clk,
		Logger: o.Logger.With("part", "agency"), Sources: &healths, Batch: cfg.Agency.ReconcileBatch,
		Lookback: cfg.Agency.Lookback, Resync: cfg.Agency.ResyncInterval})
	if err != nil {
		return rec, nil, err
	}
	ag.set(storeAgency{st: st, policy: cfg.Policy})
	client := &http.Client{Transport: httpx.HandlerTransport(s.Handler())}
	var runners []*runner.Runner
	for _, src := range cfg.Sources.Enabled() {
		sc, _ := cfg.Sources.ByName(src)
		sp, err := app.NewSpy(src, sc, app.SpyParams{Catalogue: cat, Clock: clk, Logger: o.Logger, Hints: agy.Hints(),
			ClassOf: classes.ClassOf, Lookback: cfg.Agency.Lookback, HTTP: client})
		if err != nil {
			return rec, nil, fmt.Errorf("source %s: %w", src, err)
		}
		if c, ok := sp.(io.Closer); ok {
			defer c.Close()
		}
		sink := func(ctx context.Context, s pcl.Source, obs []pcl.Observation) error {
			rec.Observations += len(obs)
			return agy.Ingest(ctx, s, obs)
		}
		// Cursors in the store, as serve keeps them, so that a serve started on this store carries on.
		runners = append(runners, runner.New(sp, runner.Options{Clock: clk, Interval: sc.Interval, Timeout: sc.Timeout,
			StaleAfter: sc.StaleAfter, Retries: -1, Cursors: st, Sink: sink, Viewed: agy.SourceViewed,
			Logger: o.Logger.With("spy", string(src))}))
	}
	healths = runners
	if o.Resync <= 0 {
		// The resync is serve's safety net for a missed wake-up; in coarse steps, every third step.
		o.Resync = max(cfg.Agency.ResyncInterval, 3*o.Step)
	}

	nextResync, nextRetain, nextReport := start, start, start
	stepping = true
	for now := start; now.Before(end); {
		if err := ctx.Err(); err != nil {
			return rec, nil, fmt.Errorf("fast build interrupted at %s; remove %s to start again: %w", now.Format(time.DateTime), dir, err)
		}
		now = now.Add(o.Step)
		if now.After(end) {
			now = end
		}
		clk.Set(now)
		if err := s.AdvanceTo(now); err != nil {
			return rec, nil, fmt.Errorf("simulated world at %s: %w", now.Format(time.DateTime), err)
		}
		for _, r := range runners {
			_ = r.PollOnce(ctx) // a failed poll counts in the source's health, as in serve
		}
		if !now.Before(nextResync) {
			nextResync = now.Add(o.Resync)
			agy.Resync()
		}
		if err := agy.Pass(ctx); err != nil {
			return rec, nil, fmt.Errorf("reconcile pass at %s: %w", now.Format(time.DateTime), err)
		}
		if o.Retention > 0 && !now.Before(nextRetain) {
			nextRetain = now.Add(time.Hour) // serve's retention pass interval
			n, err := retainAll(ctx, st, now, o.Retention)
			rec.Compacted += n
			if err != nil {
				return rec, nil, err
			}
		}
		if !now.Before(nextReport) || !now.Before(end) {
			nextReport = now.Add(10 * 24 * time.Hour)
			fmt.Fprintf(o.Progress, "  day %3d of %d: %d runs, %d released, %d compacted (%.0f s)\n",
				int(now.Sub(start)/(24*time.Hour)), o.Days, len(s.Runs()), len(s.Releases()), rec.Compacted, time.Since(wall).Seconds())
		}
	}
	if err := tally(ctx, st, s, &rec, 500); err != nil {
		return rec, nil, err
	}
	rec.HarvestFiles = countFiles(s.HarvestDir())
	// Closed, a SQLite store has folded its write-ahead log into the database file.
	if err := st.Close(); err != nil {
		return rec, nil, fmt.Errorf("close the store: %w", err)
	}
	if p, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		for _, suf := range []string{"", "-wal"} {
			if fi, err := os.Stat(p + suf); err == nil {
				rec.StoreBytes += fi.Size()
			}
		}
	}
	rec.Finished = time.Now().UTC()
	rec.WallSeconds = time.Since(wall).Seconds()
	rec.Complete = true
	if err := marker(); err != nil {
		return rec, nil, fmt.Errorf("write %s: %w", fastMarker, err)
	}
	return rec, cfgYAML, nil
}

// retainAll compacts every run released before now-keep, as serve's retention pass does: a few runs a
// store call, until a call finds fewer than it may take.
func retainAll(ctx context.Context, st store.Store, now time.Time, keep time.Duration) (int, error) {
	const batch = 16
	total := 0
	for {
		got, err := st.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: now.Add(-keep), Now: now, Limit: batch})
		total += len(got)
		if err != nil {
			return total, fmt.Errorf("retention at %s: %w", now.Format(time.DateTime), err)
		}
		if len(got) < batch {
			return total, nil
		}
	}
}

// tally counts what the store holds and what Tier-0 did. The store lists runs newest first; pages of
// page runs go down by Before.
func tally(ctx context.Context, st store.Store, s *sim.Sim, rec *fastRecord, page int) error {
	rec.Runs = len(s.Runs())
	for _, r := range s.Releases() {
		rec.Released++
		if r.ByAgency {
			rec.ByAgency++
		}
	}
	var before uint32
	for {
		got, err := st.RunStates(ctx, store.RunQuery{Before: before, Limit: page, Summary: true})
		if err != nil {
			return fmt.Errorf("count the stored runs: %w", err)
		}
		for _, rs := range got {
			if before != 0 && rs.Run >= before {
				return fmt.Errorf("count the stored runs: run %d listed below %d", rs.Run, before)
			}
			rec.StoredRuns++
			rec.ReadinessMix[rs.Decision.State]++
			ds, err := st.Decisions(ctx, rs.Run)
			if err != nil {
				return fmt.Errorf("count the decisions of run %d: %w", rs.Run, err)
			}
			rec.Decisions += len(ds)
		}
		if len(got) < page {
			return nil
		}
		before = got[len(got)-1].Run
		for _, rs := range got {
			before = min(before, rs.Run)
		}
	}
}

func countFiles(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// redactDSN drops a password from a PostgreSQL DSN for printing.
func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if at := strings.IndexByte(dsn[i+3:], '@'); at >= 0 {
			if colon := strings.IndexByte(dsn[i+3:i+3+at], ':'); colon >= 0 {
				return dsn[:i+3+colon] + ":xxx" + dsn[i+3+at:]
			}
		}
	}
	return dsn
}

// switchAgency is the simulated Tier-0's agency: the store's answer while the build runs.
type switchAgency struct{ a sim.AgencyClient }

func (s *switchAgency) set(a sim.AgencyClient) { s.a = a }

func (s *switchAgency) FirstUnreadyRun(ctx context.Context) (uint32, error) {
	if s.a == nil {
		return 0, errors.New("no agency yet")
	}
	return s.a.FirstUnreadyRun(ctx)
}

// fastFlags are simulate's flags that --fast reads.
type fastFlags struct {
	days                   int
	data, store, retention string
	addr                   string
	step                   time.Duration
	printConfig            bool
}

// runSimulateFast is `simulate --fast`.
func runSimulateFast(e *env, f fastFlags, sf simFlags) error {
	if f.days < 1 {
		return fmt.Errorf("--fast needs --days N (N ≥ 1), got %d", f.days)
	}
	defer batchGC()()
	keep := time.Duration(0)
	if f.retention != "off" && f.retention != "0" {
		d, err := time.ParseDuration(f.retention)
		if err != nil || d < 0 || (d > 0 && d < config.MinRetention) {
			return fmt.Errorf("bad --retention %q: want off or a duration of at least %s", f.retention, config.MinRetention)
		}
		keep = d
	}
	log, err := logger(e.stderr, *sf.level)
	if err != nil {
		return err
	}
	dir := f.data
	if dir == "" {
		if dir, err = cacheDir("spyagency-sim"); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stderr, "spyagency simulate --fast: %d days of seed %d (faults %s) into %s, a step every %s of virtual time\n",
		f.days, *sf.seed, *sf.faults, dir, f.step)
	rec, y, err := buildFast(e.ctx, fastOptions{Days: f.days, Dir: dir, StoreDSN: f.store, Seed: *sf.seed, Faults: *sf.faults,
		Step: f.step, Retention: keep, BaseURL: "http://" + f.addr, Logger: log, Progress: e.stderr})
	if err != nil {
		return err
	}
	if f.printConfig {
		y = append(y, fmt.Sprintf("clock:\n  speed: 1\n  epoch: %s\n  wall_start: %s\n",
			rec.To.UTC().Format(time.RFC3339Nano), rec.Finished.Format(time.RFC3339Nano))...)
		if _, err := e.stdout.Write(y); err != nil {
			return err
		}
	}
	w := e.stderr
	fmt.Fprintf(w, "built %s to %s in %.0f s:\n", rec.From.Format(time.DateOnly), rec.To.Format(time.DateOnly), rec.WallSeconds)
	fmt.Fprintf(w, "  world      %s (harvest area %s: %d files; condition DB %s)\n", filepath.Join(dir, "cms"),
		filepath.Join(dir, "cms", "harvest"), rec.HarvestFiles, filepath.Join(dir, "cms", "conddb.db"))
	fmt.Fprintf(w, "  runs       %d started, %d stored, %d released by Tier-0 (%d on the agency's word)\n", rec.Runs, rec.StoredRuns, rec.Released, rec.ByAgency)
	fmt.Fprintf(w, "  store      %s: %d decisions, %d observations seen, %d runs compacted (retention %s)", rec.Store, rec.Decisions, rec.Observations, rec.Compacted, rec.Retention)
	if rec.StoreBytes > 0 && rec.StoredRuns > 0 {
		fmt.Fprintf(w, ", %d bytes (%d a run)", rec.StoreBytes, rec.StoreBytes/int64(rec.StoredRuns))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  states     %v\n", rec.ReadinessMix)
	fmt.Fprintf(w, "  record     %s\n", filepath.Join(dir, fastMarker))
	fmt.Fprintf(w, "Serve it with the configuration of --print-config (the store, the harvest area and condition DB on disk, the\n"+
		"HTTP sources at %s, a clock starting at the world's end): spyagency serve --config FILE.\n"+
		"The world's HTTP services are not served after --fast; the agency shows them unreachable until a simulator runs there.\n", f.addr)
	return nil
}
