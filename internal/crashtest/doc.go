// Package crashtest is the crash suite: it runs the real spyagency binary as a child process on a seeded
// simulated CMS (package sim, served from the test process on loopback), with a signed webhook push
// target that counts idempotency keys, kills it with SIGKILL at random moments and restarts it on the
// same store. At the end it checks what no crash may do: lose or double a decision version at the
// receiver, make a new decision by a restart alone (on a frozen world), leave a decision without its
// audit entry, damage the store, or release a run against the simulator's truth. TestCrashOnPostgres
// runs the same suite on a PostgreSQL store, where every restart is also a take-over of the leader
// lease from a killed replica.
//
// The package holds nothing but this comment and its tests. `go test ./...` runs it with 10 kills;
// `go test ./internal/crashtest -long -timeout 30m` with 200. docs/testing.md says what each check means
// and how to replay a failure (-seed).
package crashtest
