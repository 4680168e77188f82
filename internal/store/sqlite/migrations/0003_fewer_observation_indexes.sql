-- Every index is written on every append, and appends are the store's hot path. Nothing reads
-- observations by tag or by the time a spy saw them, and reads by kind always name runs too (the agency
-- reads by run and by payload hash), so these three indexes only cost: the filters still work, by
-- scanning what the run index selects.
DROP INDEX IF EXISTS observations_tag;
DROP INDEX IF EXISTS observations_seen;
DROP INDEX IF EXISTS observations_kind;
