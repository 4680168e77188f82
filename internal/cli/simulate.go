package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/sim"
)

// runSimulate serves only the simulated CMS, for a separate `serve` to watch.
func runSimulate(e *env, args []string) error {
	fs := e.flags("simulate", "simulate [--addr 127.0.0.1:8081] [--data DIR] [--speed N] [--seed N] [--faults none|default|heavy] [--agency URL] [--print-config]\n       spyagency simulate --fast --days N [--data DIR] [--store DSN] [--seed N] [--faults ...] [--step 1h] [--retention 2160h|off] [--print-config]")
	addr := fs.String("addr", "127.0.0.1:8081", "where the simulated CMS services listen")
	data := fs.String("data", "", "data directory (default: spyagency-sim in the user's cache directory)")
	sf := addSimFlags(fs)
	agencyURL := fs.String("agency", "http://127.0.0.1:8080", "the agency whose pull API the simulated Tier-0 follows (unreachable: Tier-0's fixed 48 h delay)")
	printConfig := fs.Bool("print-config", false, "first write to stdout a serve configuration that points at these services")
	fast := fs.Bool("fast", false, "build --days of the world and the agency's store in virtual time, serving nothing, then exit")
	days := fs.Int("days", 0, "with --fast: how many simulated days to build")
	storeDSN := fs.String("store", "", "with --fast: the store to write (default sqlite:DIR/spyagency.db); it must hold no runs")
	step := fs.Duration("step", time.Hour, "with --fast: the virtual time between two polls of every source and reconcile passes")
	retention := fs.String("retention", config.DefaultRetention.String(), "with --fast: store.retention applied while building (\"off\" keeps every observation)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if *fast {
		return runSimulateFast(e, fastFlags{days: *days, data: *data, store: *storeDSN, step: *step, retention: *retention,
			addr: *addr, printConfig: *printConfig}, sf)
	}
	if *days != 0 || *storeDSN != "" {
		return errors.New("--days and --store build a store in virtual time: they need --fast")
	}
	speed, seed, faults := sf.speed, sf.seed, sf.faults
	log, err := logger(e.stderr, *sf.level)
	if err != nil {
		return err
	}
	dir := *data
	if dir == "" {
		if dir, err = cacheDir("spyagency-sim"); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	defer ln.Close()
	clk := clock.NewScaled(sim.DefaultStart, *speed)
	s, err := sim.New(sim.Config{Seed: *seed, Dir: filepath.Join(dir, "cms"), Faults: *faults, Clock: clk,
		Tier0Mode: sim.Tier0Agency, Agency: sim.HTTPAgency{BaseURL: *agencyURL}, Logger: log})
	if err != nil {
		return err
	}
	defer s.Close()
	base := "http://" + dialable(ln.Addr())
	if *printConfig {
		if _, err := e.stdout.Write(simConfig(s, base, clk)); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stderr, "spyagency simulate: the CMS services of seed %d (faults %s) are at %s, %g× real time from %s.\n",
		*seed, *faults, base, *speed, clk.Now().UTC().Format("2006-01-02 15:04"))
	fmt.Fprintf(e.stderr, "  Point serve at them with the configuration of --print-config; Tier-0 follows %s.\n", *agencyURL)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- s.Run(ctx) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// simConfig is the serve configuration of a simulator: its sources and its clock.
func simConfig(s *sim.Sim, base string, clk *clock.Scaled) []byte {
	out := s.ServeConfig(base)
	return append(out, fmt.Sprintf("clock:\n  speed: %g\n  epoch: %s\n  wall_start: %s\n",
		clk.Speed(), clk.Epoch().UTC().Format(time.RFC3339Nano), clk.WallStart().UTC().Format(time.RFC3339Nano))...)
}

// dialable is the address a serve on this machine reaches a listener at: a listener on every interface
// (0.0.0.0, ::) is reached on loopback, which is also what a serve with the simulator's clock accepts.
func dialable(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
}
