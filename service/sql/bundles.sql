-- name: insert_bundle
INSERT INTO tm_export_bundles (
    id, tenant_id, chat_id, user_id, format, include_media, include_version_history,
    from_snapshot_id, to_snapshot_id, expires_at)
VALUES (
    %(id)s, %(tenant_id)s, %(chat_id)s, %(user_id)s, %(format)s, %(include_media)s,
    %(include_version_history)s, %(from_snapshot_id)s, %(to_snapshot_id)s,
    now() + make_interval(secs => %(expires_in_seconds)s))
RETURNING *

-- name: get_bundle
-- A bundle past its expiry reads as expired, whether or not a sweep marked it yet.
SELECT *, CASE WHEN status = 'ready' AND expires_at <= now() THEN 'expired' ELSE status END AS effective_status
FROM tm_export_bundles
WHERE tenant_id = %(tenant_id)s AND id = %(id)s

-- name: claim_bundle
SELECT id, tenant_id FROM tm_claim_export(%(worker)s, %(lease_seconds)s, %(max_attempts)s)

-- name: queued_bundles
-- A tenant's bundles waiting or rendering (the queue index's predicate).
SELECT count(*) AS queued FROM tm_export_bundles
WHERE tenant_id = %(tenant_id)s AND status IN ('pending', 'processing')

-- name: renew_lease
-- No row: the lease was lost (it ran out and another worker claimed the bundle).
UPDATE tm_export_bundles
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND worker = %(worker)s AND status = 'processing'

-- name: finish_bundle
-- Only the worker that holds the bundle may finish it.
UPDATE tm_export_bundles
SET status = 'ready', file_name = %(file_name)s, mime_type = %(mime_type)s, s3_bucket = %(s3_bucket)s,
    s3_key = %(s3_key)s, s3_version_id = %(s3_version_id)s, size_bytes = %(size_bytes)s,
    sha256 = %(sha256)s, completed_at = now(), lease_expires_at = NULL, error_message = NULL
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND worker = %(worker)s AND status = 'processing'

-- name: fail_bundle
-- Back to the queue, or failed for good after the last attempt.
UPDATE tm_export_bundles
SET status = CASE WHEN attempts >= %(max_attempts)s THEN 'failed' ELSE 'pending' END,
    error_message = %(error_message)s, lease_expires_at = NULL,
    completed_at = CASE WHEN attempts >= %(max_attempts)s THEN now() END
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND worker = %(worker)s AND status = 'processing'

-- name: count_download
UPDATE tm_export_bundles SET download_count = download_count + 1
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND status = 'ready' AND expires_at > now()
RETURNING download_count

-- name: expire_bundle
UPDATE tm_export_bundles SET status = 'expired'
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND status = 'ready' AND expires_at <= now()

-- name: export_queue
SELECT depth, oldest_seconds FROM tm_export_queue()
