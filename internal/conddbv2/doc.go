// Package conddbv2 reads (and, for the simulator, writes) the CMS condition database in its CondDB v2
// schema (cms-interfaces.md §3): tags, IOVs and payloads. It is the library; the spy that polls a
// condition DB with it is internal/spy/conddb (source names are a contract, so the spy keeps the name).
//
// It speaks database/sql. The few SQL differences between engines (placeholders, quoting of upper-case
// identifiers, how timestamps are bound and read back, how the schema is listed) live in one Dialect
// value, so that PostgreSQL and later Oracle slot in without touching the queries. The SQLite dialect
// reads the real CMSSW-written files as they are: ULONGLONG sinces with -1 meaning infinity, timestamps
// stored as text with microseconds, and an extra coral_sqlite_fk table.
//
// Reading is read-only. The Writer exists for the simulator and tests: it makes files with exactly the
// tables and declared column types that CMSSW writes.
package conddbv2
