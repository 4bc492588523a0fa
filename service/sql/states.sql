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
-- Every message of the chat as it was at version N and as it is now, for a
-- restore: a row per message that existed at N (its version then) and per
-- message born after N (its current version, `existed` false), each with the
-- fields of the message's current version (now_*). One pass over the chat's
-- versions in key order keeps each message's version at N and its current
-- one (at most two rows a message); a second window pairs them. No join, so
-- no plan is worse than linear in the chat. Content stays here: the caller
-- learns whether the two states are the same and the checksum elements of
-- the versions that differ (migrations/012), and the write copies content by
-- version id.
SELECT message_id, position, now_id, now_version, now_deleted, now_tokens, now_role, now_model_id,
       original_created_at, existed, id AS target_id, is_deleted AS target_deleted, role, model_id, metadata,
       tokens, unchanged,
       CASE WHEN NOT unchanged AND NOT now_deleted
            THEN tm_message_element(message_id, position, now_role, now_content) END AS now_element,
       CASE WHEN existed AND NOT unchanged AND NOT is_deleted
            THEN tm_message_element(message_id, position, role, content) END AS target_element
FROM (
    SELECT v.*,
           coalesce(v.existed AND NOT v.is_deleted AND NOT v.now_deleted
                    AND (v.role, v.content, v.model_id, v.tokens, v.metadata)
                        = (v.now_role, v.now_content, v.now_model_id, v.now_tokens, v.now_metadata),
                    false) AS unchanged
    FROM (
        SELECT v.*, v.first_chat_version <= %(version)s AS existed,
               row_number() OVER w AS nth,
               last_value(v.id) OVER rest AS now_id, last_value(v.version) OVER rest AS now_version,
               last_value(v.is_deleted) OVER rest AS now_deleted, last_value(v.tokens) OVER rest AS now_tokens,
               last_value(v.role) OVER rest AS now_role, last_value(v.model_id) OVER rest AS now_model_id,
               last_value(v.content) OVER rest AS now_content, last_value(v.metadata) OVER rest AS now_metadata
        FROM (
            SELECT v.id, v.message_id, v.position, v.version, v.chat_version, v.role, v.content, v.model_id,
                   v.metadata, v.tokens, v.is_deleted, v.original_created_at,
                   lead(v.chat_version) OVER w AS next_chat_version,
                   first_value(v.chat_version) OVER w AS first_chat_version
            FROM tm_message_versions v
            WHERE v.tenant_id = %(tenant_id)s AND v.chat_id = %(chat_id)s
            WINDOW w AS (PARTITION BY v.position ORDER BY v.version)
        ) v
        WHERE v.next_chat_version IS NULL  -- current
           OR (v.chat_version <= %(version)s AND v.next_chat_version > %(version)s)  -- at N, since replaced
        WINDOW w AS (PARTITION BY v.position ORDER BY v.version),
               rest AS (w ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)
    ) v
    WHERE v.nth = 1  -- the version at N, or the current one of a message born after N
) v
ORDER BY position

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
