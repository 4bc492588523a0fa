"""VerifyChat: recompute every snapshot's checksum from history alone.

History is replayed in version order, O(rows) in all: each snapshot's expected
state is the previous one plus the rows its version wrote. The running sums in
the head rows are not consulted, so a drift between them and history shows up.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from service import checksum
from service.database import Database
from service.models import Identity, Snapshot, VerifyProblem, VerifyReport
from service.timeline import require_chat
from service.validation import Checker


class Verifier:
    def __init__(self, db: Database) -> None:
        self.db = db

    def verify(self, identity: Identity, chat_id: str) -> VerifyReport:
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        check.done()
        assert chat is not None
        params = {"tenant_id": identity.tenant_id, "chat_id": chat}
        problems: list[VerifyProblem] = []
        with self.db.transaction(identity.tenant_id) as tx:
            head = require_chat(tx, identity, chat)
            snapshots: list[Snapshot] = tx.all("all_snapshots", params, Snapshot)
            rows = tx.stream("all_message_versions", params)
            live = _Replay()
            pending: dict[str, Any] | None = next(rows, None)
            previous: Snapshot | None = None
            for expected_version, snapshot in enumerate(snapshots, start=1):
                if snapshot.version != expected_version:
                    problems.append(_problem(snapshot, f"version {snapshot.version} where {expected_version} was due"))
                if snapshot.previous_snapshot_id != (previous.id if previous else None):
                    problems.append(_problem(snapshot, "previous_snapshot_id does not name the snapshot before"))
                while pending is not None and pending["chat_version"] <= snapshot.version:
                    live.apply(pending)
                    pending = next(rows, None)
                state = checksum.StateSum(live.sum.value + checksum.title_element(snapshot.title))
                if state.hex != snapshot.checksum:
                    problems.append(_problem(snapshot, "checksum differs from the state recomputed from history"))
                if snapshot.message_count != len(live.messages):
                    problems.append(
                        _problem(snapshot, f"message_count {snapshot.message_count}, history has {len(live.messages)}")
                    )
                if snapshot.total_tokens != live.tokens:
                    problems.append(_problem(snapshot, "total_tokens differs from history"))
                previous = snapshot
            if head.head_version != len(snapshots):
                problems.append(
                    VerifyProblem(f"chat head is at version {head.head_version}, history has {len(snapshots)}")
                )
            if previous is not None and head.state_sum != previous.checksum:
                problems.append(VerifyProblem("chat head checksum differs from its latest snapshot"))
        return VerifyReport(problems=problems, snapshots_checked=len(snapshots), files_checked=0)


class _Replay:
    """The live messages while history is replayed, with running sums."""

    def __init__(self) -> None:
        self.messages: dict[UUID, tuple[int, int]] = {}  # message -> (element, tokens)
        self.sum = checksum.StateSum()
        self.tokens = 0

    def apply(self, row: dict[str, Any]) -> None:
        old = self.messages.pop(row["message_id"], None)
        if old is not None:
            self.sum.remove(old[0])
            self.tokens -= old[1]
        if not row["is_deleted"]:
            element = checksum.message_element(row["message_id"], row["position"], row["role"], row["content"])
            self.messages[row["message_id"]] = (element, row["tokens"])
            self.sum.add(element)
            self.tokens += row["tokens"]


def _problem(snapshot: Snapshot, detail: str) -> VerifyProblem:
    return VerifyProblem(detail=detail, snapshot_id=snapshot.id, version=snapshot.version)
