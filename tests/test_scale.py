"""Every read and restore is linear in the chat, whatever the planner believes.

A 250-message chat and a 5,000-message chat (20x) are written into a new
tenant of a database that already holds thousands of small chats, a moment
before they are read: their rows are not in the statistics, so the planner
believes each chat has about one row. Each call on the large chat may take at
most 40x its time on the small one (linear is 20x, quadratic 400x). The same
runs on a fresh database that was never analyzed. Ratios, not times, so the
test holds on any machine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from psycopg.types.json import Jsonb

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.app import App, Stores
from service import migrations
from service.config import Settings
from service.database import APP_ROLE, Database
from service.queries import query
from tests.bulk import TABLES, analyze, load_bulk_chat, load_small_chats
from tests.conftest import Stack

SMALL, LARGE = 250, 5000
VERSIONS = 2  # every message edited once
FILES_PER_MESSAGE = 1 / 20
MAX_RATIO = 40


@dataclass
class Chat:
    id: str
    messages: int
    head_version: int
    head_snapshot_id: str
    first_round_snapshot_id: str  # every message at its first version
    early_snapshot_id: str  # version 10


@dataclass
class Scene:
    stub: service_pb2_grpc.TimeMachineServiceStub
    database_url: str
    tenant_id: str
    small: Chat
    large: Chat

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("x-tenant-id", self.tenant_id), ("x-user-id", str(uuid.UUID(int=1))))


def _load(database_url: str, tenant: uuid.UUID, messages: int) -> Chat:
    chat = uuid.uuid4()
    files = int(messages * FILES_PER_MESSAGE)
    load_bulk_chat(database_url, tenant, chat, messages, VERSIONS, files=files, analyzed=False)
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (str(tenant),))
        ids: dict[int, str] = dict(
            conn.execute(
                "select version, id::text from tm_snapshots where tenant_id = %s and chat_id = %s"
                " and version = any(%s)",
                (tenant, chat, [messages, 10, messages * VERSIONS + files]),
            ).fetchall()
        )
    head = messages * VERSIONS + files
    return Chat(str(chat), messages, head, ids[head], ids[messages], ids[10])


def _scene(stub: service_pb2_grpc.TimeMachineServiceStub, database_url: str, *, analyzed: bool) -> Scene:
    background = uuid.uuid4()
    load_small_chats(database_url, background, chats=2000, messages=10, seed=background.hex)
    if analyzed:
        analyze(database_url)
    tenant = uuid.uuid4()
    return Scene(
        stub, database_url, str(tenant), _load(database_url, tenant, SMALL), _load(database_url, tenant, LARGE)
    )


@pytest.fixture(scope="module")
def busy(stack: Stack) -> Scene:
    """The session's database, thousands of small chats in it, analyzed; then two new chats."""
    return _scene(stack.stub, stack.runtime.database_url, analyzed=True)


@pytest.fixture(scope="module")
def fresh(stack: Stack) -> Iterator[Scene]:
    """A new database that autovacuum never analyzes, served by a second server."""
    name = f"tm_fresh_{uuid.uuid4().hex[:12]}"
    base = stack.runtime.database_url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    url = base.replace("/postgres?", f"/{name}?")
    migrations.apply(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(f"alter table {table} set (autovacuum_enabled = false)")
    db = Database(url, min_size=1, max_size=8)
    db.open()
    settings = replace(Settings.from_env(), grpc_address="127.0.0.1:0", export_workers=0, sweeper_interval_seconds=0)
    app = App(settings, Stores(db=db, vault=stack.stores.vault))
    app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield _scene(service_pb2_grpc.TimeMachineServiceStub(channel), url, analyzed=False)
    finally:
        channel.close()
        app.stop(grace=1)
        db.close()
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"drop database {name} with (force)")


