"""The sweeper: the only code that deletes object versions from the vault.

An object version is deleted only when the database says, at that moment,
that no row refers to it, and then only when one of these holds:
- the write that made it is known not to have committed (a failed or
  duplicate upload, an export render that lost its lease): `discard`;
- it is older than the grace period (a crash between the S3 write and the
  commit, or a commit whose outcome was unknown): `sweep`;
- only an expired export bundle refers to it: `sweep`, at once.
`sweep` also aborts multipart uploads left open for longer than the grace
period (a crash mid-upload). Every deletion is logged (key and version: ids
only, never content) and counted.

One replica sweeps at a time: a pass holds the deployment-wide "sweeper"
lease, renewed page by page, and keeps it until the next pass is due.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from service.background import Loop, worker_name
from service.database import Database
from service.errors import ServiceError
from service.vault import ListedVersion, StoredObject, Vault

log = logging.getLogger(__name__)
LEASE = "sweeper"
OWNER_KEY = "sweeper/deployment"  # outside tenants/: never swept itself
DEFAULT_GRACE_SECONDS = 24 * 3600
DEFAULT_INTERVAL_SECONDS = 3600
# Keys the service writes: tenants/<tenant>/<kind>/<id>. Anything else is not ours to judge.
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_KEY = re.compile(rf"tenants/({_UUID})/(objects|thumbnails|exports)/.+")


@dataclass
class SweepReport:
    """What one pass looked at and what it removed."""

    examined: int = 0
    kept_young: int = 0
    deleted: Counter[str] = field(default_factory=Counter)
    aborted_uploads: int = 0
    failed: int = 0


class Sweeper:
    def __init__(
        self,
        db: Database,
        vault: Vault,
        *,
        grace_seconds: int = DEFAULT_GRACE_SECONDS,
        interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
        lease_seconds: int = 300,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.vault = vault
        self.grace = timedelta(seconds=grace_seconds)
        self.interval_seconds = interval_seconds
        self.lease_seconds = lease_seconds
        self.name = name or worker_name()
        # Every deletion since start, by reason (for metrics).
        self.deletions: Counter[str] = Counter()
        self.passes = 0  # passes completed by this replica
        self._lock = threading.Lock()
        self._loop = Loop("sweeper", self._step)

    # -- the background pass -------------------------------------------------

    def start(self) -> None:
        if self.interval_seconds > 0:  # 0: sweeping is off on this replica
            self._loop.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._loop.stop(timeout)

    def _step(self) -> float:
        self.sweep()
        # Replicas poll for the lease often enough that a pass is never much
        # later than due, and rarely enough to cost nothing.
        return min(60.0, float(self.interval_seconds))

    def sweep(self, prefix: str = "tenants/") -> SweepReport | None:
        """One pass over the vault under `prefix`; None when another replica holds the lease or it is not due."""
        if not self._lease("take_lease", self.lease_seconds) or not self._owns_bucket():
            return None
        report = SweepReport()
        cutoff = datetime.now(UTC) - self.grace
        for page in self.vault.list_versions(prefix):
            if self._loop.stopping.is_set() or not self._lease("keep_lease", self.lease_seconds):
                log.warning("sweeper stopped mid-pass (lease lost or shutting down)")
                return report
            self._sweep_page(page, cutoff, report)
        for upload in self.vault.list_multipart_uploads(prefix):
            if upload.modified < cutoff and self.vault.abort_multipart(upload.key, upload.version_id):
                self._count("multipart", upload.key, upload.version_id, report)
                report.aborted_uploads += 1
        self._lease("keep_lease", self.interval_seconds)  # held until the next pass is due
        self.passes += 1
        log.info(
            "sweeper pass: %d object versions examined, %d deleted %s, %d too young, %d uploads aborted",
            report.examined,
            sum(report.deleted.values()),
            dict(report.deleted),
            report.kept_young,
            report.aborted_uploads,
        )
        return report

    def _sweep_page(self, page: list[ListedVersion], cutoff: datetime, report: SweepReport) -> None:
        by_tenant: dict[UUID, list[ListedVersion]] = defaultdict(list)
        for listed in page:
            match = _KEY.fullmatch(listed.key)
            if match:
                by_tenant[UUID(match.group(1))].append(listed)
        for tenant_id, listed_versions in by_tenant.items():
            report.examined += len(listed_versions)
            modified = {(v.key, v.version_id): v.modified for v in listed_versions}
            doomed: list[tuple[StoredObject, str]] = []
            for row in self._references(tenant_id, [StoredObject(v.key, v.version_id) for v in listed_versions]):
                obj = StoredObject(row["key"], row["version"])
                if row["referenced"]:
                    continue
                if row["expired_export"]:
                    doomed.append((obj, "expired_export"))
                elif modified[obj.key, obj.version_id] < cutoff:
                    doomed.append((obj, _kind(obj.key)))
                else:
                    report.kept_young += 1
            self._delete(tenant_id, doomed, report)

    # -- deleting what a failed write left -----------------------------------

    def discard(self, tenant_id: UUID, objects: Iterable[StoredObject | None], reason: str) -> list[StoredObject]:
        """Delete object versions no row refers to (a write that did not commit, an erased chat); those deleted.

        Best effort: what cannot be deleted now is left for a later sweep.
        """
        wanted = [obj for obj in objects if obj is not None]
        if not wanted:
            return []
        report = SweepReport()
        try:
            rows = self._references(tenant_id, wanted)
        except ServiceError as exc:
            log.warning("objects left for the sweeper: %s", exc.message)
            return []
        doomed = [(StoredObject(r["key"], r["version"]), reason) for r in rows if not r["referenced"]]
        failed = self._delete(tenant_id, doomed, report)
        return [obj for obj, _ in doomed if obj not in failed]

    # -- helpers ---------------------------------------------------------------

    def _references(self, tenant_id: UUID, objects: list[StoredObject]) -> list[dict[str, Any]]:
        with self.db.transaction(tenant_id) as tx:
            return tx.all(
                "object_references",
                {"keys": [o.key for o in objects], "versions": [o.version_id for o in objects]},
                prepare=False,
            )

    def _delete(
        self, tenant_id: UUID, doomed: list[tuple[StoredObject, str]], report: SweepReport
    ) -> set[StoredObject]:
        """Delete, count and log; those that could not be deleted (left for a later sweep)."""
        if not doomed:
            return set()
        failed = set(self.vault.delete_versions([obj for obj, _ in doomed]))
        for obj, reason in doomed:
            if obj in failed:
                report.failed += 1
                continue
            self._count(reason, obj.key, obj.version_id, report)
            if reason == "expired_export":
                with self.db.transaction(tenant_id) as tx:
                    tx.execute(
                        "bundle_object_removed",
                        {"tenant_id": tenant_id, "key": obj.key, "version": obj.version_id},
                    )
        return failed

    def _count(self, reason: str, key: str, version_id: str, report: SweepReport) -> None:
        log.info("sweeper deleted %s version %s (%s)", key, version_id, reason)
        report.deleted[reason] += 1
        with self._lock:
            self.deletions[reason] += 1

    def _owns_bucket(self) -> bool:
        """Whether the bucket is this database's: it names our deployment, or nothing yet (then it does)."""
        with self.db.transaction(None) as tx:
            ours = str(tx.one("deployment_id")["id"]).encode()
        named = self.vault.latest(OWNER_KEY)
        if named is None:
            self.vault.put(OWNER_KEY, ours, "text/plain")
            return True
        if named.strip() != ours:
            log.error(
                "not sweeping bucket %s: it belongs to another database (deployment %s; this one is %s)",
                self.vault.bucket,
                named.strip().decode(errors="replace")[:64],
                ours.decode(),
            )
            return False
        return True

    def _lease(self, query: str, seconds: int) -> bool:
        with self.db.transaction(None) as tx:
            held = tx.one(query, {"name": LEASE, "holder": self.name, "seconds": seconds})
        return held is not None


def _kind(key: str) -> str:
    """The reason an unreferenced object past its grace is deleted, by what it held."""
    return {"objects": "orphan_object", "thumbnails": "orphan_thumbnail", "exports": "orphan_export"}[key.split("/")[2]]
