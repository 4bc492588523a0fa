-- A chat title's checksum element computed in SQL (service/checksum.py's
-- title_element: none for an empty title), as migrations/012 computes a
-- message's, so that RenameChat's ordinary case can move the checksum from
-- the old title to the new one in the statement that writes the rename
-- (service/sql/history.sql, mark_chat). tests/test_checksum_sql.py holds it
-- to the Python definition.
CREATE FUNCTION tm_title_element(title text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN title = '' THEN repeat('0', 64)
        ELSE encode(sha256(convert_to(format('["title",%s]', to_json(title)), 'UTF8')), 'hex') END
$$;
GRANT EXECUTE ON FUNCTION tm_title_element(text) TO tm_app;