def _best(call: Callable[[Chat], object], chat: Chat, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call(chat)
        best = min(best, time.perf_counter() - start)
    return best


def _time_at(scene: Scene, chat: Chat) -> Timestamp:
    """The creation time of the chat's middle snapshot."""
    reply = scene.stub.GetChatAtSnapshot(
        api.GetChatAtSnapshotRequest(chat_id=chat.id, version=chat.head_version // 2, page_size=1), metadata=scene.md
    )
    return reply.snapshot.timestamp


def _reads(scene: Scene) -> dict[str, Callable[[Chat], object]]:
    s, md = scene.stub, scene.md

    def a_message(chat: Chat) -> str:
        return s.GetChat(api.GetChatRequest(chat_id=chat.id, page_size=1), metadata=md).messages[0].message_id

    return {
        "GetChat": lambda c: s.GetChat(api.GetChatRequest(chat_id=c.id), metadata=md),
        "GetChat page": lambda c: s.GetChat(api.GetChatRequest(chat_id=c.id, page_size=100), metadata=md),
        "GetChatAtSnapshot by version": lambda c: s.GetChatAtSnapshot(
            api.GetChatAtSnapshotRequest(chat_id=c.id, version=c.messages), metadata=md
        ),
        "GetChatAtSnapshot by id": lambda c: s.GetChatAtSnapshot(
            api.GetChatAtSnapshotRequest(chat_id=c.id, snapshot_id=c.first_round_snapshot_id), metadata=md
        ),
        "GetChatAtSnapshot by time": lambda c: s.GetChatAtSnapshot(
            api.GetChatAtSnapshotRequest(chat_id=c.id, at_time=_time_at(scene, c)), metadata=md
        ),
        "ListMessageVersions": lambda c: s.ListMessageVersions(
            api.ListMessageVersionsRequest(chat_id=c.id, message_id=a_message(c)), metadata=md
        ),
        "CompareSnapshots": lambda c: s.CompareSnapshots(
            api.CompareSnapshotsRequest(
                chat_id=c.id, from_snapshot_id=c.early_snapshot_id, to_snapshot_id=c.head_snapshot_id
            ),
            metadata=md,
        ),
        "Search in chat": lambda c: s.Search(api.SearchRequest(chat_id=c.id, query="common"), metadata=md),
        "Search history in chat": lambda c: s.Search(
            api.SearchRequest(chat_id=c.id, query="common", include_history=True), metadata=md
        ),
        "ListFiles": lambda c: s.ListFiles(api.ListFilesRequest(chat_id=c.id), metadata=md),
        "GetTimeline": lambda c: s.GetTimeline(api.GetTimelineRequest(chat_id=c.id), metadata=md),
    }


def _restores(scene: Scene) -> dict[str, Callable[[Chat], object]]:
    """Each restores a past state and then the head again, so the chat ends as it began."""
    s, md = scene.stub, scene.md

    def there_and_back(chat: Chat, target: str, scope: int, **kw: object) -> None:
        s.Restore(api.RestoreRequest(chat_id=chat.id, target_snapshot_id=target, scope=scope, **kw), metadata=md)  # type: ignore[arg-type]
        s.Restore(
            api.RestoreRequest(chat_id=chat.id, target_snapshot_id=chat.head_snapshot_id, scope=scope, **kw),  # type: ignore[arg-type]
            metadata=md,
        )

    def ends(chat: Chat) -> tuple[str, str]:
        messages = s.GetChat(api.GetChatRequest(chat_id=chat.id), metadata=md).messages
        return messages[0].message_id, messages[-1].message_id

    def a_file(chat: Chat) -> str:
        """A file as it was at the head snapshot (restores since gave its name newer versions)."""
        request = api.GetChatAtSnapshotRequest(chat_id=chat.id, snapshot_id=chat.head_snapshot_id, page_size=1)
        return s.GetChatAtSnapshot(request, metadata=md).files[0].id

    return {
        "Restore FULL_CHAT": lambda c: there_and_back(c, c.early_snapshot_id, pb.RESTORE_SCOPE_FULL_CHAT),
        "Restore MESSAGE_RANGE": lambda c: there_and_back(
            c,
            c.first_round_snapshot_id,
            pb.RESTORE_SCOPE_MESSAGE_RANGE,
            message_range=pb.MessageRange(first_message_id=ends(c)[0], last_message_id=ends(c)[1]),
        ),
        "Restore SINGLE_MESSAGE": lambda c: there_and_back(
            c, c.first_round_snapshot_id, pb.RESTORE_SCOPE_SINGLE_MESSAGE, message_ids=[ends(c)[0]]
        ),
        "Restore FILES_ONLY": lambda c: there_and_back(c, c.early_snapshot_id, pb.RESTORE_SCOPE_FILES_ONLY),
        "Restore SINGLE_FILE": lambda c: s.Restore(
            api.RestoreRequest(
                chat_id=c.id,
                target_snapshot_id=c.head_snapshot_id,
                scope=pb.RESTORE_SCOPE_SINGLE_FILE,
                file_ids=[a_file(c)],
            ),
            metadata=md,
        ),
    }


def _ratios(scene: Scene, calls: dict[str, Callable[[Chat], object]], repeat: int) -> dict[str, tuple[float, float]]:
    times = {}
    for name, call in calls.items():
        call(scene.small)  # warm: connections, plans, caches
        times[name] = (_best(call, scene.small, repeat), _best(call, scene.large, repeat))
    return times


def _check(times: dict[str, tuple[float, float]]) -> None:
    report = {
        name: f"{small * 1000:.1f} ms -> {large * 1000:.1f} ms ({large / small:.1f}x)"
        for name, (small, large) in times.items()
    }
    slow = {name: line for name, line in report.items() if times[name][1] / times[name][0] > MAX_RATIO}
    print("\n".join(f"{name}: {line}" for name, line in report.items()))
    assert not slow, f"not linear in the chat ({SMALL} -> {LARGE} messages): {slow}"


@pytest.mark.parametrize("scene_name", ["busy", "fresh"])
def test_reads_are_linear_in_the_chat(scene_name: str, request: pytest.FixtureRequest) -> None:
    scene: Scene = request.getfixturevalue(scene_name)
    _check(_ratios(scene, _reads(scene), repeat=3))


@pytest.mark.parametrize("scene_name", ["busy", "fresh"])
def test_restores_are_linear_in_the_chat(scene_name: str, request: pytest.FixtureRequest) -> None:
    scene: Scene = request.getfixturevalue(scene_name)
    _check(_ratios(scene, _restores(scene), repeat=1))


def _plan(scene: Scene, name: str, params: dict[str, object]) -> list[str]:
    with psycopg.connect(scene.database_url) as conn, conn.transaction():
        conn.execute(f"set local role {APP_ROLE}")
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (scene.tenant_id,))
        return [row[0] for row in conn.execute("explain (analyze, costs off) " + query(name), params).fetchall()]


def _keyed(plan: list[str], removed: str) -> None:
    """A one-statement write's plan: no sequential scan, and no node whose `removed` count passes 100 rows."""
    assert not [line for line in plan if "Seq Scan" in line], "\n".join(plan)
    counts = [int(line.split(":")[1].split()[0]) for line in plan if removed in line]
    assert not any(n > 100 for n in counts), "\n".join(plan)


@pytest.mark.parametrize("scene_name", ["busy", "fresh"])
def test_lookups_by_key_never_scan_the_chat_or_tenant(scene_name: str, request: pytest.FixtureRequest) -> None:
    """A new tenant looks like one row to the planner: a lookup must still be a lookup.

    (Before migration 007 a search hit was found by scanning the chat, and the
    hit's successor by hashing every row of the tenant.)
    """
    scene: Scene = request.getfixturevalue(scene_name)
    chat = uuid.UUID(scene.large.id)
    tenant = uuid.UUID(scene.tenant_id)
    with psycopg.connect(scene.database_url) as conn, conn.transaction():
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (scene.tenant_id,))
        version = conn.execute(
            "select id, message_id, position, version from tm_message_versions"
            " where tenant_id = %s and chat_id = %s and version = 1 limit 1",
            (tenant, chat),
        ).fetchone()
        a_file = conn.execute(
            "select id, s3_key, s3_version_id from tm_files where tenant_id = %s and chat_id = %s limit 1",
            (tenant, chat),
        ).fetchone()
        tsquery = conn.execute("select websearch_to_tsquery('simple', 'common')::text").fetchone()
    assert version is not None and tsquery is not None and a_file is not None
    file_id, key, key_version = a_file
    search = {"tenant_id": tenant, "chat_id": chat, "tsquery": tsquery[0], "include_history": True}
    search |= {"limit": 21, "offset": 0}
    lookups = {
        "snapshot_by_id": {"tenant_id": tenant, "snapshot_id": uuid.UUID(scene.large.head_snapshot_id)},
        "file_by_id": {"tenant_id": tenant, "file_id": file_id},
        "current_message_version": {
            "tenant_id": tenant,
            "chat_id": chat,
            "id": version[0],
            "message_id": version[1],
            "position": version[2],
            "version": version[3],
        },
        "attachments_of": {"tenant_id": tenant, "chat_id": chat, "ids": [version[0]]},
        "chat_attachments": {"tenant_id": tenant, "chat_id": chat},  # an export's, chat-wide by its key
        "chat_objects_to_erase": {"tenant_id": tenant, "chat_id": chat},  # EraseChat's
        "search_messages": search,
        "search_files": search,
        "object_references": {  # the sweeper, a page of listed objects at a time
            "keys": [key, f"tenants/{tenant}/objects/{uuid.uuid4()}"],
            "versions": [key_version, "v1"],
        },
    }
    for name, params in lookups.items():
        plan = _plan(scene, name, params)
        removed = [int(line.split(":")[1].split()[0]) for line in plan if "Rows Removed by Filter" in line]
        assert not any(n > 100 for n in removed), f"{name} filtered rows out of a scan:\n" + "\n".join(plan)
        # The scenes hold a few dozen export bundles at most: a scan of them is the right plan
        # (PostgreSQL sizes a table by its pages now, so it switches to the index as the table grows).
        scans = [line for line in plan if "Seq Scan" in line and "tm_export_bundles" not in line]
        assert not scans, f"{name}:\n" + "\n".join(plan)


