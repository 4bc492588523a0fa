-- ImportChat (service/importer.py): a whole history in a few statements,
-- each taking every row of its table as one jsonb array. Row ids are new;
-- foreign keys between rows of one statement are checked at its end.

-- name: import_chat
-- The chat, already at its head; nothing when the id has history.
INSERT INTO tm_chats (tenant_id, chat_id, title, head_version, head_snapshot_id, head_time,
                      message_count, file_count, total_tokens, state_sum, next_position)
VALUES (%(tenant_id)s, %(chat_id)s, %(title)s, %(head_version)s, %(head_snapshot_id)s, %(head_time)s,
        %(message_count)s, %(file_count)s, %(total_tokens)s, %(state_sum)s, %(next_position)s)
ON CONFLICT (tenant_id, chat_id) DO NOTHING
RETURNING chat_id

-- name: import_snapshots
INSERT INTO tm_snapshots (
    id, tenant_id, chat_id, version, created_at, message_count, file_count, total_tokens, trigger,
    trigger_message_id, trigger_file_id, trigger_description, previous_snapshot_id,
    restored_from_snapshot_id, checksum, title, user_id, request_id)
SELECT s.id, %(tenant_id)s, %(chat_id)s, s.version, s.created_at, s.message_count, s.file_count,
       s.total_tokens, s.trigger, s.trigger_message_id, s.trigger_file_id, s.trigger_description,
       s.previous_snapshot_id, s.restored_from_snapshot_id, s.checksum, s.title, s.user_id, s.request_id
FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS s (id uuid, version bigint, created_at timestamptz, message_count bigint, file_count bigint,
          total_tokens bigint, trigger text, trigger_message_id uuid, trigger_file_id uuid,
          trigger_description text, previous_snapshot_id uuid, restored_from_snapshot_id uuid,
          checksum text, title text, user_id uuid, request_id text)

-- name: import_marker
-- The CHAT_IMPORTED snapshot after the imported ones: when, by whom, with which request.
INSERT INTO tm_snapshots (
    id, tenant_id, chat_id, version, created_at, message_count, file_count, total_tokens, trigger,
    trigger_description, previous_snapshot_id, checksum, title, user_id, request_id)
VALUES (%(id)s, %(tenant_id)s, %(chat_id)s, %(version)s,
        greatest(clock_timestamp(), %(last_time)s::timestamptz),
        %(message_count)s, %(file_count)s, %(total_tokens)s, 'chat_imported', %(description)s,
        %(previous_snapshot_id)s, %(checksum)s, %(title)s, %(user_id)s, %(request_id)s)
RETURNING *

-- name: import_message_versions
-- The versions, the search documents of the live ones, and the heads.
WITH staged AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS m (id uuid, message_id uuid, snapshot_id uuid, chat_version bigint, version bigint,
              position bigint, role text, content text, model_id text, metadata jsonb, tokens bigint,
              is_deleted boolean, edit_reason text, edited_by uuid, created_at timestamptz,
              original_created_at timestamptz, current boolean)
), version AS (
    INSERT INTO tm_message_versions (
        id, tenant_id, chat_id, message_id, snapshot_id, chat_version, version, position, role,
        content, model_id, metadata, tokens, is_deleted, edit_reason, edited_by, created_at,
        original_created_at)
    SELECT id, %(tenant_id)s, %(chat_id)s, message_id, snapshot_id, chat_version, version, position,
           role, content, model_id, metadata, tokens, is_deleted, edit_reason, edited_by, created_at,
           original_created_at
    FROM staged
)
INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document, is_current)
SELECT %(tenant_id)s, %(chat_id)s, 'message', id, tm_message_document(content), current
FROM staged WHERE NOT is_deleted

-- name: import_message_heads
INSERT INTO tm_messages (
    tenant_id, chat_id, message_id, position, current_version_id, version, is_deleted, tokens,
    element_hash, original_created_at)
SELECT %(tenant_id)s, %(chat_id)s, h.message_id, h.position, h.current_version_id, h.version,
       h.is_deleted, h.tokens, h.element_hash, h.original_created_at
FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS h (message_id uuid, position bigint, current_version_id uuid, version bigint,
          is_deleted boolean, tokens bigint, element_hash text, original_created_at timestamptz)

