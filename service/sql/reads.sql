-- name: snapshot_by_id
-- By the key alone, (tenant_id, id): naming the chat too would let a scan of
-- the chat look as cheap as the lookup; the caller checks the chat.
SELECT * FROM tm_snapshots WHERE tenant_id = %(tenant_id)s AND id = %(snapshot_id)s

-- name: snapshot_by_version
SELECT * FROM tm_snapshots
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND version = %(version)s

-- name: snapshot_at_time
SELECT * FROM tm_snapshots
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND created_at <= %(at_time)s
ORDER BY created_at DESC, version DESC
LIMIT 1

-- name: snapshots_page
SELECT * FROM tm_snapshots
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND version > %(after_version)s
ORDER BY version
LIMIT %(limit)s

-- name: snapshots_by_date
-- Local midnight to midnight in the caller's zone, as an index range on created_at.
SELECT * FROM tm_snapshots
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
  AND created_at >= (%(day)s::date)::timestamp AT TIME ZONE %(tz)s
  AND created_at < (%(day)s::date + 1)::timestamp AT TIME ZONE %(tz)s
  AND version > %(after_version)s
ORDER BY version
LIMIT %(limit)s

-- name: snapshot_calendar
SELECT to_char(created_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD') AS day, count(*) AS snapshots,
       min(created_at) AS oldest, max(created_at) AS newest
FROM tm_snapshots
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
GROUP BY 1

-- name: restores_page
SELECT * FROM tm_restores
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
  AND (%(after_time)s::timestamptz IS NULL
       OR (created_at, id) < (%(after_time)s::timestamptz, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s

-- name: all_snapshots
SELECT * FROM tm_snapshots
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
ORDER BY version

-- name: all_message_versions
SELECT id, message_id, chat_version, position, role, content, is_deleted, tokens
FROM tm_message_versions
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
ORDER BY chat_version, id

-- name: ping
SELECT 1 AS ok
