"""The sweeper: the only code that deletes object versions, and only what no row refers to.

Each kind of leftover is made the way a crash or a failure would leave it,
on the real vault and database; each sweep looks only under the test
tenant's prefix, so other tests' objects are never in play.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from PIL import Image

from generated.timemachine.v1 import resources_pb2 as pb
from server.app import App
from service.config import Settings
from service.database import Database
from service.errors import Unavailable
from service.export.bundles import ExportWorker
from service.export.exporter import Exporter
from service.files import Files, UploadHeader
from service.models import FileSource, Identity
from service.sweeper import OWNER_KEY, Sweeper
from service.vault import object_key, thumbnail_key
from service.writes import WriteOptions
from tests.conftest import Caller, Stack, rows
from tests.test_export import create, get, only_queued


@pytest.fixture(autouse=True)
def free_lease(stack: Stack) -> Iterator[None]:
    """Each test starts and ends with the deployment's sweeper lease free."""

    def free() -> None:
        with psycopg.connect(stack.runtime.database_url, autocommit=True) as conn:
            conn.execute("update tm_leases set expires_at = now() - interval '1 second'")

    free()
    yield
    free()


def sweeper(stack: Stack, grace: int = 0, **kw: Any) -> Sweeper:
    return Sweeper(stack.stores.db, stack.stores.vault, grace_seconds=grace, interval_seconds=0, **kw)


