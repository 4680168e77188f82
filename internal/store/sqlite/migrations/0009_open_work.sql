-- Open work, apart from the released history: the runs whose decision is not a persisted release
-- (ReleaseView, OpenRunStates), and the released runs by stop time (OpenRunStates' recent releases).
-- The WHERE clauses are the queries' own, so that SQLite uses these partial indexes.
CREATE INDEX run_states_unreleased ON run_states (run) WHERE readiness != 'released' OR version <= 0;
CREATE INDEX run_states_released_stop ON run_states (stop) WHERE readiness = 'released' AND version > 0;
