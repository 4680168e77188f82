// Package store defines what Spy Agency keeps: observations (appended idempotently), the state derived
// from them per run, versioned decisions, the push outbox, the audit log, spy cursors, settings, and
// the alerts' state, history and silences.
//
// Store is the interface; package store/sqlite is the embedded implementation and store/storetest the
// conformance suite that every implementation must pass.
package store

import (
	"context"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// ObservationQuery selects observations. Empty fields do not filter; non-empty ones are ANDed, and the
// values within one field are ORed.
type ObservationQuery struct {
	Runs     []uint32
	Kinds    []pcl.Kind
	Sources  []pcl.Source
	Payloads []string // IOV observations carrying one of these payload hashes
	Tags     []string
	// SeenFrom and SeenTo bound the time the spy saw the fact: [SeenFrom, SeenTo).
	SeenFrom, SeenTo time.Time
	Limit            int // 0: no limit
}

// RunQuery selects derived run states, newest run first.
type RunQuery struct {
	Class     string        // exact class, or a shell pattern such as "Collisions*"
	Readiness pcl.Readiness // "" for any
	Before    uint32        // runs below this number; 0 for no bound
	From, To  uint32        // inclusive run range; 0 for no bound
	Limit     int           // 0: the store's default (100)
	// Summary fills only Run, Class and Decision: enough to decide releases, and much cheaper.
	Summary bool
}

// ReleaseQuery selects what in-order release reads (Store.ReleaseView).
type ReleaseQuery struct {
	// UpTo bounds the runs read to those numbered ≤ UpTo; 0 for no bound.
	UpTo uint32
	// From also selects every run in [From, UpTo] whatever its state (a ready_runs range); 0 selects
	// no range, only the runs that are not released.
	From uint32
}

// ReleaseView is one consistent read of what in-order release depends on.
type ReleaseView struct {
	// Runs are summary states (Run, Class and Decision only), oldest run first: every run ≤ UpTo whose
	// decision is not a persisted release (a decision in state released with version ≥ 1), and every
	// run in [From, UpTo]; each run once.
	Runs []pcl.RunState
	// Highest is the highest known run ≤ UpTo (any state), 0 when no run is known.
	Highest uint32
}

// OutboxEntry is one decision waiting to be pushed to one target. The pair (Target, Run, Version) is
// unique; the idempotency key a receiver sees is "<run>:<version>".
type OutboxEntry struct {
	ID          int64      `json:"id"`
	Target      string     `json:"target"`
	Run         uint32     `json:"run"`
	Version     int64      `json:"version"`
	Payload     []byte     `json:"payload"`
	Created     time.Time  `json:"created"`
	NextAttempt time.Time  `json:"next_attempt"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error,omitempty"`
	Delivered   *time.Time `json:"delivered,omitempty"`
	Dead        bool       `json:"dead"`
}

// AuditEntry is one thing that happened to a run that people must be able to trace: a decision, an
// override, a delivery given up.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Run    uint32    `json:"run,omitempty"`
	Actor  string    `json:"actor"`  // "agency" for decisions, the person's name for overrides
	Action string    `json:"action"` // "decision", "release", "hold", "clear", "accept", "dead-letter", ...
	Detail string    `json:"detail"`
}

// AuditQuery selects audit entries, newest first.
type AuditQuery struct {
	Run      uint32
	Actor    string
	From, To time.Time // [From, To)
	Limit    int       // 0: the store's default (100)
}

// Cursor is what a spy persists of its last successful poll: where it is in its source, and when the
// view of the source that poll read was taken (the start of its listing or query). The view is what a
// conclusion from absence rests on ("no harvest file after the stream was done"), so it is kept with
// the cursor: after a restart the source's freshness is what it was, not "never read".
type Cursor struct {
	Value string
	// View is zero when no poll whose observations are stored recorded one.
	View time.Time
}

// APIToken is what is kept of an API token: its hash, never the token itself (access makes and checks
// tokens). A token is live until it expires or is revoked; a revoked one stays listed, so that who
// used what, and until when, can still be read.
type APIToken struct {
	Hash     string    `json:"-"` // hex SHA-256 of the token
	Name     string    `json:"name"`
	Scope    string    `json:"scope"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`   // zero: never
	LastUsed time.Time `json:"last_used,omitzero"` // zero: never used
	Revoked  time.Time `json:"revoked,omitzero"`   // zero: not revoked
}

