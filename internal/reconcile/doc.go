// Package reconcile derives, for one run, every PCL workflow's state, flags, quality and milestones, and
// the run's readiness, from the observations the spies made. It is level-based, like a Kubernetes
// controller: the answer depends only on (observations, catalogue, policy, source views, now), never
// on the order in which facts arrived or on what was decided before. It does no I/O.
//
// The rules, in the words of design.md:
//   - A workflow is expected for a run when one of its express streams ran with its AlCaReco producer in
//     the stream's alca_skim; otherwise it is not-expected. Runs shorter than the policy's minimum length
//     expect nothing.
//   - A run's payload is matched in the condition DB by what PromptReco of the run reads: the IOV in
//     effect at the run. In a destination tag that gates PromptReco (synchronization pcl or prompt, or
//     not known yet; the catalogue can say otherwise) the winning IOV (newest insertion) at each since
//     the harvested file gives within the run must carry one of the run's payloads and have been inserted
//     after the harvest; a payload found only at a later run's since is not in the DB for this run, and
//     the reason says where it landed. In a tag that does not gate (hlt, express: the upload service
//     moves a since up to the next run those will process) the payload counts wherever it landed, and
//     such a tag is waited for only when none of the file's tags gates. Without hashes (no file
//     access), an IOV whose since points into the run and that was inserted after the stop counts.
//   - Absence is only evidence when the source that would show the thing was viewed after the moment it
//     would have appeared: no-payload needs a harvest-area view taken after the stream was done, and
//     until then the run waits for the harvest area (RunState.WaitsFor). A workflow with several inputs
//     is as far as its least advanced input, and one input that never came makes it no-payload.
//   - A required workflow in a bad final state (upload-failed, too-late, timed-out, a no-payload the
//     policy does not accept) makes the run blocked until its deadline: it needs a person.
//   - Milestones follow the loop (stop ≤ express-done ≤ harvested ≤ upload-sent ≤ uploaded ≤ in-db);
//     express-done is when the agency saw it, and any time bounded to keep the order is marked observed.
//   - Each final state and each decision cites the store's sequence numbers of the observations it rests
//     on (Evidence), so that the audit log can show why a run was released.
//   - The operator's override that stands is the newest one of its run (or of its workflow, for an
//     accept): the one stored last, by the store's sequence number, so that two made in the same
//     instant keep their order; observations that were never stored are ordered by time.
//   - No run is ready while a required workflow is not in an ok terminal state, unless its deadline passed
//     under a release-on-timeout policy or an operator forced it.
//
// A plain second implementation of these rules lives in reference_test.go, and the tests hold the fast
// one to it on random worlds.
package reconcile
