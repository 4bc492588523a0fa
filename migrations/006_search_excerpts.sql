-- The part of a long text a search snippet is cut from.
--
-- ts_headline reads all of its input (about 0.1 s per MiB), so on a page of
-- hits in long messages it used to take most of a search's time (2.5 s for
-- 20 hits of 1 MiB). The excerpt is `width` characters starting a quarter of
-- a width before the first place one of the query's words occurs (lowercased
-- as the 'simple' configuration does), or the text's start; ts_headline then
-- highlights within it.
CREATE FUNCTION tm_excerpt(content text, query tsquery, width integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN length(content) <= width THEN content
        ELSE substr(content, greatest(1, coalesce(found.first, 1) - width / 4), width)
    END
    FROM (
        SELECT min(nullif(strpos(folded.text, replace(word[1], '''''', '''')), 0)) AS first
        FROM (SELECT lower(content) AS text) AS folded,
             regexp_matches(querytree(query), '''((?:[^'']|'''')+)''', 'g') AS word
    ) AS found
$$;
GRANT EXECUTE ON FUNCTION tm_excerpt(text, tsquery, integer) TO tm_app;
