-- Erasure (EraseChat, EraseTenant) and legal holds (SetLegalHold).
--
-- The service role keeps no DELETE on history: erasure runs as a role of its
-- own, tm_eraser, which owns the one function that deletes (tm_erase_chat).
-- tm_app may call it; row security holds for it as for everyone, so it
-- reaches the rows of the transaction's tenant only.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tm_eraser') THEN
        CREATE ROLE tm_eraser NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;
GRANT tm_eraser TO CURRENT_USER;

-- Legal holds stop erasure; who set one, when and why is kept on the chat.
ALTER TABLE tm_chats
    ADD COLUMN legal_hold        boolean NOT NULL DEFAULT false,
    ADD COLUMN legal_hold_reason text    NOT NULL DEFAULT '',
    ADD COLUMN legal_hold_by     uuid,
    ADD COLUMN legal_hold_at     timestamptz;

-- What is left of an erased chat: who erased it, when, and how much; no content.
CREATE TABLE tm_erasures (
    tenant_id uuid        NOT NULL,
    chat_id   uuid        NOT NULL,
    erased_at timestamptz NOT NULL,
    erased_by uuid,
    counts    jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, chat_id)
);
SELECT tm_isolate('tm_erasures');
GRANT SELECT, INSERT ON tm_erasures TO tm_app;

-- Deleting a chat's rows checks every foreign key that points at them, one
-- query per row: without an index on the referencing columns each check
-- reads the tenant's rows, and erasure grows with the square of the chat.
-- Three keys that only repeat what the write path makes, on the tables with
-- most rows, go (VerifyChat checks the snapshot chain; a version's snapshot
-- and a head's version are written in the same statement as what they
-- name); the others get the index their check needs. Those indexes lead
-- with the referencing column, not tenant_id: an index led by tenant_id
-- alone would tie, for a planner that believes a tenant has one row, with
-- the primary keys that lookups by id must use (tests/test_scale.py).
ALTER TABLE tm_message_versions DROP CONSTRAINT tm_message_versions_tenant_id_snapshot_id_fkey;
ALTER TABLE tm_snapshots DROP CONSTRAINT tm_snapshots_tenant_id_previous_snapshot_id_fkey;
ALTER TABLE tm_messages DROP CONSTRAINT tm_messages_tenant_id_current_version_id_fkey;
CREATE INDEX tm_snapshots_restored_from ON tm_snapshots (restored_from_snapshot_id, tenant_id)
    WHERE restored_from_snapshot_id IS NOT NULL;
CREATE INDEX tm_files_snapshot ON tm_files (snapshot_id, tenant_id);
CREATE INDEX tm_files_previous ON tm_files (previous_version_id, tenant_id) WHERE previous_version_id IS NOT NULL;
CREATE INDEX tm_files_restored_from ON tm_files (restored_from_id, tenant_id) WHERE restored_from_id IS NOT NULL;
CREATE INDEX tm_files_bytes ON tm_files (checksum_sha256, tenant_id);
CREATE INDEX tm_file_heads_file ON tm_file_heads (current_file_id, tenant_id);
CREATE INDEX tm_file_deletions_file ON tm_file_deletions (file_id, tenant_id);
CREATE INDEX tm_file_deletions_snapshot ON tm_file_deletions (snapshot_id, tenant_id);
CREATE INDEX tm_restores_from ON tm_restores (from_snapshot_id, tenant_id);
CREATE INDEX tm_restores_previous ON tm_restores (previous_snapshot_id, tenant_id);
CREATE INDEX tm_export_bundles_from ON tm_export_bundles (from_snapshot_id, tenant_id) WHERE from_snapshot_id IS NOT NULL;
CREATE INDEX tm_export_bundles_to ON tm_export_bundles (to_snapshot_id, tenant_id);
CREATE INDEX tm_label_changes_snapshot ON tm_label_changes (snapshot_id, tenant_id) WHERE snapshot_id IS NOT NULL;
CREATE INDEX tm_export_bundles_chat ON tm_export_bundles (chat_id, tenant_id);

-- Every row of one chat of the transaction's tenant, from every table, in an
-- order that leaves no reference dangling; then the stored objects no file of
-- the tenant refers to any more. Returns the rows deleted per table.
CREATE FUNCTION tm_erase_chat(target uuid) RETURNS jsonb
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
                               'tm_file_heads', 'tm_file_deletions', 'tm_files', 'tm_messages',
                               'tm_message_versions', 'tm_snapshots', 'tm_chats'] LOOP
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
GRANT SELECT, DELETE ON tm_search_documents, tm_label_changes, tm_export_bundles, tm_restores, tm_file_heads,
    tm_file_deletions, tm_files, tm_messages, tm_message_versions, tm_snapshots, tm_chats, tm_objects TO tm_eraser;
GRANT EXECUTE ON FUNCTION tm_tenant() TO tm_eraser;
-- The owner of a function needs CREATE on its schema when it becomes the owner, not after.
GRANT CREATE ON SCHEMA public TO tm_eraser;
ALTER FUNCTION tm_erase_chat(uuid) OWNER TO tm_eraser;
REVOKE CREATE ON SCHEMA public FROM tm_eraser;
REVOKE ALL ON FUNCTION tm_erase_chat(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tm_erase_chat(uuid) TO tm_app;
