"""Watchers for bench/watchers.py, in a process of their own (so the server's RSS is the server's).

    python -m bench.watch_load ADDRESS TENANT HEADS_JSON WATCHERS_PER_CHAT CHANNELS

HEADS_JSON maps each chat id to its head version. Opens WATCHERS_PER_CHAT
watches on each chat over CHANNELS connections, each from the head (the
head is its first message), prints "READY n" once every watch has heard it, records for
every snapshot heard later how long after its commit it arrived, and when
stdin closes prints one JSON line: counts and latency percentiles.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

import grpc

from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc


async def main(address: str, tenant: str, heads: dict[str, int], per_chat: int, connections: int) -> None:
    # Distinct channel arguments: each channel its own connection (equal ones share one).
    channels = [grpc.aio.insecure_channel(address, options=[("grpc.channel_id", i)]) for i in range(connections)]
    stubs = [service_pb2_grpc.TimeMachineServiceStub(channel) for channel in channels]
    metadata = (("x-tenant-id", tenant),)
    ready = asyncio.Event()
    opened = 0
    total = len(heads) * per_chat
    latencies: list[float] = []
    errors: list[str] = []

    async def follow(index: int, chat: str) -> None:
        nonlocal opened
        request = api.WatchChatRequest(chat_id=chat, after_version=heads[chat] - 1)
        call = stubs[index % connections].WatchChat(request, metadata=metadata)
        try:
            async for reply in call:
                if reply.snapshot.version == heads[chat]:
                    opened += 1
                    if opened == total:
                        ready.set()
                    continue
                committed = reply.snapshot.timestamp.ToNanoseconds() / 1e9
                latencies.append(time.time() - committed)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.CANCELLED:
                errors.append(exc.code().name)

    tasks = [asyncio.ensure_future(follow(i, chat)) for i, chat in enumerate(c for c in heads for _ in range(per_chat))]
    waited = 0.0
    while not ready.is_set():  # progress on stderr while they open
        try:
            await asyncio.wait_for(ready.wait(), timeout=5)
        except TimeoutError:
            waited += 5
            print(f"opened {opened} of {total}, errors {errors[:3]}", file=sys.stderr, flush=True)
            if waited >= 120:
                raise
    print(f"READY {opened}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the bench closes it
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    ordered = sorted(latencies)

    def pick(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else 0.0

    mean = round(1000 * statistics.fmean(ordered), 1) if ordered else 0.0
    report = {"opened": opened, "deliveries": len(latencies), "errors": errors[:5], "p50_ms": pick(0.5),
              "p99_ms": pick(0.99), "max_ms": pick(1.0), "mean_ms": mean}  # fmt: skip
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    address, tenant, chats, per_chat, connections = sys.argv[1:6]
    asyncio.run(main(address, tenant, json.loads(chats), int(per_chat), int(connections)))
