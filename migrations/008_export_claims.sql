-- Export claims that count attempts, so a bundle that kills its worker cannot
-- crash-loop every replica.
--
-- A bundle whose worker died (out of memory, killed) is claimed again when its
-- lease runs out; each claim counts an attempt. One claimed p_max_attempts
-- times already is failed here instead of claimed once more.

CREATE FUNCTION tm_claim_export(p_worker text, p_lease_seconds integer, p_max_attempts integer)
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
    WHERE b.id = (
        SELECT c.id FROM tm_export_bundles c
        WHERE c.status = 'pending' OR (c.status = 'processing' AND c.lease_expires_at < now())
        ORDER BY c.created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
    RETURNING b.id, b.tenant_id;
END
$$;
REVOKE ALL ON FUNCTION tm_claim_export(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tm_claim_export(text, integer, integer) TO tm_app;
DROP FUNCTION tm_claim_export(text, integer);
