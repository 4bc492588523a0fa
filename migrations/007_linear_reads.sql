-- Reads that stay linear in the chat, whatever the planner believes.
--
-- A chat written a moment ago is not in the statistics yet, and the planner
-- then believes it has about one row. A join between two of a chat's row sets
-- (a message and its head, a version and the next one) may then run as a
-- nested loop whose inner side scans the whole chat (or the tenant) for every
-- outer row: quadratic, 10 s for 3,000 messages. So the reads of a chat are
-- now one table each, in one pass in key order (service/sql/states.sql), and
-- what used to be joined in is derived from neighbouring rows or kept where
-- the write already knows it:
--
-- * tm_message_versions gets an index in (position, version) order: a page of
--   the chat at any version is a range of it, each message's versions side by
--   side. It replaces the (chat_version) index, which only that read used;
--   the snapshot_id index had no reader left either.
-- * Search documents say whether they are current (is_current), set by the
--   write that supersedes them, so a search of current versions needs no
--   join with the heads (that join had no index on current_version_id).
-- * The two views keep their columns, computed per row from the row's own key
--   (scalar subqueries that bind every column of every index they could
--   use), for the lookups of a few rows that use them (by id, a page of
--   search hits); no chat-wide read uses them.
-- * The row policy is no longer an index condition. A tenant new to the
--   statistics is estimated at one row, so `tenant_id = tm_tenant()` made a
--   scan of the whole tenant look cheaper than a primary-key lookup (seen:
--   a search hit looked up by a scan of 27,000 rows). As `(...) IS TRUE` the
--   policy is checked on each row found, and a lookup by a row's own key,
--   which names no tenant, can only use that key. Queries that scan name
--   tenant_id and chat_id together, so every scan is bounded by one chat.

CREATE INDEX tm_message_versions_order ON tm_message_versions (tenant_id, chat_id, position, version);
DROP INDEX tm_message_versions_at;
DROP INDEX tm_message_versions_snapshot;

-- A lookup by a full key must not be answerable by a scan of the chat that
-- filters on the rest: with a chat believed to hold one row, that scan looks
-- cheaper than the exact lookup and runs once per looked-up row. So an index
-- led by (tenant_id, chat_id) ends with the row's key where lookups need it
-- (a search document is retired by its ref_id), and an index no read needs
-- any more goes (messages in chat order are read from the versions now).
DROP INDEX tm_search_documents_chat;
CREATE INDEX tm_search_documents_chat ON tm_search_documents (tenant_id, chat_id, ref_id);
DROP INDEX tm_messages_order;
DROP INDEX tm_files_at;

-- Policies: tables that exist now, and tm_isolate() for tables to come.
DO $$
DECLARE
    target regclass;
