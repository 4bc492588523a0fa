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
-- The file version and its search document (name, description, text), in one statement.
WITH version AS (
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
        %(source)s, %(extracted_text)s, %(ai_description)s, %(restored_from_id)s, s.created_at
    FROM tm_snapshots s WHERE s.id = %(snapshot_id)s
    RETURNING tenant_id, chat_id, id, original_name, ai_description, extracted_text
)
INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document)
SELECT tenant_id, chat_id, 'file', id, tm_file_document(original_name, ai_description, extracted_text)
FROM version

-- name: upsert_file_head
INSERT INTO tm_file_heads (
    tenant_id, chat_id, original_name, current_file_id, version, is_deleted, element_hash, changed_at)
SELECT %(tenant_id)s, %(chat_id)s, %(original_name)s, %(current_file_id)s, %(version)s,
    %(is_deleted)s, %(element_hash)s, s.created_at
FROM tm_snapshots s WHERE s.id = %(snapshot_id)s
ON CONFLICT (tenant_id, chat_id, original_name) DO UPDATE
SET current_file_id = excluded.current_file_id, version = excluded.version,
    is_deleted = excluded.is_deleted, element_hash = excluded.element_hash,
    changed_at = excluded.changed_at

-- name: insert_file_deletion
INSERT INTO tm_file_deletions (id, tenant_id, chat_id, original_name, file_id, snapshot_id, chat_version, created_at)
SELECT %(id)s, %(tenant_id)s, %(chat_id)s, %(original_name)s, %(file_id)s, %(snapshot_id)s,
    %(chat_version)s, s.created_at
FROM tm_snapshots s WHERE s.id = %(snapshot_id)s

-- name: file_by_id
SELECT * FROM tm_files_view WHERE tenant_id = %(tenant_id)s AND id = %(file_id)s

-- name: current_files
SELECT v.* FROM tm_file_heads h
JOIN tm_files_view v ON v.id = h.current_file_id
WHERE h.tenant_id = %(tenant_id)s AND h.chat_id = %(chat_id)s AND NOT h.is_deleted
ORDER BY h.original_name

-- name: file_versions
SELECT * FROM tm_files_view
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND original_name = %(original_name)s
ORDER BY version DESC

-- name: files_at_version
-- The files in view at chat version N, from rows written at or before N only.
WITH events AS (
    SELECT original_name, chat_version, id AS file_id, false AS deleted
    FROM tm_files
    WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND chat_version <= %(version)s
    UNION ALL
    SELECT original_name, chat_version, file_id, true
    FROM tm_file_deletions
    WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND chat_version <= %(version)s
), latest AS (
    SELECT DISTINCT ON (original_name) original_name, file_id, deleted
    FROM events ORDER BY original_name, chat_version DESC
)
SELECT v.* FROM latest JOIN tm_files_view v ON v.id = latest.file_id
WHERE NOT latest.deleted
ORDER BY v.original_name

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
