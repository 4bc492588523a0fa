-- name: parse_query
-- websearch_to_tsquery takes what people type (quotes, -word, or) and never
-- raises a syntax error. An empty result means the query had no words.
SELECT websearch_to_tsquery('simple', %(query)s)::text AS tsquery,
       websearch_to_tsquery('simple', %(query)s)::text = '' AS empty

-- name: search_messages
-- Highlights are HTML-escaped first, so <mark>…</mark> is the only markup, and
-- cut from an excerpt around the first match (tm_excerpt): long texts stay cheap.
-- Each hit's row is looked up on its own (LATERAL, OFFSET 0 keeps it a
-- subquery) by its key alone, (tenant_id, id), so the only plan is the primary key.
SELECT v.*, s.rank, s.is_current,
       ts_headline('simple',
                   replace(replace(replace(tm_excerpt(v.content, %(tsquery)s::tsquery, 4000),
                                           '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
                   %(tsquery)s::tsquery,
                   'StartSel=<mark>, StopSel=</mark>, MaxWords=30, MinWords=10, MaxFragments=2') AS highlight
FROM tm_search('message', %(chat_id)s, %(tsquery)s::tsquery, %(include_history)s, %(limit)s, %(offset)s) s
CROSS JOIN LATERAL (
    SELECT * FROM tm_message_versions_view v
    WHERE v.tenant_id = %(tenant_id)s AND v.id = s.ref_id
    OFFSET 0
) v
ORDER BY s.rank DESC, s.ref_id

-- name: search_files
SELECT f.*, s.rank,
       ts_headline('simple',
                   replace(replace(replace(
                       f.original_name || E'\n' || coalesce(f.ai_description || E'\n', '')
                       || tm_excerpt(coalesce(f.extracted_text, ''), %(tsquery)s::tsquery, 4000),
                       '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
                   %(tsquery)s::tsquery,
                   'StartSel=<mark>, StopSel=</mark>, MaxWords=30, MinWords=10, MaxFragments=2') AS highlight
FROM tm_search('file', %(chat_id)s, %(tsquery)s::tsquery, %(include_history)s, %(limit)s, %(offset)s) s
CROSS JOIN LATERAL (
    SELECT * FROM tm_files_view f
    WHERE f.tenant_id = %(tenant_id)s AND f.id = s.ref_id
    OFFSET 0
) f
ORDER BY s.rank DESC, s.ref_id

-- name: search_plan
SELECT tm_search_plan('message', %(chat_id)s, websearch_to_tsquery('simple', %(query)s), %(include_history)s, 20, 0)
    AS line
