package store

import (
	"context"
	"time"
)

// Alert states. An alert is pending while its rule's `for` has not passed, firing until its condition
// has been gone for its keep-firing time, then resolved; a resolved alert is history.
const (
	AlertPending  = "pending"
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// Alert is one episode of an alert: from the first evaluation that found its condition to its
// resolution. The evaluator (internal/alert) owns its meaning; the store keeps it so that a restart
// neither forgets a firing alert nor notifies it twice.
type Alert struct {
	ID int64 `json:"id"`
	// Fingerprint identifies the alert: its rule and identifying labels. At most one episode of a
	// fingerprint is not resolved.
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	State       string            `json:"state"` // AlertPending, AlertFiring or AlertResolved
	Severity    string            `json:"severity"`
	Labels      map[string]string `json:"labels"`
	Summary     string            `json:"summary"`
	Details     string            `json:"details,omitempty"`
	Run         uint32            `json:"run,omitempty"`
	Workflow    string            `json:"workflow,omitempty"`
	// Since is when the condition began, by its evidence (the run's stop, the last good poll); Active
	// the first evaluation that found it, Fired when it started firing, LastSeen the last evaluation
	// that found it, Resolved when it was resolved.
	Since    time.Time `json:"since,omitzero"`
	Active   time.Time `json:"active"`
	Fired    time.Time `json:"fired,omitzero"`
	LastSeen time.Time `json:"last_seen"`
	Resolved time.Time `json:"resolved,omitzero"`
	// StaleInputs are the sources whose staleness keeps the alert from resolving: its condition is no
	// longer found, but the data that would show it gone has stopped arriving.
	StaleInputs []string `json:"stale_inputs,omitempty"`
	// SilencedBy are the silences in force over it; InhibitedBy the alert (fingerprint) that holds it
	// back, such as the staleness of a source that explains it. Either keeps it from notifying.
	SilencedBy  []int64 `json:"silenced_by,omitempty"`
	InhibitedBy string  `json:"inhibited_by,omitempty"`
	// NotifyFrom starts the episode's current notification epoch: when it started firing, or later when
	// a silence or an inhibition over it ended. A notifier is owed the firing notice while it has not
	// sent one of this epoch.
	NotifyFrom time.Time `json:"notify_from,omitzero"`
	// Notified is what each notifier (by name) was told of the episode.
	Notified map[string]Notified `json:"notified,omitempty"`
	// Owed says a notifier still has to be told something of the episode (a resolved episode stays
	// live until it was).
	Owed bool `json:"owed,omitempty"`
}

// Notified is what one notifier was told of an alert episode.
type Notified struct {
	// Epoch is the NotifyFrom of the firing notice sent (zero: none sent).
	Epoch  time.Time `json:"epoch,omitzero"`
	Firing time.Time `json:"firing,omitzero"` // when the firing notice was sent
	// Resolved is when the resolution was sent.
	Resolved time.Time `json:"resolved,omitzero"`
	// GaveUp says why the notifier gave up telling it (a permanent refusal, retries exhausted).
	GaveUp string `json:"gave_up,omitempty"`
}

// AlertWrite is the evaluator's changes of one evaluation, written in one transaction.
type AlertWrite struct {
	// Save are new episodes (ID 0, given one) and changed ones (by ID).
	Save []Alert
	// Delete are episodes to forget: pending ones whose condition went before they fired.
	Delete []int64
}

// AlertQuery selects resolved episodes, newest resolution first.
type AlertQuery struct {
	Run    uint32 // 0: any run
	Before int64  // episodes with a smaller ID, for paging; 0: no bound
	Limit  int    // 0: the store's default (100)
}

// Matcher is one label matcher of a silence: Op is "=", "!=", "=~" or "!~" (a regular expression that
// must match the whole value).
type Matcher struct {
	Name  string `json:"name"`
	Op    string `json:"op"`
	Value string `json:"value"`
}

// Silence keeps the alerts whose labels all its matchers match from notifying between Starts and Ends.
type Silence struct {
	ID       int64     `json:"id"`
	Matchers []Matcher `json:"matchers"`
	Author   string    `json:"author"`
	Reason   string    `json:"reason"`
	Starts   time.Time `json:"starts_at"`
	Ends     time.Time `json:"ends_at"`
	Created  time.Time `json:"created_at"`
	// ExpiredBy names who ended it before its time; empty while it runs its course.
	ExpiredBy string `json:"expired_by,omitempty"`
}

// SilenceQuery selects silences, newest first.
type SilenceQuery struct {
	// ActiveAt keeps the silences in force at that time (Starts <= t < Ends); zero: any.
	ActiveAt time.Time
	// NotEndedAt keeps the silences that end after that time (in force or still to come); zero: any.
	NotEndedAt time.Time
	Limit      int // 0: the store's default (100)
}

// AlertStore is what the alert evaluator keeps. Part of Store.
type AlertStore interface {
	// LiveAlerts returns the episodes not resolved, and the resolved ones some notifier is still owed
	// (Owed), oldest first. It reads an index of those alone, so its cost does not grow with history.
	LiveAlerts(ctx context.Context) ([]Alert, error)
	// SaveAlerts writes an evaluation's changes in one transaction and returns the saved episodes with
	// their IDs. A second unresolved episode of one fingerprint is apperr.Conflict and writes nothing.
	SaveAlerts(ctx context.Context, w AlertWrite) ([]Alert, error)
	// AlertHistory returns resolved episodes, newest first.
	AlertHistory(ctx context.Context, q AlertQuery) ([]Alert, error)

	// AddSilence stores a new silence (ID and Created are set) and its audit entry in one transaction.
	AddSilence(ctx context.Context, s Silence, audit AuditEntry) (Silence, error)
	// ExpireSilence ends a silence at `at` (its Ends moves there) and records who did, with its audit
	// entry, in one transaction. apperr.NotFound for an unknown silence, apperr.Conflict for one that
	// has already ended.
	ExpireSilence(ctx context.Context, id int64, at time.Time, actor string, audit AuditEntry) (Silence, error)
	// Silence returns one silence; apperr.NotFound if there is none.
	Silence(ctx context.Context, id int64) (Silence, error)
	// Silences returns the matching silences, newest first.
	Silences(ctx context.Context, q SilenceQuery) ([]Silence, error)

	// DeadLetters returns the outbox entries given up on that no later version of the same run has
	// replaced at the same target by being delivered, newest first.
	DeadLetters(ctx context.Context, limit int) ([]OutboxEntry, error)
}
