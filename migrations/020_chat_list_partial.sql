-- The chat list's index (migrations/014) serves only the chat list.
--
-- Every write finds its chat by (tenant_id, chat_id). tm_chats_recent
-- (tenant_id, head_time, chat_id) can answer that too, by walking the
-- tenant's chats, and a planner whose statistics say the tenant has a
-- chat or two costs that walk like the primary key's lookup: a test run
-- saw save_message take it. A tenant that grew since the last ANALYZE would
-- then pay a walk over all its chats on every write. Partial on the chat
-- list's own condition (chats with a snapshot), the index is usable only by
-- a query that says so, which the key lookups do not.
DROP INDEX tm_chats_recent;
CREATE INDEX tm_chats_recent ON tm_chats (tenant_id, head_time DESC, chat_id DESC) WHERE head_version > 0;

-- A statement that must fail rather than commit a half (save_message runs
-- in an implicit transaction: whatever it wrote commits unless it fails).
-- Volatile: it is called for what it does, never folded or skipped.
CREATE FUNCTION tm_invariant(ok boolean, what text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'invariant broken: %', what USING ERRCODE = 'XX000';
    END IF;
    RETURN true;
END
$$;
GRANT EXECUTE ON FUNCTION tm_invariant(boolean, text) TO tm_app;
