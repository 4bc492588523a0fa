-- Every key of a tenant's rows leads with tenant_id.
--
-- A deployment that outgrows one PostgreSQL distributes its tables by tenant
-- (Citus: docs/operations.md). A distributed table's primary key, unique
-- constraints and foreign keys must include the distribution column, and a
-- foreign key between two distributed tables must join on it, so that every
-- check runs on one shard. Until now the history tables were keyed by `id`
-- alone and referred to snapshots, versions and files by that id. They are
-- keyed by (tenant_id, id) now; the lookups by id name the tenant too
-- (service/sql), so each is still a point lookup on the new key.
-- tests/test_sharding.py reads the catalog and fails on any key that does not.
--
-- On a large database this rebuilds each primary key and re-checks each
-- foreign key once: plan the upgrade for a quiet hour.

-- The foreign keys that name a row by id alone, and the one unique id.
ALTER TABLE tm_snapshots
    DROP CONSTRAINT tm_snapshots_previous_snapshot_id_fkey,
    DROP CONSTRAINT tm_snapshots_restored_from_snapshot_id_fkey;
ALTER TABLE tm_message_versions DROP CONSTRAINT tm_message_versions_snapshot_id_fkey;
ALTER TABLE tm_messages DROP CONSTRAINT tm_messages_current_version_id_fkey;
ALTER TABLE tm_restores
    DROP CONSTRAINT tm_restores_from_snapshot_id_fkey,
    DROP CONSTRAINT tm_restores_to_snapshot_id_fkey,
    DROP CONSTRAINT tm_restores_previous_snapshot_id_fkey,
    DROP CONSTRAINT tm_restores_to_snapshot_id_key;
ALTER TABLE tm_files
    DROP CONSTRAINT tm_files_snapshot_id_fkey,
    DROP CONSTRAINT tm_files_previous_version_id_fkey,
    DROP CONSTRAINT tm_files_restored_from_id_fkey;
ALTER TABLE tm_file_deletions
    DROP CONSTRAINT tm_file_deletions_file_id_fkey,
    DROP CONSTRAINT tm_file_deletions_snapshot_id_fkey;
ALTER TABLE tm_file_heads DROP CONSTRAINT tm_file_heads_current_file_id_fkey;
ALTER TABLE tm_export_bundles
    DROP CONSTRAINT tm_export_bundles_from_snapshot_id_fkey,
    DROP CONSTRAINT tm_export_bundles_to_snapshot_id_fkey;

-- Primary keys.
ALTER TABLE tm_snapshots DROP CONSTRAINT tm_snapshots_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE tm_message_versions DROP CONSTRAINT tm_message_versions_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE tm_restores DROP CONSTRAINT tm_restores_pkey, ADD PRIMARY KEY (tenant_id, id),
    ADD UNIQUE (tenant_id, to_snapshot_id);
ALTER TABLE tm_files DROP CONSTRAINT tm_files_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE tm_file_deletions DROP CONSTRAINT tm_file_deletions_pkey, ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE tm_search_documents DROP CONSTRAINT tm_search_documents_pkey, ADD PRIMARY KEY (tenant_id, ref_id);
ALTER TABLE tm_export_bundles DROP CONSTRAINT tm_export_bundles_pkey, ADD PRIMARY KEY (tenant_id, id);

-- The same references, within the tenant.
ALTER TABLE tm_snapshots
    ADD FOREIGN KEY (tenant_id, previous_snapshot_id) REFERENCES tm_snapshots (tenant_id, id),
    ADD FOREIGN KEY (tenant_id, restored_from_snapshot_id) REFERENCES tm_snapshots (tenant_id, id);
ALTER TABLE tm_message_versions
    ADD FOREIGN KEY (tenant_id, snapshot_id) REFERENCES tm_snapshots (tenant_id, id);
ALTER TABLE tm_messages
    ADD FOREIGN KEY (tenant_id, current_version_id) REFERENCES tm_message_versions (tenant_id, id);
ALTER TABLE tm_restores
    ADD FOREIGN KEY (tenant_id, from_snapshot_id) REFERENCES tm_snapshots (tenant_id, id),
    ADD FOREIGN KEY (tenant_id, to_snapshot_id) REFERENCES tm_snapshots (tenant_id, id),
    ADD FOREIGN KEY (tenant_id, previous_snapshot_id) REFERENCES tm_snapshots (tenant_id, id);
ALTER TABLE tm_files
    ADD FOREIGN KEY (tenant_id, snapshot_id) REFERENCES tm_snapshots (tenant_id, id),
    ADD FOREIGN KEY (tenant_id, previous_version_id) REFERENCES tm_files (tenant_id, id),
    ADD FOREIGN KEY (tenant_id, restored_from_id) REFERENCES tm_files (tenant_id, id);
ALTER TABLE tm_file_deletions
    ADD FOREIGN KEY (tenant_id, file_id) REFERENCES tm_files (tenant_id, id),
    ADD FOREIGN KEY (tenant_id, snapshot_id) REFERENCES tm_snapshots (tenant_id, id);
ALTER TABLE tm_file_heads
    ADD FOREIGN KEY (tenant_id, current_file_id) REFERENCES tm_files (tenant_id, id);
ALTER TABLE tm_export_bundles
    ADD FOREIGN KEY (tenant_id, from_snapshot_id) REFERENCES tm_snapshots (tenant_id, id),
    ADD FOREIGN KEY (tenant_id, to_snapshot_id) REFERENCES tm_snapshots (tenant_id, id);

-- A claim finds its bundle by the new key.
CREATE OR REPLACE FUNCTION tm_claim_export(p_worker text, p_lease_seconds integer, p_max_attempts integer)
RETURNS TABLE (id uuid, tenant_id uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    UPDATE tm_export_bundles b
    SET status = 'failed', completed_at = now(), lease_expires_at = NULL,
        error_message = format('rendering stopped %s times without finishing (its worker died)', b.attempts)
    WHERE b.status = 'processing' AND b.lease_expires_at < now() AND b.attempts >= p_max_attempts;

    RETURN QUERY
    UPDATE tm_export_bundles b
    SET status = 'processing', worker = p_worker, attempts = b.attempts + 1,
        lease_expires_at = now() + make_interval(secs => p_lease_seconds)
    WHERE (b.tenant_id, b.id) = (
        SELECT c.tenant_id, c.id FROM tm_export_bundles c
        WHERE c.status = 'pending' OR (c.status = 'processing' AND c.lease_expires_at < now())
        ORDER BY c.created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
    RETURNING b.id, b.tenant_id;
END
$$;
