-- name: register_chat
-- A write to a chat id this tenant never used registers it.
INSERT INTO tm_chats (tenant_id, chat_id, state_sum)
VALUES (%(tenant_id)s, %(chat_id)s, %(zero)s)
ON CONFLICT (tenant_id, chat_id) DO NOTHING

-- name: lock_chat
-- Writers to one chat queue here, so versions are 1, 2, 3 … without gaps.
SELECT tenant_id, chat_id, title, head_version, head_snapshot_id, head_time,
       message_count, file_count, total_tokens, state_sum, next_position, archived, deleted, has_attachments
FROM tm_chats
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
FOR UPDATE

-- name: get_chat_head
SELECT tenant_id, chat_id, title, head_version, head_snapshot_id, head_time,
       message_count, file_count, total_tokens, state_sum, next_position, archived, deleted, has_attachments
FROM tm_chats
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s

-- name: snapshot_by_request
SELECT * FROM tm_snapshots
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND request_id = %(request_id)s

-- name: insert_snapshot
-- A whole write in one statement, one round trip: the snapshot, the chat's
-- new head (with the notification, carrying the snapshot, that watchers
-- receive when this commits),
-- and the versions of any number of messages (one JSON object each) with
-- their search documents and heads; the documents of the versions they
-- supersede stop being current. The rows travel as one jsonb value: psycopg
-- builds arrays element by element in Python (40 ms of a 1,000-message
-- restore), json.dumps in C. Every table is reached by tenant and chat.
-- Foreign keys between these rows are checked at the statement's end.
-- Timestamps never run backwards along versions, even across clock steps.
WITH snapshot AS (
    INSERT INTO tm_snapshots (
        id, tenant_id, chat_id, version, created_at, message_count, file_count,
        total_tokens, trigger, trigger_message_id, trigger_file_id,
        trigger_description, previous_snapshot_id, restored_from_snapshot_id,
        checksum, title, user_id, request_id)
    VALUES (
        %(id)s, %(tenant_id)s, %(chat_id)s, %(version)s,
        greatest(clock_timestamp(), %(head_time)s::timestamptz),
        %(message_count)s, %(file_count)s, %(total_tokens)s, %(trigger)s,
        %(trigger_message_id)s, %(trigger_file_id)s, %(trigger_description)s,
        %(previous_snapshot_id)s, %(restored_from_snapshot_id)s, %(checksum)s,
        %(title)s, %(user_id)s, %(request_id)s)
    RETURNING *
), chat AS (
    UPDATE tm_chats c
    SET title = s.title, head_version = s.version, head_snapshot_id = s.id, head_time = s.created_at,
        message_count = s.message_count, file_count = s.file_count, total_tokens = s.total_tokens,
        state_sum = s.checksum, next_position = %(next_position)s,
        last_user_id = coalesce(s.user_id, c.last_user_id)
    FROM snapshot s
    WHERE c.tenant_id = %(tenant_id)s AND c.chat_id = %(chat_id)s
    -- Only a chat a replica watches is notified (its lease: migrations/018).
    -- "tenant/chat {snapshot}": watchers get the row without a query; a row
    -- too long for a notification (8,000 bytes) leaves the key only, and
    -- the listener reads the chat instead (service/events.py).
    RETURNING CASE WHEN c.watched_until > now() THEN pg_notify('tm_chat_events', concat(c.tenant_id, '/', c.chat_id,
        (SELECT ' ' || j FROM (SELECT row_to_json(s)::text) e(j) WHERE octet_length(j) < 7000))) END
), staged AS (
    -- A version that copies another (a restore) takes its content and
    -- metadata here, by the source's full key: LIMIT 1 keeps it a lookup per
    -- row, which no plan turns into a scan.
    SELECT s.id, s.message_id, s.version, s.position, s.role, s.model_id, s.tokens, s.is_deleted,
        s.edit_reason, s.original_created_at, s.element_hash, s.copy_of, s.superseded,
        coalesce(s.content, c.content) AS content, coalesce(s.metadata, c.metadata) AS metadata
    FROM jsonb_to_recordset(%(staged)s::jsonb)
        AS s (id uuid, message_id uuid, version bigint, position bigint, role text, content text,
        model_id text, metadata jsonb, tokens bigint, is_deleted boolean, edit_reason text,
        original_created_at timestamptz, element_hash text, copy_of uuid, superseded uuid)
    LEFT JOIN LATERAL (
    SELECT v.content, v.metadata FROM tm_message_versions v
    WHERE v.tenant_id = %(tenant_id)s AND v.chat_id = %(chat_id)s AND v.id = s.copy_of
    LIMIT 1
    ) c ON true
), version AS (
    INSERT INTO tm_message_versions (
        id, tenant_id, chat_id, message_id, snapshot_id, chat_version, version,
        position, role, content, model_id, metadata, tokens, is_deleted,
        edit_reason, edited_by, created_at, original_created_at)
    SELECT m.id, %(tenant_id)s, %(chat_id)s, m.message_id, s.id, s.version, m.version,
        m.position, m.role, m.content, m.model_id, m.metadata, m.tokens, m.is_deleted, m.edit_reason,
        %(user_id)s, s.created_at, coalesce(m.original_created_at, s.created_at)
    FROM staged m, snapshot s
), document AS (
    -- A copy's words are its source's: taken, not parsed again (migrations/012).
    INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document)
    SELECT %(tenant_id)s, %(chat_id)s, 'message', m.id,
        CASE WHEN m.copy_of IS NULL THEN tm_message_document(m.content)
            ELSE tm_copied_document(m.copy_of, m.content) END
    FROM staged m WHERE NOT m.is_deleted
), retired AS (
    UPDATE tm_search_documents SET is_current = false
    WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s
      AND ref_id = ANY(ARRAY(SELECT m.superseded FROM staged m WHERE m.superseded IS NOT NULL))
), head AS (
    INSERT INTO tm_messages (
        tenant_id, chat_id, message_id, position, current_version_id, version,
        is_deleted, tokens, element_hash, original_created_at)
    SELECT %(tenant_id)s, %(chat_id)s, m.message_id, m.position, m.id, m.version, m.is_deleted, m.tokens,
        m.element_hash, coalesce(m.original_created_at, s.created_at)
    FROM staged m, snapshot s
    ON CONFLICT (tenant_id, chat_id, message_id) DO UPDATE
    SET current_version_id = excluded.current_version_id, version = excluded.version,
        is_deleted = excluded.is_deleted, tokens = excluded.tokens,
        element_hash = excluded.element_hash
)
SELECT snapshot.* FROM snapshot WHERE (SELECT count(*) FROM chat) = 1

