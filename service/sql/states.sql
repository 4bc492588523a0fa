-- The chat's messages and files as they were at a version.
--
-- Each query reads one table, bounded by (tenant_id, chat_id), in one pass in
-- key order, and joins nothing: whatever the planner believes about a chat's
-- size, no plan is worse than linear in the chat (migrations/007 says why).
-- What a version's later rows say about it (still current? superseded when?)
-- comes from its neighbours in that order, through window functions.

-- name: message_entries_at_version
-- The chat at version N, in chat order after a position (0: from the start),
-- `limit` messages (NULL: all); tombstones too when `with_deleted`. A message's
-- versions are adjacent in (position, version) order, so its state at N is the
-- version written at or before N whose successor (if any) came after N.
-- Rows as an answer carries them (service/models.py, MessageEntry): ids as
-- text and times as microseconds since the epoch, which the driver loads at
-- a third of the cost of UUIDs and datetimes.
SELECT id::text AS id, chat_id::text AS chat_id, message_id::text AS message_id,
       snapshot_id::text AS snapshot_id, chat_version, version, position, role, content, model_id, metadata,
       tokens, is_deleted, edit_reason, edited_by::text AS edited_by,
       (extract(epoch FROM created_at) * 1000000)::bigint AS created_us,
       (extract(epoch FROM original_created_at) * 1000000)::bigint AS original_created_us,
       next_chat_version IS NULL AS is_active, (extract(epoch FROM superseded_at) * 1000000)::bigint AS superseded_us
FROM (
    SELECT v.*, lead(v.chat_version) OVER w AS next_chat_version, lead(v.created_at) OVER w AS superseded_at
    FROM tm_message_versions v
    WHERE v.tenant_id = %(tenant_id)s AND v.chat_id = %(chat_id)s AND v.position > %(after_position)s
    WINDOW w AS (PARTITION BY v.position ORDER BY v.version)
) v
WHERE v.chat_version <= %(version)s
  AND (v.next_chat_version IS NULL OR v.next_chat_version > %(version)s)
  AND (%(with_deleted)s OR NOT v.is_deleted)
ORDER BY v.position
LIMIT %(limit)s

-- name: restore_message_plan
-- Every message of the chat as it is now and as it was at version N, for a
-- restore (`existed` false for one born after N). Two streams in chat order,
-- each read by (tenant, chat): the heads, which know the current version's
-- id, tokens and checksum element, and each message's last version up to N.
-- A window pairs them by position: no join, so no plan is worse than linear in
-- the chat. The current version itself is read by its primary key, and only
-- where the pairing needs it (a restored message whose text is the same, or
-- a tombstone taking the current role). Content stays here: the caller
-- learns whether the two states are the same and the checksum elements of
-- the versions that differ (migrations/012), and the write copies content and
-- metadata by version id.
SELECT p.message_id, p.position, p.now_id, p.now_version, p.now_deleted, p.now_tokens,
       n.role AS now_role, n.model_id AS now_model_id, p.original_created_at, p.existed, p.target_id,
       p.target_deleted, p.role, p.model_id, p.tokens, u.unchanged,
       CASE WHEN NOT u.unchanged AND NOT p.now_deleted THEN p.now_element END AS now_element,
       CASE WHEN NOT u.unchanged AND p.alive THEN p.target_element END AS target_element
