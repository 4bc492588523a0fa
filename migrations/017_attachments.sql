-- Messages and their files (the seed's message-media references): each
-- message version names file versions, with a type and a display order. A
-- reference names a file version, not a name, so an attachment of version 3
-- stays version 3 after the file moves on or is deleted. Rows are only
-- added: a new message version gets its own list (given, or its
-- predecessor's copied).
CREATE TABLE tm_message_attachments (
    tenant_id          uuid    NOT NULL,
    chat_id            uuid    NOT NULL,
    message_version_id uuid    NOT NULL,
    display_order      integer NOT NULL,
    file_id            uuid    NOT NULL,
    reference_type     text    NOT NULL CHECK (reference_type IN ('attachment', 'inline', 'result', 'reference')),
    PRIMARY KEY (tenant_id, chat_id, message_version_id, display_order),
    FOREIGN KEY (tenant_id, chat_id) REFERENCES tm_chats (tenant_id, chat_id),
    FOREIGN KEY (tenant_id, file_id) REFERENCES tm_files (tenant_id, id)
);
-- The file key's check when a file version is erased (led by the referencing column: see 016).
CREATE INDEX tm_message_attachments_file ON tm_message_attachments (file_id, tenant_id);
SELECT tm_isolate('tm_message_attachments');
GRANT SELECT, INSERT ON tm_message_attachments TO tm_app;
GRANT SELECT, DELETE ON tm_message_attachments TO tm_eraser;

-- Whether any message of the chat ever had a reference: reads and edits of
-- chats without any skip looking.
ALTER TABLE tm_chats ADD COLUMN has_attachments boolean NOT NULL DEFAULT false;

-- Erasure takes the references too (the function of 016, its list grown by one).
CREATE OR REPLACE FUNCTION tm_erase_chat(target uuid) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    tenant  uuid := tm_tenant();
    counts  jsonb := '{}';
    shas    text[];
    tab     text;
    n       bigint;
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'tm_erase_chat needs the transaction''s tenant';
    END IF;
    SELECT coalesce(array_agg(DISTINCT checksum_sha256), '{}') INTO shas
    FROM tm_files WHERE tenant_id = tenant AND chat_id = target;
    -- Those that point at others first, the chat last.
    FOREACH tab IN ARRAY ARRAY['tm_search_documents', 'tm_label_changes', 'tm_export_bundles', 'tm_restores',
                               'tm_message_attachments', 'tm_file_heads', 'tm_file_deletions', 'tm_files',
                               'tm_messages', 'tm_message_versions', 'tm_snapshots', 'tm_chats'] LOOP
        EXECUTE format('DELETE FROM %I WHERE tenant_id = $1 AND chat_id = $2', tab) USING tenant, target;
        GET DIAGNOSTICS n = ROW_COUNT;
        counts := counts || jsonb_build_object(tab, n);
    END LOOP;
    DELETE FROM tm_objects o
    WHERE o.tenant_id = tenant AND o.sha256 = ANY(shas)
      AND NOT EXISTS (SELECT 1 FROM tm_files f WHERE f.tenant_id = tenant AND f.checksum_sha256 = o.sha256);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('tm_objects', n);
    RETURN counts;
END
$$;
