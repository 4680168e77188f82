-- Spy Agency's PostgreSQL store, first schema: the SQLite store's tables as they stand after its
-- migration 0008, in PostgreSQL's types. The versions here count this store's own steps; they are not
-- the SQLite store's.
--
-- Times are BIGINT nanoseconds since the Unix epoch (UTC), as in the SQLite store: exact to the
-- nanosecond (timestamptz keeps microseconds, and the suite compares times exactly) and ordered by
-- integer comparison. NULL means "no time" (Go's zero time.Time). Text that is sorted or matched by
-- pattern is COLLATE "C", so that orders and matches are by bytes, as SQLite's are, whatever the
-- database's locale.

-- Counters handed out under a row lock (see AppendObservations): the observations' Seq.
CREATE TABLE counters (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('observations', 0);

-- One row per fact; (run, key) is its identity, the key its 16 bytes (pcl.Observation.KeySum). seq is
-- the fact's Seq. The JSON body is the observation itself; the other columns copy what queries filter on.
CREATE TABLE observations (
    seq     BIGINT  NOT NULL PRIMARY KEY CHECK (seq > 0),
    run     BIGINT  NOT NULL,
    key     BYTEA   NOT NULL CHECK (length(key) = 16),
    source  TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    at      BIGINT  NOT NULL,
    seen    BIGINT,
    tag     TEXT    NOT NULL DEFAULT '',
    payload TEXT    NOT NULL DEFAULT '', -- the payload hash, for IOV observations only
    body    TEXT    NOT NULL,
    UNIQUE (run, key)
);
-- The agency finds the IOVs that carry a run's harvested payloads by hash.
CREATE INDEX observations_payload ON observations (payload) WHERE payload <> '';

-- Every decision version of every run; (run, version) is the optimistic-concurrency key.
CREATE TABLE decisions (
    run      BIGINT NOT NULL,
    version  BIGINT NOT NULL CHECK (version >= 1),
    state    TEXT   NOT NULL,
    decided  BIGINT NOT NULL,
    body     TEXT   NOT NULL,
    PRIMARY KEY (run, version)
);

-- The derived state of each run, with its latest decision copied in (body, decision) and the filtered
-- fields copied out.
CREATE TABLE run_states (
    run       BIGINT NOT NULL PRIMARY KEY,
    class     TEXT   COLLATE "C" NOT NULL DEFAULT '',
    readiness TEXT   NOT NULL DEFAULT '',
    version   BIGINT NOT NULL DEFAULT 0,
    next_wake BIGINT,
    stop      BIGINT,
    body      TEXT   NOT NULL,
    decision  TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX run_states_wake ON run_states (next_wake, run) WHERE next_wake IS NOT NULL;
CREATE INDEX run_states_class ON run_states (class, run);
CREATE INDEX run_states_readiness ON run_states (readiness, run);

-- The transactional outbox: one row per decision and push target.
CREATE TABLE outbox (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target       TEXT    NOT NULL,
    run          BIGINT  NOT NULL,
    version      BIGINT  NOT NULL,
    payload      BYTEA,
    created      BIGINT  NOT NULL,
    next_attempt BIGINT  NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_attempt BIGINT,
    last_error   TEXT    NOT NULL DEFAULT '',
    delivered    BIGINT,
    dead         BOOLEAN NOT NULL DEFAULT false,
    UNIQUE (target, run, version),
    FOREIGN KEY (run, version) REFERENCES decisions (run, version)
);
CREATE INDEX outbox_pending ON outbox (target, run, version) WHERE delivered IS NULL AND NOT dead;
CREATE INDEX outbox_dead ON outbox (target, run, version) WHERE dead;

CREATE TABLE audit (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     BIGINT NOT NULL,
    run    BIGINT NOT NULL DEFAULT 0,
    actor  TEXT   NOT NULL,
    action TEXT   NOT NULL,
    detail TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at, id);
CREATE INDEX audit_run ON audit (run, at) WHERE run <> 0;

-- A spy's cursor and the time of the view of its source that the last stored poll read.
CREATE TABLE cursors (
    name    TEXT   NOT NULL PRIMARY KEY,
    value   TEXT   NOT NULL,
    view    BIGINT,
    updated BIGINT NOT NULL
);

CREATE TABLE settings (
    key     TEXT   NOT NULL PRIMARY KEY,
    value   TEXT   NOT NULL,
    updated BIGINT NOT NULL
);

-- Alerts: one row per episode; the body is the store.Alert as JSON.
CREATE TABLE alerts (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    run         BIGINT  NOT NULL DEFAULT 0,
    live        BOOLEAN NOT NULL, -- not resolved, or a notifier is still owed
    body        TEXT    NOT NULL
);
CREATE UNIQUE INDEX alerts_open ON alerts (fingerprint) WHERE state <> 'resolved';
CREATE INDEX alerts_live ON alerts (id) WHERE live;
CREATE INDEX alerts_history ON alerts (id) WHERE state = 'resolved';
CREATE INDEX alerts_run ON alerts (run, id) WHERE run <> 0;

CREATE TABLE silences (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    starts  BIGINT NOT NULL,
    ends    BIGINT NOT NULL,
    created BIGINT NOT NULL,
    body    TEXT   NOT NULL
);
CREATE INDEX silences_ends ON silences (ends);

-- API tokens and login sessions: only hashes are kept.
CREATE TABLE api_tokens (
    hash      TEXT   NOT NULL PRIMARY KEY, -- hex SHA-256 of the token
    name      TEXT   COLLATE "C" NOT NULL,
    scope     TEXT   NOT NULL,
    created   BIGINT NOT NULL,
    expires   BIGINT,                      -- NULL: never
    last_used BIGINT,
    revoked   BIGINT                       -- NULL: live
);
-- One live token per name, so that `token revoke NAME` names one token; a revoked one stays listed.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked IS NULL;

CREATE TABLE sessions (
    hash     TEXT   NOT NULL PRIMARY KEY,  -- hex SHA-256 of the session identifier the cookie carries
    username TEXT   NOT NULL,
    role     TEXT   NOT NULL,
    created  BIGINT NOT NULL,
    expires  BIGINT NOT NULL,
    ended    BIGINT                        -- set by a logout
);
CREATE INDEX sessions_expires ON sessions (expires);
