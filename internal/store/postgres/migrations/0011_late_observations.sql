-- Late facts: an observation delivered for a run whose raw observations were compacted is not stored
-- raw. Its identity (run, key: 16 bytes) is kept, so a fact delivered again is counted once, and the
-- compaction counts the distinct late facts.
ALTER TABLE compactions ADD COLUMN late_observations BIGINT NOT NULL DEFAULT 0;
CREATE TABLE late_observations (
    run BIGINT NOT NULL,
    key BYTEA  NOT NULL,
    PRIMARY KEY (run, key)
);
