-- The sweeper: the only code that deletes object versions from the vault.
--
-- It asks, a page of listed objects at a time, which of them a row still
-- refers to. These indexes answer that by key, so a check costs the same in a
-- tenant of ten files or ten million. They lead with the key, not the tenant:
-- an index led by tenant_id is one the planner may pick to scan a whole
-- tenant for a chat's rows when it believes the tenant is small (see
-- migrations/007); the key holds the tenant anyway, and the row policy
-- checks it on each row found. Objects and files are checked both, so
-- "referenced" comes from the rows themselves, not from how uploads write them.
CREATE INDEX tm_objects_key ON tm_objects (s3_key);
CREATE INDEX tm_files_object ON tm_files (s3_key);
CREATE INDEX tm_files_thumbnail ON tm_files (thumbnail_s3_key) WHERE thumbnail_s3_key IS NOT NULL;
CREATE INDEX tm_export_bundles_object ON tm_export_bundles (s3_key) WHERE s3_key IS NOT NULL;

-- Deployment-wide leases: one holder at a time, taken over when it runs out.
-- The sweeper holds "sweeper" while it sweeps, and past the end of a pass
-- until the next one is due, so the replicas together sweep once per interval.
CREATE TABLE tm_leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON tm_leases TO tm_app;

-- This database's identity. The sweeper writes it into the bucket it sweeps
-- and refuses to sweep a bucket that names another database: a bucket shared
-- by two deployments would otherwise lose each one's objects to the other.
CREATE TABLE tm_deployment (
    id  uuid    NOT NULL DEFAULT gen_random_uuid(),
    one boolean PRIMARY KEY DEFAULT true CHECK (one)
);
INSERT INTO tm_deployment DEFAULT VALUES;
GRANT SELECT ON tm_deployment TO tm_app;
