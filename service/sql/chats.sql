-- name: chats_page
-- A tenant's chats, newest change first, after the page token's (time, id);
-- the index tm_chats_recent serves the order, the filters narrow the page.
SELECT chat_id, title, head_version, message_count, file_count, head_time, archived, deleted
FROM tm_chats
WHERE tenant_id = %(tenant_id)s AND head_version > 0
  AND (%(include_archived)s OR NOT archived)
  AND (%(include_deleted)s OR NOT deleted)
  AND (%(title_pattern)s::text IS NULL OR title ILIKE %(title_pattern)s::text)
  AND (%(user_id)s::uuid IS NULL OR last_user_id = %(user_id)s::uuid)
  AND (%(after_time)s::timestamptz IS NULL
       OR (head_time, chat_id) < (%(after_time)s::timestamptz, %(after_id)s::uuid))
ORDER BY head_time DESC, chat_id DESC
LIMIT %(limit)s

-- name: set_chat_flags
UPDATE tm_chats SET archived = %(archived)s, deleted = %(deleted)s
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
