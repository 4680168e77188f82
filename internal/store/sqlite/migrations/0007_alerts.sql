-- Alerts (internal/alert): one row per episode of an alert, from the first evaluation that found its
-- condition to its resolution; the resolved rows are the history. The body is the store.Alert as JSON;
-- the columns are copies of what the queries filter on.
CREATE TABLE alerts (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    run         INTEGER NOT NULL DEFAULT 0,
    live        INTEGER NOT NULL CHECK (live IN (0, 1)), -- not resolved, or a notifier is still owed
    body        TEXT    NOT NULL
);
-- At most one open episode per alert.
CREATE UNIQUE INDEX alerts_open ON alerts (fingerprint) WHERE state <> 'resolved';
-- Every evaluation reads the live episodes: an index of those alone keeps its cost flat however long
-- the history grows.
CREATE INDEX alerts_live ON alerts (id) WHERE live = 1;
-- The history, newest first, and a run's.
CREATE INDEX alerts_history ON alerts (id) WHERE state = 'resolved';
CREATE INDEX alerts_run ON alerts (run, id) WHERE run <> 0;

CREATE TABLE silences (
    id      INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    starts  INTEGER NOT NULL,
    ends    INTEGER NOT NULL,
    created INTEGER NOT NULL,
    body    TEXT    NOT NULL
);
-- Every evaluation reads the silences that have not ended: by their end, those are one range at the
-- index's top, whatever the number of silences that ended before.
CREATE INDEX silences_ends ON silences (ends);

-- The dead letters, which an alert lists until a later version of the same run is delivered at the
-- same target: a small index, since deliveries given up are rare.
CREATE INDEX outbox_dead ON outbox (target, run, version) WHERE dead = 1;
