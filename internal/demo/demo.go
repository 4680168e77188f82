// Package demo runs the whole calibration loop on one machine: the CMS simulator (package sim) serving
// every CMS system at its real paths, and a complete Spy Agency watching it only through its spies, with
// the simulator's Tier-0 stub releasing runs from the agency's pull API. `spyagency demo` and the
// end-to-end tests use it.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/sim"
)

// Options configure a demo. Zero values take the defaults of `spyagency demo`.
type Options struct {
	Addr     string  // the agency's web address (default 127.0.0.1:8080)
	DataDir  string  // default: spyagency-demo in the user's cache directory
	Speed    float64 // simulated seconds per real second (default 600)
	Seed     uint64  // default 1
	Faults   string  // none, default, heavy (default "default")
	StoreDSN string  // default: a fresh sqlite store under DataDir
	Clock    clock.Clock
	Logger   *slog.Logger
	// Stepped builds the demo for Step (tests, the study) instead of Run; Clock must then be a
	// *clock.Fake.
	Stepped bool
	// Tier0Backstop keeps Tier-0's own fixed delay OR-ed with the agency's answer, as
	// docs/tier0-integration.md asks Tier-0 to run it (sim.Config.Tier0Backstop). The study sets it.
	Tier0Backstop bool
	// HarvestMtimeSlack, when set, is the harvest spy's mtime_slack instead of the default 2 s, which
	// covers EOS and any file system with whole-second times. Only for a DataDir on a file system
	// whose times follow this machine's clock finely (the study's tmpfs): there a kernel tick is all
	// they can lag it by.
	HarvestMtimeSlack time.Duration
	// InProcess (a stepped demo only) has the spies reach the simulator's handler, and the simulated
	// Tier-0 the agency's, through an in-process transport (httpx.HandlerTransport) instead of loopback
	// TCP: the same handlers, requests and bytes, without sockets. ServeSim and SetAgencyURL are then
	// not needed.
	InProcess bool
}

// Demo is a simulator and an agency wired together.
type Demo struct {
	Sim    *sim.Sim
	App    *app.App
	Clock  clock.Clock
	SimURL string
	// Config is the agency's configuration (its policy is what the end-to-end test and the study check
	// releases against).
	Config *config.Config
	simLn  net.Listener
	o      Options
	client *sim.AgencyAt // the Tier-0 stub's view of the agency: its pull API, at the address it bound
	// wrapSim, when set before ServeSim, wraps the simulator's handler (a test's view of each request).
	wrapSim func(http.Handler) http.Handler
}

// New builds the simulator and the agency; nothing runs until Run.
func New(ctx context.Context, o Options) (*Demo, error) {
	if o.Addr == "" {
		o.Addr = config.DefaultAddr
	}
	if o.Speed <= 0 {
		o.Speed = 600
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Faults == "" {
		o.Faults = "default"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DataDir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		o.DataDir = filepath.Join(cache, "spyagency-demo")
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: data directory: %w", err)
	}
	if o.Clock == nil {
		o.Clock = clock.NewScaled(sim.DefaultStart, o.Speed)
	}
	if _, fake := o.Clock.(*clock.Fake); o.Stepped && !fake {
		return nil, errors.New("demo: a stepped demo needs a fake clock")
	}
	client := &sim.AgencyAt{}
	d := &Demo{o: o, Clock: o.Clock, client: client}
	s, err := sim.New(sim.Config{Seed: o.Seed, Dir: filepath.Join(o.DataDir, "cms"), Faults: o.Faults, Clock: o.Clock,
		Tier0Mode: sim.Tier0Agency, Agency: client, Tier0Backstop: o.Tier0Backstop, Logger: o.Logger.With("part", "sim")})
	if err != nil {
		return nil, err
	}
	d.Sim = s
	if d.simLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		s.Close()
		return nil, fmt.Errorf("demo: simulator listener: %w", err)
	}
	d.SimURL = "http://" + d.simLn.Addr().String()
	cfg, err := Config(s, d.SimURL, o)
	if err != nil {
		d.close()
		return nil, err
	}
	d.Config = cfg
	var sourcesHTTP *http.Client
	if o.InProcess {
		if !o.Stepped {
			d.close()
			return nil, errors.New("demo: an in-process demo must be stepped")
		}
		sourcesHTTP = &http.Client{Transport: httpx.HandlerTransport(s.Handler())}
	}
	a, err := app.New(ctx, app.Options{Config: cfg, Clock: o.Clock, Logger: o.Logger, OpenLoopback: true, Stepped: o.Stepped, SourcesHTTP: sourcesHTTP,
		Banner: "Demo: a simulated CMS at " + fmt.Sprint(o.Speed) + "× real time. Operator actions are open to anyone on this machine."})
	if err != nil {
		d.close()
		return nil, err
	}
	d.App = a
	if o.InProcess {
		client.SetClient(sim.AgencyClientVia(&http.Client{Transport: httpx.HandlerTransport(a.Handler)}))
		client.Set("http://agency.in-process")
	}
	if !o.Stepped {
		// The agency's address is known once it serves. A stepped demo is never served: its driver
		// serves the agency's handler itself and calls SetAgencyURL.
		go func() {
			select {
			case <-a.Started():
				client.Set("http://" + a.Addr().String())
			case <-ctx.Done():
			}
		}()
	}
	return d, nil
}

