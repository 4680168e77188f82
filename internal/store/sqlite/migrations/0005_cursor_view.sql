-- A spy's cursor carries the time of the view of its source that the last stored poll read (Unix
-- nanoseconds; NULL for none), so that what a source's freshness means survives a restart: without it
-- every conclusion from absence ("no harvest file after the stream was done") waited for the first
-- poll after each start, and ready runs were withdrawn and given back. Cursors written before this
-- migration have no view, which is the conservative answer: the next poll gives one.
ALTER TABLE cursors ADD COLUMN view INTEGER;
