-- Version 5: how many times events (and with them, perhaps, `users` rows) were deleted.
-- Every deletion of events bumps it under the head's row lock; an appender that remembers
-- which visitors already have a `users` row forgets them all when it reads a new count, so it
-- never skips the row of a visitor whose row a deletion took away.
ALTER TABLE log_head ADD COLUMN deletions BIGINT NOT NULL DEFAULT 0;
