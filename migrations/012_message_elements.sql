-- What a restore needs to write versions without fetching their content.
--
-- service/checksum.py defines the element: SHA-256 of the JSON array
-- ["message", id, position, role, content] with no spaces and non-ASCII kept
-- as it is. PostgreSQL's to_json escapes text exactly as Python's json.dumps
-- does with ensure_ascii=False (quote, backslash, \b \f \n \r \t, other
-- control characters as lowercase \u00xx), so a restore can compute the
-- elements of the versions it brings back without fetching their content
-- (tests/test_checksum_sql.py holds the two definitions to each other).
CREATE FUNCTION tm_message_element(message_id uuid, chat_position bigint, role text, content text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT encode(sha256(convert_to(
        format('["message",%s,%s,%s,%s]', to_json($1::text), $2, to_json($3), to_json($4)),
        'UTF8')), 'hex')
$$;
GRANT EXECUTE ON FUNCTION tm_message_element(uuid, bigint, text, text) TO tm_app;

-- A restored version's search document is its source's, copied rather than
-- parsed again (2 KB of text takes ~0.2 ms to parse: 200 ms for a restore of
-- 1,000 messages). The service role cannot read tm_search_documents
-- (migrations/003 says why); this reads one document of its own tenant by
-- its version id, or parses `content` when there is none.
CREATE FUNCTION tm_copied_document(source uuid, content text) RETURNS tsvector
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT coalesce((SELECT d.document FROM tm_search_documents d WHERE d.tenant_id = tm_tenant() AND d.ref_id = $1),
                    tm_message_document($2))
$$;
REVOKE ALL ON FUNCTION tm_copied_document(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tm_copied_document(uuid, text) TO tm_app;