BEGIN
    FOR target IN SELECT format('%I', tablename)::regclass FROM pg_policies
                  WHERE policyname = 'tenant_isolation' AND schemaname = current_schema() LOOP
        EXECUTE format('ALTER POLICY tenant_isolation ON %s USING ((tenant_id = tm_tenant()) IS TRUE) '
                       'WITH CHECK ((tenant_id = tm_tenant()) IS TRUE)', target);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION tm_isolate(target regclass, force boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
    IF force THEN
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
    END IF;
    EXECUTE format('CREATE POLICY tenant_isolation ON %s USING ((tenant_id = tm_tenant()) IS TRUE) '
                   'WITH CHECK ((tenant_id = tm_tenant()) IS TRUE)', target);
END
$$;

ALTER TABLE tm_search_documents ADD COLUMN is_current boolean NOT NULL DEFAULT true;

-- The migrating user may be bound by FORCE ROW LEVEL SECURITY on the heads:
-- lift it for the backfill only.
ALTER TABLE tm_messages NO FORCE ROW LEVEL SECURITY;
ALTER TABLE tm_file_heads NO FORCE ROW LEVEL SECURITY;
UPDATE tm_search_documents d SET is_current = false
WHERE d.kind = 'message' AND NOT EXISTS (
    SELECT 1 FROM tm_messages m WHERE m.current_version_id = d.ref_id AND NOT m.is_deleted);
UPDATE tm_search_documents d SET is_current = false
WHERE d.kind = 'file' AND NOT EXISTS (
    SELECT 1 FROM tm_file_heads h WHERE h.current_file_id = d.ref_id AND NOT h.is_deleted);
ALTER TABLE tm_messages FORCE ROW LEVEL SECURITY;
ALTER TABLE tm_file_heads FORCE ROW LEVEL SECURITY;

-- The write that supersedes a version retires its document, and nothing else.
GRANT UPDATE (is_current) ON tm_search_documents TO tm_app;
-- UPDATE needs to read the rows it changes; the policy still binds the tenant.
GRANT SELECT (ref_id, tenant_id, chat_id, kind, is_current) ON tm_search_documents TO tm_app;

CREATE OR REPLACE VIEW tm_message_versions_view WITH (security_invoker = true) AS
SELECT mv.*,
       NOT EXISTS (SELECT 1 FROM tm_message_versions n
                   WHERE n.tenant_id = mv.tenant_id AND n.chat_id = mv.chat_id AND n.message_id = mv.message_id
                     AND n.position = mv.position AND n.version = mv.version + 1) AS is_active,
       (SELECT n.created_at FROM tm_message_versions n
        WHERE n.tenant_id = mv.tenant_id AND n.chat_id = mv.chat_id AND n.message_id = mv.message_id
          AND n.position = mv.position AND n.version = mv.version + 1) AS superseded_at
FROM tm_message_versions mv;

CREATE OR REPLACE VIEW tm_files_view WITH (security_invoker = true) AS
SELECT f.*,
       CASE WHEN later.next_at IS NOT NULL THEN 'archived'
            WHEN later.deleted_at IS NOT NULL THEN 'soft_deleted'
            ELSE 'active' END AS status,
       coalesce(later.next_at, later.deleted_at) AS archived_at,
       later.version_count
FROM tm_files f
CROSS JOIN LATERAL (
    SELECT (SELECT n.created_at FROM tm_files n
            WHERE n.tenant_id = f.tenant_id AND n.chat_id = f.chat_id
              AND n.original_name = f.original_name AND n.version = f.version + 1) AS next_at,
           (SELECT min(d.created_at) FROM tm_file_deletions d
            WHERE d.tenant_id = f.tenant_id AND d.chat_id = f.chat_id
              AND d.original_name = f.original_name AND d.chat_version > f.chat_version) AS deleted_at,
           (SELECT count(*) FROM tm_files c
            WHERE c.tenant_id = f.tenant_id AND c.chat_id = f.chat_id
              AND c.original_name = f.original_name) AS version_count
) later;

-- Search reads is_current from the document itself, and names each hit's
-- chat, so that the hit's row is looked up within its chat.
DROP FUNCTION tm_search(text, uuid, tsquery, boolean, integer, integer);
DROP FUNCTION tm_search_plan(text, uuid, tsquery, boolean, integer, integer);

CREATE OR REPLACE FUNCTION tm_search_sql() RETURNS text
LANGUAGE sql IMMUTABLE
AS $f$ SELECT $q$
    SELECT d.ref_id, d.chat_id, ts_rank_cd(d.document, $3) AS rank, d.is_current
    FROM tm_search_documents d
    WHERE d.tenant_id = tm_tenant()
      AND d.kind = $1
      AND ($2::uuid IS NULL OR d.chat_id = $2)
      AND d.document @@ $3
      AND ($4 OR d.is_current)
    ORDER BY rank DESC, d.ref_id
    LIMIT $5 OFFSET $6
$q$ $f$;

CREATE FUNCTION tm_search(
    p_kind text, p_chat uuid, p_query tsquery, p_history boolean, p_limit integer, p_offset integer)
RETURNS TABLE (ref_id uuid, chat_id uuid, rank real, is_current boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
-- A page, not the default 1000 rows: the caller's joins then use the keys.
ROWS 20
SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN QUERY EXECUTE tm_search_sql() USING p_kind, p_chat, p_query, p_history, p_limit, p_offset;
END
$$;

CREATE FUNCTION tm_search_plan(
    p_kind text, p_chat uuid, p_query tsquery, p_history boolean, p_limit integer, p_offset integer)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN QUERY EXECUTE 'EXPLAIN ' || tm_search_sql()
        USING p_kind, p_chat, p_query, p_history, p_limit, p_offset;
END
$$;

REVOKE ALL ON FUNCTION tm_search(text, uuid, tsquery, boolean, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION tm_search_plan(text, uuid, tsquery, boolean, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tm_search(text, uuid, tsquery, boolean, integer, integer) TO tm_app;
GRANT EXECUTE ON FUNCTION tm_search_plan(text, uuid, tsquery, boolean, integer, integer) TO tm_app;
