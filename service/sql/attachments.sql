-- Message-file references (service/attachments.py).

-- name: insert_attachments
-- The references of new message versions: those given, and those copied
-- from the version each one follows or restores (`source`). The chat
-- remembers that it has some.
WITH given AS (
    SELECT g.message_version_id, g.display_order, g.file_id, g.reference_type
    FROM jsonb_to_recordset(%(given)s::jsonb)
        AS g (message_version_id uuid, display_order integer, file_id uuid, reference_type text)
), copied AS (
    SELECT c.message_version_id, a.display_order, a.file_id, a.reference_type
    FROM jsonb_to_recordset(%(copies)s::jsonb) AS c (message_version_id uuid, source uuid)
    JOIN tm_message_attachments a
      ON a.tenant_id = %(tenant_id)s AND a.chat_id = %(chat_id)s AND a.message_version_id = c.source
), written AS (
    INSERT INTO tm_message_attachments (tenant_id, chat_id, message_version_id, display_order, file_id, reference_type)
    SELECT %(tenant_id)s, %(chat_id)s, message_version_id, display_order, file_id, reference_type FROM given
    UNION ALL
    SELECT %(tenant_id)s, %(chat_id)s, message_version_id, display_order, file_id, reference_type FROM copied
    RETURNING 1
)
UPDATE tm_chats SET has_attachments = true
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND NOT has_attachments
  AND EXISTS (SELECT 1 FROM written)

-- name: attachments_of
-- The references of some message versions, with what they name, by key.
SELECT a.message_version_id, a.display_order, a.file_id, a.reference_type, f.original_name,
       f.version AS file_version, f.mime_type, f.size_bytes
FROM tm_message_attachments a
JOIN tm_files f ON f.tenant_id = a.tenant_id AND f.id = a.file_id
WHERE a.tenant_id = %(tenant_id)s AND a.chat_id = %(chat_id)s AND a.message_version_id = ANY(%(ids)s::uuid[])
ORDER BY a.message_version_id, a.display_order
