-- The replicas sharing the database: each one's row says it was alive until expires (Unix
-- nanoseconds), renewed with the leader lease; GET /api/v1/cluster lists the rows not expired.
-- Version 9, not 3: the numbers between are left to the store's own migrations (gaps are allowed).
CREATE TABLE members (
    id      TEXT   NOT NULL PRIMARY KEY,
    expires BIGINT NOT NULL
);
