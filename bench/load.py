"""Load for `bench/throughput.py`, run in a process of its own so that the
server's process and PostgreSQL's backends can each be charged their own CPU.

    python -m bench.load KIND TARGET THREADS SECONDS TENANT

KIND: `save` (SaveMessage over gRPC at TARGET, an address), `edit`
(EditMessage of one message of each thread's chat, saved first), `echo` (a trivial
unary call at TARGET), `raw` (the statements SaveMessage runs, issued with
psycopg as the service role at TARGET, a database URL), `lean` (a lean
versioned write on bench-only tables at TARGET). Each thread writes its own
chat. Prints {"calls": n, "seconds": s} as JSON.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import psycopg
from psycopg.types.json import Jsonb

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from service.database import APP_ROLE, begin_statement, tenant_setting
from service.queries import query

CONTENT = "The quick brown fox jumps over the lazy dog. " * 6  # ~270 bytes, as bench/writes.py
ECHO = "/bench.Echo/Echo"
LEAN_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_lean_heads (chat_id uuid PRIMARY KEY, version bigint NOT NULL);
CREATE TABLE IF NOT EXISTS bench_lean_snapshots (
    id uuid PRIMARY KEY, chat_id uuid NOT NULL, version bigint NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS bench_lean_texts (
    id uuid PRIMARY KEY, chat_id uuid NOT NULL, version bigint NOT NULL, body text NOT NULL, doc tsvector NOT NULL);
CREATE INDEX IF NOT EXISTS bench_lean_texts_doc ON bench_lean_texts USING gin (doc);
"""


def saver(target: str, tenant: str) -> Callable[[], Callable[[], None]]:
    channel = grpc.insecure_channel(target)
    stub = service_pb2_grpc.TimeMachineServiceStub(channel)
    md = (("x-tenant-id", tenant), ("x-user-id", str(uuid.uuid4())))

    def per_thread() -> Callable[[], None]:
        request = api.SaveMessageRequest(chat_id=str(uuid.uuid4()), role=pb.MESSAGE_ROLE_USER, content=CONTENT)
        return lambda: stub.SaveMessage(request, metadata=md) and None

    return per_thread


def editor(target: str, tenant: str) -> Callable[[], Callable[[], None]]:
    channel = grpc.insecure_channel(target)
    stub = service_pb2_grpc.TimeMachineServiceStub(channel)
    md = (("x-tenant-id", tenant), ("x-user-id", str(uuid.uuid4())))

    def per_thread() -> Callable[[], None]:
        chat = str(uuid.uuid4())
        saved = stub.SaveMessage(
            api.SaveMessageRequest(chat_id=chat, role=pb.MESSAGE_ROLE_USER, content=CONTENT), metadata=md
        )
        request = api.EditMessageRequest(
            chat_id=chat, message_id=saved.message.message_id, content=CONTENT + " (edited)"
        )
        return lambda: stub.EditMessage(request, metadata=md) and None

    return per_thread


def echoer(target: str, tenant: str) -> Callable[[], Callable[[], None]]:
    call = grpc.insecure_channel(target).unary_unary(ECHO)
    return lambda: lambda: call(b"x") and None


def raw(target: str, tenant: str) -> Callable[[], Callable[[], None]]:
    """SaveMessage's statements with the smallest Python around them: the same SQL on the same tables.

    An ordinary save is one round trip (Database.at_once): the tenant and the
    save_message statement in one pipeline, one implicit transaction.
    """
    tenant_id = uuid.UUID(tenant)

    def per_thread() -> Callable[[], None]:
        conn = psycopg.connect(target, autocommit=True)
        conn.execute(f"set role {APP_ROLE}")
        chat = uuid.uuid4()
        conn.execute(begin_statement(tenant_id, 60000, 10000, 60000))
        conn.execute(query("register_chat"), {"tenant_id": tenant_id, "chat_id": chat, "zero": "0" * 64})
        conn.execute("COMMIT")
        user = uuid.uuid4()
        setting = tenant_setting(tenant_id)

        def write() -> None:
            with conn.pipeline():
                conn.execute(setting, prepare=False)
                # Results in binary, as the service reads them (text output costs PostgreSQL CPU).
                cur = conn.execute(
                    query("save_message"),
                    {
                        "tenant_id": tenant_id,
                        "chat_id": chat,
                        "id": uuid.uuid4(),
                        "version_id": uuid.uuid4(),
                        "message_id": uuid.uuid4(),
                        "role": "user",
                        "content": CONTENT,
                        "model_id": "",
                        "metadata": Jsonb({}),
                        "tokens": 0,
                        "trigger": "message_sent",
                        "trigger_description": "user message saved",
                        "user_id": user,
                        "request_id": None,
                        "expected_version": None,
                    },
                    binary=True,
                )
            assert cur.fetchone() is not None

        return write

    return per_thread


def lean(target: str, tenant: str) -> Callable[[], Callable[[], None]]:
    """A versioned write at its leanest: head, snapshot, and a text row with a GIN-indexed tsvector."""
    with psycopg.connect(target, autocommit=True) as setup:
        setup.execute(LEAN_SCHEMA)

    def per_thread() -> Callable[[], None]:
        conn = psycopg.connect(target)
        chat = uuid.uuid4()
        conn.execute("insert into bench_lean_heads values (%s, 0)", (chat,))
        conn.commit()

        def write() -> None:
            with conn.transaction():
                conn.execute("select set_config('app.current_tenant_id', %s, true)", (tenant,))
                version: Any = conn.execute(
                    "update bench_lean_heads set version = version + 1 where chat_id = %s returning version", (chat,)
                ).fetchone()
                conn.execute(
                    "insert into bench_lean_snapshots values (%s, %s, %s, now())", (uuid.uuid4(), chat, version[0])
                )
                conn.execute(
                    "insert into bench_lean_texts values (%s, %s, %s, %s, to_tsvector('simple', %s))",
                    (uuid.uuid4(), chat, version[0], CONTENT, CONTENT),
                )

        return write

    return per_thread


KINDS = {"save": saver, "edit": editor, "echo": echoer, "raw": raw, "lean": lean}


def run(kind: str, target: str, threads: int, seconds: float, tenant: str) -> dict[str, float]:
    make = KINDS[kind](target, tenant)
    workers = [make() for _ in range(threads)]
    counts = [0] * threads
    start = threading.Event()
    stop_at = [0.0]

    def loop(i: int) -> None:
        start.wait()
        while time.monotonic() < stop_at[0]:
            workers[i]()
            counts[i] += 1

    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    began = time.monotonic()
    stop_at[0] = began + seconds
    start.set()
    for thread in pool:
        thread.join()
    return {"calls": sum(counts), "seconds": time.monotonic() - began}


if __name__ == "__main__":
    kind, target, threads, seconds, tenant = sys.argv[1:6]
    print(json.dumps(run(kind, target, int(threads), float(seconds), tenant)))
