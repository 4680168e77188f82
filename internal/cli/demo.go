package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/cms-pcl/spyagency/internal/demo"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

func runDemo(e *env, args []string) error {
	fs := e.flags("demo", "demo [--addr 127.0.0.1:8080] [--data DIR] [--speed N] [--seed N] [--faults none|default|heavy] [--store DSN]")
	addr := fs.String("addr", "127.0.0.1:8080", "the dashboard's address")
	data := fs.String("data", "", "data directory (default: spyagency-demo in the user's cache directory)")
	dsn := fs.String("store", "", "store DSN: sqlite:PATH or postgres://... (default: a fresh sqlite store under --data)")
	sf := addSimFlags(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	speed, seed, faults := sf.speed, sf.seed, sf.faults
	log, err := logger(e.stderr, *sf.level)
	if err != nil {
		return err
	}
	d, err := demo.New(e.ctx, demo.Options{Addr: *addr, DataDir: *data, Speed: *speed, Seed: *seed, Faults: *faults,
		StoreDSN: *dsn, Logger: log})
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-d.App.Started():
		case <-e.ctx.Done():
			return
		}
		fmt.Fprintf(e.stderr, "spyagency demo: open http://%s in your browser.\n", d.App.Addr())
		fmt.Fprintf(e.stderr, "  A simulated CMS (seed %d, faults %s) runs at %g× real time from %s; its services are at %s.\n",
			*seed, *faults, *speed, d.Clock.Now().UTC().Format("2006-01-02 15:04"), d.SimURL)
		fmt.Fprintf(e.stderr, "  The agency watches it through its spies and the simulated Tier-0 releases runs when the agency says so.\n")
		fmt.Fprintf(e.stderr, "  Ctrl-C stops it. A status line follows every 10 s.\n")
		progress(e, d)
	}()
	return d.Run(e.ctx)
}

// progress prints what is happening, in simulated time.
func progress(e *env, d *demo.Demo) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		states, err := d.App.Store.RunStates(ctx, store.RunQuery{Limit: 1000})
		cancel()
		if err != nil {
			continue
		}
		count := map[pcl.Readiness]int{}
		for _, rs := range states {
			count[rs.Decision.State]++
		}
		fmt.Fprintf(e.stderr, "  %s  %d runs: %d ongoing, %d waiting, %d ready, %d released, %d timed out, %d held\n",
			d.Clock.Now().UTC().Format("Jan 2 15:04"), len(states), count[pcl.ReadinessOngoing], count[pcl.ReadinessWaiting],
			count[pcl.ReadinessReady], count[pcl.ReadinessReleased], count[pcl.ReadinessTimedOut], count[pcl.ReadinessHeld])
	}
}

// simFlags are the simulator's flags, shared by demo and simulate.
type simFlags struct {
	speed  *float64
	seed   *uint64
	faults *string
	level  *string
}

func addSimFlags(fs *flag.FlagSet) simFlags {
	return simFlags{
		speed:  fs.Float64("speed", 600, "simulated seconds per real second"),
		seed:   fs.Uint64("seed", 1, "the simulated world's seed"),
		faults: fs.String("faults", "default", "fault profile: none, default or heavy"),
		level:  fs.String("log-level", "warn", "debug, info, warn or error"),
	}
}

func (f simFlags) check() error {
	switch *f.faults {
	case "none", "default", "heavy":
	default:
		return fmt.Errorf("bad --faults %q: want none, default or heavy", *f.faults)
	}
	if *f.speed <= 0 || *f.speed > 100000 {
		return fmt.Errorf("bad --speed %g: want a number between 0 and 100000", *f.speed)
	}
	return nil
}