// Config is the agency's configuration for a simulator at simURL: its sources with their default
// intervals and deadlines. The intervals are simulated time; the deadlines are real time whatever the
// speed (the runner's wall clock), so they need no scaling.
func Config(s *sim.Sim, simURL string, o Options) (*config.Config, error) {
	cfg, err := config.Parse("simulator", s.ServeConfig(simURL))
	if err != nil {
		return nil, fmt.Errorf("demo: the simulator's configuration: %w", err)
	}
	cfg.Server.Addr = o.Addr
	cfg.DataDir = o.DataDir
	cfg.Store.DSN = o.StoreDSN
	if o.HarvestMtimeSlack > 0 {
		cfg.Sources.Harvest.MtimeSlack = o.HarvestMtimeSlack
	}
	if cfg.Store.DSN == "" {
		// A fresh world each time: the simulator starts again at its first day, so yesterday's
		// observations would be from the future.
		path := filepath.Join(o.DataDir, "spyagency-demo.db")
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("demo: remove the previous demo store: %w", err)
			}
		}
		cfg.Store.DSN = "sqlite:" + path
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// SetAgencyURL points the simulated Tier-0 at an agency serving App.Handler elsewhere (a stepped demo).
func (d *Demo) SetAgencyURL(base string) { d.client.Set(base) }

// ServeSim serves the simulator's services on their listener until ctx ends.
func (d *Demo) ServeSim(ctx context.Context) error {
	h := d.Sim.Handler()
	if d.wrapSim != nil {
		h = d.wrapSim(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(d.simLn) }()
	select {
	case err := <-errc:
		return fmt.Errorf("simulator server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// Step moves simulated time to t: the simulator's world first (its Tier-0 asks the agency), then every
// spy polls once and the agency reconciles. Only for a stepped demo.
func (d *Demo) Step(ctx context.Context, t time.Time) error {
	fake, ok := d.Clock.(*clock.Fake)
	if !ok || !d.o.Stepped {
		return errors.New("demo: Step needs a stepped demo")
	}
	fake.Set(t)
	if err := d.Sim.AdvanceTo(t); err != nil {
		return err
	}
	return d.App.Step(ctx)
}

// Close releases a stepped demo: its simulator and its App (Run closes both itself).
func (d *Demo) Close() error {
	d.close()
	return d.App.Close()
}

// Run serves the simulator and runs it and the agency until ctx ends.
func (d *Demo) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Go(func() {
		if err := d.ServeSim(ctx); err != nil {
			errc <- err
			cancel()
		}
	})
	wg.Go(func() {
		if err := d.Sim.Run(ctx); err != nil {
			errc <- fmt.Errorf("simulator: %w", err)
			cancel()
		}
	})
	err := d.App.Run(ctx, d.o.Addr)
	cancel()
	wg.Wait()
	close(errc)
	errs := []error{err}
	for e := range errc {
		errs = append(errs, e)
	}
	errs = append(errs, d.Sim.Close())
	return errors.Join(errs...)
}

func (d *Demo) close() {
	if d.simLn != nil {
		d.simLn.Close()
	}
	if d.Sim != nil {
		d.Sim.Close()
	}
}
