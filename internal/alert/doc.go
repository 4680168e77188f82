// Package alert raises the alerts of Spy Agency: rules over the agency's state and the store, an
// evaluator that keeps each alert's state, silences, and notifiers behind a one-method interface.
//
// The flow of one evaluation: a Snapshot of what the rules look at (the open runs' derived states, the
// spies' health, the dead letters of the outbox, the store's disk, the notifiers' health) → the rules,
// pure functions of it, say what is true now (Findings) → advance moves each alert along pending →
// firing → resolved with its rule's `for` and keep-firing durations, keeps an alert whose input source
// is stale from resolving, applies silences and inhibitions → the changes are persisted → the
// dispatcher tells each notifier what it is owed, group by group, and records what it told, so that a
// restart neither forgets a firing alert nor notifies it twice.
//
// docs/alerts.md is the runbook of every rule; the server serves the same text (Runbook) so that the
// links the alerts carry always point at the rules the binary runs.
package alert
