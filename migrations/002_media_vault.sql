-- Media vault: every file version, in a versioned S3 bucket.
--
-- tm_objects is content-addressed per tenant: identical bytes are stored once.
-- tm_files holds one append-only row per file version; a delete is a row in
-- tm_file_deletions (a tombstone), so the files at chat version N are computed
-- from rows with chat_version <= N only. tm_file_heads says what is current.

CREATE TABLE tm_objects (
    tenant_id     uuid        NOT NULL,
    sha256        text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes    bigint      NOT NULL CHECK (size_bytes >= 0),
    s3_bucket     text        NOT NULL,
    s3_key        text        NOT NULL,
    s3_version_id text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sha256)
);

CREATE TABLE tm_files (
    id                  uuid        PRIMARY KEY,
    tenant_id           uuid        NOT NULL,
    chat_id             uuid        NOT NULL,
    message_id          uuid,
    snapshot_id         uuid        NOT NULL REFERENCES tm_snapshots (id),
    chat_version        bigint      NOT NULL,
    original_name       text        NOT NULL,
    display_name        text        NOT NULL,
    mime_type           text        NOT NULL,
    size_bytes          bigint      NOT NULL CHECK (size_bytes >= 0),
    checksum_sha256     text        NOT NULL,
    s3_bucket           text        NOT NULL,
    s3_key              text        NOT NULL,
    s3_version_id       text        NOT NULL,
    thumbnail_s3_key    text,
    thumbnail_version_id text,
    preview_generated   boolean     NOT NULL DEFAULT false,
    version             bigint      NOT NULL CHECK (version > 0),
    previous_version_id uuid        REFERENCES tm_files (id),
    source              text        NOT NULL CHECK (source IN ('user_upload', 'ai_generated', 'system')),
    extracted_text      text,
    ai_description      text,
    -- Set when this row re-points an earlier version's object (a restore).
    restored_from_id    uuid        REFERENCES tm_files (id),
    created_at          timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, chat_id) REFERENCES tm_chats (tenant_id, chat_id),
    FOREIGN KEY (tenant_id, checksum_sha256) REFERENCES tm_objects (tenant_id, sha256),
    UNIQUE (tenant_id, chat_id, original_name, version)
);
CREATE INDEX tm_files_at ON tm_files (tenant_id, chat_id, chat_version);

CREATE TABLE tm_file_deletions (
    id            uuid        PRIMARY KEY,
    tenant_id     uuid        NOT NULL,
    chat_id       uuid        NOT NULL,
    original_name text        NOT NULL,
    file_id       uuid        NOT NULL REFERENCES tm_files (id),
    snapshot_id   uuid        NOT NULL REFERENCES tm_snapshots (id),
    chat_version  bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, chat_id) REFERENCES tm_chats (tenant_id, chat_id)
);
CREATE INDEX tm_file_deletions_at ON tm_file_deletions (tenant_id, chat_id, chat_version);

CREATE TABLE tm_file_heads (
    tenant_id       uuid        NOT NULL,
    chat_id         uuid        NOT NULL,
    original_name   text        NOT NULL,
    current_file_id uuid        NOT NULL REFERENCES tm_files (id),
    version         bigint      NOT NULL,
    is_deleted      boolean     NOT NULL,
    element_hash    text        NOT NULL,
    changed_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, chat_id, original_name),
    FOREIGN KEY (tenant_id, chat_id) REFERENCES tm_chats (tenant_id, chat_id)
);

SELECT tm_isolate('tm_objects');
SELECT tm_isolate('tm_files');
SELECT tm_isolate('tm_file_deletions');
SELECT tm_isolate('tm_file_heads');

GRANT SELECT, INSERT ON tm_objects, tm_files, tm_file_deletions TO tm_app;
GRANT SELECT, INSERT, UPDATE ON tm_file_heads TO tm_app;

-- File versions with what later rows say about them.
CREATE VIEW tm_files_view WITH (security_invoker = true) AS
SELECT f.*,
       CASE WHEN h.current_file_id <> f.id THEN 'archived'
            WHEN h.is_deleted THEN 'soft_deleted'
            ELSE 'active' END AS status,
       CASE WHEN h.current_file_id <> f.id THEN next.created_at
            WHEN h.is_deleted THEN h.changed_at END AS archived_at,
       (SELECT count(*) FROM tm_files c
         WHERE c.tenant_id = f.tenant_id AND c.chat_id = f.chat_id
           AND c.original_name = f.original_name) AS version_count
FROM tm_files f
JOIN tm_file_heads h
  ON h.tenant_id = f.tenant_id AND h.chat_id = f.chat_id AND h.original_name = f.original_name
LEFT JOIN tm_files next
  ON next.tenant_id = f.tenant_id AND next.chat_id = f.chat_id
 AND next.original_name = f.original_name AND next.version = f.version + 1;
GRANT SELECT ON tm_files_view TO tm_app;