-- name: save_message
-- SaveMessage's ordinary case in one statement, sent with the transaction's
-- settings in one round trip (Database.at_once): it reads and locks the
-- chat's head itself, where the general path (insert_snapshot) needs a round
-- trip to read it first. It writes what insert_snapshot writes for one new
-- message, and returns the snapshot and the message's position. It writes
-- nothing and returns no row when the case is not ordinary: no chat yet, a
-- deleted one, another version expected. A used request id or message id
-- fails on its unique index, which undoes the whole statement. Either way the
-- caller takes the general path (service/history.py), which says why.
-- The chat's row is locked by `h` and updated by `chat`; the lock waits for
-- a concurrent writer, then `h` reads the row that writer left. The
-- statement commits as soon as it ends (no explicit transaction), so a head
-- left unmoved would fail it (tm_invariant, migrations/020), not end it.
WITH h AS (
    SELECT c.head_version + 1 AS version, c.next_position AS position, c.head_snapshot_id,
        greatest(clock_timestamp(), c.head_time) AS created_at, c.message_count + 1 AS message_count,
        c.file_count, c.total_tokens + %(tokens)s AS total_tokens, c.title,
        tm_message_element(%(message_id)s, c.next_position, %(role)s, %(content)s) AS element, c.state_sum
    FROM tm_chats c
    WHERE c.tenant_id = %(tenant_id)s AND c.chat_id = %(chat_id)s AND NOT c.deleted
      AND c.head_version = coalesce(%(expected_version)s, c.head_version)
    FOR UPDATE
), snapshot AS (
    INSERT INTO tm_snapshots (
        id, tenant_id, chat_id, version, created_at, message_count, file_count,
        total_tokens, trigger, trigger_message_id, trigger_description,
        previous_snapshot_id, checksum, title, user_id, request_id)
    SELECT %(id)s, %(tenant_id)s, %(chat_id)s, h.version, h.created_at, h.message_count, h.file_count,
        h.total_tokens, %(trigger)s, %(message_id)s, %(trigger_description)s,
        h.head_snapshot_id, tm_state_add(h.state_sum, h.element), h.title, %(user_id)s, %(request_id)s
    FROM h
    RETURNING *
), chat AS (
    UPDATE tm_chats c
    SET head_version = s.version, head_snapshot_id = s.id, head_time = s.created_at,
        message_count = s.message_count, total_tokens = s.total_tokens, state_sum = s.checksum,
        next_position = h.position + 1, last_user_id = coalesce(s.user_id, c.last_user_id)
    FROM snapshot s, h
    WHERE c.tenant_id = %(tenant_id)s AND c.chat_id = %(chat_id)s
    RETURNING CASE WHEN c.watched_until > now() THEN pg_notify('tm_chat_events', concat(c.tenant_id, '/', c.chat_id,
        (SELECT ' ' || j FROM (SELECT row_to_json(s)::text) e(j) WHERE octet_length(j) < 7000))) END
), version AS (
    INSERT INTO tm_message_versions (
        id, tenant_id, chat_id, message_id, snapshot_id, chat_version, version,
        position, role, content, model_id, metadata, tokens, is_deleted,
        edit_reason, edited_by, created_at, original_created_at)
    SELECT %(version_id)s, %(tenant_id)s, %(chat_id)s, %(message_id)s, s.id, s.version, 1,
        h.position, %(role)s, %(content)s, %(model_id)s, %(metadata)s, %(tokens)s, false, '',
        %(user_id)s, s.created_at, s.created_at
    FROM snapshot s, h
), document AS (
    INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document)
    SELECT %(tenant_id)s, %(chat_id)s, 'message', %(version_id)s, tm_message_document(%(content)s)
    FROM snapshot
), head AS (
    INSERT INTO tm_messages (
        tenant_id, chat_id, message_id, position, current_version_id, version,
        is_deleted, tokens, element_hash, original_created_at)
    SELECT %(tenant_id)s, %(chat_id)s, %(message_id)s, h.position, %(version_id)s, 1, false, %(tokens)s,
        h.element, s.created_at
    FROM snapshot s, h
)
-- Checked for the row written (a check of no row would fail the ordinary
-- "nothing to do"): its chat's head moved with it.
SELECT s.*, h.position FROM snapshot s, h
WHERE tm_invariant((SELECT count(*) FROM chat) = 1, 'save_message left the head of version ' || s.version)