def versions(stack: Stack, prefix: str) -> set[tuple[str, str]]:
    vault = stack.stores.vault
    listed = vault.client.list_object_versions(Bucket=vault.bucket, Prefix=prefix).get("Versions", [])
    return {(v["Key"], v["VersionId"]) for v in listed}


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def test_orphans_past_their_grace_are_deleted_and_everything_referenced_is_kept(
    stack: Stack, caller: Caller, chat_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    vault = stack.stores.vault
    tenant = uuid.UUID(caller.tenant_id)
    prefix = f"tenants/{tenant}/"
    picture = caller.upload(chat_id, "picture.png", png(), mime_type="image/png")
    notes = caller.upload(chat_id, "notes.bin", os.urandom(5000))
    assert picture.file.preview_generated
    referenced = versions(stack, prefix)
    assert len(referenced) == 3  # two objects and a thumbnail
    # What a crash between the S3 write and the commit leaves behind, of each kind.
    orphans = {
        vault.put(object_key(tenant, uuid.uuid4()), b"never recorded", "application/octet-stream"),
        vault.put(thumbnail_key(tenant, uuid.uuid4()), png(), "image/png"),
        vault.put(f"{prefix}exports/{uuid.uuid4()}/{uuid.uuid4()}", b"render lost", "application/json"),
    }
    strange = vault.put(f"{prefix}elsewhere/note", b"not a key the service writes", "text/plain")
    with caplog.at_level(logging.INFO, logger="service.sweeper"):
        report = sweeper(stack).sweep(prefix)
    assert report is not None
    assert dict(report.deleted) == {"orphan_object": 1, "orphan_thumbnail": 1, "orphan_export": 1}
    assert report.examined == 6 and report.failed == 0
    assert versions(stack, prefix) == referenced | {(strange.key, strange.version_id)}
    # Each deletion is logged by key and version: ids only.
    logged = {r.getMessage() for r in caplog.records if "sweeper deleted" in r.getMessage()}
    assert logged == {f"sweeper deleted {o.key} version {o.version_id} ({_reason(o.key)})" for o in orphans}
    assert all("never recorded" not in line for line in logged)
    # What is referenced still reads, and a second pass finds nothing to do.
    assert caller.download(notes.file.id)[1] and caller.download(picture.file.id)[1] == png()
    assert caller.verify(chat_id).ok
    again = sweeper(stack).sweep(prefix)
    assert again is not None and not again.deleted and again.examined == 3


def _reason(key: str) -> str:
    return {"objects": "orphan_object", "thumbnails": "orphan_thumbnail", "exports": "orphan_export"}[key.split("/")[2]]


def test_orphans_younger_than_the_grace_period_are_kept(stack: Stack, caller: Caller) -> None:
    """An upload between its S3 write and its commit looks exactly like an orphan: the grace period waits it out."""
    tenant = uuid.UUID(caller.tenant_id)
    young = stack.stores.vault.put(object_key(tenant, uuid.uuid4()), b"in flight", "application/octet-stream")
    report = sweeper(stack, grace=3600).sweep(f"tenants/{tenant}/")
    assert report is not None and report.kept_young == 1 and not report.deleted
    assert (young.key, young.version_id) in versions(stack, f"tenants/{tenant}/")


def test_multipart_uploads_left_open_past_the_grace_period_are_aborted(stack: Stack, caller: Caller) -> None:
    vault = stack.stores.vault
    prefix = f"tenants/{caller.tenant_id}/"
    key = object_key(uuid.UUID(caller.tenant_id), uuid.uuid4())
    upload_id = vault.client.create_multipart_upload(Bucket=vault.bucket, Key=key)["UploadId"]
    vault.client.upload_part(Bucket=vault.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1024)

    def open_uploads() -> list[str]:
        found = vault.client.list_multipart_uploads(Bucket=vault.bucket, Prefix=prefix).get("Uploads", [])
        return [u["UploadId"] for u in found]

    kept = sweeper(stack, grace=3600).sweep(prefix)
    assert kept is not None and kept.aborted_uploads == 0 and open_uploads() == [upload_id]
    time.sleep(1.1)  # S3 times uploads to the second
    report = sweeper(stack).sweep(prefix)
    assert report is not None and report.aborted_uploads == 1 and report.deleted["multipart"] == 1
    assert open_uploads() == []


def test_an_expired_bundles_bytes_are_deleted_at_once_and_a_live_ones_kept(
    stack: Stack, caller: Caller, chat_id: str
) -> None:
    caller.save(chat_id, "exported twice")
    only_queued(stack, caller.tenant_id)
    exporter = Exporter(stack.stores.db, stack.stores.vault)
    short = create(caller, chat_id, format=pb.EXPORT_FORMAT_JSON, expires_in_seconds=1)
    long = create(caller, chat_id, format=pb.EXPORT_FORMAT_JSON)
    work = ExportWorker(stack.stores.db, stack.stores.vault, exporter)
    assert work.run_once() and work.run_once()
    prefix = f"tenants/{caller.tenant_id}/exports/"
    assert len(versions(stack, prefix)) == 2
    time.sleep(1.2)
    report = sweeper(stack, grace=3600).sweep(prefix)  # no grace for what an expired bundle held
    assert report is not None and dict(report.deleted) == {"expired_export": 1}
    ((status,),) = rows(stack, caller.tenant_id, "select status from tm_export_bundles where id = %s", short.id)
    assert status == "expired"
    assert get(caller, short.id).status == pb.EXPORT_STATUS_EXPIRED
    ready = get(caller, long.id)
    assert ready.status == pb.EXPORT_STATUS_READY and len(versions(stack, prefix)) == 1


def test_one_sweeper_at_a_time_and_once_per_interval(stack: Stack, caller: Caller) -> None:
    prefix = f"tenants/{caller.tenant_id}/"
    first = Sweeper(stack.stores.db, stack.stores.vault, grace_seconds=0, interval_seconds=3600, name="replica-a")
    second = Sweeper(stack.stores.db, stack.stores.vault, grace_seconds=0, interval_seconds=3600, name="replica-b")
    assert first.sweep(prefix) is not None
    assert second.sweep(prefix) is None  # the pass is done, and the next one not due for an hour
    assert first.sweep(prefix) is None  # not even for the one that swept


def test_a_bucket_that_names_another_database_is_not_swept(stack: Stack, caller: Caller) -> None:
    """Two deployments on one bucket would each see the other's objects as orphans."""
    vault = stack.stores.vault
    tenant = uuid.UUID(caller.tenant_id)
    orphan = vault.put(object_key(tenant, uuid.uuid4()), b"someone else's?", "application/octet-stream")
    ours = vault.latest(OWNER_KEY)
    if ours is None:
        assert sweeper(stack).sweep(f"tenants/{tenant}/elsewhere/") is not None  # claims the empty bucket
        ours = vault.latest(OWNER_KEY)
    assert ours is not None
    stolen = vault.put(OWNER_KEY, str(uuid.uuid4()).encode(), "text/plain")
    try:
        assert sweeper(stack).sweep(f"tenants/{tenant}/") is None
        assert (orphan.key, orphan.version_id) in versions(stack, f"tenants/{tenant}/")
    finally:
        vault.client.delete_object(Bucket=vault.bucket, Key=OWNER_KEY, VersionId=stolen.version_id)
    assert vault.latest(OWNER_KEY) == ours


def test_an_upload_whose_commit_is_unknown_is_kept_then_swept_when_nothing_refers_to_it(
    stack: Stack, caller: Caller, chat_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection fails during COMMIT and the database cannot be asked: the object stays, for the sweeper."""
    caller.save(chat_id, "before")
    tenant = uuid.UUID(caller.tenant_id)
    files = Files(stack.stores.db, stack.stores.vault, max_upload_bytes=1 << 20)
    armed = threading.Event()
    commit = Database.commit

    test_thread = threading.get_ident()

    def lost_before_commit(conn: psycopg.Connection[Any]) -> None:
        # Only this test's commit: the shared server's readiness probe commits too.
        if armed.is_set() and threading.get_ident() == test_thread:
            armed.clear()
            conn.execute("ROLLBACK")  # the commit never reached the server
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        commit(conn)

    def unreachable(*_: Any) -> None:
        return None

    header = UploadHeader(chat_id, "", "unsure.bin", "", FileSource.USER_UPLOAD, None, "", WriteOptions())
    monkeypatch.setattr(Database, "commit", staticmethod(lost_before_commit))
    monkeypatch.setattr(Files, "_committed", unreachable)

    def upload() -> None:
        armed.set()
        files.upload(Identity(tenant, uuid.UUID(caller.user_id)), header, iter([b"unsure bytes"]))

    with pytest.raises((Unavailable, psycopg.OperationalError)):
        upload()
    monkeypatch.undo()
    assert not armed.is_set(), "the fault was never injected"
    prefix = f"tenants/{tenant}/objects/"
    left = versions(stack, prefix)
    assert len(left) == 1  # kept: the upload could not know
    assert rows(stack, caller.tenant_id, "select count(*) from tm_files") == [(0,)]
    report = sweeper(stack).sweep(prefix)
    assert report is not None and dict(report.deleted) == {"orphan_object": 1}
    assert versions(stack, prefix) == set()
    assert caller.chat(chat_id).current_version == 1


def test_the_service_sweeps_on_its_own(stack: Stack, caller: Caller) -> None:
    """A server with the sweeper on runs passes by itself: here every second, with an hour's grace."""
    tenant = uuid.UUID(caller.tenant_id)
    young = stack.stores.vault.put(object_key(tenant, uuid.uuid4()), b"in flight", "application/octet-stream")
    settings = replace(
        Settings.from_env(),
        grpc_address="127.0.0.1:0",
        export_workers=0,
        sweeper_interval_seconds=1,
        sweeper_grace_seconds=3600,
    )
    app = App(settings, stack.stores)
    app.start()
    try:
        deadline = time.monotonic() + 20
        while app.sweeper.passes < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert app.sweeper.passes >= 2  # a pass per interval
    finally:
        app.stop(grace=1)
    assert (young.key, young.version_id) in versions(stack, f"tenants/{tenant}/")