-- name: import_files
-- File versions point at the tenant's object for their bytes (tm_objects).
WITH staged AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS f (id uuid, message_id uuid, snapshot_id uuid, chat_version bigint, original_name text,
              display_name text, mime_type text, size_bytes bigint, checksum_sha256 text, version bigint,
              previous_version_id uuid, source text, extracted_text text, ai_description text,
              restored_from_id uuid, created_at timestamptz, current boolean)
), version AS (
    INSERT INTO tm_files (
        id, tenant_id, chat_id, message_id, snapshot_id, chat_version, original_name, display_name,
        mime_type, size_bytes, checksum_sha256, s3_bucket, s3_key, s3_version_id, preview_generated,
        version, previous_version_id, source, extracted_text, ai_description, restored_from_id,
        created_at)
    SELECT f.id, %(tenant_id)s, %(chat_id)s, f.message_id, f.snapshot_id, f.chat_version, f.original_name,
           f.display_name, f.mime_type, f.size_bytes, f.checksum_sha256, o.s3_bucket, o.s3_key,
           o.s3_version_id, false, f.version, f.previous_version_id, f.source, f.extracted_text,
           f.ai_description, f.restored_from_id, f.created_at
    FROM staged f
    JOIN tm_objects o ON o.tenant_id = %(tenant_id)s AND o.sha256 = f.checksum_sha256
)
INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document, is_current)
SELECT %(tenant_id)s, %(chat_id)s, 'file', id, tm_file_document(original_name, ai_description, extracted_text),
       current
FROM staged

-- name: import_file_deletions
INSERT INTO tm_file_deletions (id, tenant_id, chat_id, original_name, file_id, snapshot_id, chat_version, created_at)
SELECT d.id, %(tenant_id)s, %(chat_id)s, d.original_name, d.file_id, d.snapshot_id, d.chat_version, d.created_at
FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS d (id uuid, original_name text, file_id uuid, snapshot_id uuid, chat_version bigint, created_at timestamptz)

-- name: import_file_heads
INSERT INTO tm_file_heads (
    tenant_id, chat_id, original_name, current_file_id, version, is_deleted, element_hash, changed_at)
SELECT %(tenant_id)s, %(chat_id)s, h.original_name, h.current_file_id, h.version, h.is_deleted,
       h.element_hash, h.changed_at
FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS h (original_name text, current_file_id uuid, version bigint, is_deleted boolean,
          element_hash text, changed_at timestamptz)

-- name: import_restores
INSERT INTO tm_restores (
    id, tenant_id, chat_id, user_id, from_snapshot_id, to_snapshot_id, previous_snapshot_id, scope,
    message_ids, file_ids, range_first_id, range_last_id, messages_restored, files_restored, reason,
    created_at)
SELECT r.id, %(tenant_id)s, %(chat_id)s, r.user_id, r.from_snapshot_id, r.to_snapshot_id,
       r.previous_snapshot_id, r.scope, r.message_ids, r.file_ids, r.range_first_id, r.range_last_id,
       r.messages_restored, r.files_restored, r.reason, r.created_at
FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS r (id uuid, user_id uuid, from_snapshot_id uuid, to_snapshot_id uuid, previous_snapshot_id uuid,
          scope text, message_ids uuid[], file_ids uuid[], range_first_id uuid, range_last_id uuid,
          messages_restored bigint, files_restored bigint, reason text, created_at timestamptz)

-- name: import_head
-- The chat's head moves to the CHAT_IMPORTED snapshot; watchers hear of it.
UPDATE tm_chats
SET head_version = %(version)s, head_snapshot_id = %(snapshot_id)s, head_time = %(head_time)s,
    last_user_id = %(user_id)s
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
RETURNING pg_notify('tm_chat_events', tenant_id::text || '/' || chat_id::text)

-- name: objects_held
-- Which of these objects the tenant holds already (ImportChat need not receive them).
SELECT sha256, size_bytes FROM tm_objects
WHERE tenant_id = %(tenant_id)s AND sha256 = ANY(%(sha256s)s)

-- name: imported_counts
-- What an import wrote, for a retry's answer: everything before its CHAT_IMPORTED snapshot.
SELECT (SELECT count(*) FROM tm_message_versions
        WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND chat_version < %(version)s) AS message_versions,
       (SELECT count(*) FROM tm_files
        WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND chat_version < %(version)s) AS file_versions