// Session is a person's login, as access keeps it: the hash of the session's identifier (the cookie
// carries the identifier itself), who it is and with which role, and until when. Ended is set by a
// logout; an ended or expired session is refused.
type Session struct {
	Hash    string
	User    string
	Role    string
	Created time.Time
	Expires time.Time
	Ended   time.Time // zero while the session is open
}

// DecisionWrite is one decision with everything that must be written in its transaction.
type DecisionWrite struct {
	// Decision.Version must be the run's current version + 1 (1 for a first decision); otherwise
	// SaveDecision fails with apperr.Conflict and writes nothing.
	Decision pcl.Decision
	State    pcl.RunState // stored as the run's derived state, with Decision copied in
	Outbox   []OutboxEntry
	Audit    []AuditEntry
}

// Store is what Spy Agency keeps. Methods are safe for concurrent use. Errors carry apperr codes:
// NotFound for a missing run, Conflict for a stale decision version, Invalid for bad arguments.
type Store interface {
	// AppendObservations stores the observations that are not stored yet (by pcl.Observation.Key) and
	// returns those, in input order, with their Seq set: the store's sequence number of the fact,
	// positive, larger for every fact appended later, and the same on every read. The same fact twice, in one batch or across batches, is one row.
	// Observations that fail Validate make the whole batch fail with apperr.Invalid; nothing is written.
	// A fact of a compacted run is not stored nor returned, and not an error: it is counted once in the
	// run's Compaction.LateObservations; a compaction at the same time either sees the fact (and
	// summarises it) or comes first (and the fact is late).
	AppendObservations(ctx context.Context, obs []pcl.Observation) ([]pcl.Observation, error)
	// Observations returns the matching observations ordered by At, then Key, with their Seq set.
	Observations(ctx context.Context, q ObservationQuery) ([]pcl.Observation, error)

	// PutRunState stores the derived state of a run without a new decision (the decision did not change).
	PutRunState(ctx context.Context, rs pcl.RunState) error
	// RunState returns a run's derived state, with its latest decision.
	RunState(ctx context.Context, run uint32) (pcl.RunState, error)
	// RunStates returns derived states, newest run first.
	RunStates(ctx context.Context, q RunQuery) ([]pcl.RunState, error)
	// ReleaseView reads in one consistent read (one transaction, one snapshot of the store) the runs
	// that can stop in-order release up to q.UpTo, those of the range q.From..q.UpTo, and the highest
	// known run. A persisted release is releasable whatever the policy, so these are all that Tier-0's
	// first_unready_run and ready_runs need; the cost grows with the runs not released and the range,
	// not with the released history.
	ReleaseView(ctx context.Context, q ReleaseQuery) (ReleaseView, error)
	// OpenRunStates returns the full states (as RunState gives them) of the runs that may still be
	// open work, oldest run first: every run whose decision is not a persisted release, and every
	// persisted release whose run stopped at or after since or has no stop time. The agency's start-up
	// reads these instead of every stored state; the cost does not grow with the released history.
	OpenRunStates(ctx context.Context, since time.Time) ([]pcl.RunState, error)
	// CompactReleased applies retention to at most q.Limit runs, oldest stop first: for each run whose
	// current decision is a persisted release decided before q.ReleasedBefore and that is not compacted
	// yet, in one transaction, it writes the run's Compaction and deletes its raw observations. Open
	// runs, runs without a stop time and runs whose final state is not written are never compacted.
	// Candidates are found through an index of the released runs not compacted yet, so the cost does
	// not grow with the compacted history. It returns the runs compacted; calling it again compacts
	// nothing twice, and a crash leaves every run either compacted whole or not at all.
	CompactReleased(ctx context.Context, q CompactQuery) ([]uint32, error)
	// Compaction returns what retention kept of a run's raw observations; apperr.NotFound when the run
	// is not compacted.
	Compaction(ctx context.Context, run uint32) (Compaction, error)
	// DueRuns returns the runs whose NextWake is set and not after now, oldest wake first.
	DueRuns(ctx context.Context, now time.Time, limit int) ([]uint32, error)
	// NextWake returns the earliest NextWake of any run, zero when no run has one: when the agency must
	// look again if nothing is observed. It reads an index, so its cost does not grow with history.
	NextWake(ctx context.Context) (time.Time, error)

	// SaveDecision writes a new decision version, the run's state, the outbox entries and the audit
	// entries in one transaction, and returns the decision as stored.
	SaveDecision(ctx context.Context, w DecisionWrite) (pcl.Decision, error)
	// Decisions returns a run's decisions, oldest first.
	Decisions(ctx context.Context, run uint32) ([]pcl.Decision, error)

	// PendingOutbox returns up to limit entries of a target that are neither delivered nor dead and whose
	// NextAttempt is not after now, in run order then version order.
	PendingOutbox(ctx context.Context, target string, now time.Time, limit int) ([]OutboxEntry, error)
	// MarkDelivered records a delivery.
	MarkDelivered(ctx context.Context, id int64, at time.Time) error
	// MarkFailed records a failed attempt: the error, when to try again, and whether to give up (dead).
	MarkFailed(ctx context.Context, id int64, at, next time.Time, errText string, dead bool) error
	// Outbox lists a target's entries ("" for all targets), newest first, for the API.
	Outbox(ctx context.Context, target string, limit int) ([]OutboxEntry, error)

	// AppendOverride stores an operator's override (a pcl.KindOverride observation) and its audit
	// entry in one transaction, and returns the override with its Seq. A run's overrides are ordered
	// by Seq, the order they were stored in, whatever their times: two in the same instant keep theirs.
	// The audit entry's Run and At default to the override's. Either both are written or neither.
	//
	// The same override again (by Key: action, workflow, actor, reason and time) is one fact. When it
	// is the run's newest override it is returned as stored and nothing is written (a repeated
	// request); when a later override stands, the call fails with apperr.Conflict and writes nothing,
	// because the repetition could not take its place in the order. An override that fails Validate,
	// or an audit entry without actor or action, fails with apperr.Invalid.
	AppendOverride(ctx context.Context, o pcl.Observation, e AuditEntry) (pcl.Observation, error)
	// AppendAudit stores an audit entry outside a decision or an override (a dead letter).
	AppendAudit(ctx context.Context, e AuditEntry) error
	// Audit returns matching audit entries, newest first.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)

	// Cursor returns a spy's persisted cursor, the zero Cursor if it has none.
	Cursor(ctx context.Context, name string) (Cursor, error)
	// SetCursor persists a spy's cursor and its view time in one write.
	SetCursor(ctx context.Context, name string, c Cursor) error

	// CreateToken stores a new API token. A live (not revoked) token of the same name fails with
	// apperr.Conflict, the same hash too; an empty hash, name or scope, or no creation time, with
	// apperr.Invalid.
	CreateToken(ctx context.Context, t APIToken) error
	// TokenByHash returns the token with that hash, live, expired or revoked; apperr.NotFound if none.
	TokenByHash(ctx context.Context, hash string) (APIToken, error)
	// Tokens lists every token, live and revoked, by name, then newest first.
	Tokens(ctx context.Context) ([]APIToken, error)
	// RevokeToken revokes the live token of that name at the given time and returns it;
	// apperr.NotFound when there is none.
	RevokeToken(ctx context.Context, name string, at time.Time) (APIToken, error)
	// TokenUsed records a token's use at the given time; the last-used time only moves forward.
	TokenUsed(ctx context.Context, hash string, at time.Time) error

	// CreateSession stores a new login session, and forgets the sessions that expired or ended a day
	// before it was created, so that the table holds the open sessions and not the history of logins.
	CreateSession(ctx context.Context, s Session) error
	// Session returns a session by its hash, open or not; apperr.NotFound if none.
	Session(ctx context.Context, hash string) (Session, error)
	// EndSession ends a session (a logout); ending an unknown or ended session does nothing.
	EndSession(ctx context.Context, hash string, at time.Time) error

	// Setting returns a key-value setting and whether it exists.
	Setting(ctx context.Context, key string) (string, bool, error)
	// SetSetting stores a key-value setting.
	SetSetting(ctx context.Context, key, value string) error

	// Alert state, history and silences (alerts.go).
	AlertStore

	// Close releases the store; using it afterwards is an error.
	Close() error
}
