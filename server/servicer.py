"""TimeMachineService: proto in, product call, proto out. Nothing else."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server import convert, identity
from server.admission import IdleGuard
from service.chats import ChatFilter, Chats
from service.compare import Comparer, Comparison
from service.erasure import Eraser
from service.errors import Cancelled, FieldViolation, InvalidArgument
from service.events import Watcher
from service.export.bundles import Bundles
from service.export.exporter import Exporter, ExportRequest, ExportStream
from service.files import Files, UploadHeader
from service.history import History
from service.importer import Importer, MediaChunk
from service.labels import Labels
from service.models import ChatView, Trigger
from service.restore import Restorer, RestoreRequest
from service.search import Searcher, SearchType
from service.timeline import Reader
from service.verify import Verifier
from service.writes import WriteOptions

ENCODED_SNAPSHOTS = 4096  # encoded WatchChat answers kept: the recent snapshots of the chats watched


@dataclass
class Product:
    """The product's entry points the servicer translates to."""

    history: History
    reader: Reader
    restorer: Restorer
    verifier: Verifier
    files: Files
    searcher: Searcher
    exporter: Exporter
    bundles: Bundles
    comparer: Comparer
    watcher: Watcher
    importer: Importer
    chats: Chats
    labels: Labels
    eraser: Eraser


def _export_request(request: Any) -> ExportRequest:
    return ExportRequest(
        chat_id=request.chat_id,
        format=convert.FORMAT_FROM_PROTO.get(request.format),
        include_media=request.include_media,
        include_version_history=request.include_version_history,
        from_snapshot_id=request.from_snapshot_id,
        to_snapshot_id=request.to_snapshot_id,
        label=request.label,
        from_label=request.from_label,
    )


def _options(request: Any) -> WriteOptions:
    expected = request.expected_version if request.HasField("expected_version") else None
    return WriteOptions(request_id=request.request_id, expected_version=expected)


def _framed(stream: ExportStream, message: Any) -> Iterator[Any]:
    """An export stream as the contract frames it: header, bare chunks
    (encoded by server/app.py, chunked_streams), trailer."""
    try:
        yield message(file_name=stream.file_name, mime_type=stream.mime_type)
        yield from stream
    finally:  # a caller that leaves before the first chunk: the stream never started, nothing else frees it
        stream.close()
    yield message(size_bytes=stream.size_bytes, sha256=stream.sha256)


def _first(requests: Iterator[Any], guard: IdleGuard, context: Any, holding: str) -> Any:
    """A client stream's first message, which names what the call acts on."""
    guard.waiting()
    first = next(requests, None)
    guard.received()
    if first is None:
        guard.close()
        if not context.is_active():
            raise Cancelled("the stream ended before its first message")
        raise InvalidArgument([FieldViolation("chat_id", f"the stream needs a first message with {holding}")])
    return first


def _fill_changes(message: Any, c: Comparison) -> None:
    """A comparison into CompareSnapshotsResponse or RestorePreview (the same fields)."""
    message.added_files.extend(convert.media_file(f, with_text=False) for f in c.added_files)
    message.removed_files.extend(convert.media_file(f, with_text=False) for f in c.removed_files)
    message.changed_files.extend(
        pb.FileChange(before=convert.media_file(a, with_text=False), after=convert.media_file(b, with_text=False))
        for a, b in c.changed_files
    )
    message.title_changed = c.from_title != c.to_title
    message.from_title = c.from_title
    message.to_title = c.to_title
    convert.add_messages(message.added_messages, c.added_messages)
    convert.add_messages(message.removed_messages, c.removed_messages)
    add_change = message.edited_messages.add
    for before, after in c.edited_messages:
        add_change(before=convert.message_fields(before), after=convert.message_fields(after))


def _full_view(view: int) -> bool:
    if view not in pb.FileView.values():
        raise InvalidArgument([FieldViolation("view", "must be FILE_VIEW_BASIC or FILE_VIEW_FULL")])
    return view == pb.FILE_VIEW_FULL


