package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// storeBuckets span what one store operation takes: a fraction of a millisecond for an indexed read
// of SQLite, tens of milliseconds for a PostgreSQL transaction across the network, seconds when the
// database is in trouble.
var storeBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// StoreTimings are the store's Prometheus metrics: every operation's wall time, and the operations
// that failed by the kind of their error.
type StoreTimings struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	// since is the wall time elapsed from a start (time.Since; tests replace it).
	since func(time.Time) time.Duration
}

// NewStoreTimings registers the store metrics on reg.
func NewStoreTimings(reg prometheus.Registerer) (*StoreTimings, error) {
	t := &StoreTimings{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spyagency_store_operation_duration_seconds",
			Help:    "Wall time of store operations, failed ones included, by operation (a method of the store).",
			Buckets: storeBuckets}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spyagency_store_operation_errors_total",
			Help: "Store operations that returned an error, by operation and kind (not_found, conflict, invalid, canceled, internal...)."},
			[]string{"op", "kind"}),
		since: time.Since,
	}
	for _, c := range []prometheus.Collector{t.duration, t.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Instrument returns st with every operation timed and its errors counted. The result is a
// store.Store and nothing more: a caller that needs another interface of the store (the lease of
// PostgreSQL) asks the store before instrumenting it.
func (t *StoreTimings) Instrument(st store.Store) store.Store { return &timedStore{s: st, t: t} }

// errKind names an error for the errors' kind label: the apperr code, "canceled" for a context that
// ended (a client gone, a shutdown), "internal" for anything else.
func errKind(err error) string {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	var e *apperr.Error
	if errors.As(err, &e) && e.Code != "" {
		return string(e.Code)
	}
	return string(apperr.Internal)
}

func (t *StoreTimings) done(op string, start time.Time, err error) {
	t.duration.WithLabelValues(op).Observe(t.since(start).Seconds())
	if err != nil {
		t.errors.WithLabelValues(op, errKind(err)).Inc()
	}
}

func timed[T any](t *StoreTimings, op string, f func() (T, error)) (T, error) {
	start := time.Now()
	v, err := f()
	t.done(op, start, err)
	return v, err
}

func timed0(t *StoreTimings, op string, f func() error) error {
	start := time.Now()
	err := f()
	t.done(op, start, err)
	return err
}

// timedStore is a store.Store whose operations are timed. It does not embed the store: a method added
// to store.Store does not compile here until it is timed too.
type timedStore struct {
	s store.Store
	t *StoreTimings
}

var _ store.Store = (*timedStore)(nil)

func (x *timedStore) AppendObservations(ctx context.Context, obs []pcl.Observation) ([]pcl.Observation, error) {
	return timed(x.t, "append_observations", func() ([]pcl.Observation, error) { return x.s.AppendObservations(ctx, obs) })
}

func (x *timedStore) Observations(ctx context.Context, q store.ObservationQuery) ([]pcl.Observation, error) {
	return timed(x.t, "observations", func() ([]pcl.Observation, error) { return x.s.Observations(ctx, q) })
}

func (x *timedStore) PutRunState(ctx context.Context, rs pcl.RunState) error {
	return timed0(x.t, "put_run_state", func() error { return x.s.PutRunState(ctx, rs) })
}

func (x *timedStore) RunState(ctx context.Context, run uint32) (pcl.RunState, error) {
	return timed(x.t, "run_state", func() (pcl.RunState, error) { return x.s.RunState(ctx, run) })
}

func (x *timedStore) RunStates(ctx context.Context, q store.RunQuery) ([]pcl.RunState, error) {
	return timed(x.t, "run_states", func() ([]pcl.RunState, error) { return x.s.RunStates(ctx, q) })
}

func (x *timedStore) ReleaseView(ctx context.Context, q store.ReleaseQuery) (store.ReleaseView, error) {
	return timed(x.t, "release_view", func() (store.ReleaseView, error) { return x.s.ReleaseView(ctx, q) })
}

func (x *timedStore) OpenRunStates(ctx context.Context, since time.Time) ([]pcl.RunState, error) {
	return timed(x.t, "open_run_states", func() ([]pcl.RunState, error) { return x.s.OpenRunStates(ctx, since) })
}

func (x *timedStore) CompactReleased(ctx context.Context, q store.CompactQuery) ([]uint32, error) {
	return timed(x.t, "compact_released", func() ([]uint32, error) { return x.s.CompactReleased(ctx, q) })
}

func (x *timedStore) Compaction(ctx context.Context, run uint32) (store.Compaction, error) {
	return timed(x.t, "compaction", func() (store.Compaction, error) { return x.s.Compaction(ctx, run) })
}

func (x *timedStore) DueRuns(ctx context.Context, now time.Time, limit int) ([]uint32, error) {
	return timed(x.t, "due_runs", func() ([]uint32, error) { return x.s.DueRuns(ctx, now, limit) })
}

func (x *timedStore) NextWake(ctx context.Context) (time.Time, error) {
	return timed(x.t, "next_wake", func() (time.Time, error) { return x.s.NextWake(ctx) })
}

func (x *timedStore) SaveDecision(ctx context.Context, w store.DecisionWrite) (pcl.Decision, error) {
	return timed(x.t, "save_decision", func() (pcl.Decision, error) { return x.s.SaveDecision(ctx, w) })
}

func (x *timedStore) Decisions(ctx context.Context, run uint32) ([]pcl.Decision, error) {
	return timed(x.t, "decisions", func() ([]pcl.Decision, error) { return x.s.Decisions(ctx, run) })
}

func (x *timedStore) PendingOutbox(ctx context.Context, target string, now time.Time, limit int) ([]store.OutboxEntry, error) {
	return timed(x.t, "pending_outbox", func() ([]store.OutboxEntry, error) { return x.s.PendingOutbox(ctx, target, now, limit) })
}

func (x *timedStore) MarkDelivered(ctx context.Context, id int64, at time.Time) error {
	return timed0(x.t, "mark_delivered", func() error { return x.s.MarkDelivered(ctx, id, at) })
}

func (x *timedStore) MarkFailed(ctx context.Context, id int64, at, next time.Time, errText string, dead bool) error {
	return timed0(x.t, "mark_failed", func() error { return x.s.MarkFailed(ctx, id, at, next, errText, dead) })
}

func (x *timedStore) Outbox(ctx context.Context, target string, limit int) ([]store.OutboxEntry, error) {
	return timed(x.t, "outbox", func() ([]store.OutboxEntry, error) { return x.s.Outbox(ctx, target, limit) })
}

func (x *timedStore) AppendOverride(ctx context.Context, o pcl.Observation, e store.AuditEntry) (pcl.Observation, error) {
	return timed(x.t, "append_override", func() (pcl.Observation, error) { return x.s.AppendOverride(ctx, o, e) })
}

func (x *timedStore) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	return timed0(x.t, "append_audit", func() error { return x.s.AppendAudit(ctx, e) })
}

