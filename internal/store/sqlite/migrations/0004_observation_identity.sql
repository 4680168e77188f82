-- A fact's identity becomes (run, key), with the key in its 16 binary bytes.
--
-- The key is a hash, so an index on it alone receives every append at a random place: a batch of a
-- thousand facts dirtied nearly every leaf of that index, and the commit wrote all of them to the WAL.
-- The run comes first in the new unique index, so a batch's facts, which are about the runs of the last
-- hours, land in a few neighbouring pages. The same index serves the reads, which always name runs (the
-- reconcile reads a run's facts and sorts them by time), so the (run, at) index goes. A key of 16 bytes
-- instead of 32 hexadecimal characters halves the index's entries. Both changes together doubled the
-- rate of a plain insert loop (docs/benchmarks.md).
CREATE TABLE observations_v4 (
    run     INTEGER NOT NULL,
    key     BLOB    NOT NULL CHECK (length(key) = 16),
    source  TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    seen    INTEGER,
    tag     TEXT    NOT NULL DEFAULT '',
    payload TEXT    NOT NULL DEFAULT '', -- the payload hash, for IOV observations only
    body    TEXT    NOT NULL,
    UNIQUE (run, key)
);
-- unhex gives NULL for anything that is not hexadecimal, which NOT NULL refuses: a damaged key stops
-- the migration, and its transaction leaves the old table as it was.
INSERT INTO observations_v4 (run, key, source, kind, at, seen, tag, payload, body)
    SELECT run, unhex(key), source, kind, at, seen, tag, payload, body FROM observations ORDER BY rowid;
DROP TABLE observations;
ALTER TABLE observations_v4 RENAME TO observations;
-- The agency finds the IOVs that carry a run's harvested payloads by hash: their since may name a later
-- run (the Dropbox moves a since below the first condition-safe run up to it).
CREATE INDEX observations_payload ON observations (payload) WHERE payload <> '';
