-- API tokens and login sessions get tables of their own (issue 15). Tokens lived in the settings table
-- as token/<hash> → JSON, which could neither list nor revoke them nor record when each was last used.
-- Only hashes are kept: the token, or the session's identifier, is what its holder presents, and a
-- copy of the store must not let anyone act.

CREATE TABLE api_tokens (
    hash      TEXT    NOT NULL PRIMARY KEY, -- hex SHA-256 of the token
    name      TEXT    NOT NULL,
    scope     TEXT    NOT NULL,
    created   INTEGER NOT NULL,
    expires   INTEGER,                      -- NULL: never
    last_used INTEGER,
    revoked   INTEGER                       -- NULL: live
) WITHOUT ROWID;
-- One live token per name, so that `token revoke NAME` names one token; a revoked one stays listed.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked IS NULL;

CREATE TABLE sessions (
    hash    TEXT    NOT NULL PRIMARY KEY,   -- hex SHA-256 of the session identifier the cookie carries
    user    TEXT    NOT NULL,
    role    TEXT    NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    ended   INTEGER                         -- set by a logout
) WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions (expires);

-- The tokens made before, moved over with their hash, so that every token in use keeps working. Names
-- were not unique then: the oldest keeps its name, a later one is renamed NAME-old-<first 8 hex of its
-- hash>, which `token list` shows and `token revoke` accepts.
INSERT INTO api_tokens (hash, name, scope, created, expires)
SELECT hash,
       CASE WHEN n = 1 THEN name ELSE name || '-old-' || substr(hash, 1, 8) END,
       scope, created, expires
FROM (
    SELECT substr(key, 7) AS hash,
           json_extract(value, '$.name') AS name,
           json_extract(value, '$.scope') AS scope,
           COALESCE(CAST(unixepoch(json_extract(value, '$.created'), 'subsec') * 1000000000 AS INTEGER), updated) AS created,
           CAST(unixepoch(json_extract(value, '$.expires'), 'subsec') * 1000000000 AS INTEGER) AS expires,
           row_number() OVER (PARTITION BY json_extract(value, '$.name')
                              ORDER BY json_extract(value, '$.created'), key) AS n
    FROM settings
    WHERE key LIKE 'token/%' AND json_valid(value)
      AND json_extract(value, '$.name') IS NOT NULL AND json_extract(value, '$.scope') IS NOT NULL
);
DELETE FROM settings WHERE key LIKE 'token/%';