func (x *timedStore) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	return timed(x.t, "audit", func() ([]store.AuditEntry, error) { return x.s.Audit(ctx, q) })
}

func (x *timedStore) Cursor(ctx context.Context, name string) (store.Cursor, error) {
	return timed(x.t, "cursor", func() (store.Cursor, error) { return x.s.Cursor(ctx, name) })
}

func (x *timedStore) SetCursor(ctx context.Context, name string, c store.Cursor) error {
	return timed0(x.t, "set_cursor", func() error { return x.s.SetCursor(ctx, name, c) })
}

func (x *timedStore) CreateToken(ctx context.Context, tok store.APIToken) error {
	return timed0(x.t, "create_token", func() error { return x.s.CreateToken(ctx, tok) })
}

func (x *timedStore) TokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	return timed(x.t, "token_by_hash", func() (store.APIToken, error) { return x.s.TokenByHash(ctx, hash) })
}

func (x *timedStore) Tokens(ctx context.Context) ([]store.APIToken, error) {
	return timed(x.t, "tokens", func() ([]store.APIToken, error) { return x.s.Tokens(ctx) })
}

func (x *timedStore) RevokeToken(ctx context.Context, name string, at time.Time) (store.APIToken, error) {
	return timed(x.t, "revoke_token", func() (store.APIToken, error) { return x.s.RevokeToken(ctx, name, at) })
}

