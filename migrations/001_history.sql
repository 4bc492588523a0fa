-- History core: chats, snapshots, message versions, the restore log.
--
-- History rows (snapshots, message versions, restores) are append-only: the
-- service role may not UPDATE or DELETE them. Only the two head tables
-- (tm_chats, tm_messages), which say what is current, are updated in place.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tm_app') THEN
        CREATE ROLE tm_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;
GRANT tm_app TO CURRENT_USER;

-- The tenant of the current transaction, or NULL (sees nothing) when unset.
CREATE FUNCTION tm_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.current_tenant_id', true), '')::uuid $$;

CREATE TABLE tm_chats (
    tenant_id        uuid        NOT NULL,
    chat_id          uuid        NOT NULL,
    title            text        NOT NULL DEFAULT '',
    head_version     bigint      NOT NULL DEFAULT 0,
    head_snapshot_id uuid,
    head_time        timestamptz,
    message_count    bigint      NOT NULL DEFAULT 0,
    file_count       bigint      NOT NULL DEFAULT 0,
    total_tokens     bigint      NOT NULL DEFAULT 0,
    -- Additive multiset hash of the current state, hex (see service/checksum.py).
    state_sum        text        NOT NULL,
    -- Next chat-order position for a new message.
    next_position    bigint      NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, chat_id)
);

CREATE TABLE tm_snapshots (
    id                        uuid        PRIMARY KEY,
    tenant_id                 uuid        NOT NULL,
    chat_id                   uuid        NOT NULL,
    version                   bigint      NOT NULL CHECK (version > 0),
    created_at                timestamptz NOT NULL,
    message_count             bigint      NOT NULL,
    file_count                bigint      NOT NULL,
    total_tokens              bigint      NOT NULL,
    trigger                   text        NOT NULL CHECK (trigger IN (
        'message_sent', 'message_received', 'message_edited', 'message_deleted',
        'file_uploaded', 'file_generated', 'file_deleted', 'chat_renamed',
        'restore_performed', 'manual_snapshot')),
    trigger_message_id        uuid,
    trigger_file_id           uuid,
    trigger_description       text        NOT NULL DEFAULT '',
    previous_snapshot_id      uuid        REFERENCES tm_snapshots (id),
    restored_from_snapshot_id uuid        REFERENCES tm_snapshots (id),
    checksum                  text        NOT NULL,
    title                     text        NOT NULL,
    user_id                   uuid,
    request_id                text,
    FOREIGN KEY (tenant_id, chat_id) REFERENCES tm_chats (tenant_id, chat_id),
    UNIQUE (tenant_id, chat_id, version)
);
CREATE UNIQUE INDEX tm_snapshots_request ON tm_snapshots (tenant_id, chat_id, request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX tm_snapshots_time ON tm_snapshots (tenant_id, chat_id, created_at);

CREATE TABLE tm_message_versions (
    id                  uuid        PRIMARY KEY,
    tenant_id           uuid        NOT NULL,
    chat_id             uuid        NOT NULL,
    message_id          uuid        NOT NULL,
    snapshot_id         uuid        NOT NULL REFERENCES tm_snapshots (id),
    -- The chat version that wrote this row: the chat at version N is made of
    -- rows with chat_version <= N only, so later actions never rewrite the past.
    chat_version        bigint      NOT NULL,
    version             bigint      NOT NULL CHECK (version > 0),
    position            bigint      NOT NULL,
    role                text        NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content             text        NOT NULL,
    model_id            text        NOT NULL DEFAULT '',
    metadata            jsonb       NOT NULL DEFAULT '{}',
    tokens              bigint      NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    is_deleted          boolean     NOT NULL DEFAULT false,
    edit_reason         text        NOT NULL DEFAULT '',
    edited_by           uuid,
    created_at          timestamptz NOT NULL,
    original_created_at timestamptz NOT NULL,
    UNIQUE (tenant_id, chat_id, message_id, version)
);
CREATE INDEX tm_message_versions_at ON tm_message_versions (tenant_id, chat_id, chat_version);
CREATE INDEX tm_message_versions_snapshot ON tm_message_versions (snapshot_id);

-- Head of each message: what is current now. Updated in place, never deleted.
CREATE TABLE tm_messages (
    tenant_id          uuid    NOT NULL,
    chat_id            uuid    NOT NULL,
    message_id         uuid    NOT NULL,
    position           bigint  NOT NULL,
    current_version_id uuid    NOT NULL REFERENCES tm_message_versions (id),
    version            bigint  NOT NULL,
    is_deleted         boolean NOT NULL,
    tokens             bigint  NOT NULL,
    -- Hex hash of the message's state element while it is live.
    element_hash       text    NOT NULL,
    original_created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, chat_id, message_id),
    FOREIGN KEY (tenant_id, chat_id) REFERENCES tm_chats (tenant_id, chat_id)
);
CREATE INDEX tm_messages_order ON tm_messages (tenant_id, chat_id, position);