FROM (
    SELECT p.*, p.existed AND NOT p.target_deleted AS alive,
           CASE WHEN p.existed AND NOT p.target_deleted AND p.target_id <> p.now_id
                THEN tm_message_element(p.message_id, p.position, p.role, p.content) END AS target_element
    FROM (
        SELECT p.*, p.target_id IS NOT NULL AS existed
        FROM (
            SELECT p.side, p.message_id, p.position, p.now_id, p.now_version, p.now_deleted, p.now_tokens,
                   p.now_element, p.original_created_at,
                   lead(p.target_id) OVER w AS target_id, coalesce(lead(p.target_deleted) OVER w, false)
                   AS target_deleted, lead(p.role) OVER w AS role, lead(p.content) OVER w AS content,
                   lead(p.model_id) OVER w AS model_id, lead(p.metadata) OVER w AS metadata,
                   lead(p.tokens) OVER w AS tokens
            FROM (
                SELECT 0 AS side, h.message_id, h.position, h.current_version_id AS now_id, h.version AS now_version,
                       h.is_deleted AS now_deleted, h.tokens AS now_tokens, h.element_hash AS now_element,
                       h.original_created_at, NULL::uuid AS target_id, NULL::boolean AS target_deleted,
                       NULL::text AS role, NULL::text AS content, NULL::text AS model_id, NULL::jsonb AS metadata,
                       NULL::bigint AS tokens
                FROM tm_messages h
                WHERE h.tenant_id = %(tenant_id)s AND h.chat_id = %(chat_id)s
                UNION ALL
                (SELECT DISTINCT ON (v.position) 1, v.message_id, v.position, NULL, NULL, NULL, NULL, NULL, NULL,
                       v.id, v.is_deleted, v.role, v.content, v.model_id, v.metadata, v.tokens
                FROM tm_message_versions v
                WHERE v.tenant_id = %(tenant_id)s AND v.chat_id = %(chat_id)s AND v.chat_version <= %(version)s
                 ORDER BY v.position, v.version DESC)
            ) p
            WINDOW w AS (PARTITION BY p.position ORDER BY p.side)
        ) p
        WHERE p.side = 0
    ) p
    OFFSET 0  -- kept a subquery: pulled up, each use of target_element would hash the content again
) p
LEFT JOIN LATERAL (  -- the current version's fields, by its key, for the rows that need them
    SELECT v.role, v.model_id, v.metadata FROM tm_message_versions v
    WHERE v.tenant_id = %(tenant_id)s AND v.id = p.now_id
      AND NOT p.now_deleted AND (NOT p.alive OR p.target_element = p.now_element)
    LIMIT 1
) n ON true
CROSS JOIN LATERAL (  -- alive then and now with the same fields: nothing to restore
    SELECT p.alive AND NOT p.now_deleted
           AND (p.target_id = p.now_id
                OR coalesce((p.target_element, p.tokens, p.model_id, p.metadata)
                            = (p.now_element, p.now_tokens, n.model_id, n.metadata), false)) AS unchanged
) u
ORDER BY p.position

-- name: message_versions
-- One message's versions, newest first, below `before_version`, at most
-- `limit` (NULL: all); only the one chat version `chat_version` wrote when set.
SELECT id, tenant_id, chat_id, message_id, snapshot_id, chat_version, version, position, role, content,
       model_id, metadata, tokens, is_deleted, edit_reason, edited_by, created_at, original_created_at,
       next_id IS NULL AS is_active, superseded_at
FROM (
    SELECT v.*, lead(v.id) OVER w AS next_id, lead(v.created_at) OVER w AS superseded_at
    FROM tm_message_versions v
    WHERE v.tenant_id = %(tenant_id)s AND v.chat_id = %(chat_id)s AND v.message_id = %(message_id)s
    WINDOW w AS (ORDER BY v.version)
) v
WHERE v.version < %(before_version)s
  AND (%(chat_version)s::bigint IS NULL OR v.chat_version = %(chat_version)s)
ORDER BY v.version DESC
LIMIT %(limit)s

-- name: current_message_version
-- The version a message head names as current. Every column of every index
-- is bound, so whatever index the planner takes, it is a point lookup.
SELECT id, tenant_id, chat_id, message_id, snapshot_id, chat_version, version, position, role, content,
       model_id, metadata, tokens, is_deleted, edit_reason, edited_by, created_at, original_created_at,
       true AS is_active, NULL::timestamptz AS superseded_at
FROM tm_message_versions
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND id = %(id)s AND message_id = %(message_id)s
  AND position = %(position)s AND version = %(version)s

-- name: file_versions_at_version
-- File versions written at or before version N (of one name, or of all when
-- `original_name` is NULL), in name and version order; only each name's latest
-- at N when `latest_only`. Each row says when its name's next version came
-- (NULL: none yet) and how many versions the name has; deletions are a table
-- of their own (file_deletions) and are applied by the caller. extracted_text
-- (up to 400 KB a file) only `with_text`.
SELECT id, tenant_id, chat_id, message_id, snapshot_id, chat_version, original_name, display_name,
       mime_type, size_bytes, checksum_sha256, s3_bucket, s3_key, s3_version_id, thumbnail_s3_key,
       thumbnail_version_id, preview_generated, version, previous_version_id, source,
       CASE WHEN %(with_text)s THEN extracted_text END AS extracted_text,
       ai_description, restored_from_id, created_at, next_version_at, version_count
