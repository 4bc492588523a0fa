-- Export bundles, rendered in the background into the vault.
--
-- Workers in any number of replicas claim bundles through tm_claim_export(),
-- FOR UPDATE SKIP LOCKED, and hold a lease they renew while rendering; a
-- bundle whose lease ran out (its worker died) is claimed again. Claiming looks
-- across tenants, so it runs as the table owner (RLS on, not forced); every
-- other access is the service role's, bound by the tenant policy.

CREATE TABLE tm_export_bundles (
    id                      uuid        PRIMARY KEY,
    tenant_id               uuid        NOT NULL,
    chat_id                 uuid        NOT NULL,
    user_id                 uuid        NOT NULL,
    format                  text        NOT NULL CHECK (format IN ('zip', 'json', 'markdown', 'pdf', 'html')),
    include_media           boolean     NOT NULL,
    include_version_history boolean     NOT NULL,
    from_snapshot_id        uuid        REFERENCES tm_snapshots (id),
    to_snapshot_id          uuid        NOT NULL REFERENCES tm_snapshots (id),
    status                  text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'ready', 'expired', 'failed')),
    attempts                integer     NOT NULL DEFAULT 0,
    lease_expires_at        timestamptz,
    worker                  text,
    file_name               text,
    mime_type               text,
    s3_bucket               text,
    s3_key                  text,
    s3_version_id           text,
    size_bytes              bigint      NOT NULL DEFAULT 0,
    sha256                  text,
    download_count          bigint      NOT NULL DEFAULT 0,
    error_message           text,
    expires_at              timestamptz NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    completed_at            timestamptz,
    FOREIGN KEY (tenant_id, chat_id) REFERENCES tm_chats (tenant_id, chat_id)
);
CREATE INDEX tm_export_bundles_queue ON tm_export_bundles (created_at)
    WHERE status IN ('pending', 'processing');

SELECT tm_isolate('tm_export_bundles', force => false);
GRANT SELECT, INSERT, UPDATE ON tm_export_bundles TO tm_app;

-- Claim the oldest bundle that is waiting, or whose worker's lease ran out.
CREATE FUNCTION tm_claim_export(p_worker text, p_lease_seconds integer)
RETURNS TABLE (id uuid, tenant_id uuid)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    UPDATE tm_export_bundles b
    SET status = 'processing', worker = p_worker, attempts = b.attempts + 1,
        lease_expires_at = now() + make_interval(secs => p_lease_seconds)
    WHERE b.id = (
        SELECT c.id FROM tm_export_bundles c
        WHERE c.status = 'pending' OR (c.status = 'processing' AND c.lease_expires_at < now())
        ORDER BY c.created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
    RETURNING b.id, b.tenant_id
$$;
REVOKE ALL ON FUNCTION tm_claim_export(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tm_claim_export(text, integer) TO tm_app;
