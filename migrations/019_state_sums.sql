-- The chat's checksum moved by one element in SQL (service/checksum.py's
-- StateSum.add: the sum of 64-hex-digit SHA-256 values modulo 2**256), so
-- that SaveMessage's ordinary case can write in one statement that reads the
-- chat's head itself (service/sql/history.sql, save_message) rather than a
-- round trip to read it first. tests/test_checksum_sql.py holds it to the
-- Python definition.
CREATE FUNCTION tm_state_add(state text, element text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    word constant numeric := 18446744073709551616;  -- 2**64
    total numeric := 0;
    a bigint;
    b bigint;
    part numeric;
    result text := '';
BEGIN
    FOR i IN 0..3 LOOP  -- most significant 64 bits first; bit(64)::bigint is signed: a negative one is 2**64 less
        a := ('x' || substr(state, 16 * i + 1, 16))::bit(64)::bigint;
        b := ('x' || substr(element, 16 * i + 1, 16))::bit(64)::bigint;
        total := total * word + a + b + CASE WHEN a < 0 THEN word ELSE 0 END + CASE WHEN b < 0 THEN word ELSE 0 END;
    END LOOP;
    FOR i IN 0..3 LOOP  -- least significant first; the carry out of the top word is dropped (mod 2**256)
        part := mod(total, word);
        total := div(total, word);
        result := lpad(to_hex((CASE WHEN part >= word / 2 THEN part - word ELSE part END)::bigint), 16, '0') || result;
    END LOOP;
    RETURN result;
END
$$;
GRANT EXECUTE ON FUNCTION tm_state_add(text, text) TO tm_app;