func (x *timedStore) TokenUsed(ctx context.Context, hash string, at time.Time) error {
	return timed0(x.t, "token_used", func() error { return x.s.TokenUsed(ctx, hash, at) })
}

func (x *timedStore) CreateSession(ctx context.Context, s store.Session) error {
	return timed0(x.t, "create_session", func() error { return x.s.CreateSession(ctx, s) })
}

func (x *timedStore) Session(ctx context.Context, hash string) (store.Session, error) {
	return timed(x.t, "session", func() (store.Session, error) { return x.s.Session(ctx, hash) })
}

func (x *timedStore) EndSession(ctx context.Context, hash string, at time.Time) error {
	return timed0(x.t, "end_session", func() error { return x.s.EndSession(ctx, hash, at) })
}

func (x *timedStore) Setting(ctx context.Context, key string) (string, bool, error) {
	var found bool
	v, err := timed(x.t, "setting", func() (v string, err error) { v, found, err = x.s.Setting(ctx, key); return v, err })
	return v, found, err
}

func (x *timedStore) SetSetting(ctx context.Context, key, value string) error {
	return timed0(x.t, "set_setting", func() error { return x.s.SetSetting(ctx, key, value) })
}

func (x *timedStore) LiveAlerts(ctx context.Context) ([]store.Alert, error) {
	return timed(x.t, "live_alerts", func() ([]store.Alert, error) { return x.s.LiveAlerts(ctx) })
}

func (x *timedStore) SaveAlerts(ctx context.Context, w store.AlertWrite) ([]store.Alert, error) {
	return timed(x.t, "save_alerts", func() ([]store.Alert, error) { return x.s.SaveAlerts(ctx, w) })
}

func (x *timedStore) AlertHistory(ctx context.Context, q store.AlertQuery) ([]store.Alert, error) {
	return timed(x.t, "alert_history", func() ([]store.Alert, error) { return x.s.AlertHistory(ctx, q) })
}

func (x *timedStore) AddSilence(ctx context.Context, s store.Silence, audit store.AuditEntry) (store.Silence, error) {
	return timed(x.t, "add_silence", func() (store.Silence, error) { return x.s.AddSilence(ctx, s, audit) })
}

func (x *timedStore) ExpireSilence(ctx context.Context, id int64, at time.Time, actor string, audit store.AuditEntry) (store.Silence, error) {
	return timed(x.t, "expire_silence", func() (store.Silence, error) { return x.s.ExpireSilence(ctx, id, at, actor, audit) })
}

func (x *timedStore) Silence(ctx context.Context, id int64) (store.Silence, error) {
	return timed(x.t, "silence", func() (store.Silence, error) { return x.s.Silence(ctx, id) })
}

func (x *timedStore) Silences(ctx context.Context, q store.SilenceQuery) ([]store.Silence, error) {
	return timed(x.t, "silences", func() ([]store.Silence, error) { return x.s.Silences(ctx, q) })
}

func (x *timedStore) DeadLetters(ctx context.Context, limit int) ([]store.OutboxEntry, error) {
	return timed(x.t, "dead_letters", func() ([]store.OutboxEntry, error) { return x.s.DeadLetters(ctx, limit) })
}

// Close closes the store; it is not timed (it happens once).
func (x *timedStore) Close() error { return x.s.Close() }

// Unwrap is the store instrumented, for a caller that needs one of its other interfaces.
func (x *timedStore) Unwrap() store.Store { return x.s }