class TimeMachineServicer(service_pb2_grpc.TimeMachineServiceServicer):
    def __init__(self, product: Product, stream_idle_seconds: float = 60.0) -> None:
        self.p = product
        self.stream_idle_seconds = stream_idle_seconds
        self._encoded: OrderedDict[UUID, bytes] = OrderedDict()  # WatchChat's recent snapshots, encoded

    def _paced(self, messages: Iterator[Any], context: Any) -> Iterator[Any]:
        """`messages`, the call cancelled if the client takes too long to accept one.

        A client that stays connected but stops reading would hold a transfer
        slot for ever: gRPC waits for it before asking for the next message.
        """
        guard = IdleGuard(context.cancel, self.stream_idle_seconds)
        try:
            for message in messages:
                guard.waiting()
                yield message
                guard.received()
        finally:
            guard.close()

    async def SaveMessage(self, request: api.SaveMessageRequest, context: Any) -> api.SaveMessageResponse:
        # Checked here, on the event loop, as the ordinary save is written (service/async_database.py).
        new = self.p.history.new_message(
            chat_id=request.chat_id,
            message_id=request.message_id,
            role=convert.ROLE_FROM_PROTO.get(request.role),
            content=request.content,
            model_id=request.model_id,
            metadata=convert.from_struct(request.metadata, "metadata"),
            tokens=request.tokens,
            options=_options(request),
            attachments=convert.attachment_requests(request.attachments),
        )
        message, snapshot = await self.p.history.save_message_async(identity.current(), new)
        answer = convert.message(message.entry())
        answer.attachments.extend(convert.attachment(ref) for ref in message.attachments)
        return api.SaveMessageResponse(message=answer, snapshot=convert.snapshot(snapshot))

    async def EditMessage(self, request: api.EditMessageRequest, context: Any) -> api.EditMessageResponse:
        # On the event loop, as SaveMessage: the ordinary edit is one statement awaited there.
        edit = self.p.history.new_edit(
            chat_id=request.chat_id,
            message_id=request.message_id,
            content=request.content,
            edit_reason=request.edit_reason,
            options=_options(request),
            attachments=convert.attachment_requests(request.attachments),
        )
        message, snapshot = await self.p.history.edit_message_async(identity.current(), edit)
        answer = convert.message(message.entry())
        answer.attachments.extend(convert.attachment(ref) for ref in message.attachments)
        return api.EditMessageResponse(message=answer, snapshot=convert.snapshot(snapshot))

    async def DeleteMessage(self, request: api.DeleteMessageRequest, context: Any) -> api.DeleteMessageResponse:
        # On the event loop, as SaveMessage: the ordinary delete is one statement awaited there.
        deletion = self.p.history.new_deletion(
            chat_id=request.chat_id, message_id=request.message_id, options=_options(request)
        )
        snapshot = await self.p.history.delete_message_async(identity.current(), deletion)
        return api.DeleteMessageResponse(snapshot=convert.snapshot(snapshot))

    async def RenameChat(self, request: api.RenameChatRequest, context: Any) -> api.RenameChatResponse:
        # On the event loop, as SaveMessage: the ordinary rename is one statement awaited there.
        mark = self.p.history.new_rename(chat_id=request.chat_id, title=request.title, options=_options(request))
        snapshot = await self.p.history.mark_chat_async(identity.current(), mark)
        return api.RenameChatResponse(snapshot=convert.snapshot(snapshot))

    async def CreateSnapshot(self, request: api.CreateSnapshotRequest, context: Any) -> api.CreateSnapshotResponse:
        mark = self.p.history.new_manual_snapshot(
            chat_id=request.chat_id, description=request.description, options=_options(request)
        )
        snapshot = await self.p.history.mark_chat_async(identity.current(), mark)
        return api.CreateSnapshotResponse(snapshot=convert.snapshot(snapshot))

    def Restore(self, request: api.RestoreRequest, context: Any) -> api.RestoreResponse:
        result, preview = self.p.restorer.restore(
            identity.current(),
            RestoreRequest(
                chat_id=request.chat_id,
                target_snapshot_id=request.target_snapshot_id,
                scope=convert.SCOPE_FROM_PROTO.get(request.scope),
                message_ids=list(request.message_ids),
                file_ids=list(request.file_ids),
                range_first_id=request.message_range.first_message_id,
                range_last_id=request.message_range.last_message_id,
                reason=request.reason,
                target_label=request.target_label,
                validate_only=request.validate_only,
            ),
            _options(request),
        )
        if preview is not None:  # nothing was written: no snapshot to name
            answer = api.RestoreResponse(
                messages_restored=result.messages_restored,
                files_restored=result.files_restored,
                new_version=preview.version,
                previous_snapshot_id=convert.text(result.previous_snapshot_id),
                preview=api.RestorePreview(resulting_checksum=preview.checksum),
            )
            _fill_changes(answer.preview, preview.changes)
            return answer
        return api.RestoreResponse(
            success=True,
            new_snapshot_id=str(result.snapshot.id),
            messages_restored=result.messages_restored,
            files_restored=result.files_restored,
            new_version=result.snapshot.version,
            previous_snapshot_id=convert.text(result.previous_snapshot_id),
            snapshot=convert.snapshot(result.snapshot),
        )

    def GetChat(self, request: api.GetChatRequest, context: Any) -> api.GetChatResponse:
        view = self.p.reader.get_chat(identity.current(), request.chat_id, request.page_size, request.page_token)
        response = api.GetChatResponse(
            chat_id=str(view.chat_id),
            title=view.title,
            current_version=view.snapshot.version if view.snapshot else 0,
            files=[convert.media_file(f, with_text=False) for f in view.files],
            snapshot=convert.snapshot(view.snapshot) if view.snapshot else None,
            next_page_token=view.next_page_token,
        )
        convert.add_messages(response.messages, view.messages)
        convert.add_attachments(response.messages, view.attachments)
        return response

    def ListMessageVersions(
        self, request: api.ListMessageVersionsRequest, context: Any
    ) -> api.ListMessageVersionsResponse:
        rows, token = self.p.reader.list_message_versions(
            identity.current(), request.chat_id, request.message_id, request.page_size, request.page_token
        )
        versions = [convert.message(m.entry()) for m in rows]
        return api.ListMessageVersionsResponse(versions=versions, next_page_token=token)

    def UploadFile(self, request_iterator: Iterator[api.UploadFileRequest], context: Any) -> api.UploadFileResponse:
        # The call holds a transfer slot from its start: a client that opens the
        # stream and sends nothing at all is cut off like one that stops halfway.
        guard = IdleGuard(context.cancel, self.stream_idle_seconds)
        first = _first(request_iterator, guard, context, "chat_id, name and source")
        header = UploadHeader(
            chat_id=first.chat_id,
            message_id=first.message_id,
            name=first.name,
            mime_type=first.mime_type,
            source=convert.SOURCE_FROM_PROTO.get(first.source),
            size_bytes=first.size_bytes if first.HasField("size_bytes") else None,
            checksum_sha256=first.checksum_sha256.lower(),
            options=_options(first),
        )

        def chunks() -> Iterator[bytes]:
            if first.chunk:
                yield first.chunk
            while True:
                guard.waiting()
                message = next(request_iterator, None)
                guard.received()
                if message is None:
                    return
                if message.chunk:
                    yield message.chunk

        try:
            # A client's cancel can end the request iterator as if the stream were
            # complete (grpc/grpc#33038); the upload asks again before it commits.
            row, snapshot = self.p.files.upload(identity.current(), header, chunks(), still_wanted=context.is_active)
        finally:
            guard.close()
        return api.UploadFileResponse(file=convert.media_file(row), snapshot=convert.snapshot(snapshot))

    # The three chunk streams yield bare bytes for chunk messages (encoded by
    # server/app.py, chunked_streams), which the generated stubs' types do not know.
    def DownloadFile(  # type: ignore[override]
        self, request: api.DownloadFileRequest, context: Any
    ) -> Iterator[api.DownloadFileResponse | bytes]:
        row = self.p.files.get(identity.current(), request.file_id)
        chunks = self.p.files.read(row)  # opened before the first message: a missing object fails cleanly
        first = next(chunks, b"")
        header = api.DownloadFileResponse(file=convert.media_file(row, with_text=False))
        # Chunks go out bare (server/app.py, chunked_streams); every message,
        # the first ones included, is paced, so a client that never reads is cut off.
        yield from self._paced(itertools.chain([header], [first] if first else [], chunks), context)

    def GetFileDownloadUrl(
        self, request: api.GetFileDownloadUrlRequest, context: Any
    ) -> api.GetFileDownloadUrlResponse:
        url, expires_at = self.p.files.download_url(identity.current(), request.file_id, request.expires_in_seconds)
        return api.GetFileDownloadUrlResponse(url=url, expires_at=convert.timestamp(expires_at))

    def DeleteFile(self, request: api.DeleteFileRequest, context: Any) -> api.DeleteFileResponse:
        snapshot = self.p.files.delete(identity.current(), request.chat_id, request.file_id, _options(request))
        return api.DeleteFileResponse(snapshot=convert.snapshot(snapshot))

    def ListFiles(self, request: api.ListFilesRequest, context: Any) -> api.ListFilesResponse:
        full = _full_view(request.view)
        rows, token = self.p.files.list_current(
            identity.current(), request.chat_id, request.page_size, request.page_token, full
        )
        return api.ListFilesResponse(files=[convert.media_file(f, with_text=full) for f in rows], next_page_token=token)

    def ListFileVersions(self, request: api.ListFileVersionsRequest, context: Any) -> api.ListFileVersionsResponse:
        full = _full_view(request.view)
        rows, token = self.p.files.versions(
            identity.current(), request.chat_id, request.name, request.page_size, request.page_token, full
        )
        return api.ListFileVersionsResponse(
            versions=[convert.media_file(f, with_text=full) for f in rows], next_page_token=token
        )

    def GetTimeline(self, request: api.GetTimelineRequest, context: Any) -> api.GetTimelineResponse:
        t = self.p.reader.timeline(
            identity.current(), request.chat_id, request.page_size, request.page_token, request.time_zone
        )
        return api.GetTimelineResponse(
            chat_id=str(t.chat_id),
            chat_title=t.title,
            current_version=t.current_version,
            current_message_count=t.message_count,
            current_file_count=t.file_count,
            snapshots=[convert.snapshot(s, t.labels.get(s.id, ())) for s in t.snapshots],
            next_page_token=t.next_page_token,
            total_snapshots=t.total_snapshots,
            total_media_bytes=t.total_media_bytes,
            oldest_snapshot_time=convert.timestamp(t.oldest),
            newest_snapshot_time=convert.timestamp(t.newest),
            snapshots_by_date=t.by_date,
        )

    def GetChatAtSnapshot(self, request: api.GetChatAtSnapshotRequest, context: Any) -> api.GetChatAtSnapshotResponse:
        point = request.WhichOneof("point")
        view: ChatView = self.p.reader.get_chat_at(
            identity.current(),
            request.chat_id,
            snapshot_id=request.snapshot_id if point == "snapshot_id" else None,
            version=request.version if point == "version" else None,
            at_time=convert.moment(request.at_time, "at_time") if point == "at_time" else None,
            label=request.label if point == "label" else None,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        assert view.snapshot is not None
        response = api.GetChatAtSnapshotResponse(
            snapshot=convert.snapshot(view.snapshot, view.labels),
            title=view.title,
            files=[convert.media_file(f, with_text=False) for f in view.files],
            next_page_token=view.next_page_token,
        )
        convert.add_messages(response.messages, view.messages)
        convert.add_attachments(response.messages, view.attachments)
        return response

    def ListSnapshotsByDate(
        self, request: api.ListSnapshotsByDateRequest, context: Any
    ) -> api.ListSnapshotsByDateResponse:
        rows, token = self.p.reader.snapshots_by_date(
            identity.current(),
            request.chat_id,
            request.date,
            request.time_zone,
            request.page_size,
            request.page_token,
        )
        return api.ListSnapshotsByDateResponse(snapshots=[convert.snapshot(s) for s in rows], next_page_token=token)

    def CompareSnapshots(self, request: api.CompareSnapshotsRequest, context: Any) -> api.CompareSnapshotsResponse:
        c = self.p.comparer.compare(
            identity.current(),
            request.chat_id,
            request.from_snapshot_id,
            request.to_snapshot_id,
            request.page_size,
            request.page_token,
            from_label=request.from_label,
            to_label=request.to_label,
        )
        response = api.CompareSnapshotsResponse(next_page_token=c.next_page_token)
        _fill_changes(response, c)
        return response

    async def WatchChat(self, request: api.WatchChatRequest, context: Any) -> None:  # type: ignore[override]
        # Async: an open watch waits on the event loop, holding no thread (service/events.py).
        # It writes rather than yields, which spares the interceptor a generator layer per
        # message. Every watcher of a chat sends the same bytes: each snapshot is encoded once
        # (server/app.py registers a serializer that passes bytes through).
        async for snapshot in self.p.watcher.watch(identity.current(), request.chat_id, request.after_version):
            encoded = self._encoded.get(snapshot.id)
            if encoded is None:
                encoded = api.WatchChatResponse(snapshot=convert.snapshot(snapshot)).SerializeToString()
                self._encoded[snapshot.id] = encoded
                if len(self._encoded) > ENCODED_SNAPSHOTS:
                    self._encoded.popitem(last=False)
            await context.write(encoded)

    def ListRestores(self, request: api.ListRestoresRequest, context: Any) -> api.ListRestoresResponse:
        rows, token = self.p.reader.list_restores(
            identity.current(), request.chat_id, request.page_size, request.page_token
        )
        return api.ListRestoresResponse(restores=[convert.restore_record(r) for r in rows], next_page_token=token)

    def Search(self, request: api.SearchRequest, context: Any) -> api.SearchResponse:
        kind = convert.SEARCH_TYPE_FROM_PROTO.get(request.type)
        if kind is None:
            raise InvalidArgument([FieldViolation("type", "must be one of the SearchType values")])
        result = self.p.searcher.search(
            identity.current(),
            chat_id=request.chat_id,
            query=request.query,
            search_type=SearchType(kind),
            include_history=request.include_history,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return api.SearchResponse(
            message_hits=[
                pb.MessageHit(
                    message=convert.message(h.message.entry()),
                    rank=h.rank,
                    highlight=h.highlight,
                    is_current=h.is_current,
                )
                for h in result.message_hits
            ],
            file_hits=[
                pb.FileHit(file=convert.media_file(h.file), rank=h.rank, highlight=h.highlight)
                for h in result.file_hits
            ],
            next_page_token=result.next_page_token,
        )

    def ExportChat(  # type: ignore[override]
        self, request: api.ExportChatRequest, context: Any
    ) -> Iterator[api.ExportChatResponse | bytes]:
        exporter = self.p.exporter
        stream = exporter.render(exporter.plan(identity.current(), _export_request(request)), context.is_active)
        yield from self._paced(_framed(stream, api.ExportChatResponse), context)

    def CreateExport(self, request: api.CreateExportRequest, context: Any) -> api.CreateExportResponse:
        created = self.p.bundles.create(identity.current(), _export_request(request), request.expires_in_seconds)
        return api.CreateExportResponse(bundle=convert.bundle(created))

    def GetExport(self, request: api.GetExportRequest, context: Any) -> api.GetExportResponse:
        return api.GetExportResponse(bundle=convert.bundle(self.p.bundles.get(identity.current(), request.bundle_id)))

    def DownloadExport(  # type: ignore[override]
        self, request: api.DownloadExportRequest, context: Any
    ) -> Iterator[api.DownloadExportResponse | bytes]:
        stream = self.p.bundles.download(identity.current(), request.bundle_id)
        yield from self._paced(_framed(stream, api.DownloadExportResponse), context)

    def VerifyChat(self, request: api.VerifyChatRequest, context: Any) -> api.VerifyChatResponse:
        report = self.p.verifier.verify(
            identity.current(), request.chat_id, check_content=request.check_content, active=context.is_active
        )
        response = api.VerifyChatResponse(
            ok=report.ok,
            snapshots_checked=report.snapshots_checked,
            files_checked=report.files_checked,
        )
        response.checked_at.GetCurrentTime()
        for problem in report.problems:
            response.problems.add(
                snapshot_id=convert.text(problem.snapshot_id),
                version=problem.version,
                file_id=convert.text(problem.file_id),
                detail=problem.detail,
            )
        return response

    def ImportChat(self, request_iterator: Iterator[api.ImportChatRequest], context: Any) -> api.ImportChatResponse:
        # Like UploadFile: a client that stops sending is cut off, and the
        # import asks whether its caller is still there before it commits.
        guard = IdleGuard(context.cancel, self.stream_idle_seconds)
        first = _first(request_iterator, guard, context, "chat_id")

        def parts() -> Iterator[bytes | MediaChunk]:
            message: api.ImportChatRequest | None = first
            while message is not None:
                if message.export_chunk:
                    yield message.export_chunk
                if message.HasField("media"):
                    yield MediaChunk(message.media.sha256.lower(), message.media.chunk)
                guard.waiting()
                message = next(request_iterator, None)
                guard.received()
            if not context.is_active():  # a cancelled stream can end as if complete (grpc/grpc#33038)
                raise Cancelled("the import was cancelled; nothing was written")

        try:
            result = self.p.importer.run(identity.current(), first.chat_id, first.request_id, parts())
        finally:
            guard.close()
        return api.ImportChatResponse(
            snapshots_imported=result.snapshots_imported,
            last_snapshot=convert.snapshot(result.last_snapshot),
            checksum=result.last_snapshot.checksum,
            message_versions_imported=result.message_versions,
            file_versions_imported=result.file_versions,
            media_received=result.media_received,
        )

    def ListChats(self, request: api.ListChatsRequest, context: Any) -> api.ListChatsResponse:
        chat_filter = ChatFilter(
            title_query=request.title_query,
            user_id=request.user_id,
            include_archived=request.include_archived,
            include_deleted=request.include_deleted,
        )
        rows, token = self.p.chats.list(identity.current(), chat_filter, request.page_size, request.page_token)
        return api.ListChatsResponse(chats=[convert.chat_summary(row) for row in rows], next_page_token=token)

    def ArchiveChat(self, request: api.ArchiveChatRequest, context: Any) -> api.ArchiveChatResponse:
        return api.ArchiveChatResponse(snapshot=self._chat_change(request, Trigger.CHAT_ARCHIVED))

    def UnarchiveChat(self, request: api.UnarchiveChatRequest, context: Any) -> api.UnarchiveChatResponse:
        return api.UnarchiveChatResponse(snapshot=self._chat_change(request, Trigger.CHAT_UNARCHIVED))

    def DeleteChat(self, request: api.DeleteChatRequest, context: Any) -> api.DeleteChatResponse:
        return api.DeleteChatResponse(snapshot=self._chat_change(request, Trigger.CHAT_DELETED))

    def UndeleteChat(self, request: api.UndeleteChatRequest, context: Any) -> api.UndeleteChatResponse:
        return api.UndeleteChatResponse(snapshot=self._chat_change(request, Trigger.CHAT_UNDELETED))

    def _chat_change(self, request: Any, trigger: Trigger) -> pb.Snapshot:
        snapshot = self.p.chats.change(identity.current(), request.chat_id, trigger, _options(request))
        return convert.snapshot(snapshot)

    def LabelSnapshot(self, request: api.LabelSnapshotRequest, context: Any) -> api.LabelSnapshotResponse:
        snapshot = self.p.labels.label(
            identity.current(), request.chat_id, request.snapshot_id, request.label, _options(request)
        )
        return api.LabelSnapshotResponse(snapshot=convert.snapshot(snapshot))

    def UnlabelSnapshot(self, request: api.UnlabelSnapshotRequest, context: Any) -> api.UnlabelSnapshotResponse:
        snapshot = self.p.labels.unlabel(identity.current(), request.chat_id, request.label, _options(request))
        return api.UnlabelSnapshotResponse(snapshot=convert.snapshot(snapshot))

    def EraseChat(self, request: api.EraseChatRequest, context: Any) -> api.EraseChatResponse:
        erased = self.p.eraser.erase_chat(identity.current(), request.chat_id, request.confirm_checksum)
        return api.EraseChatResponse(
            chat_id=str(erased.chat_id),
            erased_rows=erased.rows,
            erased_objects=erased.objects,
            erased_bytes=erased.bytes,
            erased_at=convert.timestamp(erased.erased_at),
        )

    def SetLegalHold(self, request: api.SetLegalHoldRequest, context: Any) -> api.SetLegalHoldResponse:
        hold = self.p.eraser.set_legal_hold(identity.current(), request.chat_id, request.legal_hold, request.reason)
        return api.SetLegalHoldResponse(
            chat_id=str(hold.chat_id),
            legal_hold=hold.legal_hold,
            reason=hold.reason,
            set_by=convert.text(hold.set_by),
            set_at=convert.timestamp(hold.set_at),
        )

    def EraseTenant(self, request: api.EraseTenantRequest, context: Any) -> Iterator[api.EraseTenantResponse]:
        for step in self.p.eraser.erase_tenant(identity.current(), request.confirm_tenant_id, context.is_active):
            yield api.EraseTenantResponse(
                chats_total=step.chats_total,
                chats_erased=step.chats_erased,
                chats_held=step.chats_held,
                chat_id=convert.text(step.chat_id),
                done=step.done,
            )
