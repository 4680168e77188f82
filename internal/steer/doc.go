// Package steer tells Tier-0 which runs may go to PromptReco, from the decisions the agency persisted.
//
// Two ways, and Tier-0 may use either or both (docs/tier0-integration.md is the contract):
//
//   - Pull: FirstUnreadyRun and ReadyRuns are pure functions of one snapshot of the run states and the
//     policy; PullHandlers serves them in Tier-0's own envelope ({"result": [...]}) for
//     GET /t0/v1/first_unready_run and GET /t0/v1/ready_runs.
//   - Push: a Pusher per target drains the transactional outbox (entries the agency wrote in the same
//     transaction as the decision) in run order, with retries, exponential backoff with jitter, and a dead
//     letter once a delivery is refused for good or has failed too often. Targets are a signed HTTP webhook
//     (Webhook) and an upsert into a table Tier-0 reads (SQLTarget).
//
// Delivery is at least once: a crash between delivering and recording the delivery makes the next pusher
// deliver the same (run, version) again. Receivers de-duplicate by the idempotency key "<run>:<version>"
// and apply a version only when it is newer than the one they hold, which also makes every redelivery and
// every delayed older version harmless.
package steer