@pytest.mark.parametrize("scene_name", ["busy", "fresh"])
def test_a_watch_lease_finds_each_chat_by_its_key_in_a_tenant_of_many_chats(
    scene_name: str, request: pytest.FixtureRequest
) -> None:
    """A tenant's chats were written at different times: with `chat_id = ANY(...)` an unanalyzed
    planner walked the tenant's chat-list index (tm_chats_recent) for the watched chats."""
    scene: Scene = request.getfixturevalue(scene_name)
    tenant = uuid.uuid4()
    load_small_chats(scene.database_url, tenant, chats=500, messages=1, seed=tenant.hex)
    with psycopg.connect(scene.database_url) as conn, conn.transaction():
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (str(tenant),))
        conn.execute(
            "update tm_chats set head_time = now() - random() * interval '30 days' where tenant_id = %s", (tenant,)
        )
        chats = [row[0] for row in conn.execute("select chat_id from tm_chats where tenant_id = %s limit 3", (tenant,))]
    with psycopg.connect(scene.database_url) as conn:
        conn.execute(f"set role {APP_ROLE}")
        conn.execute("select set_config('app.current_tenant_id', %s, false)", (str(tenant),))
        params = {"tenant_id": tenant, "chat_ids": chats, "lease_seconds": 120.0, "renew_below": 90.0}
        plan = [row[0] for row in conn.execute("explain (analyze, costs off) " + query("lease_chat_events"), params)]
        conn.rollback()
    scans = [line for line in plan if "Scan" in line and "tm_chats" in line]
    assert scans and all("tm_chats_pkey" in line for line in scans), "\n".join(plan)


