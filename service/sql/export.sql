-- name: export_versions
-- Every message version up to the exported snapshot, in chat order, so that
-- one streamed pass yields each message with its history.
SELECT message_id, position, version, chat_version, role, content, model_id, metadata, tokens,
       is_deleted, edit_reason, created_at, original_created_at
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
