package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cms-pcl/spyagency/internal/agency"
	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/postgres"
	"github.com/cms-pcl/spyagency/internal/web"
)

// Leadership of replicas sharing one PostgreSQL store. Every replica serves the web and the API from
// the shared store; the one holding the leader lease also runs the spies, the agency loop, the pushers
// and the alerts' evaluator, and writes their leader-only writes through the store's fenced view of
// its epoch. A replica takes the lease when it is free or expired, renews it every third of
// agency.lease_ttl, stops those parts at once when a renewal fails or finds the lease taken, and
// releases it on a graceful Close after they stopped, so that another replica leads at once.
//
// A store that cannot lease (SQLite: one process owns the file) keeps today's shape: the process is
// its own leader and runs every part from Start on.

// leaseStore is a store replicas can share: the PostgreSQL store answers.
type leaseStore interface {
	store.Store
	AcquireLease(ctx context.Context, holder string, ttl time.Duration, now time.Time) (postgres.Lease, bool, error)
	ReleaseLease(ctx context.Context, holder string, epoch int64) error
	CurrentLease(ctx context.Context) (postgres.Lease, error)
	Fenced(holder string, epoch int64) *postgres.Store
	Heartbeat(ctx context.Context, id string, ttl time.Duration, now time.Time) error
	Leave(ctx context.Context, id string) error
	Members(ctx context.Context, now time.Time) ([]string, error)
}

// errNotLeader refuses a leader-only write on a replica that does not lead (or no longer does).
var errNotLeader = apperr.Errorf(apperr.Conflict, "this replica does not lead: leader-only write refused")

// leaderStore is the store as the parts of a replica see it: reads and the writes any replica may do
// (overrides, silences, tokens, sessions, cursors, observations) go to the shared store; the
// leader-only writes go to the fenced view of the epoch this replica leads, and are refused while it
// leads none. PutRunState is refused too on a follower, although the store does not fence it: an
// override made on a follower must not have the follower write derived state the leader's reconcile
// owns.
type leaderStore struct {
	store.Store
	shared leaseStore
	fenced atomic.Pointer[fencedView]
}

// fencedView is the store's fenced view of the epoch this replica leads.
type fencedView struct {
	*postgres.Store
	holder string
	epoch  int64
}

// leaderWrite runs a leader-only write on the fenced view, or refuses it with errNotLeader while this
// replica leads no epoch. A conflict from the fence (the epoch lost the lease, and this replica has not
// noticed yet) is errNotLeader too, so that callers tell it from a stale version.
func (l *leaderStore) leaderWrite(ctx context.Context, write func(s *postgres.Store) error) error {
	f := l.fenced.Load()
	if f == nil {
		return errNotLeader
	}
	err := write(f.Store)
	if apperr.Is(err, apperr.Conflict) {
		if cur, lerr := l.shared.CurrentLease(ctx); lerr == nil && (cur.Holder != f.holder || cur.Epoch != f.epoch) {
			return errors.Join(errNotLeader, err)
		}
	}
	return err
}

func (l *leaderStore) SaveDecision(ctx context.Context, w store.DecisionWrite) (d pcl.Decision, err error) {
	err = l.leaderWrite(ctx, func(s *postgres.Store) (err error) { d, err = s.SaveDecision(ctx, w); return err })
	return d, err
}

func (l *leaderStore) MarkDelivered(ctx context.Context, id int64, at time.Time) error {
	return l.leaderWrite(ctx, func(s *postgres.Store) error { return s.MarkDelivered(ctx, id, at) })
}

func (l *leaderStore) MarkFailed(ctx context.Context, id int64, at, next time.Time, errText string, dead bool) error {
	return l.leaderWrite(ctx, func(s *postgres.Store) error { return s.MarkFailed(ctx, id, at, next, errText, dead) })
}

func (l *leaderStore) SaveAlerts(ctx context.Context, w store.AlertWrite) (out []store.Alert, err error) {
	err = l.leaderWrite(ctx, func(s *postgres.Store) (err error) { out, err = s.SaveAlerts(ctx, w); return err })
	return out, err
}

func (l *leaderStore) PutRunState(ctx context.Context, rs pcl.RunState) error {
	return l.leaderWrite(ctx, func(s *postgres.Store) error { return s.PutRunState(ctx, rs) })
}

