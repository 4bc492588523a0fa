-- Full-text search over every message version and file version.
--
-- Text-search configuration: 'simple' (lower-casing, no stemming, no stop
-- words). Chats mix languages; a language's stemmer mangles words of the
-- others, while 'simple' treats Latin, Greek, Cyrillic, Arabic … alike.
--
-- Why a separate table read through a SECURITY DEFINER function: under
-- row-level security the policy's qual is a security barrier, and the planner
-- may not evaluate a non-leakproof operator such as @@ before it, so an index
-- condition on @@ is impossible and search turns into a scan of the tenant's
-- rows. tm_search_documents therefore has RLS enabled but not forced; the
-- service role cannot read it directly (no SELECT grant) and searches through
-- tm_search(), which runs as the table owner and applies the tenant filter
-- itself (tenant_id = tm_tenant()), as an ordinary, index-friendly qual.

CREATE TABLE tm_search_documents (
    tenant_id          uuid     NOT NULL,
    chat_id            uuid     NOT NULL,
    kind               text     NOT NULL CHECK (kind IN ('message', 'file')),
    -- The message version or file version this document indexes.
    ref_id             uuid     NOT NULL,
    document           tsvector NOT NULL,
    PRIMARY KEY (ref_id)
);
CREATE INDEX tm_search_documents_text ON tm_search_documents USING gin (document);
CREATE INDEX tm_search_documents_chat ON tm_search_documents (tenant_id, chat_id);

-- One definition of what is searchable, used by the write path and the backfill.
CREATE FUNCTION tm_message_document(content text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT to_tsvector('simple', content) $$;

-- File names are split at punctuation too: the parser reads "budget-2026.csv"
-- as one host-name token, and people search for "budget".
CREATE FUNCTION tm_file_document(name text, description text, body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT setweight(to_tsvector('simple', name)
                     || to_tsvector('simple', regexp_replace(name, '[^[:alnum:]]+', ' ', 'g')), 'A')
        || setweight(to_tsvector('simple', coalesce(description, '')), 'B')
        || setweight(to_tsvector('simple', coalesce(body, '')), 'C')
$$;
GRANT EXECUTE ON FUNCTION tm_message_document(text), tm_file_document(text, text, text) TO tm_app;

SELECT tm_isolate('tm_search_documents', force => false);
-- The write path adds documents in its own transaction; it never reads them.
GRANT INSERT ON tm_search_documents TO tm_app;

-- Backfill what was written before search existed.
INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document)
SELECT tenant_id, chat_id, 'message', id, tm_message_document(content)
FROM tm_message_versions WHERE NOT is_deleted;
INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document)
SELECT tenant_id, chat_id, 'file', id, tm_file_document(original_name, ai_description, extracted_text)
FROM tm_files;

-- The search query, one text shared by tm_search() and tm_search_plan(), so
-- that what the tests EXPLAIN is exactly what runs. $1 kind, $2 chat (NULL:
-- every chat of the tenant), $3 query, $4 include history, $5 limit, $6 offset.
CREATE FUNCTION tm_search_sql() RETURNS text
LANGUAGE sql IMMUTABLE
AS $f$ SELECT $q$
    SELECT d.ref_id, ts_rank_cd(d.document, $3) AS rank
    FROM tm_search_documents d
    WHERE d.tenant_id = tm_tenant()
      AND d.kind = $1
      AND ($2::uuid IS NULL OR d.chat_id = $2)
      AND d.document @@ $3
      AND ($4 OR EXISTS (
            SELECT 1 FROM tm_messages m
            WHERE $1 = 'message' AND m.current_version_id = d.ref_id AND NOT m.is_deleted
              AND m.tenant_id = d.tenant_id AND m.chat_id = d.chat_id
            UNION ALL
            SELECT 1 FROM tm_file_heads h
            WHERE $1 = 'file' AND h.current_file_id = d.ref_id AND NOT h.is_deleted
              AND h.tenant_id = d.tenant_id AND h.chat_id = d.chat_id))
    ORDER BY rank DESC, d.ref_id
    LIMIT $5 OFFSET $6
$q$ $f$;

-- Matching message or file versions of the caller's tenant, best first.
CREATE FUNCTION tm_search(
    p_kind text, p_chat uuid, p_query tsquery, p_history boolean, p_limit integer, p_offset integer)
RETURNS TABLE (ref_id uuid, rank real)
LANGUAGE plpgsql STABLE SECURITY DEFINER
-- A page, not the default 1000 rows: the caller's joins then use the keys.
ROWS 20
SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN QUERY EXECUTE tm_search_sql() USING p_kind, p_chat, p_query, p_history, p_limit, p_offset;
END
$$;

-- The plan of that query, for the test that proves the index is used.
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
