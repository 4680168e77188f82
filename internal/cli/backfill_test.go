package cli

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/sim"
)

// TestBackfillFlags: a bad command line is a usage error (exit 2) that says what is wrong; a missing
// configuration file is an error naming it.
func TestBackfillFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", "5", "--to", "6"}, "--config is required"},
		{[]string{"--config", "x.yaml", "--from", "7", "--to", "6"}, "--from 7 is after --to 6"},
		{[]string{"--config", "x.yaml", "--to", "6"}, "needs --from and --to"},
		{[]string{"--config", "x.yaml", "--from", "1", "--to", "2", "--rate", "0"}, "--rate 0"},
		{[]string{"--config", "x.yaml", "--from", "1", "--to", "99999999999"}, "at most 4294967295"},
		{[]string{"--bogus"}, "flag provided but not defined"},
		{[]string{"--config", "x.yaml"}, "give a run range (--from RUN --to RUN) or a date range"},
		{[]string{"--config", "x.yaml", "--from", "1", "--to", "2", "--since", "2026-05-01", "--until", "2026-05-08"}, "not both"},
		{[]string{"--config", "x.yaml", "--since", "2026-05-01"}, "needs both --since and --until"},
		{[]string{"--config", "x.yaml", "--until", "2026-05-01"}, "needs both --since and --until"},
		{[]string{"--config", "x.yaml", "--since", "2026-05-09", "--until", "2026-05-08"}, "--since 2026-05-09 is after --until 2026-05-08"},
		{[]string{"--config", "x.yaml", "--since", "2026-05-08T12:00:00Z", "--until", "2026-05-08T11:00:00Z"}, "is after --until"},
		{[]string{"--config", "x.yaml", "--since", "May 1st", "--until", "2026-05-08"}, `--since "May 1st" is neither a date`},
		{[]string{"--config", "x.yaml", "--since", "2026-05-01", "--until", "2026-13-01"}, `--until "2026-13-01" is neither a date`},
	} {
		code, _, errs := run(t, append([]string{"backfill"}, c.args...)...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("backfill %v: exit %d, %q; want 2 and %q", c.args, code, errs, c.want)
		}
	}
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	code, _, errs := run(t, "backfill", "--config", missing, "--from", "1", "--to", "2")
	if code != 1 || !strings.Contains(errs, "nope.yaml") {
		t.Errorf("unknown config: exit %d, %q", code, errs)
	}
}