FROM (
    SELECT f.*, lead(f.chat_version) OVER w AS next_chat_version, lead(f.created_at) OVER w AS next_version_at,
           count(*) OVER (PARTITION BY f.original_name) AS version_count
    FROM tm_files f
    WHERE f.tenant_id = %(tenant_id)s AND f.chat_id = %(chat_id)s
      AND (%(original_name)s::text IS NULL OR f.original_name = %(original_name)s)
    WINDOW w AS (PARTITION BY f.original_name ORDER BY f.version)
) f
WHERE f.chat_version <= %(version)s
  AND (NOT %(latest_only)s OR f.next_chat_version IS NULL OR f.next_chat_version > %(version)s)
ORDER BY f.original_name, f.version

-- name: file_deletions
-- The chat's file tombstones (of one name, or of all when `original_name` is NULL).
SELECT original_name, chat_version, created_at
FROM tm_file_deletions
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
  AND (%(original_name)s::text IS NULL OR original_name = %(original_name)s)
ORDER BY original_name, chat_version

-- name: message_changes
-- How the chat's messages differ from version `from` to version `to`, in chat
-- order after a position, `limit` rows (NULL: all). Each message's states at
-- both versions (the live version in view then, if any) sit side by side in
-- its partition: one state only is an addition ('added') or a removal
-- ('removed'); two that differ in role or content are an edit, one row per
-- side ('before', then 'after'). Each row is a MessageEntry (as in
-- message_entries_at_version), then its change.
SELECT id::text AS id, chat_id::text AS chat_id, message_id::text AS message_id,
       snapshot_id::text AS snapshot_id, chat_version, version, position, role, content, model_id, metadata,
       tokens, is_deleted, edit_reason, edited_by::text AS edited_by,
       (extract(epoch FROM created_at) * 1000000)::bigint AS created_us,
       (extract(epoch FROM original_created_at) * 1000000)::bigint AS original_created_us,
       is_active AS is_active, (extract(epoch FROM superseded_at) * 1000000)::bigint AS superseded_us,
       change
FROM (
    SELECT s.*,
           CASE
               WHEN s.states = 1 AND s.at_from AND NOT s.at_to THEN 'removed'
               WHEN s.states = 1 AND s.at_to AND NOT s.at_from THEN 'added'
               WHEN s.states = 2 AND (s.from_role, s.from_content) IS DISTINCT FROM (s.to_role, s.to_content)
                   THEN CASE WHEN s.at_from THEN 'before' ELSE 'after' END
           END AS change
    FROM (
        SELECT s.*,
               count(*) OVER p AS states,
               max(s.role) FILTER (WHERE s.at_from) OVER p AS from_role,
               max(s.role) FILTER (WHERE s.at_to) OVER p AS to_role,
               max(s.content) FILTER (WHERE s.at_from) OVER p AS from_content,
               max(s.content) FILTER (WHERE s.at_to) OVER p AS to_content
        FROM (
            SELECT v.*, next_chat_version IS NULL AS is_active,
                   v.chat_version <= %(from_version)s
                       AND (v.next_chat_version IS NULL OR v.next_chat_version > %(from_version)s) AS at_from,
                   v.chat_version <= %(to_version)s
                       AND (v.next_chat_version IS NULL OR v.next_chat_version > %(to_version)s) AS at_to
            FROM (
                SELECT v.*, lead(v.chat_version) OVER w AS next_chat_version,
                       lead(v.created_at) OVER w AS superseded_at
                FROM tm_message_versions v
                WHERE v.tenant_id = %(tenant_id)s AND v.chat_id = %(chat_id)s
                  AND v.position > %(after_position)s
                WINDOW w AS (PARTITION BY v.position ORDER BY v.version)
            ) v
        ) s
        WHERE (s.at_from OR s.at_to) AND NOT s.is_deleted
        WINDOW p AS (PARTITION BY s.position)
    ) s
) s
WHERE change IS NOT NULL
ORDER BY position, version
LIMIT %(limit)s
