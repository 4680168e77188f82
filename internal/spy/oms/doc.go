// Package oms spies on CMS OMS, the Online Monitoring System (cms-interfaces.md §7): its aggregation API
// lists runs as JSON:API documents. The agency learns from it when each run started and stopped, its fill,
// B field, lumisections, era, sequence, HLT key, fill type, stable beams and components, from which a
// configurable rule derives the run class that picks the policy. Runs are read incrementally by run number:
// the cursor is the highest run below which every run has stopped and settled (its last_update is old), so
// ongoing and freshly stopped runs are asked again until OMS stops changing them. Paging follows
// links.next, rebased onto the configured base URL so that a proxy's or an internal host name in the links
// never sends the spy elsewhere.
package oms
