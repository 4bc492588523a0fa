"""VerifyChat: recompute every snapshot's checksum from history alone.

History is replayed in version order, O(rows) in all: each snapshot's expected
state is the previous one plus the rows its version wrote. The running sums in
the head rows are not consulted, so a drift between them and history shows up.
Then every vault object the chat refers to is checked at its version id: its
size always, its bytes' SHA-256 when the caller asks (that reads all media).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from service import checksum
from service.database import Database
from service.errors import Cancelled, NotFound
from service.models import Identity, Snapshot, VerifyProblem, VerifyReport
from service.timeline import require_chat
from service.validation import Checker
from service.vault import Vault


def _consume(rows: Iterator[dict[str, Any]], pending: dict[str, Any] | None, version: int, apply: Any) -> Any:
    while pending is not None and pending["chat_version"] <= version:
        apply(pending)
        pending = next(rows, None)
    return pending


class Verifier:
    def __init__(self, db: Database, vault: Vault) -> None:
        self.db = db
        self.vault = vault

    def verify(
        self,
        identity: Identity,
        chat_id: str,
        *,
        check_content: bool = False,
        active: Callable[[], bool] = lambda: True,
    ) -> VerifyReport:
        """Replay history; check every object's size, and its bytes when `check_content`.

        Stops with Cancelled as soon as `active()` turns false (the caller left).
        """
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        check.done()
        assert chat is not None
        params = {"tenant_id": identity.tenant_id, "chat_id": chat}
        problems: list[VerifyProblem] = []
        messages, files = checksum.LiveElements(), checksum.LiveElements()

        def apply_message(row: dict[str, Any]) -> None:
            element = None
            if not row["is_deleted"]:
                element = checksum.message_element(row["message_id"], row["position"], row["role"], row["content"])
            messages.put(row["message_id"], element, row["tokens"])

        def apply_file(row: dict[str, Any]) -> None:
            element = None
            if not row["deleted"]:
                element = checksum.file_element(
                    row["original_name"], row["checksum_sha256"], row["size_bytes"], row["mime_type"]
                )
            files.put(row["original_name"], element)

        with self.db.transaction(identity.tenant_id) as tx:
            head = require_chat(tx, identity, chat)
            snapshots: list[Snapshot] = tx.all("all_snapshots", params, Snapshot)
            file_rows = iter(tx.all("all_file_events", params))
            objects = tx.all("chat_objects", params)
            message_rows = tx.stream("all_message_versions", params)
            next_message, next_file = next(message_rows, None), next(file_rows, None)
            previous: Snapshot | None = None
            for expected_version, snapshot in enumerate(snapshots, start=1):
                if snapshot.version != expected_version:
                    problems.append(_problem(snapshot, f"version {snapshot.version} where {expected_version} was due"))
                if snapshot.previous_snapshot_id != (previous.id if previous else None):
                    problems.append(_problem(snapshot, "previous_snapshot_id does not name the snapshot before"))
                next_message = _consume(message_rows, next_message, snapshot.version, apply_message)
                next_file = _consume(file_rows, next_file, snapshot.version, apply_file)
                state = checksum.StateSum(messages.sum.value + files.sum.value + checksum.title_element(snapshot.title))
                if state.hex != snapshot.checksum:
                    problems.append(_problem(snapshot, "checksum differs from the state recomputed from history"))
                if (snapshot.message_count, snapshot.file_count) != (len(messages), len(files)):
                    problems.append(
                        _problem(
                            snapshot,
                            f"counts {snapshot.message_count} messages / {snapshot.file_count} files, "
                            f"history has {len(messages)} / {len(files)}",
                        )
                    )
                if snapshot.total_tokens != messages.tokens:
                    problems.append(_problem(snapshot, "total_tokens differs from history"))
                previous = snapshot
        if head.head_version != len(snapshots):
            problems.append(VerifyProblem(f"chat head is at version {head.head_version}, history has {len(snapshots)}"))
        if previous is not None and head.state_sum != previous.checksum:
            problems.append(VerifyProblem("chat head checksum differs from its latest snapshot"))
        for obj in objects:
            if not active():
                raise Cancelled("the verification was cancelled")
            problem = self._check_object(obj, check_content, active)
            if problem:
                problems.append(VerifyProblem(detail=problem, file_id=obj["id"]))
        return VerifyReport(problems=problems, snapshots_checked=len(snapshots), files_checked=len(objects))

    def _check_object(self, obj: dict[str, Any], check_content: bool, active: Callable[[], bool]) -> str | None:
        """The object at its version id: its size, and its sha256 when `check_content`."""
        where = f"object of file {obj['id']}"
        try:
            if self.vault.size_of(obj["s3_key"], obj["s3_version_id"]) != obj["size_bytes"]:
                return f"{where} has a different size than recorded"
            if not check_content:
                return None
            digest = hashlib.sha256()
            for chunk in self.vault.read(obj["s3_key"], obj["s3_version_id"]):
                if not active():  # the reader is closed as it goes out of scope
                    raise Cancelled("the verification was cancelled")
                digest.update(chunk)
        except NotFound:
            return f"{where} is missing from the vault at its version id"
        if digest.hexdigest() != obj["checksum_sha256"]:
            return f"{where} does not hash to its recorded sha256"
        return None


def _problem(snapshot: Snapshot, detail: str) -> VerifyProblem:
    return VerifyProblem(detail=detail, snapshot_id=snapshot.id, version=snapshot.version)
