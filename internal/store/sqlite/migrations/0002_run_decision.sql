-- The run's current decision, apart from the whole state, so that summary reads (Tier-0's pull API, the
-- board's header) decode a few hundred bytes per run instead of every workflow's story. Rows written
-- before this migration have '' and are read from body instead.
ALTER TABLE run_states ADD COLUMN decision TEXT NOT NULL DEFAULT '';