-- name: edit_message
-- EditMessage's and DeleteMessage's ordinary cases in one statement (a
-- delete is the edit to a tombstone, `deleted`: its content '' (given so),
-- no metadata or tokens, no element in the checksum), sent with the transaction's
-- settings in one round trip, as save_message is: it locks the chat's head,
-- reads the message's head and current version itself, and writes what
-- insert_snapshot writes for one changed message (the old element out of
-- the checksum, the new one in). Not ordinary, it writes nothing and
-- returns no row, and the caller takes the general path, which says why: no
-- such chat or message, a deleted chat or message, another version
-- expected, or an edit in a chat with attachments (the general path carries
-- the edited version's references over; a tombstone has none). A used
-- request id fails on its unique index, which undoes the whole statement.
-- So does a race: `h` waits for a concurrent writer's lock and then reads
-- the chat's row as that writer left it, but `m` reads the message as it was
-- when the statement began. If that writer gave the message a version (an
-- edit, a delete, a restore), the new version's number is taken already and
-- its unique index fails the statement; the general path then writes under
-- the lock. A writer that left the message alone changes nothing `m` read.
WITH h AS (
    SELECT c.head_version + 1 AS version, c.head_snapshot_id, greatest(clock_timestamp(), c.head_time) AS created_at,
        c.message_count, c.file_count, c.total_tokens, c.title, c.state_sum
    FROM tm_chats c
    WHERE c.tenant_id = %(tenant_id)s AND c.chat_id = %(chat_id)s AND NOT c.deleted
      AND (%(deleted)s OR NOT c.has_attachments) AND c.head_version = coalesce(%(expected_version)s, c.head_version)
    FOR UPDATE
), m AS (
    -- The current version by its whole key, in a LATERAL with LIMIT 1: a lookup whatever the
    -- planner knows (a join let an unanalyzed one scan the chat's versions for it).
    SELECT m.position, m.version + 1 AS version, m.current_version_id, m.element_hash, m.tokens AS head_tokens,
        m.original_created_at, v.role, v.model_id, CASE WHEN %(deleted)s THEN '{}' ELSE v.metadata END AS metadata,
        CASE WHEN %(deleted)s THEN 0 ELSE v.tokens END AS tokens,
        CASE WHEN %(deleted)s THEN repeat('0', 64)
            ELSE tm_message_element(%(message_id)s, m.position, v.role, %(content)s) END AS element
    FROM h, tm_messages m, LATERAL (
        SELECT v.role, v.model_id, v.metadata, v.tokens FROM tm_message_versions v
        WHERE v.tenant_id = %(tenant_id)s AND v.chat_id = %(chat_id)s AND v.id = m.current_version_id
          AND v.message_id = %(message_id)s AND v.position = m.position AND v.version = m.version LIMIT 1
    ) v
    WHERE m.tenant_id = %(tenant_id)s AND m.chat_id = %(chat_id)s AND m.message_id = %(message_id)s AND NOT m.is_deleted
), snapshot AS (
    INSERT INTO tm_snapshots (id, tenant_id, chat_id, version, created_at, message_count, file_count, total_tokens,
        trigger, trigger_message_id, trigger_description, previous_snapshot_id, checksum, title, user_id, request_id)
    SELECT %(id)s, %(tenant_id)s, %(chat_id)s, h.version, h.created_at,
        h.message_count - %(deleted)s::int, h.file_count,
        h.total_tokens - m.head_tokens + m.tokens, %(trigger)s, %(message_id)s, %(description)s,
        h.head_snapshot_id, tm_state_add(tm_state_sub(h.state_sum, m.element_hash), m.element), h.title, %(user_id)s,
        %(request_id)s
    FROM h, m
    RETURNING *
), chat AS (
    UPDATE tm_chats c
    SET head_version = s.version, head_snapshot_id = s.id, head_time = s.created_at, message_count = s.message_count,
        total_tokens = s.total_tokens, state_sum = s.checksum, last_user_id = coalesce(s.user_id, c.last_user_id)
    FROM snapshot s
    WHERE c.tenant_id = %(tenant_id)s AND c.chat_id = %(chat_id)s
    RETURNING CASE WHEN c.watched_until > now() THEN pg_notify('tm_chat_events', concat(c.tenant_id, '/', c.chat_id,
        (SELECT ' ' || j FROM (SELECT row_to_json(s)::text) e(j) WHERE octet_length(j) < 7000))) END
), version AS (
    INSERT INTO tm_message_versions (id, tenant_id, chat_id, message_id, snapshot_id, chat_version, version, position,
        role, content, model_id, metadata, tokens, is_deleted, edit_reason, edited_by, created_at, original_created_at)
    SELECT %(version_id)s, %(tenant_id)s, %(chat_id)s, %(message_id)s, s.id, s.version, m.version,
        m.position, m.role, %(content)s, m.model_id, m.metadata, m.tokens, %(deleted)s, %(edit_reason)s,
        %(user_id)s, s.created_at, m.original_created_at
    FROM snapshot s, m
), document AS (
    INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document)
    SELECT %(tenant_id)s, %(chat_id)s, 'message', %(version_id)s, tm_message_document(%(content)s)
    FROM snapshot WHERE NOT %(deleted)s
), retired AS (
    -- The old version's document, by the value (not a join, which let a planner scan the chat's).
    UPDATE tm_search_documents SET is_current = false
    WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND ref_id = (SELECT current_version_id FROM m)
      AND EXISTS (SELECT FROM snapshot)
), head AS (
    UPDATE tm_messages t
    SET current_version_id = %(version_id)s, version = m.version, is_deleted = %(deleted)s, tokens = m.tokens,
        element_hash = m.element
    FROM snapshot s, m
    WHERE t.tenant_id = %(tenant_id)s AND t.chat_id = %(chat_id)s AND t.message_id = %(message_id)s
)
-- Checked for the row written, as save_message's: its chat's head moved with it.
SELECT s.*, m.position, m.version, m.role, m.model_id, m.metadata, m.tokens, m.original_created_at
FROM snapshot s, m
WHERE tm_invariant((SELECT count(*) FROM chat) = 1, 'edit_message left head ' || s.version)

