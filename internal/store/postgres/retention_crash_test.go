//go:build unix

package postgres

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/pgtest"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/storetest"
)

const (
	crashRuns    = 30
	crashPerRun  = 120
	crashBlocked = 12 // the run (by index) whose compaction the child is killed in
)

var crashReleased = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func crashRun(i int) uint32 { return uint32(500001 + i) }

// TestRetentionCrash: a child process compacting a PostgreSQL store is killed with SIGKILL in the middle
// of a run's compaction transaction (its summary written, its observations being deleted: the test
// holds a lock on one of them, and kills the child once the server says the child waits for it). After
// that every run is compacted whole or untouched, the run being compacted is untouched, decisions,
// audit and states (milestones included) are as before, and a later pass compacts the rest with
// summaries that count every observation once.
func TestRetentionCrash(t *testing.T) {
	if dsn := os.Getenv("SPYAGENCY_PG_RETENTION_CHILD"); dsn != "" {
		pgCrashChild(dsn)
		return
	}
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[uint32]int{}
	for i := range crashRuns {
		run := crashRun(i)
		obs := benchObservations(crashPerRun, i*crashPerRun)
		for j := range obs {
			obs[j].Run = run
		}
		added, err := s.AppendObservations(ctx, obs)
		if err != nil {
			t.Fatal(err)
		}
		want[run] = len(added)
		// Each run stops an hour after the previous: the child compacts them in index order.
		stop := crashReleased.Add(-time.Duration(crashRuns-i) * time.Hour)
		ms := pcl.Milestones{Stop: stop, ExpressDone: stop.Add(40 * time.Minute), Harvested: stop.Add(2 * time.Hour),
			UploadSent: stop.Add(2*time.Hour + time.Minute), Uploaded: stop.Add(2*time.Hour + 3*time.Minute), InDB: stop.Add(3 * time.Hour)}
		ms.Observed.Add(pcl.MilestoneExpressDone)
		d := pcl.Decision{Run: run, Version: 1, State: pcl.ReadinessReleased, Releasable: true, Decided: crashReleased}
		if _, err := s.SaveDecision(ctx, store.DecisionWrite{Decision: d,
			State: pcl.RunState{Run: run, Info: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop}, Class: "Collisions25",
				Workflows: []pcl.WorkflowStatus{{Name: "SiStripGains", State: pcl.StateInDB, Quality: pcl.QualityGood, Required: true,
					Milestones: ms, Evidence: []int64{added[0].Seq}}}},
			Audit: []store.AuditEntry{{At: crashReleased, Run: run, Actor: "agency", Action: "decision", Detail: "released: every workflow in the DB"}}}); err != nil {
			t.Fatal(err)
		}
	}
	kept := func() map[uint32]string {
		out := map[uint32]string{}
		for i := range crashRuns {
			run := crashRun(i)
			rs, err := s.RunState(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			ds, err := s.Decisions(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			au, err := s.Audit(ctx, store.AuditQuery{Run: run})
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal([]any{rs, ds, au})
			if err != nil {
				t.Fatal(err)
			}
			out[run] = string(b)
		}
		return out
	}
	before := kept()

	// Hold a lock on one observation of the run the child is to be killed in: its DELETE waits there,
	// inside the transaction that already wrote the run's summary.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	blocker, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx)
	var me int32
	if err := blocker.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&me); err != nil {
		t.Fatal(err)
	}
	var one int
	if err := blocker.QueryRow(ctx, `SELECT 1 FROM observations WHERE run = $1 LIMIT 1 FOR SHARE`, int64(crashRun(crashBlocked))).Scan(&one); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run", "^TestRetentionCrash$")
	cmd.Env = append(os.Environ(), "SPYAGENCY_PG_RETENTION_CHILD="+dsn)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	sc := bufio.NewScanner(out)
	seen := 0
	for seen < crashBlocked && sc.Scan() {
		seen++
	}
	if seen < crashBlocked {
		t.Fatalf("the child compacted %d runs before it ended", seen)
	}
	// Wait (on the server's word, not a timer) until the child's transaction waits for the lock. The
	// question is asked on a connection of its own: inside the blocker's transaction the server would
	// answer from the statistics snapshot of its first question.
	watch, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var waiting int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))
			AND query LIKE 'DELETE FROM observations%'`, me).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			rows, _ := watch.Query(ctx, `SELECT pid, coalesce(state, ''), coalesce(wait_event_type, ''), left(query, 60), pg_blocking_pids(pid)::text FROM pg_stat_activity WHERE datname = current_database()`)
			for rows.Next() {
				var pid int32
				var st, we, q, bl string
				_ = rows.Scan(&pid, &st, &we, &q, &bl)
				t.Logf("backend %d %s %s %q blocked by %s", pid, st, we, q, bl)
			}
			rows.Close()
			t.Fatalf("the child never waited in its compaction's DELETE (this test's backend %d)", me)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill() // SIGKILL
	_ = cmd.Wait()
	killed = true
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	check := func(final bool) (compacted []uint32) {
		t.Helper()
		for i := range crashRuns {
			run := crashRun(i)
			obs, err := s.Observations(ctx, store.ObservationQuery{Runs: []uint32{run}})
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.Compaction(ctx, run)
			switch {
			case apperr.CodeOf(err) == apperr.NotFound:
				if final || len(obs) != want[run] {
					t.Errorf("run %d not compacted with %d of its %d observations (final pass %t)", run, len(obs), want[run], final)
				}
			case err != nil:
				t.Fatal(err)
			case len(obs) != 0 || c.Observations != want[run]:
				t.Errorf("run %d compacted with %d observations left and %d summarised, of %d", run, len(obs), c.Observations, want[run])
			default:
				compacted = append(compacted, run)
			}
		}
		return compacted
	}
	// The child's SIGKILL ends its session; the server rolls its transaction back (the next pass would
	// wait for that if it had not yet). The runs before the blocked one are compacted, the rest not.
	var first []uint32
	for i := range crashBlocked {
		first = append(first, crashRun(i))
	}
	if got := check(false); !slices.Equal(got, first) {
		t.Errorf("after the kill, compacted %v; want the %d runs before %d", got, crashBlocked, crashRun(crashBlocked))
	}
	// A restart's pass resumes and finishes.
	s.Close()
	if s, err = Open(ctx, dsn, Options{}); err != nil {
		t.Fatal(err)
	}
	for range crashRuns + 1 {
		got, err := s.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: crashReleased.Add(time.Hour), Now: crashReleased.Add(2 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
	}
	if got := check(true); len(got) != crashRuns {
		t.Errorf("after the resumed pass %d runs compacted, want %d", len(got), crashRuns)
	}
	after := kept()
	for run, b := range before {
		if after[run] != b {
			t.Errorf("run %d: state, decisions or audit changed by compaction:\nbefore %s\nafter  %s", run, b, after[run])
		}
	}
}

// pgCrashChild compacts one run a call, printing a line after each, until it is killed.
func pgCrashChild(dsn string) {
	ctx := context.Background()
	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	storetest.CompactUntilKilled(ctx, s, crashReleased)
}
