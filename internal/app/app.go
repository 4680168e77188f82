// Package app wires one Spy Agency process from its configuration: the store, the spies and their
// runners, the agency loop and the web server. cmd/spyagency only parses flags and calls it, so tests
// can run a whole instance, learn the port it bound and stop it without signals.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/agency"
	"github.com/cms-pcl/spyagency/internal/alert"
	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/spy/runner"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
	"github.com/cms-pcl/spyagency/internal/web"
)

// Options are what a process adds to its configuration.
type Options struct {
	Config  *config.Config
	Clock   clock.Clock // default the wall clock
	Logger  *slog.Logger
	Version string
	// Operator decides who may act on runs over HTTP; nil means API tokens with the operate scope, and
	// also any loopback client when OpenLoopback (the demo) is set.
	Operator     func(*http.Request) (string, error)
	OpenLoopback bool
	// Stepped is for driving the agency in simulated time from a test or the study: spies do not retry
	// within a poll (a retry would wait on a clock nobody moves), and Step replaces Run's loops.
	Stepped bool
	Banner  string
}

// App is one running Spy Agency.
type App struct {
	o       Options
	log     *slog.Logger
	Store   store.Store
	Agency  *agency.Agency
	Web     *web.Server
	Alerts  *alert.Evaluator
	Handler http.Handler // everything served: the web, and Tier-0's pull API under /t0/
	runners []*runner.Runner
	pushers []*steer.Pusher
	closers []func() error

	mu   sync.Mutex
	addr net.Addr
	up   chan struct{}

	nextResync time.Time // Step's resync schedule; zero before the first step
}

// New opens the store and builds every part; nothing runs until Run.
func New(ctx context.Context, o Options) (*App, error) {
	if o.Config == nil {
		o.Config = config.Default()
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
		if c := o.Config.Clock; c.Speed > 0 {
			o.Clock = clock.NewScaledAt(c.Epoch, c.WallStart, c.Speed)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	cat, err := cfg.Catalogue()
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, cfg, o.Clock, o.Logger)
	if err != nil {
		return nil, err
	}
	a := &App{o: o, log: o.Logger, Store: st, up: make(chan struct{})}
	ag, err := agency.New(ctx, agency.Options{Store: st, Catalogue: cat, Policy: cfg.Policy, Clock: o.Clock,
		Logger: o.Logger.With("part", "agency"), Sources: a.health, Targets: targetNames(cfg),
		Batch: cfg.Agency.ReconcileBatch, Resync: cfg.Agency.ResyncInterval, Lookback: cfg.Agency.Lookback})
	if err != nil {
		st.Close()
		return nil, err
	}
	a.Agency = ag
	if a.runners, err = buildRunners(cfg, cat, o.Clock, o.Logger, st, ag, o.Stepped); err != nil {
		st.Close()
		return nil, err
	}
	// Each source's view as persisted before the agency's first pass, so that a restart concludes what
	// the process concluded before it: no-payload verdicts and the readiness resting on them stand.
	for _, r := range a.runners {
		if err := r.Restore(ctx); err != nil {
			st.Close()
			return nil, err
		}
	}
	if a.pushers, a.closers, err = buildPushers(ctx, cfg, st, o.Clock, o.Logger.With("part", "steer")); err != nil {
		st.Close()
		return nil, err
	}
	if a.Alerts, err = buildAlerts(ctx, cfg, o, st, ag, a); err != nil {
		a.closeAll()
		return nil, err
	}
	if o.Operator == nil {
		o.Operator = access.Operator(st, time.Now, o.OpenLoopback) // token lifetimes are wall time, whatever the agency's clock
	}
	a.Web, err = web.New(web.Options{Store: st, Catalogue: cat, Clock: o.Clock, Logger: o.Logger.With("part", "web"),
		Overrider: ag, Operator: o.Operator, Sources: a.healthList, MaxBody: cfg.Server.MaxBodyBytes,
		Version: o.Version, Banner: o.Banner, Ready: a.ready, Events: ag.Subscribe, Links: web.Links(cfg.Links),
		Alerts: alertView{a.Alerts, cfg.Alerts}, AlertBook: alertView{a.Alerts, cfg.Alerts}, Silences: alertView{a.Alerts, cfg.Alerts},
		FirstUnready: func(ctx context.Context) (uint32, error) {
			states, err := steer.StoreSource{Store: st}.Snapshot(ctx, 0)
			if err != nil {
				return 0, err
			}
			return steer.FirstUnreadyRun(states, cfg.Policy), nil
		}})
	if err != nil {
		a.closeAll()
		return nil, err
	}
	readyRuns, firstUnready := steer.PullHandlersLog(steer.StoreSource{Store: st}, cfg.Policy, o.Logger.With("part", "pull"))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /t0/v1/ready_runs", readyRuns)
	mux.HandleFunc("GET /t0/v1/first_unready_run", firstUnready)
	mux.Handle("/", a.Web)
	a.Handler = closingHandler{mux, a.Web}
	return a, nil
}

// closingHandler serves everything and, on shutdown, ends the page's event streams, which would
// otherwise hold the graceful shutdown until its deadline.
type closingHandler struct {
	http.Handler
	web *web.Server
}

func (h closingHandler) Close() { h.web.Close() }

func (a *App) closeAll() {
	for _, c := range a.closers {
		_ = c()
	}
	_ = a.Store.Close()
}

// OpenStore opens the configured store: sqlite:PATH (the directory is made if missing).
func OpenStore(ctx context.Context, cfg *config.Config, clk clock.Clock, log *slog.Logger) (store.Store, error) {
	dsn, err := cfg.Store.ConnString(os.LookupEnv)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if dir := dirOf(path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("store: make data directory: %w", err)
			}
		}
		return sqlite.OpenDSN(ctx, dsn, sqlite.Options{Now: clk.Now, Logger: log.With("part", "store")})
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return nil, apperr.Errorf(apperr.Invalid, "store: the PostgreSQL store is not built yet; use sqlite:PATH")
	}
	return nil, apperr.Errorf(apperr.Invalid, "store: DSN %q is neither sqlite:PATH nor postgres://...", dsn)
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i]
	}
	return ""
}

