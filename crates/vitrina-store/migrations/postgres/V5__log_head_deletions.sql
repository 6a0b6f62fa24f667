-- Version 5: how many times `users` rows were deleted (or their ids changed, or the table
-- was truncated), kept by triggers on `users`, whichever code or person does it. An appender
-- that remembers which visitors already have a row reads the count under the head's row
-- lock and forgets them all when it moved, so it never skips the row of a visitor whose row
-- is gone (postgres/known_users.rs).
ALTER TABLE log_head ADD COLUMN deletions BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION users_rows_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM gone) THEN
        UPDATE log_head SET deletions = deletions + 1;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION users_rows_replaced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE log_head SET deletions = deletions + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER users_deleted AFTER DELETE ON users
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION users_rows_deleted();
CREATE TRIGGER users_truncated AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION users_rows_replaced();
CREATE TRIGGER users_renamed AFTER UPDATE OF id ON users
    FOR EACH STATEMENT EXECUTE FUNCTION users_rows_replaced();