@pytest.mark.parametrize("scene_name", ["busy", "fresh"])
def test_only_the_chat_list_walks_the_chat_list_index(scene_name: str, request: pytest.FixtureRequest) -> None:
    """tm_chats_recent is partial on the list's own condition (migrations/020): a write's lookup by key
    cannot take it, whatever the statistics say of the tenant; the list pages by it."""
    scene: Scene = request.getfixturevalue(scene_name)
    tenant = uuid.uuid4()
    load_small_chats(scene.database_url, tenant, chats=500, messages=1, seed=tenant.hex)
    with psycopg.connect(scene.database_url) as conn:
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (str(tenant),))
        chat = conn.execute("select chat_id from tm_chats where tenant_id = %s limit 1", (tenant,)).fetchone()
        conn.commit()
    assert chat is not None
    key = {"tenant_id": tenant, "chat_id": chat[0]}
    save = key | {
        "id": uuid.uuid4(), "version_id": uuid.uuid4(), "message_id": uuid.uuid4(), "role": "user",
        "content": "words", "model_id": "", "metadata": Jsonb({}), "tokens": 0, "trigger": "message_sent",
        "trigger_description": "", "user_id": None, "request_id": None, "expected_version": None,
    }  # fmt: skip
    page = {
        "tenant_id": tenant, "include_archived": True, "include_deleted": False, "title_pattern": None,
        "user_id": None, "after_time": None, "after_id": None, "limit": 21,
    }  # fmt: skip
    with psycopg.connect(scene.database_url) as conn:
        conn.execute(f"set role {APP_ROLE}")
        conn.execute("select set_config('app.current_tenant_id', %s, false)", (str(tenant),))
        mark = key | {
            "id": uuid.uuid4(), "title": "renamed", "trigger": "chat_renamed", "description": "", "user_id": None,
            "request_id": None, "expected_version": None,
        }  # fmt: skip
        for name, params in {"lock_chat": key, "get_chat_head": key, "save_message": save, "mark_chat": mark}.items():
            plan = [row[0] for row in conn.execute("explain (analyze, costs off) " + query(name), params)]
            scans = [line for line in plan if "Scan" in line and "tm_chats" in line]
            assert scans and all("tm_chats_pkey" in line for line in scans), f"{name}:\n" + "\n".join(plan)
        listed = [row[0] for row in conn.execute("explain (analyze, costs off) " + query("chats_page"), page)]
        conn.rollback()
    assert any("tm_chats_recent" in line for line in listed), "\n".join(listed)
    assert not [line for line in listed if "Seq Scan" in line], "\n".join(listed)


