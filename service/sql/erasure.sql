-- EraseChat, EraseTenant and SetLegalHold (service/erasure.py).

-- name: lock_chat_for_erasure
-- Writers to the chat wait behind this lock, then find it gone.
SELECT state_sum, legal_hold FROM tm_chats
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
FOR UPDATE

-- name: chat_objects_to_erase
-- The chat's object versions in the vault: file bytes, thumbnails, export bundles.
-- Each file row gives its bytes and its thumbnail: the chat's files are read once.
SELECT o.key, o.version, o.size_bytes FROM tm_files f
CROSS JOIN LATERAL (VALUES (f.s3_key, f.s3_version_id, f.size_bytes),
                           (f.thumbnail_s3_key, f.thumbnail_version_id, 0)) AS o (key, version, size_bytes)
WHERE f.tenant_id = %(tenant_id)s AND f.chat_id = %(chat_id)s AND o.key IS NOT NULL
UNION
SELECT s3_key, s3_version_id, size_bytes FROM tm_export_bundles
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND s3_key IS NOT NULL AND s3_version_id IS NOT NULL

-- name: erase_chat
SELECT tm_erase_chat(%(chat_id)s) AS counts

-- name: insert_erasure
INSERT INTO tm_erasures (tenant_id, chat_id, erased_at, erased_by, counts)
VALUES (%(tenant_id)s, %(chat_id)s, now(), %(user_id)s, %(counts)s::jsonb)
RETURNING erased_at

-- name: erasure_of
SELECT erased_at FROM tm_erasures WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s

-- name: set_legal_hold
UPDATE tm_chats
SET legal_hold = %(legal_hold)s, legal_hold_reason = %(reason)s, legal_hold_by = %(user_id)s, legal_hold_at = now()
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
RETURNING legal_hold, legal_hold_reason, legal_hold_by, legal_hold_at

-- name: tenant_chats
SELECT chat_id, legal_hold FROM tm_chats WHERE tenant_id = %(tenant_id)s ORDER BY chat_id
