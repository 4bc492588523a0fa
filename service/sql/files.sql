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

-- name: insert_files
-- New file versions (one array element each), their search documents, and
-- the documents of the versions they supersede retired, in one statement.
-- Arrays go in binary (placeholders ending in b): text arrays would be
-- escaped element by element on the way.
WITH staged AS (
    SELECT * FROM unnest(
        %(id)b::uuid[], %(message_id)b::uuid[], %(original_name)b::text[], %(display_name)b::text[],
        %(mime_type)b::text[], %(size_bytes)b::bigint[], %(checksum_sha256)b::text[], %(s3_bucket)b::text[],
        %(s3_key)b::text[], %(s3_version_id)b::text[], %(thumbnail_s3_key)b::text[],
        %(thumbnail_version_id)b::text[], %(preview_generated)b::boolean[], %(version)b::bigint[],
        %(previous_version_id)b::uuid[], %(source)b::text[], %(extracted_text)b::text[],
        %(ai_description)b::text[], %(restored_from_id)b::uuid[])
        AS s (id, message_id, original_name, display_name, mime_type, size_bytes, checksum_sha256, s3_bucket,
              s3_key, s3_version_id, thumbnail_s3_key, thumbnail_version_id, preview_generated, version,
              previous_version_id, source, extracted_text, ai_description, restored_from_id)
), retired AS (
    UPDATE tm_search_documents SET is_current = false
    WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND ref_id = ANY(%(previous_version_id)b::uuid[])
), version AS (
    INSERT INTO tm_files (
        id, tenant_id, chat_id, message_id, snapshot_id, chat_version, original_name,
        display_name, mime_type, size_bytes, checksum_sha256, s3_bucket, s3_key,
        s3_version_id, thumbnail_s3_key, thumbnail_version_id, preview_generated,
        version, previous_version_id, source, extracted_text, ai_description,
        restored_from_id, created_at)
    SELECT id, %(tenant_id)s, %(chat_id)s, message_id, %(snapshot_id)s, %(chat_version)s, original_name,
        display_name, mime_type, size_bytes, checksum_sha256, s3_bucket, s3_key, s3_version_id,
        thumbnail_s3_key, thumbnail_version_id, preview_generated, version, previous_version_id, source,
        extracted_text, ai_description, restored_from_id, %(created_at)s
    FROM staged
    RETURNING tenant_id, chat_id, id, original_name, ai_description, extracted_text
)
INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document)
SELECT tenant_id, chat_id, 'file', id, tm_file_document(original_name, ai_description, extracted_text)
FROM version

-- name: upsert_file_heads
INSERT INTO tm_file_heads (
    tenant_id, chat_id, original_name, current_file_id, version, is_deleted, element_hash, changed_at)
SELECT %(tenant_id)s, %(chat_id)s, original_name, current_file_id, version, is_deleted, element_hash,
       %(created_at)s
FROM unnest(%(original_name)b::text[], %(current_file_id)b::uuid[], %(version)b::bigint[],
            %(is_deleted)b::boolean[], %(element_hash)b::text[])
     AS h (original_name, current_file_id, version, is_deleted, element_hash)
ON CONFLICT (tenant_id, chat_id, original_name) DO UPDATE
SET current_file_id = excluded.current_file_id, version = excluded.version,
    is_deleted = excluded.is_deleted, element_hash = excluded.element_hash,
    changed_at = excluded.changed_at

-- name: insert_file_deletions
-- Tombstones; the deleted versions' search documents stop being current.
WITH retired AS (
    UPDATE tm_search_documents SET is_current = false
    WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND ref_id = ANY(%(file_id)b::uuid[])
)
INSERT INTO tm_file_deletions (id, tenant_id, chat_id, original_name, file_id, snapshot_id, chat_version, created_at)
SELECT id, %(tenant_id)s, %(chat_id)s, original_name, file_id, %(snapshot_id)s, %(chat_version)s, %(created_at)s
FROM unnest(%(id)b::uuid[], %(original_name)b::text[], %(file_id)b::uuid[]) AS d (id, original_name, file_id)

-- name: file_by_id
-- By the key alone, (tenant_id, id) (migrations/007 and 010).
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
