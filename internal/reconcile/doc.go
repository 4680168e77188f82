// Package reconcile derives, for one run, every PCL workflow's state, flags, quality and milestones, and
// the run's readiness, from the observations the spies made. It is level-based, like a Kubernetes
// controller: the answer depends only on (observations, catalogue, policy, source freshness, now), never
// on the order in which facts arrived or on what was decided before. It does no I/O.
//
// The rules, in the words of design.md:
//   - A workflow is expected for a run when one of its express streams ran with its AlCaReco producer in
//     the stream's alca_skim; otherwise it is not-expected. Runs shorter than the policy's minimum length
//     expect nothing.
//   - A run's payload is matched in the condition DB by payload hash: the workflow is in-db when, in every
//     destination tag, the winning IOV at some since (newest insertion wins) carries a payload harvested for
//     this run and was inserted after the harvest. Without hashes, the since is used instead.
//   - Absence is only evidence when the source that would show the thing was read after the moment it
//     would have appeared: no-payload needs the harvest area scanned after the stream was done. A
//     workflow with several inputs is as far as its least advanced input, and one input that never came
//     makes it no-payload: that input's destination tags lack the run's payload.
//   - No run is ready while a required workflow is not in an ok terminal state, unless its deadline passed
//     under a release-on-timeout policy or an operator forced it.
package reconcile
