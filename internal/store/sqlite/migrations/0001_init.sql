-- Spy Agency's embedded store, first schema.
--
-- Times are INTEGER nanoseconds since the Unix epoch (UTC): exact, compact, and ordered by plain integer
-- comparison, which the range filters rely on. NULL means "no time" (Go's zero time.Time).

-- One row per fact (pcl.Observation.Key). The JSON body is the observation itself; the other columns are
-- copies of the fields the queries filter on.
CREATE TABLE observations (
    key     TEXT    NOT NULL PRIMARY KEY,
    run     INTEGER NOT NULL,
    source  TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    seen    INTEGER,
    tag     TEXT    NOT NULL DEFAULT '',
    payload TEXT    NOT NULL DEFAULT '', -- the payload hash, for IOV observations only
    body    TEXT    NOT NULL
);
-- The reconcile reads all observations of a run, in time order.
CREATE INDEX observations_run ON observations (run, at);
-- Partial indexes: most observations carry neither a payload nor a tag, so these stay small.
CREATE INDEX observations_payload ON observations (payload) WHERE payload <> '';
CREATE INDEX observations_tag ON observations (tag) WHERE tag <> '';
CREATE INDEX observations_kind ON observations (kind, at);
CREATE INDEX observations_seen ON observations (seen) WHERE seen IS NOT NULL;

-- Every decision version of every run; (run, version) is the optimistic-concurrency key.
CREATE TABLE decisions (
    run      INTEGER NOT NULL,
    version  INTEGER NOT NULL CHECK (version >= 1),
    state    TEXT    NOT NULL,
    decided  INTEGER NOT NULL,
    body     TEXT    NOT NULL,
    PRIMARY KEY (run, version)
) WITHOUT ROWID;

-- The derived state of each run, with its latest decision copied in (body) and the filtered fields
-- copied out.
CREATE TABLE run_states (
    run       INTEGER NOT NULL PRIMARY KEY,
    class     TEXT    NOT NULL DEFAULT '',
    readiness TEXT    NOT NULL DEFAULT '',
    version   INTEGER NOT NULL DEFAULT 0,
    next_wake INTEGER,
    stop      INTEGER,
    body      TEXT    NOT NULL
);
CREATE INDEX run_states_wake ON run_states (next_wake, run) WHERE next_wake IS NOT NULL;
CREATE INDEX run_states_class ON run_states (class, run);
CREATE INDEX run_states_readiness ON run_states (readiness, run);

-- The transactional outbox: one row per decision and push target.
CREATE TABLE outbox (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    target       TEXT    NOT NULL,
    run          INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    payload      BLOB,
    created      INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_attempt INTEGER,
    last_error   TEXT    NOT NULL DEFAULT '',
    delivered    INTEGER,
    dead         INTEGER NOT NULL DEFAULT 0,
    UNIQUE (target, run, version),
    FOREIGN KEY (run, version) REFERENCES decisions (run, version)
);
CREATE INDEX outbox_pending ON outbox (target, run, version) WHERE delivered IS NULL AND dead = 0;

CREATE TABLE audit (
    id     INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    run    INTEGER NOT NULL DEFAULT 0,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    detail TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at, id);
CREATE INDEX audit_run ON audit (run, at) WHERE run <> 0;

CREATE TABLE cursors (
    name    TEXT    NOT NULL PRIMARY KEY,
    value   TEXT    NOT NULL,
    updated INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE settings (
    key     TEXT    NOT NULL PRIMARY KEY,
    value   TEXT    NOT NULL,
    updated INTEGER NOT NULL
) WITHOUT ROWID;
