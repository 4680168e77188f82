-- Late facts: an observation delivered for a run whose raw observations were compacted is not stored
-- raw. Its identity (run, key: 16 bytes) is kept, so a fact delivered again is counted once, and the
-- compaction counts the distinct late facts.
ALTER TABLE compactions ADD COLUMN late_observations INTEGER NOT NULL DEFAULT 0;
CREATE TABLE late_observations (
    run INTEGER NOT NULL,
    key BLOB    NOT NULL,
    PRIMARY KEY (run, key)
) WITHOUT ROWID;