// TestBackfillCommand: backfill of a simulated world's runs exits 0 with its summary, a rerun says the
// range is done, and a source that fails makes it exit 1 naming that source.
func TestBackfillCommand(t *testing.T) {
	t.Parallel()
	s, end := simulatedFor(t, 3, 36*time.Hour)
	var failDQM atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if failDQM.Load() && strings.HasPrefix(req.URL.Path, "/dqm") {
			http.Error(rw, "down", http.StatusNotFound)
			return
		}
		s.Handler().ServeHTTP(rw, req)
	}))
	defer srv.Close()
	runs := s.Runs()
	from, to := runs[0].Number, runs[len(runs)-1].Number
	dir := t.TempDir()
	file := filepath.Join(dir, "backfill.yaml")
	// The agency's clock is the world's end: a scaled clock at 1× from then.
	cfg := string(s.ServeConfig(srv.URL)) + "store:\n  dsn: sqlite:" + filepath.Join(dir, "spy.db") +
		"\nclock:\n  speed: 1\n  epoch: " + end.Format(time.RFC3339) + "\n  wall_start: " + time.Now().UTC().Format(time.RFC3339Nano) + "\n"
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"backfill", "--config", file, "--from", itoa(from), "--to", itoa(to), "--rate", "1000"}
	code, _, errs := run(t, args...)
	if code != 0 || !strings.Contains(errs, "runs reconciled") || !strings.Contains(errs, "sources failed: none") {
		t.Fatalf("backfill: exit %d\n%s", code, errs)
	}
	if code, _, errs := run(t, args...); code != 0 || !strings.Contains(errs, "backfilled already") {
		t.Fatalf("rerun: exit %d\n%s", code, errs)
	}
	failDQM.Store(true)
	code, _, errs = run(t, append(args, "--force")...)
	if code != 1 || !strings.Contains(errs, "dqm (runs "+itoa(from)+"-"+itoa(to)+" not covered") {
		t.Fatalf("backfill with dqm failing: exit %d\n%s", code, errs)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// simulatedFor is a fault-free simulated world of seed, advanced for d from its start on a fake clock;
// it is closed with the test. end is the world's time then.
func simulatedFor(t *testing.T, seed uint64, d time.Duration) (s *sim.Sim, end time.Time) {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: seed, Dir: t.TempDir(), Faults: "none", Clock: clock.NewFake(sim.DefaultStart)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	end = sim.DefaultStart.Add(d)
	if err := s.AdvanceTo(end); err != nil {
		t.Fatal(err)
	}
	return s, end
}

// TestBackfillByDates: a date range is resolved by OMS (the simulator's, which filters on start_time as
// OMS does) to the runs started in it, printed, and backfilled as that run range, with that range's
// checkpoint: a --from/--to of the same runs finds it done. A range where no run started says so and
// exits 0.
func TestBackfillByDates(t *testing.T) {
	t.Parallel()
	start := sim.DefaultStart
	s, end := simulatedFor(t, 5, 48*time.Hour)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	// The second day of the world: 2026-05-05, from midnight to midnight.
	day := start.Truncate(24*time.Hour).AddDate(0, 0, 1)
	var first, last uint32
	n := 0
	for _, r := range s.Runs() {
		if st := r.Start.Truncate(time.Second); !st.Before(day) && st.Before(day.AddDate(0, 0, 1)) {
			if first == 0 {
				first = r.Number
			}
			last = r.Number
			n++
		}
	}
	if n == 0 {
		t.Fatal("no run started on the world's second day")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "backfill.yaml")
	cfg := string(s.ServeConfig(srv.URL)) + "store:\n  dsn: sqlite:" + filepath.Join(dir, "spy.db") +
		"\nclock:\n  speed: 1\n  epoch: " + end.Format(time.RFC3339) + "\n  wall_start: " + time.Now().UTC().Format(time.RFC3339Nano) + "\n"
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	date := day.Format("2006-01-02")
	code, _, errs := run(t, "backfill", "--config", file, "--since", date, "--until", date, "--rate", "1000")
	want := "runs started in [" + day.Format(time.RFC3339) + ", " + day.AddDate(0, 0, 1).Format(time.RFC3339) + "): runs " +
		itoa(first) + "-" + itoa(last) + " (" + strconv.Itoa(n) + " runs per OMS)"
	if code != 0 || !strings.Contains(errs, want) || !strings.Contains(errs, "backfill: runs "+itoa(first)+"-"+itoa(last)+": ") ||
		!strings.Contains(errs, "sources failed: none") {
		t.Fatalf("backfill by dates: exit %d\n%s\nwant %q", code, errs, want)
	}
	code, _, errs = run(t, "backfill", "--config", file, "--from", itoa(first), "--to", itoa(last), "--rate", "1000")
	if code != 0 || !strings.Contains(errs, "runs "+itoa(first)+"-"+itoa(last)+" were backfilled already") {
		t.Fatalf("the same runs by number: exit %d\n%s", code, errs)
	}
	// An RFC 3339 window before the world: no run, exit 0, and nothing stored.
	code, _, errs = run(t, "backfill", "--config", file, "--since", "2026-01-01T00:00:00Z", "--until", "2026-01-02T06:00:00+01:00")
	if code != 0 || !strings.Contains(errs, "OMS has no run started in [2026-01-01T00:00:00Z, 2026-01-02T05:00:00Z]; nothing to backfill") {
		t.Fatalf("empty date range: exit %d\n%s", code, errs)
	}
}
