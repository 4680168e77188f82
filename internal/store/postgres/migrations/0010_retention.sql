-- Retention: the raw observations of a run released long ago are replaced by a summary (one row per
-- run, kept forever with its decisions, audit, milestones and final state). run_states.compacted marks
-- a compacted run; the partial index holds only the released runs not compacted yet, by stop time, so
-- that a compaction pass finds its candidates without reading the compacted history.
CREATE TABLE compactions (
    run          BIGINT  NOT NULL PRIMARY KEY,
    compacted    BIGINT  NOT NULL,
    observations BIGINT  NOT NULL,
    summary      TEXT    NOT NULL
);
ALTER TABLE run_states ADD COLUMN compacted BIGINT;
CREATE INDEX run_states_compactable ON run_states (stop, run)
    WHERE readiness = 'released' AND version > 0 AND compacted IS NULL AND stop IS NOT NULL;
