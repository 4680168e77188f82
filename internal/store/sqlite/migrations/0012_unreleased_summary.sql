-- The pull API's read of the open runs' summaries (run, class, decision) from the index alone. The
-- decision column was added after body (0002), so SQLite reached it in a row only past the body's
-- overflow pages (a state is about 10 KB): a few pages read per open run on every first_unready_run.
-- readiness and version are in the index so that the query's condition needs no row either. The index
-- holds the unreleased runs only, as before: it follows the open work, not the history.
DROP INDEX run_states_unreleased;
CREATE INDEX run_states_unreleased ON run_states (run, class, decision, readiness, version)
    WHERE readiness != 'released' OR version <= 0;
