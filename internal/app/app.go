// Package app wires one Spy Agency process from its configuration: the store, the spies and their
// runners, the agency loop, the pushers and the web server. New builds every part and runs nothing;
// Start runs the spies, the loop, the pushers and the server; Close stops them and closes what New
// opened (the store, the push targets' connections, the spies' handles). Run is Start, a wait for the
// context, and Close. cmd/spyagency only parses flags and calls it, so tests can run a whole instance,
// learn the port it bound and stop it without signals; a stepped App (the demo's end-to-end test, the
// study) is driven by Step instead of Start.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/agency"
	"github.com/cms-pcl/spyagency/internal/alert"
	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/postgres"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
	"github.com/cms-pcl/spyagency/internal/web"
)

// Options are what a process adds to its configuration.
type Options struct {
	Config  *config.Config
	Clock   clock.Clock // default the wall clock
	Logger  *slog.Logger
	Version string
	// Access says who each request comes from; nil means the configured one: API tokens, logins when
	// access.oidc is set, and also any loopback client as an operator when OpenLoopback (the demo) is.
	Access       web.Authenticator
	OpenLoopback bool
	// WallNow is the wall clock of tokens, sessions and the limit of failed authentications, whatever
	// the agency's clock (default time.Now; tests move it).
	WallNow func() time.Time
	// Stepped is for driving the agency in simulated time from a test or the study: spies do not retry
	// within a poll (a retry would wait on a clock nobody moves), and Step replaces Start.
	Stepped bool
	// SourcesHTTP is the HTTP sources' client; nil: each spy's default. A stepped world reaches its
	// simulator through an in-process transport (httpx.HandlerTransport) with it.
	SourcesHTTP *http.Client
	Banner      string
	// ReplicaID names this process among the replicas sharing a PostgreSQL store: the lease's holder
	// and its heartbeat (default the host and the process id). Tests running several Apps in one
	// process give each its own.
	ReplicaID string
	// LeaseClock is the clock of the leader lease and its renewals (default the wall clock, whatever
	// Clock is: replicas' clocks must agree, and a simulated one does not).
	LeaseClock clock.Clock
}

// App is one Spy Agency process.
type App struct {
	o       Options
	log     *slog.Logger
	Store   store.Store
	Agency  *agency.Agency
	Web     *web.Server
	Handler http.Handler // everything served: the web, Tier-0's pull API under /t0/ included
	// Tokens makes, lists and revokes API tokens in the store.
	Tokens *access.Tokens
	// Alerts evaluates the alert rules and tells the notifiers (internal/alert).
	Alerts  *alert.Evaluator
	spies   *spies
	metrics *processMetrics
	pushers []*steer.Pusher
	targets []func() error // close the push targets' connections (SQL)

	mu   sync.Mutex
	addr net.Addr
	up   chan struct{}

	life       lifecycle
	nextResync time.Time // Step's resync schedule; zero before the first step

	// On a store replicas share (PostgreSQL), lead is this replica's part in the leader lease and
	// leaderStore the store its parts write through (leader.go); both nil on SQLite and when stepped.
	lead        *leadership
	leaderStore *leaderStore
	// caughtUp is set once a term's catch-up has read what other leaders stored (beginTerm), so that
	// Leading is true only when this replica's parts run on what the store holds.
	caughtUp atomic.Bool
	feed     *runFeed // the web's live events on replicas (live.go)
}

