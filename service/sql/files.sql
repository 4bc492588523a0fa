-- name: insert_object
-- Content-addressed: the first upload of some bytes wins; later ones reuse it.
INSERT INTO tm_objects (tenant_id, sha256, size_bytes, s3_bucket, s3_key, s3_version_id, crc32)
VALUES (%(tenant_id)s, %(sha256)s, %(size_bytes)s, %(s3_bucket)s, %(s3_key)s, %(s3_version_id)s, %(crc32)s)
ON CONFLICT (tenant_id, sha256) DO NOTHING
RETURNING s3_key, s3_version_id

-- name: get_object
SELECT s3_bucket, s3_key, s3_version_id, size_bytes FROM tm_objects
WHERE tenant_id = %(tenant_id)s AND sha256 = %(sha256)s

-- name: get_file_head
SELECT original_name, current_file_id, version, is_deleted, element_hash, changed_at
FROM tm_file_heads
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND original_name = %(original_name)s

-- name: all_file_heads
SELECT original_name, current_file_id, version, is_deleted, element_hash, changed_at
FROM tm_file_heads
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s

-- name: insert_file
-- The file version and its search document (name, description, text), in one
-- statement; the document of the version it supersedes stops being current.
WITH retired AS (
    UPDATE tm_search_documents SET is_current = false
    WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND ref_id = %(previous_version_id)s
), version AS (
    INSERT INTO tm_files (
        id, tenant_id, chat_id, message_id, snapshot_id, chat_version, original_name,
        display_name, mime_type, size_bytes, checksum_sha256, s3_bucket, s3_key,
        s3_version_id, thumbnail_s3_key, thumbnail_version_id, preview_generated,
        version, previous_version_id, source, extracted_text, ai_description,
        restored_from_id, created_at)
    SELECT %(id)s, %(tenant_id)s, %(chat_id)s, %(message_id)s, %(snapshot_id)s, %(chat_version)s,
        %(original_name)s, %(display_name)s, %(mime_type)s, %(size_bytes)s, %(checksum_sha256)s,
        %(s3_bucket)s, %(s3_key)s, %(s3_version_id)s, %(thumbnail_s3_key)s,
        %(thumbnail_version_id)s, %(preview_generated)s, %(version)s, %(previous_version_id)s,
        %(source)s, %(extracted_text)s, %(ai_description)s, %(restored_from_id)s, %(created_at)s
    RETURNING tenant_id, chat_id, id, original_name, ai_description, extracted_text
)
INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document)
SELECT tenant_id, chat_id, 'file', id, tm_file_document(original_name, ai_description, extracted_text)
FROM version

-- name: upsert_file_head
INSERT INTO tm_file_heads (
    tenant_id, chat_id, original_name, current_file_id, version, is_deleted, element_hash, changed_at)
SELECT %(tenant_id)s, %(chat_id)s, %(original_name)s, %(current_file_id)s, %(version)s,
    %(is_deleted)s, %(element_hash)s, %(created_at)s
ON CONFLICT (tenant_id, chat_id, original_name) DO UPDATE
SET current_file_id = excluded.current_file_id, version = excluded.version,
    is_deleted = excluded.is_deleted, element_hash = excluded.element_hash,
    changed_at = excluded.changed_at

-- name: insert_file_deletion
-- The tombstone; the deleted version's search document stops being current.
WITH retired AS (
    UPDATE tm_search_documents SET is_current = false
    WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND ref_id = %(file_id)s
)
INSERT INTO tm_file_deletions (id, tenant_id, chat_id, original_name, file_id, snapshot_id, chat_version, created_at)
SELECT %(id)s, %(tenant_id)s, %(chat_id)s, %(original_name)s, %(file_id)s, %(snapshot_id)s,
    %(chat_version)s, %(created_at)s

-- name: file_by_id
SELECT * FROM tm_files_view WHERE tenant_id = %(tenant_id)s AND id = %(file_id)s

-- name: chat_media_bytes
SELECT coalesce(sum(size_bytes), 0) AS bytes FROM tm_files
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s

-- name: all_file_events
-- Every file event of a chat in version order, for VerifyChat's replay.
SELECT chat_version, original_name, false AS deleted, checksum_sha256, size_bytes, mime_type
FROM tm_files WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
UNION ALL
SELECT chat_version, original_name, true, NULL, NULL, NULL
FROM tm_file_deletions WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
ORDER BY chat_version

-- name: chat_objects
SELECT DISTINCT ON (s3_key, s3_version_id) id, s3_bucket, s3_key, s3_version_id, size_bytes, checksum_sha256
FROM tm_files WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
ORDER BY s3_key, s3_version_id, version