// leadership is a replica's part in the lease: who it is, the lease as last read, and whether it leads.
type leadership struct {
	st    leaseStore
	self  string
	ttl   time.Duration
	clock clock.Clock // the lease's clock: wall time, whatever the agency's
	log   *slog.Logger

	mu      sync.Mutex
	lease   postgres.Lease // as the last acquisition returned it
	leading bool
	err     error // the last acquisition's, nil when it answered
	terms   int64 // how many terms this replica began (tests and logs)
}

func (l *leadership) note(lease postgres.Lease, leads bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
	if err == nil {
		l.lease, l.leading = lease, leads
	} else {
		l.leading = false
	}
}

// Leading says whether this replica leads, and at which epoch.
func (l *leadership) Leading() (bool, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading, l.lease.Epoch
}

// Cluster is GET /api/v1/cluster on a replica: the lease as the store has it now (no leader while it
// has expired), and the replicas whose heartbeat lives.
func (l *leadership) Cluster(ctx context.Context) (web.Cluster, error) {
	now := l.clock.Now()
	lease, err := l.st.CurrentLease(ctx)
	if err != nil {
		return web.Cluster{}, err
	}
	members, err := l.st.Members(ctx, now)
	if err != nil {
		return web.Cluster{}, err
	}
	c := web.Cluster{Self: l.self, Epoch: lease.Epoch, Members: members}
	if lease.Expires.After(now) {
		c.Leader = lease.Holder
	}
	return c, nil
}

// ready is the lease's part of /readyz: a replica serves only while some replica leads (otherwise
// nothing it shows moves).
func (l *leadership) ready(ctx context.Context) error {
	lease, err := l.st.CurrentLease(ctx)
	if err != nil {
		return err
	}
	if !lease.Expires.After(l.clock.Now()) {
		return errors.New("no replica holds the leader lease")
	}
	return nil
}

// term is one epoch this replica leads: the parts it runs and how to stop them.
type term struct {
	epoch       int64
	cancel      context.CancelFunc
	parts       sync.WaitGroup
	unsubscribe func()
}

