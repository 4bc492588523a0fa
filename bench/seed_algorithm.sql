-- The seed's per-snapshot work (seed-review.md item 5), on our schema: recount
-- the chat and fetch every live message to hash it, on every action.

-- name: seed_previous_snapshot
SELECT id, version FROM tm_snapshots
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
ORDER BY version DESC LIMIT 1

-- name: seed_counts
SELECT count(DISTINCT m.message_id) AS message_count, coalesce(sum(v.tokens), 0) AS total_tokens
FROM tm_messages m JOIN tm_message_versions v ON v.id = m.current_version_id
WHERE m.tenant_id = %(tenant_id)s AND m.chat_id = %(chat_id)s AND NOT m.is_deleted

-- name: seed_checksum_rows
SELECT v.message_id, v.content, v.role, v.version
FROM tm_messages m JOIN tm_message_versions v ON v.id = m.current_version_id
WHERE m.tenant_id = %(tenant_id)s AND m.chat_id = %(chat_id)s AND NOT m.is_deleted
ORDER BY v.original_created_at
