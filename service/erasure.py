"""Erasure for good (GDPR article 17) and the legal holds that stop it.

EraseChat deletes every row of a chat from every table in one transaction,
through tm_erase_chat (migration 016), which runs as the role tm_eraser: the
service role itself has no DELETE on history. A tombstone stays (who, when,
how many rows; no content), so the chat id answers NOT_FOUND saying it was
erased and cannot be written to again. Once that commits, the chat's object
versions in the vault (file bytes, thumbnails, export bundles) that no row
of the tenant refers to any more are deleted; bytes another chat shares
(same SHA-256) stay. What cannot be deleted then is unreferenced, so the
sweeper deletes it later. Each deletion is logged and counted (reason
"erased").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg.types.json import Jsonb

from service.database import Database
from service.errors import Cancelled, FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from service.models import Identity
from service.sweeper import Sweeper
from service.timeline import missing_chat
from service.validation import Checker
from service.vault import StoredObject

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_REASON_BYTES = 2048


@dataclass(frozen=True)
class Erased:
    chat_id: UUID
    rows: int
    objects: int
    bytes: int
    erased_at: datetime
    tables: dict[str, int]


@dataclass(frozen=True)
class LegalHold:
    chat_id: UUID
    legal_hold: bool
    reason: str
    set_by: UUID | None
    set_at: datetime | None


@dataclass(frozen=True)
class TenantProgress:
    chats_total: int
    chats_erased: int
    chats_held: int
    chat_id: UUID | None
    done: bool


class Eraser:
    def __init__(self, db: Database, sweeper: Sweeper) -> None:
        self.db = db
        self.sweeper = sweeper

    def erase_chat(self, identity: Identity, chat_id: str, confirm_checksum: str) -> Erased:
        """Erase one chat, confirmed by its current checksum; refused under a legal hold."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        if not _SHA256.match(confirm_checksum or ""):
            check.fail("confirm_checksum", "must be the chat's current checksum (64 lowercase hex digits)")
        check.done()
        assert chat is not None
        return self._erase(identity, chat, confirm_checksum)

    def erase_tenant(
        self, identity: Identity, confirm_tenant_id: str, active: Callable[[], bool] = lambda: True
    ) -> Iterator[TenantProgress]:
        """Erase every chat of the caller's tenant not under a legal hold, saying how far it got after each.

        Run it again after an interruption: what was erased is gone, the rest follows.
        """
        check = Checker()
        confirmed = check.uuid("confirm_tenant_id", confirm_tenant_id)
        check.done()
        if confirmed != identity.tenant_id:
            raise InvalidArgument([FieldViolation("confirm_tenant_id", "must be the caller's own tenant id")])
        with self.db.transaction(identity.tenant_id) as tx:
            chats = tx.all("tenant_chats", {"tenant_id": identity.tenant_id})
        total = len(chats)
        held = sum(1 for row in chats if row["legal_hold"])
        erased = 0
        yield TenantProgress(total, erased, held, None, done=False)
        for row in chats:
            if row["legal_hold"]:
                continue
            if not active():
                raise Cancelled("the erasure was interrupted; run it again to go on")
            try:
                self._erase(identity, row["chat_id"], None)
            except NotFound:  # erased meanwhile by another call
                pass
            except FailedPrecondition:  # put under a legal hold meanwhile
                held += 1
                continue
            erased += 1
            yield TenantProgress(total, erased, held, row["chat_id"], done=False)
        yield TenantProgress(total, erased, held, None, done=True)

    def set_legal_hold(self, identity: Identity, chat_id: str, legal_hold: bool, reason: str) -> LegalHold:
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        check.text("reason", reason, max_bytes=MAX_REASON_BYTES, required=legal_hold)
        check.done()
        assert chat is not None
        params = {"tenant_id": identity.tenant_id, "chat_id": chat}
        with self.db.transaction(identity.tenant_id) as tx:
            row = tx.one(  # no row: no such chat (or an erased one)
                "set_legal_hold",
                {
                    **params,
                    "legal_hold": legal_hold,
                    "reason": reason if legal_hold else "",
                    "user_id": identity.user_id,
                },
            )
            if row is None:
                raise missing_chat(tx, identity.tenant_id, chat)
        log.info("legal hold %s on a chat", "set" if legal_hold else "lifted")
        return LegalHold(chat, row["legal_hold"], row["legal_hold_reason"], row["legal_hold_by"], row["legal_hold_at"])

    # -- helpers ---------------------------------------------------------------

    def _erase(self, identity: Identity, chat: UUID, confirm_checksum: str | None) -> Erased:
        params = {"tenant_id": identity.tenant_id, "chat_id": chat}
        with self.db.transaction(identity.tenant_id) as tx:
            head = tx.one("lock_chat_for_erasure", params)
            if head is None:
                raise missing_chat(tx, identity.tenant_id, chat)
            if head["legal_hold"]:
                raise FailedPrecondition("the chat is under a legal hold: SetLegalHold lifts it before erasure")
            if confirm_checksum is not None and head["state_sum"] != confirm_checksum:
                raise FailedPrecondition("confirm_checksum is not the chat's current checksum: read it again")
            objects = tx.all("chat_objects_to_erase", params)
            tables: dict[str, int] = tx.one("erase_chat", params)["counts"]
            tombstone = tx.one("insert_erasure", {**params, "user_id": identity.user_id, "counts": Jsonb(tables)})
        sizes = {StoredObject(row["key"], row["version"]): row["size_bytes"] for row in objects}
        deleted = self.sweeper.discard(identity.tenant_id, sizes, "erased")
        log.info("erased a chat: %d rows, %d of %d object versions", sum(tables.values()), len(deleted), len(sizes))
        return Erased(
            chat_id=chat,
            rows=sum(tables.values()),
            objects=len(deleted),
            bytes=sum(sizes[obj] for obj in deleted),
            erased_at=tombstone["erased_at"],
            tables=tables,
        )