// New opens the store and builds every part; nothing runs until Start (or Step). When it fails, what
// it opened is closed again.
func New(ctx context.Context, o Options) (_ *App, err error) {
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
	opened := st
	a := &App{o: o, log: o.Logger, Store: st, spies: &spies{}, up: make(chan struct{})}
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()
	var cluster web.ClusterInfo = soleReplica{replicaID()}
	if shared, ok := st.(leaseStore); ok && !o.Stepped {
		// A stepped App (a test, the study) drives its agency itself and leads alone, as on SQLite.
		if o.ReplicaID == "" {
			o.ReplicaID = replicaID()
		}
		if o.LeaseClock == nil {
			o.LeaseClock = clock.Real{}
		}
		a.leaderStore = &leaderStore{Store: shared, shared: shared}
		a.lead = &leadership{st: shared, self: o.ReplicaID, ttl: cfg.Agency.LeaseTTL, clock: o.LeaseClock,
			log: o.Logger.With("part", "lease", "replica", o.ReplicaID)}
		if a.lead.ttl <= 0 {
			a.lead.ttl = config.DefaultLeaseTTL
		}
		st, a.Store, cluster = a.leaderStore, a.leaderStore, a.lead
		a.feed = newRunFeed()
		a.o = o
	}
	if a.metrics, err = newProcessMetrics(); err != nil {
		return nil, err
	}
	if err = a.metrics.countLate(opened); err != nil {
		return nil, err
	}
	// Every part reads and writes through the timed store (after the lease was asked for above).
	st = a.metrics.store.Instrument(st)
	a.Store = st
	ag, err := agency.New(ctx, agency.Options{Store: st, Catalogue: cat, Policy: cfg.Policy, Clock: o.Clock,
		Logger: o.Logger.With("part", "agency"), Sources: a.spies, Targets: targetNames(cfg),
		Batch: cfg.Agency.ReconcileBatch, Resync: cfg.Agency.ResyncInterval, Lookback: cfg.Agency.Lookback,
		Replicated: a.lead != nil})
	if err != nil {
		return nil, err
	}
	a.Agency = ag
	if a.spies.runners, a.spies.closers, err = buildRunners(cfg, cat, o.Clock, o.Logger, st, ag, o.Stepped, o.SourcesHTTP, a.metrics.events); err != nil {
		return nil, err
	}
	// Each source's view as persisted before the agency's first pass, so that a restart concludes what
	// the process concluded before it: no-payload verdicts and the readiness resting on them stand.
	for _, r := range a.spies.runners {
		if err := r.Restore(ctx); err != nil {
			return nil, err
		}
	}
	var gate func(context.Context) error
	if a.lead != nil {
		gate = a.stillLeads
	}
	if a.pushers, a.targets, err = buildPushers(ctx, cfg, st, o.Clock, gate, a.metrics.events, o.Logger.With("part", "steer")); err != nil {
		return nil, err
	}
	if a.Alerts, err = buildAlerts(ctx, cfg, o, st, ag, a.spies); err != nil {
		return nil, err
	}
	if o.WallNow == nil {
		o.WallNow = time.Now // token and session lifetimes are wall time, whatever the agency's clock
	}
	a.Tokens = &access.Tokens{Store: st, Now: o.WallNow}
	guard, login, err := buildAccess(ctx, cfg, st, a.Tokens, o)
	if err != nil {
		return nil, err
	}
	if o.Access == nil {
		o.Access = guard
	}
	proxies, err := access.ParseProxies(cfg.Server.TrustedProxies)
	if err != nil {
		return nil, err
	}
	first := firstUnready{store: st, policy: cfg.Policy}
	if err := a.metrics.collect(a, st, targetNames(cfg), first); err != nil {
		return nil, err
	}
	readyRuns, firstUnreadyRun := steer.PullHandlersLog(steer.StoreSource{Store: st}, cfg.Policy, o.Logger.With("part", "pull"))
	a.Web, err = web.New(web.Options{Store: st, Catalogue: cat, Clock: o.Clock, Logger: o.Logger.With("part", "web"),
		Overrider: replicaOverrider{ag, st}, Sources: a.spies, MaxBody: cfg.Server.MaxBodyBytes,
		Version: o.Version, Banner: o.Banner, Ready: readiness{up: a.up, store: st, lead: a.lead}, Events: a.webEvents(),
		Links:  web.Links(cfg.Links),
		Alerts: alertView{a.Alerts, cfg.Alerts}, AlertBook: alertView{a.Alerts, cfg.Alerts}, Silences: alertView{a.Alerts, cfg.Alerts},
		FirstUnready: first, Metrics: a.metrics.handler(), Requests: a.metrics.requests, Cluster: cluster,
		Access: o.Access, Login: login, Proxies: proxies, WallNow: o.WallNow,
		ReadNeedsLogin: cfg.Access.Read == "authenticated", PullNeedsToken: cfg.Access.Pull == "token",
		FailedAuthLimit: cfg.Access.FailedAuthLimit, FailedAuthWindow: cfg.Access.FailedAuthWindow,
		Pull: pullAPI{readyRuns, firstUnreadyRun}, Tokens: a.Tokens, Config: configView{cfg}})
	if err != nil {
		return nil, err
	}
	a.Handler = a.Web
	return a, nil
}

// webEvents is what the web's live stream subscribes to: the agency's events, or on replicas the feed
// that adds the other replicas' (live.go).
func (a *App) webEvents() web.Events {
	if a.feed != nil {
		return a.feed
	}
	return a.Agency
}

// OpenStore opens the configured store: sqlite:PATH (the directory is made if missing) or a
// postgres://... database (its password from store.password_file or store.password_env, or libpq's
// PGPASSWORD and ~/.pgpass, which pgx reads).
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
		// A replica frozen inside a transaction must not hold its locks past its lease: the server
		// ends such a session after a third of the TTL.
		return postgres.Open(ctx, dsn, postgres.Options{Now: clk.Now, Logger: log.With("part", "store"), TxIdleTimeout: cfg.Agency.LeaseTTL / 3})
	}
	return nil, apperr.Errorf(apperr.Invalid, "store: DSN %q is neither sqlite:PATH nor postgres://...", dsn)
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i]
	}
	return ""
}

// SourceHealth is every spy's health, in the order of the configuration (what GET /api/v1/sources
// shows).
func (a *App) SourceHealth() []pcl.SourceHealth { return a.spies.SourceHealth() }

// Step polls every spy whose interval has passed, runs one reconcile pass and one evaluation of the
// alerts: the agency's work for one tick of simulated time, done synchronously. As the loop Start runs
// does, every open run is reconciled on the first step and once per resync interval after it, and a
// source's view advancing reconciles the runs waiting for it in the same step. Spies that fail are
// counted in their health as in Start; Step fails only when the pass or the evaluation does.
func (a *App) Step(ctx context.Context) error {
	for _, r := range a.spies.runners {
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

// Addr is the address the web server bound, once Start has started it (nil before).
func (a *App) Addr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr
}

// Started is closed once the web server listens and every part runs.
func (a *App) Started() <-chan struct{} { return a.up }

// Leading says whether this process leads now, so that its leader-only writes (decisions, deliveries,
// alerts) are accepted: always on a store that cannot lease (SQLite), and on PostgreSQL while this
// replica holds the lease and its term has begun: what other leaders stored has been read again and
// its parts run.
func (a *App) Leading() bool {
	if a.lead == nil {
		return true
	}
	leads, _ := a.lead.Leading()
	return leads && a.leaderStore.fenced.Load() != nil && a.caughtUp.Load()
}
