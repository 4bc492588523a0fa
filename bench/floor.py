"""SaveMessage at the floor of the libraries we build on: what any Python service of ours would pay.

A gRPC server of its own (grpc.aio on an event loop thread, as ours) whose
SaveMessage decodes the request, awaits the very statement our ordinary save
sends (the tenant and save_message in one pipeline on psycopg's asyncio pool,
as service/async_database.py) and answers with the message and the snapshot.
Nothing else: no identity, admission, deadline, metrics, trace, log line,
field checks or general path. bench/throughput.py loads it as it loads our
server, so that our CPU per save can be read against two baselines:

- over a trivial echo (issue 10's `server_cpu_per_write_over_echo`), which
  this floor bounds from below (`library_floor_cpu_per_write_over_echo`);
- over this floor (`server_cpu_per_write_over_library_floor`): what our own
  code adds to the libraries' cost of the same write.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service import checksum
from service.database import APP_ROLE, begin_statement, tenant_setting
from service.queries import query

ROLES = {pb.MESSAGE_ROLE_USER: "user", pb.MESSAGE_ROLE_ASSISTANT: "assistant", pb.MESSAGE_ROLE_SYSTEM: "system"}
TRIGGERS = {"user": "message_sent"}


class _Floor:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool
        self.registered: set[uuid.UUID] = set()

    async def SaveMessage(self, request: api.SaveMessageRequest, context: Any) -> api.SaveMessageResponse:
        metadata = dict(context.invocation_metadata())
        tenant, user = uuid.UUID(metadata["x-tenant-id"]), uuid.UUID(metadata["x-user-id"])
        chat = uuid.UUID(request.chat_id)
        if chat not in self.registered:  # once per chat, as our general path does on a chat's first write
            await self._register(tenant, chat)
        role = ROLES[request.role]
        message_id, version_id = uuid.uuid4(), uuid.uuid4()
        params = {
            "tenant_id": tenant, "chat_id": chat, "id": uuid.uuid4(), "version_id": version_id,
            "message_id": message_id, "role": role, "content": request.content, "model_id": request.model_id,
            "metadata": Jsonb({}), "tokens": request.tokens, "trigger": TRIGGERS.get(role, "message_received"),
            "trigger_description": f"{role} message saved", "user_id": user, "request_id": None,
            "expected_version": None,
        }  # fmt: skip
        async with self.pool.connection() as conn:
            async with conn.pipeline():
                await conn.execute(tenant_setting(tenant), prepare=False)
                cur = conn.cursor(binary=True)
                await cur.execute(query("save_message"), params)
            row = await cur.fetchone()
        assert row is not None
        stamp = Timestamp()
        stamp.FromDatetime(row[4])
        return api.SaveMessageResponse(
            message=pb.MessageVersion(
                id=str(version_id), message_id=str(message_id), chat_id=request.chat_id, snapshot_id=str(row[0]),
                role=request.role, content=request.content, version=1, is_active=True, edited_by=str(user),
                created_at=stamp, original_created_at=stamp, chat_version=row[3],
            ),
            snapshot=pb.Snapshot(
                id=str(row[0]), chat_id=request.chat_id, version=row[3], timestamp=stamp, message_count=row[5],
                total_tokens=row[7], checksum=row[14],
            ),
        )  # fmt: skip

    async def _register(self, tenant: uuid.UUID, chat: uuid.UUID) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(begin_statement(tenant, 60000, 10000, 60000))
            await conn.execute(query("register_chat"), {"tenant_id": tenant, "chat_id": chat, "zero": checksum.ZERO})
            await conn.execute("COMMIT")
        self.registered.add(chat)


class FloorServer:
    """The floor's server on a loop thread of its own; `address` serves SaveMessage only."""

    def __init__(self, database_url: str, connections: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-floor-loop", daemon=True)
        self.thread.start()
        self.server, self.pool, port = asyncio.run_coroutine_threadsafe(
            self._start(database_url, connections), self.loop
        ).result()
        self.address = f"127.0.0.1:{port}"

    async def _start(self, database_url: str, connections: int) -> tuple[Any, Any, int]:
        async def as_service_role(conn: Any) -> None:
            await conn.execute(f"SET ROLE {APP_ROLE}")

        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url, min_size=connections, max_size=connections, open=False,
            kwargs={"autocommit": True}, configure=as_service_role, name="bench-floor",
        )  # fmt: skip
        await pool.open(wait=True)
        server = grpc.aio.server()
        save = grpc.unary_unary_rpc_method_handler(
            _Floor(pool).SaveMessage,
            request_deserializer=api.SaveMessageRequest.FromString,
            response_serializer=api.SaveMessageResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("timemachine.v1.TimeMachineService", {"SaveMessage": save}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, pool, port

    def stop(self) -> None:
        async def stopped() -> None:
            await self.server.stop(1)
            await self.pool.close()

        asyncio.run_coroutine_threadsafe(stopped(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
