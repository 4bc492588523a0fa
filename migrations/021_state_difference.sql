-- The chat's checksum less one element (service/checksum.py's StateSum.remove:
-- the difference modulo 2**256), so that EditMessage's ordinary case can move
-- it from the message's old element to its new one in the statement that
-- writes the edit (service/sql/history.sql, edit_message), as save_message
-- adds one with tm_state_add (migrations/019). tests/test_checksum_sql.py
-- holds both to the Python definition.
--
-- Subtracting e modulo 2**256 is adding its two's complement, (not e) + 1;
-- `not e` of a hex string is each digit's complement to f.
CREATE FUNCTION tm_state_sub(state text, element text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT tm_state_add(
        tm_state_add(state, translate(element, '0123456789abcdefABCDEF', 'fedcba9876543210543210')),
        repeat('0', 63) || '1')
$$;
GRANT EXECUTE ON FUNCTION tm_state_sub(text, text) TO tm_app;