-- name: mark_chat
-- RenameChat's and CreateSnapshot's ordinary case in one statement, sent with
-- the transaction's settings in one round trip, as save_message is: it locks
-- the chat's head and writes a snapshot of the chat as it is, under a new
-- title (the checksum moved from the old title's element to the new one's)
-- or, with `title` NULL, the same (CreateSnapshot). Not ordinary (no chat
-- yet, a deleted one, another version expected) it writes nothing and returns
-- no row; a used request id fails on its unique index. Either way the caller
-- takes the general path, which says why. No message is read, so a
-- concurrent writer leaves nothing stale: `h` reads the row it left.
WITH h AS (
    SELECT c.head_version + 1 AS version, c.head_snapshot_id, greatest(clock_timestamp(), c.head_time) AS created_at,
        c.message_count, c.file_count, c.total_tokens, c.title, c.state_sum
    FROM tm_chats c
    WHERE c.tenant_id = %(tenant_id)s AND c.chat_id = %(chat_id)s AND NOT c.deleted
      AND c.head_version = coalesce(%(expected_version)s, c.head_version)
    FOR UPDATE
), snapshot AS (
    INSERT INTO tm_snapshots (id, tenant_id, chat_id, version, created_at, message_count, file_count, total_tokens,
        trigger, trigger_description, previous_snapshot_id, checksum, title, user_id, request_id)
    SELECT %(id)s, %(tenant_id)s, %(chat_id)s, h.version, h.created_at, h.message_count, h.file_count, h.total_tokens,
        %(trigger)s, %(description)s, h.head_snapshot_id,
        tm_state_add(tm_state_sub(h.state_sum, tm_title_element(h.title)), tm_title_element(t.title)), t.title,
        %(user_id)s, %(request_id)s
    FROM h, LATERAL (SELECT coalesce(%(title)s, h.title) AS title) t
    RETURNING *
), chat AS (
    UPDATE tm_chats c
    SET title = s.title, head_version = s.version, head_snapshot_id = s.id, head_time = s.created_at,
        state_sum = s.checksum, last_user_id = coalesce(s.user_id, c.last_user_id)
    FROM snapshot s
    WHERE c.tenant_id = %(tenant_id)s AND c.chat_id = %(chat_id)s
    RETURNING CASE WHEN c.watched_until > now() THEN pg_notify('tm_chat_events', concat(c.tenant_id, '/', c.chat_id,
        (SELECT ' ' || j FROM (SELECT row_to_json(s)::text) e(j) WHERE octet_length(j) < 7000))) END
)
-- Checked for the row written, as save_message's: its chat's head moved with it.
SELECT s.* FROM snapshot s
WHERE tm_invariant((SELECT count(*) FROM chat) = 1, 'mark_chat left the head of version ' || s.version)

