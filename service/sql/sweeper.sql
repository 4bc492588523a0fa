-- name: take_lease
-- A row when the lease was free or had run out, and is ours now.
INSERT INTO tm_leases AS l (name, holder, expires_at)
VALUES (%(name)s, %(holder)s, now() + make_interval(secs => %(seconds)s))
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE l.expires_at <= now()
RETURNING l.holder

-- name: keep_lease
-- A row when we still hold the lease (it did not run out and pass to another).
UPDATE tm_leases SET expires_at = now() + make_interval(secs => %(seconds)s)
WHERE name = %(name)s AND holder = %(holder)s
RETURNING holder

-- name: object_references
-- For each of one tenant's listed object versions: whether a row refers to
-- it (a stored object, a file version's bytes or thumbnail, an export bundle
-- that has not expired), and whether an expired bundle does. Each is a
-- lookup by key (scalar subqueries with LIMIT: an EXISTS may be planned as a
-- hash of the whole tenant's rows); the row policy checks the tenant.
SELECT c.key, c.version,
    coalesce((SELECT true FROM tm_objects o
              WHERE o.s3_key = c.key AND o.s3_version_id = c.version LIMIT 1), false)
    OR coalesce((SELECT true FROM tm_files f
                 WHERE f.s3_key = c.key AND f.s3_version_id = c.version LIMIT 1), false)
    OR coalesce((SELECT true FROM tm_files f
                 WHERE f.thumbnail_s3_key = c.key AND f.thumbnail_version_id = c.version LIMIT 1), false)
    OR coalesce((SELECT true FROM tm_export_bundles b
                 WHERE b.s3_key = c.key AND b.s3_version_id = c.version AND b.expires_at > now() LIMIT 1), false)
    AS referenced,
    coalesce((SELECT true FROM tm_export_bundles b
              WHERE b.s3_key = c.key AND b.s3_version_id = c.version AND b.expires_at <= now() LIMIT 1), false)
    AS expired_export
FROM unnest(%(keys)s::text[], %(versions)s::text[]) AS c(key, version)

-- name: bundle_object_removed
-- The bytes of an expired bundle are gone: say so in its status.
UPDATE tm_export_bundles SET status = 'expired'
WHERE tenant_id = %(tenant_id)s AND s3_key = %(key)s AND s3_version_id = %(version)s AND expires_at <= now()
  AND status <> 'expired'

-- name: deployment_id
SELECT id FROM tm_deployment