@pytest.mark.parametrize("scene_name", ["busy", "fresh"])
def test_a_save_in_one_statement_reaches_every_row_by_its_key(scene_name: str, request: pytest.FixtureRequest) -> None:
    """save_message (SaveMessage's one-round-trip path) on the scene's large chat, written a moment
    before in the fresh scene: the head by its key, every insert a lookup, whatever the statistics."""
    scene: Scene = request.getfixturevalue(scene_name)
    params = {
        "tenant_id": uuid.UUID(scene.tenant_id), "chat_id": uuid.UUID(scene.large.id), "id": uuid.uuid4(),
        "version_id": uuid.uuid4(), "message_id": uuid.uuid4(), "role": "user", "content": "a common word",
        "model_id": "", "metadata": Jsonb({}), "tokens": 3, "trigger": "message_sent",
        "trigger_description": "user message saved", "user_id": uuid.uuid4(), "request_id": "plan-check",
        "expected_version": None,
    }  # fmt: skip
    with psycopg.connect(scene.database_url) as conn:
        conn.execute(f"set role {APP_ROLE}")
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (scene.tenant_id,))
        plan = [row[0] for row in conn.execute("explain (analyze, costs off) " + query("save_message"), params)]
        conn.rollback()  # the plan, not the row
    assert any("tm_chats_pkey" in line for line in plan), "\n".join(plan)
    _keyed(plan, "Rows Removed by Filter")


@pytest.mark.parametrize("deleted", [False, True], ids=["edit", "delete"])
@pytest.mark.parametrize("scene_name", ["busy", "fresh"])
def test_an_edit_in_one_statement_reaches_every_row_by_its_key(
    scene_name: str, deleted: bool, request: pytest.FixtureRequest
) -> None:
    """edit_message (EditMessage's and DeleteMessage's one-round-trip path) on a message in the middle of
    the scene's large chat: the message, its current version and its search document each by key,
    whatever the statistics."""
    scene: Scene = request.getfixturevalue(scene_name)
    tenant, chat = uuid.UUID(scene.tenant_id), uuid.UUID(scene.large.id)
    with psycopg.connect(scene.database_url) as conn:
        # Files of the bulk chat are not attached to messages; the one-trip edit takes chats without references.
        key = (tenant, chat)
        conn.execute("update tm_chats set has_attachments = false where tenant_id = %s and chat_id = %s", key)
        conn.execute(f"set role {APP_ROLE}")
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (scene.tenant_id,))
        count = conn.execute("select message_count from tm_chats where chat_id = %s", (chat,)).fetchone()
        assert count is not None and count[0] >= 1000
        message = conn.execute(
            "select message_id from tm_messages where tenant_id = %s and chat_id = %s and position = %s",
            (tenant, chat, count[0] // 2),
        ).fetchone()
        assert message is not None
        params = {
            "tenant_id": tenant, "chat_id": chat, "id": uuid.uuid4(), "version_id": uuid.uuid4(),
            "message_id": message[0], "content": "" if deleted else "a common word", "edit_reason": "",
            "deleted": deleted, "trigger": "message_deleted" if deleted else "message_edited", "description": "",
            "user_id": uuid.uuid4(), "request_id": "plan-check", "expected_version": None,
        }  # fmt: skip
        plan = [row[0] for row in conn.execute("explain (analyze, costs off) " + query("edit_message"), params)]
        conn.rollback()  # the plan, not the row
    assert any("Insert on tm_message_versions" in line for line in plan), "\n".join(plan)
    _keyed(plan, "Rows Removed by")
    assert not [line for line in plan if "never executed" in line and "Scan" in line], "\n".join(plan)
