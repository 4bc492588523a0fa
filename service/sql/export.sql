-- name: export_versions
-- Every message version up to the exported snapshot, in chat order, so that
-- one streamed pass yields each message with its history.
SELECT id, message_id, position, version, chat_version, role, content, model_id, metadata, tokens,
       is_deleted, edit_reason, edited_by, created_at, original_created_at
FROM tm_message_versions
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND chat_version <= %(version)s
ORDER BY position, version

-- name: export_file_versions
SELECT * FROM tm_files_view
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND chat_version <= %(version)s
ORDER BY original_name, version

-- name: object_crc32s
-- The recorded CRC-32 of the objects behind some files (NULL for old objects).
SELECT sha256, crc32 FROM tm_objects
WHERE tenant_id = %(tenant_id)s AND sha256 = ANY(%(sha256s)s) AND crc32 IS NOT NULL

-- name: export_history_snapshots
-- A whole chat's history for ImportChat (service/export/content.py), up to
-- the exported version; snapshots name each other by version, not by id.
SELECT s.id, s.version, s.created_at, s.trigger, s.trigger_message_id, s.trigger_file_id,
       s.trigger_description, s.user_id, s.request_id, s.title, s.checksum, s.message_count,
       s.file_count, s.total_tokens, r.version AS restored_from_version
FROM tm_snapshots s
LEFT JOIN tm_snapshots r ON r.tenant_id = s.tenant_id AND r.id = s.restored_from_snapshot_id
WHERE s.tenant_id = %(tenant_id)s AND s.chat_id = %(chat_id)s AND s.version <= %(version)s
ORDER BY s.version

-- name: export_history_file_deletions
SELECT file_id, original_name AS name, chat_version, created_at
FROM tm_file_deletions
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND chat_version <= %(version)s
ORDER BY chat_version, original_name

-- name: export_history_restores
SELECT t.version, f.version AS from_version, p.version AS previous_version, r.scope, r.user_id,
       r.message_ids, r.file_ids, r.range_first_id, r.range_last_id, r.messages_restored,
       r.files_restored, r.reason, r.created_at
FROM tm_restores r
JOIN tm_snapshots t ON t.tenant_id = r.tenant_id AND t.id = r.to_snapshot_id
JOIN tm_snapshots f ON f.tenant_id = r.tenant_id AND f.id = r.from_snapshot_id
LEFT JOIN tm_snapshots p ON p.tenant_id = r.tenant_id AND p.id = r.previous_snapshot_id
WHERE r.tenant_id = %(tenant_id)s AND r.chat_id = %(chat_id)s AND t.version <= %(version)s
ORDER BY t.version

-- name: chat_attachments
-- Every file reference of a chat's message versions (most chats have none).
SELECT a.message_version_id, a.display_order, a.file_id, a.reference_type, f.original_name,
       f.version AS file_version, f.mime_type, f.size_bytes
FROM tm_message_attachments a
JOIN tm_files f ON f.tenant_id = a.tenant_id AND f.id = a.file_id
WHERE a.tenant_id = %(tenant_id)s AND a.chat_id = %(chat_id)s
ORDER BY a.message_version_id, a.display_order

-- name: attachment_thumbnails
-- The thumbnails of the file versions a chat's messages refer to (at most %(limit)s).
SELECT DISTINCT f.id, f.thumbnail_s3_key AS key, f.thumbnail_version_id AS version
FROM tm_message_attachments a
JOIN tm_files f ON f.tenant_id = a.tenant_id AND f.id = a.file_id
WHERE a.tenant_id = %(tenant_id)s AND a.chat_id = %(chat_id)s AND f.thumbnail_s3_key IS NOT NULL
LIMIT %(limit)s