// leadLoop takes and renews the lease until ctx ends, running the leader's parts while it holds it;
// at the end it stops them, then releases the lease and the heartbeat (a graceful hand-over).
func (a *App) leadLoop(ctx context.Context) {
	l := a.lead
	var cur *term
	defer func() {
		if cur != nil {
			a.endTerm(cur)
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl)
			if err := l.st.ReleaseLease(rctx, l.self, cur.epoch); err != nil {
				l.log.Warn("releasing the leader lease failed; another replica leads once it expires", "err", err)
			} else {
				l.log.Info("leader lease released", "epoch", cur.epoch)
			}
			cancel()
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl)
		_ = l.st.Leave(rctx, l.self)
		cancel()
	}()
	every := l.ttl / 3
	for {
		actx, cancel := context.WithTimeout(ctx, every)
		now := l.clock.Now()
		lease, leads, err := l.st.AcquireLease(actx, l.self, l.ttl, now)
		if ctx.Err() != nil {
			cancel()
			return
		}
		if herr := l.st.Heartbeat(actx, l.self, l.ttl, now); herr != nil && ctx.Err() == nil {
			l.log.Warn("heartbeat failed", "err", herr)
		}
		cancel()
		l.note(lease, leads, err)
		switch {
		case err != nil:
			if cur != nil {
				l.log.Error("renewing the leader lease failed: stepping down", "epoch", cur.epoch, "err", err)
				a.endTerm(cur)
				cur = nil
			} else {
				l.log.Warn("reading the leader lease failed", "err", err)
			}
		case leads && cur != nil && cur.epoch == lease.Epoch:
			// renewed
		case leads:
			if cur != nil { // lapsed and taken back between two renewals: a new epoch, a new term
				a.endTerm(cur)
			}
			cur = a.beginTerm(ctx, lease.Epoch)
		case cur != nil:
			l.log.Error("the leader lease was taken: stepping down", "epoch", cur.epoch, "holder", lease.Holder, "their_epoch", lease.Epoch)
			a.endTerm(cur)
			cur = nil
		}
		if cur == nil {
			// A follower evaluates no alert: its Alerts page shows the leader's, as stored.
			if err := a.Alerts.Reload(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn("reading the leader's alerts failed", "err", err)
			}
		}
		t := l.clock.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// beginTerm starts leading at epoch: the store's leader-only writes go through the fenced view, the
// agency reads again what other leaders stored, and the leader's parts start.
func (a *App) beginTerm(ctx context.Context, epoch int64) *term {
	l := a.lead
	a.leaderStore.fenced.Store(&fencedView{Store: l.st.Fenced(l.self, epoch), holder: l.self, epoch: epoch})
	l.mu.Lock()
	l.terms++
	l.mu.Unlock()
	tctx, cancel := context.WithCancel(ctx)
	t := &term{epoch: epoch, cancel: cancel}
	l.log.Info("leading", "epoch", epoch)
	if err := a.catchUp(tctx); err != nil {
		// Still lead: the loop's resync and the next term read again; the parts' own reads retry.
		l.log.Error("reading what other leaders stored failed", "err", err)
	}
	t.unsubscribe = a.runParts(tctx, &t.parts)
	t.parts.Go(func() { a.watchOverrides(tctx) })
	a.caughtUp.Store(true)
	return t
}

// endTerm stops leading: leader-only writes are refused at once, then the parts are stopped.
func (a *App) endTerm(t *term) {
	a.caughtUp.Store(false)
	a.leaderStore.fenced.Store(nil)
	t.cancel()
	t.parts.Wait()
	t.unsubscribe()
}

// stillLeads says, from the store, whether the epoch this replica leads still holds a live lease:
// errNotLeader when not. The pushers ask it before each delivery, so that a deposed leader that has
// not noticed yet (frozen, cut off) sends nothing once another replica has taken over.
func (a *App) stillLeads(ctx context.Context) error {
	f := a.leaderStore.fenced.Load()
	if f == nil {
		return errNotLeader
	}
	cur, err := a.lead.st.CurrentLease(ctx)
	if err != nil {
		return err
	}
	if cur.Holder != f.holder || cur.Epoch != f.epoch || !cur.Expires.After(a.lead.clock.Now()) {
		return errNotLeader
	}
	return nil
}

// catchUp reads again what the agency and the spies remember, from the store other leaders wrote.
func (a *App) catchUp(ctx context.Context) error {
	if err := a.Agency.Reload(ctx); err != nil {
		return err
	}
	if err := a.Alerts.Reload(ctx); err != nil {
		return err
	}
	for _, r := range a.spies.runners {
		if err := r.Restore(ctx); err != nil {
			return err
		}
	}
	return nil
}

// watchOverrides has the leader reconcile at once a run overridden on another replica: every third
// of the lease TTL it reads the overrides stored since a little before the last look (the replicas'
// clocks differ a little) and reconciles the runs of those it has not seen. The agency's resync is the
// safety net for an override stamped further in the past than that.
func (a *App) watchOverrides(ctx context.Context) {
	l := a.lead
	every := l.ttl / 3
	seen := map[int64]bool{}
	from := l.clock.Now().Add(-l.ttl)
	for {
		t := l.clock.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		now := l.clock.Now()
		obs, err := a.Store.Observations(ctx, store.ObservationQuery{Kinds: []pcl.Kind{pcl.KindOverride}, SeenFrom: from})
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("reading new overrides failed", "err", err)
			}
			continue
		}
		next := map[int64]bool{}
		for _, o := range obs {
			next[o.Seq] = true
			if seen[o.Seq] {
				continue
			}
			a.Agency.Forget(o.Run) // recorded by another replica: the agency's facts of the run lack it
			if _, err := a.Agency.Reconcile(ctx, o.Run); err != nil && ctx.Err() == nil {
				l.log.Warn("reconciling an overridden run failed", "run", o.Run, "err", err)
			}
		}
		seen, from = next, now.Add(-l.ttl)
	}
}

// replicaOverrider is the web's Overrider on a replica: on the leader, the agency records the override
// and reconciles the run; on a follower the override is recorded in the store all the same (it is not
// a leader-only write), and the leader's reconcile takes it up (watchOverrides), so the state returned
// is the one stored before it.
type replicaOverrider struct {
	ag *agency.Agency
	st store.Store
}

func (o replicaOverrider) Override(ctx context.Context, run uint32, action pcl.OverrideAction, workflow, actor, reason string) (pcl.RunState, error) {
	rs, err := o.ag.Override(ctx, run, action, workflow, actor, reason)
	if errors.Is(err, errNotLeader) {
		return o.st.RunState(ctx, run)
	}
	return rs, err
}