CREATE TABLE tm_restores (
    id                   uuid        PRIMARY KEY,
    tenant_id            uuid        NOT NULL,
    chat_id              uuid        NOT NULL,
    user_id              uuid        NOT NULL,
    from_snapshot_id     uuid        NOT NULL REFERENCES tm_snapshots (id),
    to_snapshot_id       uuid        NOT NULL UNIQUE REFERENCES tm_snapshots (id),
    previous_snapshot_id uuid        REFERENCES tm_snapshots (id),
    scope                text        NOT NULL CHECK (scope IN (
        'full_chat', 'single_message', 'single_file', 'message_range', 'files_only')),
    message_ids          uuid[]      NOT NULL DEFAULT '{}',
    file_ids             uuid[]      NOT NULL DEFAULT '{}',
    range_first_id       uuid,
    range_last_id        uuid,
    messages_restored    bigint      NOT NULL,
    files_restored       bigint      NOT NULL,
    reason               text        NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, chat_id) REFERENCES tm_chats (tenant_id, chat_id)
);
CREATE INDEX tm_restores_chat ON tm_restores (tenant_id, chat_id, created_at DESC, id DESC);

-- Message versions with what later rows say about them: whether each is the
-- current version, and when the next version replaced it.
CREATE VIEW tm_message_versions_view WITH (security_invoker = true) AS
SELECT mv.*,
       (m.current_version_id = mv.id) AS is_active,
       next.created_at                AS superseded_at
FROM tm_message_versions mv
JOIN tm_messages m
  ON m.tenant_id = mv.tenant_id AND m.chat_id = mv.chat_id AND m.message_id = mv.message_id
LEFT JOIN tm_message_versions next
  ON next.tenant_id = mv.tenant_id AND next.chat_id = mv.chat_id
 AND next.message_id = mv.message_id AND next.version = mv.version + 1;

-- Row-level security: one policy per table, the tenant of the transaction.
-- Forced on tables the service role reads directly, so even the owner is bound.
CREATE FUNCTION tm_isolate(target regclass, force boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
    IF force THEN
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
    END IF;
    EXECUTE format('CREATE POLICY tenant_isolation ON %s USING (tenant_id = tm_tenant()) '
                   'WITH CHECK (tenant_id = tm_tenant())', target);
END
$$;
REVOKE ALL ON FUNCTION tm_isolate(regclass, boolean) FROM PUBLIC;

SELECT tm_isolate('tm_chats');
SELECT tm_isolate('tm_snapshots');
SELECT tm_isolate('tm_message_versions');
SELECT tm_isolate('tm_messages');
SELECT tm_isolate('tm_restores');

-- The service role reads and appends history, moves the heads, and deletes nothing.
GRANT SELECT, INSERT ON tm_snapshots, tm_message_versions, tm_restores TO tm_app;
GRANT SELECT, INSERT, UPDATE ON tm_chats, tm_messages TO tm_app;
GRANT SELECT ON tm_message_versions_view TO tm_app;
GRANT EXECUTE ON FUNCTION tm_tenant() TO tm_app;
