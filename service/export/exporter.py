"""Render an export and hand it out as a stream of chunks of at most 1 MiB.

Two phases: one database pass renders the text documents into spooled
temporary files (in memory up to 8 MiB each, then on disk), and the
transaction ends; then the output streams from those files and, for a ZIP,
media straight from S3. A slow reader therefore never holds a database
connection, and memory stays bounded whatever the chat or media size.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any
from uuid import UUID

from service import states
from service.attachments import AttachmentRow
from service.database import Database, Transaction
from service.errors import Cancelled, DataLoss, FieldViolation, InvalidArgument, Unavailable
from service.export import archive
from service.export.content import ExportFile, ExportHeader, history, messages
from service.export.pdf import PdfRenderer
from service.export.render import JsonRenderer, MarkdownRenderer, Renderer
from service.export.webpage import HtmlRenderer
from service.models import Identity, MediaFile, Snapshot
from service.pipeline import BackgroundDigest, Lookahead
from service.timeline import check_point, find_snapshot, point, require_chat
from service.validation import Checker
from service.vault import Vault, s3_errors

FROM, TO = ("from_snapshot_id", "from_label"), ("to_snapshot_id", "label")  # a snapshot named by id or by label

CHUNK = 1024 * 1024
# Thumbnails of referenced images are inlined in the HTML: a bounded number, each small.
MAX_THUMBNAILS = 200
MAX_THUMBNAIL_BYTES = 256 * 1024
SPOOL_BYTES = 8 * 1024 * 1024
# A render checks for its caller every this many messages.
CANCEL_CHECK_EVERY = 200
# How long a render waits for one of the connections exports may use.
RENDER_WAIT_SECONDS = 10.0
FORMATS: dict[str, tuple[str, str]] = {  # format -> (extension, mime type)
    "zip": ("zip", "application/zip"),
    "json": ("json", "application/json"),
    "markdown": ("md", "text/markdown; charset=utf-8"),
    "pdf": ("pdf", "application/pdf"),
    "html": ("html", "text/html; charset=utf-8"),
}
RENDERERS: dict[str, Callable[[IO[bytes]], Renderer]] = {
    "json": JsonRenderer,
    "markdown": MarkdownRenderer,
    "html": HtmlRenderer,
}
DEFAULT_PDF_MAX_TEXT_BYTES = 32 * 1024 * 1024
ZIP_DOCUMENTS = (("chat.json", "json"), ("chat.md", "markdown"), ("chat.html", "html"))


@dataclass(frozen=True)
class ExportRequest:
    chat_id: str
    format: str | None
    include_media: bool
    include_version_history: bool
    from_snapshot_id: str
    to_snapshot_id: str
    label: str = ""  # instead of to_snapshot_id
    from_label: str = ""  # instead of from_snapshot_id


@dataclass(frozen=True)
class ExportPlan:
    """A validated request, resolved to concrete snapshots."""

    tenant_id: UUID
    chat_id: UUID
    format: str
    include_media: bool
    include_history: bool
    from_snapshot_id: UUID | None
    to_snapshot_id: UUID


def _nothing() -> None:
    pass


@dataclass
class ExportStream:
    """The rendered bytes, in chunks of at most 1 MiB; size and sha256 once read.

    Its holder closes it (close(), or contextlib.closing): read to the end,
    stopped early, or never read at all (its caller left, the vault refused
    the upload), what the source holds (spooled files, open media) is freed.
    A generator never started cannot do that itself: closing it skips its body.
    """

    file_name: str
    mime_type: str
    source: Iterator[bytes]
    release: Callable[[], None] = _nothing  # frees what `source` holds; safe to call more than once
    size_bytes: int = 0
    sha256: str = ""
    _digest: BackgroundDigest | None = None

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close is not None:
            close()
        self.release()

    def __iter__(self) -> Iterator[bytes]:
        # Small pieces (zip headers) are gathered; pieces of a full chunk pass
        # through without a copy; larger ones are cut.
        self._digest = BackgroundDigest()  # hashes on another core while we send
        pending: list[bytes] = []
        held = 0
        try:
            for data in self.source:
                if held and held + len(data) > CHUNK:
                    yield self._count(b"".join(pending))
                    pending, held = [], 0
                if len(data) >= CHUNK:
                    view = memoryview(data)
                    for start in range(0, len(data), CHUNK):
                        yield self._count(bytes(view[start : start + CHUNK]) if len(data) > CHUNK else data)
                    continue
                pending.append(data)
                held += len(data)
            if held:
                yield self._count(b"".join(pending))
            self.sha256 = self._digest.hexdigest()
        finally:
            self._digest.close()  # a reader that stops early leaves no thread behind
            self.release()

    def _count(self, chunk: bytes) -> bytes:
        assert self._digest is not None
        self.size_bytes += len(chunk)
        self._digest.update(chunk)
        return chunk


def _attachments(tx: Transaction, tenant_id: UUID, chat_id: UUID) -> dict[UUID, list[AttachmentRow]]:
    found: dict[UUID, list[AttachmentRow]] = {}
    for row in tx.all("chat_attachments", {"tenant_id": tenant_id, "chat_id": chat_id}, AttachmentRow):
        found.setdefault(row.message_version_id, []).append(row)
    return found


def _close_body(opened: Any) -> None:
    if not isinstance(opened, bytes):
        opened.close()


def _read(spool: IO[bytes]) -> Iterator[bytes]:
    spool.seek(0)
    try:
        while chunk := spool.read(CHUNK):
            yield chunk
    finally:
        spool.close()


class Exporter:
    def __init__(self, db: Database, vault: Vault, pdf_max_text_bytes: int = DEFAULT_PDF_MAX_TEXT_BYTES) -> None:
        self._render_slots = threading.BoundedSemaphore(max(1, db.max_connections // 2))
        self.db = db
        self.vault = vault
        self.pdf_max_text_bytes = pdf_max_text_bytes

    def plan(self, identity: Identity, request: ExportRequest) -> ExportPlan:
        """Validate and resolve the snapshots (`to` defaults to the head now)."""
        check = Checker()
        chat = check.uuid("chat_id", request.chat_id)
        check.enum("format", request.format)
        since_named = bool(request.from_snapshot_id or request.from_label)
        to_named = bool(request.to_snapshot_id or request.label)
        first = check_point(check, FROM, request.from_snapshot_id, request.from_label) if since_named else None
        last = check_point(check, TO, request.to_snapshot_id, request.label) if to_named else None
        check.done()
        assert chat is not None and request.format is not None
        with self.db.transaction(identity.tenant_id) as tx:
            head = require_chat(tx, identity, chat)
            if to_named:
                to = point(tx, identity, chat, last, request.label or None, TO)
            else:
                assert head.head_snapshot_id is not None  # a registered chat has at least one snapshot
                to = find_snapshot(tx, identity, chat, head.head_snapshot_id, "to_snapshot_id")
            if since_named:
                since = point(tx, identity, chat, first, request.from_label or None, FROM)
                first = since.id
                if since.version > to.version:
                    raise InvalidArgument(
                        [FieldViolation("from_snapshot_id", "comes after to_snapshot_id in the chat's history")]
                    )
        return ExportPlan(
            tenant_id=identity.tenant_id,
            chat_id=chat,
            format=request.format,
            include_media=request.include_media,
            include_history=request.include_version_history,
            from_snapshot_id=first,
            to_snapshot_id=to.id,
        )

    @staticmethod
    def plan_of_bundle(row: dict[str, Any]) -> ExportPlan:
        """The plan a background bundle recorded when it was created."""
        return ExportPlan(
            tenant_id=row["tenant_id"],
            chat_id=row["chat_id"],
            format=row["format"],
            include_media=row["include_media"],
            include_history=row["include_version_history"],
            from_snapshot_id=row["from_snapshot_id"],
            to_snapshot_id=row["to_snapshot_id"],
        )

    def render(self, plan: ExportPlan, active: Callable[[], bool] = lambda: True) -> ExportStream:
        """Render into spools in one database pass; stops with Cancelled once `active()` is false.

        A render holds a pool connection for its whole pass, so at most half
        the pool renders at once (the rest wait their turn, up to
        RENDER_WAIT_SECONDS): short calls always find a connection.
        """
        extension, mime_type = FORMATS[plan.format]
        identity = Identity(plan.tenant_id, None)
        if not self._render_slots.acquire(timeout=RENDER_WAIT_SECONDS):
            raise Unavailable("every connection this server lends to exports is rendering; retry shortly")
        try:
            return self._render(plan, extension, mime_type, identity, active)
        finally:
            self._render_slots.release()

    def _render(
        self, plan: ExportPlan, extension: str, mime_type: str, identity: Identity, active: Callable[[], bool]
    ) -> ExportStream:
        thumbnails = self._thumbnails(plan)
        with self.db.transaction(plan.tenant_id) as tx:
            header = self._header(tx, identity, plan, thumbnails)
            crc32s = self._recorded_crc32s(tx, plan.tenant_id, header.files)
            kinds = [kind for _, kind in ZIP_DOCUMENTS] if plan.format == "zip" else [plan.format]
            # Closed by _read once streamed (they outlive this block on purpose).
            spools: dict[str, IO[bytes]] = {
                kind: tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
                for kind in kinds
            }
            renderers: list[Renderer] = []
            try:
                renderers += [self._renderer(kind, spools[kind]) for kind in kinds]
                for renderer in renderers:
                    renderer.begin(header)
                for count, message in enumerate(messages(tx, header)):
                    if count % CANCEL_CHECK_EVERY == 0 and not active():
                        raise Cancelled("the export was cancelled")
                    for renderer in renderers:
                        renderer.message(message)
                if not active():
                    raise Cancelled("the export was cancelled")
                if header.include_history and header.from_snapshot is None:
                    # A whole chat with its history: the JSON carries what ImportChat needs.
                    for renderer in renderers:
                        if isinstance(renderer, JsonRenderer):
                            renderer.history(history(tx, header))
                for renderer in renderers:
                    renderer.end()
            except BaseException:
                for spool in spools.values():  # nothing will stream them now
                    spool.close()
                for renderer in renderers:  # a PDF's fonts hold open files until closed
                    if isinstance(renderer, PdfRenderer):
                        renderer.close()
                raise
        name = f"chat-{str(plan.chat_id)[:8]}-v{header.snapshot.version}.{extension}"

        def release_spools() -> None:
            for spool in spools.values():
                spool.close()

        if plan.format != "zip":
            return ExportStream(name, mime_type, _read(spools[plan.format]), release_spools)
        entries = [archive.Entry(path, _read(spools[kind]), compress=True) for path, kind in ZIP_DOCUMENTS]
        media = [f.file for f in header.files if f.path]
        # Each object's GET is a round trip before its first byte, and a
        # stream a reader thread: for many small files that, not the bytes,
        # made the export's time. So objects are opened a few files ahead, and
        # small ones read whole there.
        bodies = Lookahead(media, self._open_media, _close_body)
        entries += [
            archive.Entry(
                f.path,
                self._media(f.file, bodies, index),
                compress=False,
                sha256=f.file.checksum_sha256,
                crc32=crc32s.get(f.file.checksum_sha256),
                size=f.file.size_bytes,
            )
            for index, f in enumerate(f for f in header.files if f.path)
        ]

        def release() -> None:
            release_spools()
            bodies.close()

        # Released when read to the end, stopped early or closed unread (ExportStream).
        return ExportStream(name, mime_type, archive.stream_zip(entries, header.exported_at), release)

    def _renderer(self, kind: str, sink: IO[bytes]) -> Renderer:
        if kind == "pdf":
            return PdfRenderer(sink, max_text_bytes=self.pdf_max_text_bytes)
        return RENDERERS[kind](sink)

    def _thumbnails(self, plan: ExportPlan) -> dict[UUID, bytes]:
        """The thumbnails of referenced images, read whole (each a small PNG; at most MAX_THUMBNAILS).

        Read before the render's transaction opens: S3 round trips never hold
        a database connection. Objects are immutable, so reading them first
        cannot disagree with the snapshot rendered.
        """
        if plan.format not in ("html", "pdf", "zip"):
            return {}
        params = {"tenant_id": plan.tenant_id, "chat_id": plan.chat_id, "limit": MAX_THUMBNAILS}
        with self.db.transaction(plan.tenant_id) as tx:
            rows = tx.all("attachment_thumbnails", params)
        found: dict[UUID, bytes] = {}
        for row in rows:
            data = b"".join(self.vault.read(row["key"], row["version"]))
            if len(data) <= MAX_THUMBNAIL_BYTES:
                found[row["id"]] = data
        return found

    @staticmethod
    def _recorded_crc32s(tx: Transaction, tenant_id: UUID, files: list[ExportFile]) -> dict[str, int]:
        wanted = sorted({f.file.checksum_sha256 for f in files if f.path})
        if not wanted:
            return {}
        rows = tx.all("object_crc32s", {"tenant_id": tenant_id, "sha256s": wanted})
        return {row["sha256"]: row["crc32"] for row in rows}

    def _open_media(self, file: MediaFile) -> Any:
        """The object's bytes if it is small (at most one chunk), else its opened body."""
        body = self.vault.open_object(file.s3_key, file.s3_version_id)
        if file.size_bytes > CHUNK:
            return body
        try:
            with s3_errors("download"):
                data: bytes = body.read(CHUNK + 1)
            return data
        finally:
            body.close()

    def _media(self, file: MediaFile, bodies: Lookahead[MediaFile, Any], index: int) -> Iterator[bytes]:
        """The file's bytes, from what was opened ahead for it."""
        opened = bodies.take(index)
        size = 0
        if isinstance(opened, bytes):
            size = len(opened)
            if opened:
                yield opened
        else:
            try:
                for chunk in self.vault.chunks(opened):
                    size += len(chunk)
                    yield chunk
            finally:
                opened.close()  # also when the archive stops early
        if size != file.size_bytes:  # never ship an archive whose manifest would lie
            # Permanent: retrying cannot help, so no retry is invited (VerifyChat names the object).
            raise DataLoss(f"the stored object of {file.original_name!r} has an unexpected size")

    def _header(
        self, tx: Transaction, identity: Identity, plan: ExportPlan, thumbnails: dict[UUID, bytes]
    ) -> ExportHeader:
        to = find_snapshot(tx, identity, plan.chat_id, plan.to_snapshot_id, "to_snapshot_id")
        since: Snapshot | None = None
        if plan.from_snapshot_id is not None:
            since = find_snapshot(tx, identity, plan.chat_id, plan.from_snapshot_id, "from_snapshot_id")
        current = states.files_at(tx, plan.tenant_id, plan.chat_id, to.version)
        current_ids = {f.id for f in current}
        shown = current
        if plan.include_history:
            shown = [
                f
                for f in states.file_versions(tx, plan.tenant_id, plan.chat_id, version=to.version)
                if since is None or f.chat_version > since.version or f.id in current_ids
            ]
        files = [ExportFile(f, f.id in current_ids) for f in shown]
        if plan.format == "zip" and plan.include_media:
            taken: set[str] = set()
            for entry in files:
                suffix = "" if entry.current else f" (v{entry.file.version})"
                entry.path = "media/" + archive.safe_name(entry.file.original_name, taken, suffix)
        return ExportHeader(
            chat_id=plan.chat_id,
            title=to.title,
            snapshot=to,
            from_snapshot=since,
            include_history=plan.include_history,
            include_media=plan.include_media,
            exported_at=datetime.now(UTC),
            files=files,
            attachments=_attachments(tx, plan.tenant_id, plan.chat_id),
            thumbnails=thumbnails,
        )
