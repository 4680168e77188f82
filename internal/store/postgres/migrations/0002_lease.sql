-- The leader lease of a replicated deployment: one row per lease (the agency's is 'leader'). Its holder
-- leads until expires (Unix nanoseconds); epoch counts the hand-overs, and is the fencing token every
-- leader-only write checks in its own transaction (see lease.go).
CREATE TABLE lease (
    name    TEXT   NOT NULL PRIMARY KEY,
    holder  TEXT   NOT NULL,
    expires BIGINT NOT NULL,
    epoch   BIGINT NOT NULL CHECK (epoch >= 1)
);
