-- name: label_target
-- The snapshot a label names now (by the primary key, newest change first).
SELECT snapshot_id FROM tm_label_changes
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND label = %(label)s
ORDER BY chat_version DESC
LIMIT 1

-- name: chat_labels
-- Every label of a chat with the snapshot it names now (NULL: taken off).
SELECT DISTINCT ON (label) label, snapshot_id FROM tm_label_changes
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
ORDER BY label, chat_version DESC

-- name: insert_label_change
INSERT INTO tm_label_changes (tenant_id, chat_id, label, chat_version, snapshot_id)
VALUES (%(tenant_id)s, %(chat_id)s, %(label)s, %(chat_version)s, %(snapshot_id)s)