func (a *App) health() map[pcl.Source]pcl.SourceHealth {
	out := map[pcl.Source]pcl.SourceHealth{}
	for _, r := range a.runners {
		h := r.Health()
		out[h.Name] = h
	}
	return out
}

// SourceHealth is every spy's health, in the order of the configuration (what GET /api/v1/sources
// shows).
func (a *App) SourceHealth() []pcl.SourceHealth { return a.healthList() }

func (a *App) healthList() []pcl.SourceHealth {
	out := make([]pcl.SourceHealth, 0, len(a.runners))
	for _, r := range a.runners {
		out = append(out, r.Health())
	}
	return out
}

func (a *App) ready(ctx context.Context) error {
	select {
	case <-a.up:
	default:
		return errors.New("starting")
	}
	_, _, err := a.Store.Setting(ctx, "ready-probe")
	return err
}

// Step polls every spy whose interval has passed, runs one reconcile pass and one evaluation of the
// alerts: the agency's work for one tick of simulated time, done synchronously. As in Run, every open
// run is reconciled on the first step and once per resync interval after it, and a source's view
// advancing reconciles the runs waiting for it in the same step. Spies that fail are counted in their
// health as in Run; Step fails only when the pass or the evaluation does.
func (a *App) Step(ctx context.Context) error {
	for _, r := range a.runners {
		_, _ = r.PollIfDue(ctx)
	}
	if now := a.o.Clock.Now(); !now.Before(a.nextResync) {
		a.nextResync = now.Add(a.o.Config.Agency.ResyncInterval)
		a.Agency.Resync()
	}
	if err := a.Agency.Pass(ctx); err != nil {
		return err
	}
	return a.Alerts.Evaluate(ctx)
}

// Addr is the address the web server bound, once Run has started it (nil before).
func (a *App) Addr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr
}

// Started is closed once the web server listens.
func (a *App) Started() <-chan struct{} { return a.up }

// Run serves on addr (the configured one if empty) and runs the spies and the agency loop until ctx
// ends; then it stops them, within the configured shutdown timeout, and closes the store.
func (a *App) Run(ctx context.Context, addr string) error {
	if addr == "" {
		addr = a.o.Config.Server.Addr
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2+len(a.runners))
	wg.Go(func() {
		if err := a.Agency.Run(ctx); err != nil {
			errc <- fmt.Errorf("agency: %w", err)
		}
	})
	wg.Go(func() {
		if err := a.Alerts.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("alert evaluation stopped", "err", err)
		}
	})
	// A changed decision (a run blocked, released) is looked at by the alerts at once, not at their next
	// interval.
	decisions, unsubscribeAlerts := a.Agency.Subscribe(64)
	defer unsubscribeAlerts()
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-decisions:
				if !ok {
					return
				}
				if e.DecisionChanged {
					a.Alerts.Wake()
				}
			}
		}
	})
	events, unsubscribe := a.Agency.Subscribe(64)
	defer unsubscribe()
	for _, p := range a.pushers {
		wg.Go(func() {
			if err := p.Run(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("pusher stopped", "err", err)
			}
		})
	}
	if len(a.pushers) > 0 {
		// A new decision is pushed at once rather than at the pushers' next idle tick.
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case e, ok := <-events:
					if !ok {
						return
					}
					if e.DecisionChanged {
						for _, p := range a.pushers {
							p.Wake()
						}
					}
				}
			}
		})
	}
	for _, r := range a.runners {
		wg.Go(func() {
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("spy stopped", "spy", r.Name(), "err", err)
			}
		})
	}
	grace := a.o.Config.Server.ShutdownTimeout
	if grace <= 0 {
		grace = 10 * time.Second
	}
	timeouts := web.Timeouts{Read: a.o.Config.Server.ReadTimeout, Write: a.o.Config.Server.WriteTimeout}
	err := web.ListenAndServe(ctx, addr, a.Handler, grace, timeouts, func(ad net.Addr) {
		a.mu.Lock()
		a.addr = ad
		a.mu.Unlock()
		close(a.up)
		a.log.Info("serving", "addr", ad.String())
	})
	cancel()
	wg.Wait()
	close(errc)
	errs := []error{err}
	for e := range errc {
		errs = append(errs, e)
	}
	for _, c := range a.closers {
		errs = append(errs, c())
	}
	if cerr := a.Store.Close(); cerr != nil {
		errs = append(errs, cerr)
	}
	return errors.Join(errs...)
}
