package cli

import (
	"fmt"
	"sort"

	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/backfill"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/spy/oms"
)

// runBackfill rebuilds a range of runs' history from the sources (internal/backfill). SIGINT and
// SIGTERM end the command's context: the backfill saves its checkpoint and a rerun resumes there.
func runBackfill(e *env, args []string) error {
	fs := e.flags("backfill", "backfill --config FILE (--from RUN --to RUN | --since DATE --until DATE) [--rate N] [--force] [--store DSN]")
	file := fs.String("config", "", "configuration file, as the server's (required)")
	from := fs.Uint("from", 0, "first run of the range")
	to := fs.Uint("to", 0, "last run of the range")
	since := fs.String("since", "", "the runs started from this date or RFC 3339 time (UTC), per OMS")
	until := fs.String("until", "", "... up to this date (the whole day) or RFC 3339 time (included)")
	rate := fs.Float64("rate", backfill.DefaultRate, "requests per second towards each source")
	force := fs.Bool("force", false, "redo a range that a backfill completed already")
	dsn := fs.String("store", "", "store DSN (sqlite:PATH or postgres://...), overriding store.dsn")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return e.usageError(fs, "--config is required")
	}
	byRuns, byDates := *from != 0 || *to != 0, *since != "" || *until != ""
	var window oms.StartWindow
	switch {
	case byRuns && byDates:
		return e.usageError(fs, "give a run range (--from, --to) or a date range (--since, --until), not both")
	case byDates:
		w, err := backfill.ParseWindow(*since, *until)
		if err != nil {
			return e.usageError(fs, "%v", err)
		}
		window = w
	case !byRuns:
		return e.usageError(fs, "give a run range (--from RUN --to RUN) or a date range (--since DATE --until DATE)")
	case *from > 0xffffffff || *to > 0xffffffff:
		return e.usageError(fs, "run numbers are at most 4294967295")
	default:
		if err := backfill.Validate(uint32(*from), uint32(*to)); err != nil {
			return e.usageError(fs, "%v", err)
		}
	}
	if *rate <= 0 {
		return e.usageError(fs, "--rate %g is not a positive number of requests per second", *rate)
	}
	log, err := logger(e.stderr, *level)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	if *dsn != "" {
		cfg.Store.DSN = *dsn
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	first, last := uint32(*from), uint32(*to)
	if byDates {
		// The dates become the runs OMS says started then; the rest is a run range's backfill, with
		// that range's checkpoint.
		n, err := 0, error(nil)
		if first, last, n, err = backfill.Resolve(e.ctx, cfg, window, *rate, log); err != nil {
			return err
		}
		if first == 0 {
			fmt.Fprintf(e.stderr, "backfill: OMS has no run started in %s; nothing to backfill\n", window)
			return nil
		}
		count := ""
		if n >= 0 {
			count = fmt.Sprintf(" (%d runs per OMS)", n)
		}
		fmt.Fprintf(e.stderr, "backfill: runs started in %s: runs %d-%d%s\n", window, first, last, count)
	}
	var clk clock.Clock = clock.Real{}
	if c := cfg.Clock; c.Speed > 0 {
		clk = clock.NewScaledAt(c.Epoch, c.WallStart, c.Speed)
	}
	st, err := app.OpenStore(e.ctx, cfg, clk, log)
	if err != nil {
		return err
	}
	defer st.Close()
	sum, err := backfill.Run(e.ctx, backfill.Options{Config: cfg, Store: st, Clock: clk, From: first, To: last,
		Rate: *rate, Force: *force, Progress: e.stderr, Terminal: isTerminal(e.stderr), Logger: log})
	switch {
	case sum.AlreadyDone:
		fmt.Fprintf(e.stderr, "backfill: runs %d-%d were backfilled already; --force redoes them\n", first, last)
	default:
		failed := make([]string, 0, len(sum.Failed))
		for src := range sum.Failed {
			failed = append(failed, string(src))
		}
		sort.Strings(failed)
		resumed := ""
		if sum.Resumed {
			resumed = " (resumed)"
		}
		fmt.Fprintf(e.stderr, "backfill: runs %d-%d%s: %d observations read, %d runs reconciled, %d decisions changed, sources failed: %v\n",
			first, last, resumed, sum.Observations, sum.Reconciled, sum.Changed, failedOrNone(failed))
	}
	return err
}

func failedOrNone(s []string) any {
	if len(s) == 0 {
		return "none"
	}
	return s
}