-- name: lease_chat_events
-- Writes to the chat notify for `lease_seconds` from now (migrations/018):
-- renewed only once less than `renew_below` seconds of it are left, so that
-- the thousand watchers of a busy chat do not each write its row.
-- Each chat is found by its whole key (a join, not = ANY): = ANY let an
-- unanalyzed planner scan the tenant's chat list index instead.
UPDATE tm_chats c SET watched_until = now() + make_interval(secs => %(lease_seconds)s)
FROM unnest(%(chat_ids)s::uuid[]) AS w (chat_id)
WHERE c.tenant_id = %(tenant_id)s AND c.chat_id = w.chat_id
  AND (c.watched_until IS NULL OR c.watched_until < now() + make_interval(secs => %(renew_below)s))

-- name: get_message_head
SELECT message_id, position, current_version_id, version, is_deleted, tokens,
       element_hash, original_created_at
FROM tm_messages
WHERE tenant_id = %(tenant_id)s AND chat_id = %(chat_id)s AND message_id = %(message_id)s

-- name: insert_restore
INSERT INTO tm_restores (
    id, tenant_id, chat_id, user_id, from_snapshot_id, to_snapshot_id,
    previous_snapshot_id, scope, message_ids, file_ids, range_first_id,
    range_last_id, messages_restored, files_restored, reason, created_at)
VALUES (
    %(id)s, %(tenant_id)s, %(chat_id)s, %(user_id)s, %(from_snapshot_id)s,
    %(to_snapshot_id)s, %(previous_snapshot_id)s, %(scope)s, %(message_ids)s,
    %(file_ids)s, %(range_first_id)s, %(range_last_id)s, %(messages_restored)s,
    %(files_restored)s, %(reason)s, %(created_at)s)
RETURNING *

-- name: restore_by_snapshot
SELECT * FROM tm_restores
WHERE tenant_id = %(tenant_id)s AND to_snapshot_id = %(snapshot_id)s
