-- Placeholder: version 6 is another branch's migration. Migrations are numbered without gaps, so this
-- branch holds the number with a statement that changes nothing; the other branch's file replaces it.
SELECT 1;
