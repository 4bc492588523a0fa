-- How long the export queue is, for the metrics (server/metrics.py).
--
-- The queue holds every tenant's bundles and the service role sees only the
-- tenant it acts for, so, like claiming (tm_claim_export), this runs as the
-- owner; it returns two numbers and nothing about any tenant.
CREATE FUNCTION tm_export_queue(OUT depth bigint, OUT oldest_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::double precision, 0)
    FROM tm_export_bundles
    WHERE status = 'pending'
$$;
REVOKE ALL ON FUNCTION tm_export_queue() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tm_export_queue() TO tm_app;
