"""The chat against a plain model of it: random histories, checked after every step.

A hypothesis state machine saves, edits, deletes, renames, uploads, deletes
files, restores in every scope and undoes restores, on one chat per example,
and keeps a plain in-memory model of what the chat must be. After every step
the current view, the head snapshot's checksum (computed here from the
model) and VerifyChat must agree with the model; any earlier snapshot must
read as the model remembers it.

`make test` runs a fixed, small draw; `make fuzz` runs new, longer ones
(TM_FUZZ_RANDOM=1, TM_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service import checksum
from tests.conftest import Caller, Stack

EXAMPLES = int(os.environ.get("TM_FUZZ_EXAMPLES", "6"))
RANDOM = os.environ.get("TM_FUZZ_RANDOM") == "1"
ROLES = {pb.MESSAGE_ROLE_USER: "user", pb.MESSAGE_ROLE_ASSISTANT: "assistant"}
FILE_NAMES = {"notes.txt": "text/plain", "data.bin": "application/octet-stream"}
FILE_BODIES = [b"first", b"second body", b"x" * 3000]  # few, so that uploads repeat bytes (dedup)
texts = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=24)
titles = texts.filter(str.strip)  # a blank title is a caller error (tested elsewhere)


@dataclass(frozen=True)
class Message:
    position: int
    role: str
    content: str
    deleted: bool = False


@dataclass(frozen=True)
class File:
    sha256: str
    size: int
    mime_type: str


@dataclass
class State:
    """The chat as the model says it is: what a snapshot must show."""

    title: str = ""
    messages: dict[str, Message] = field(default_factory=dict)
    files: dict[str, File] = field(default_factory=dict)  # current files only

    def copy(self) -> State:
        return State(self.title, dict(self.messages), dict(self.files))

    def live(self) -> list[tuple[str, Message]]:
        return sorted(((i, m) for i, m in self.messages.items() if not m.deleted), key=lambda item: item[1].position)

    def checksum(self) -> str:
        total = checksum.title_element(self.title)
        for message_id, m in self.live():
            total += checksum.message_element(uuid.UUID(message_id), m.position, m.role, m.content)
        for name, f in self.files.items():
            total += checksum.file_element(name, f.sha256, f.size, f.mime_type)
        return checksum.to_hex(total)


def seen(messages: Any, files: Any, title: str) -> tuple[Any, ...]:
    """A view as the service answers it, in the model's terms."""
    return (
        title,
        [(m.message_id, m.role, m.content) for m in messages],
        {f.original_name: (f.checksum_sha256, f.size_bytes, f.mime_type) for f in files},
    )


def expected(state: State) -> tuple[Any, ...]:
    return (
        state.title,
        [(i, pb.MessageRole.Value(f"MESSAGE_ROLE_{m.role.upper()}"), m.content) for i, m in state.live()],
        {name: (f.sha256, f.size, f.mime_type) for name, f in state.files.items()},
    )


def machine(caller: Caller) -> type[RuleBasedStateMachine]:
    md = caller.md
    stub = caller.stub

    class ChatMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.chat = str(uuid.uuid4())
            self.state = State()
            self.next_position = 1
            self.snapshots: dict[int, tuple[str, State]] = {}  # version: (snapshot id, state)
            self.last_restore: tuple[str, int] | None = None  # (previous snapshot id, its version)

        # -- bookkeeping -------------------------------------------------------

        def wrote(self, snapshot: pb.Snapshot) -> None:
            assert snapshot.version == len(self.snapshots) + 1, "versions run 1..n without gaps"
            assert snapshot.checksum == self.state.checksum()
            self.snapshots[snapshot.version] = (snapshot.id, self.state.copy())
            self.last_restore = None

        def restored(self, reply: api.RestoreResponse, target: int) -> None:
            previous = len(self.snapshots)
            assert reply.success and reply.new_version == previous + 1
            head = stub.GetChat(api.GetChatRequest(chat_id=self.chat), metadata=md).snapshot
            assert head.id == reply.new_snapshot_id and head.restored_from_snapshot_id == self.snapshots[target][0]
            self.wrote(head)
            self.last_restore = (reply.previous_snapshot_id, previous)

        def restore(self, target: int, scope: pb.RestoreScope.ValueType, **kw: Any) -> api.RestoreResponse:
            request = api.RestoreRequest(
                chat_id=self.chat, target_snapshot_id=self.snapshots[target][0], scope=scope, **kw
            )
            reply: api.RestoreResponse = stub.Restore(request, metadata=md)
            return reply

        def becomes(self, at: State) -> None:
            """A FULL_CHAT restore: the chat at `at`; messages written since leave the view."""
            for message_id, m in self.state.messages.items():
                self.state.messages[message_id] = at.messages.get(message_id, replace(m, deleted=True))
            self.state.title, self.state.files = at.title, dict(at.files)

        def current_file_id(self, name: str) -> str:
            files = stub.ListFiles(api.ListFilesRequest(chat_id=self.chat), metadata=md).files
            return next(f.id for f in files if f.original_name == name)

        @property
        def versions(self) -> list[int]:
            return sorted(self.snapshots)

        # -- writes ------------------------------------------------------------

        @rule(role=st.sampled_from(sorted(ROLES)), content=texts)
        def save(self, role: pb.MessageRole.ValueType, content: str) -> None:
            reply = stub.SaveMessage(api.SaveMessageRequest(chat_id=self.chat, role=role, content=content), metadata=md)
            self.state.messages[reply.message.message_id] = Message(self.next_position, ROLES[role], content)
            self.next_position += 1
            self.wrote(reply.snapshot)

        @precondition(lambda self: self.state.live())
        @rule(data=st.data(), content=texts)
        def edit(self, data: st.DataObject, content: str) -> None:
            message_id, old = data.draw(st.sampled_from(self.state.live()))
            reply = stub.EditMessage(
                api.EditMessageRequest(chat_id=self.chat, message_id=message_id, content=content), metadata=md
            )
            self.state.messages[message_id] = replace(old, content=content)
            self.wrote(reply.snapshot)

        @precondition(lambda self: self.state.live())
        @rule(data=st.data())
        def delete(self, data: st.DataObject) -> None:
            message_id, old = data.draw(st.sampled_from(self.state.live()))
            reply = stub.DeleteMessage(api.DeleteMessageRequest(chat_id=self.chat, message_id=message_id), metadata=md)
            self.state.messages[message_id] = replace(old, deleted=True)
            self.wrote(reply.snapshot)

        @precondition(lambda self: self.snapshots)
        @rule(title=titles)
        def rename(self, title: str) -> None:
            reply = stub.RenameChat(api.RenameChatRequest(chat_id=self.chat, title=title), metadata=md)
            self.state.title = title
            self.wrote(reply.snapshot)

        @rule(name=st.sampled_from(sorted(FILE_NAMES)), body=st.sampled_from(FILE_BODIES))
        def upload(self, name: str, body: bytes) -> None:
            reply = caller.upload(self.chat, name, body, mime_type=FILE_NAMES[name])
            self.state.files[name] = File(hashlib.sha256(body).hexdigest(), len(body), FILE_NAMES[name])
            self.wrote(reply.snapshot)

        @precondition(lambda self: self.state.files)
        @rule(data=st.data())
        def delete_file(self, data: st.DataObject) -> None:
            name = data.draw(st.sampled_from(sorted(self.state.files)))
            request = api.DeleteFileRequest(chat_id=self.chat, file_id=self.current_file_id(name))
            reply = stub.DeleteFile(request, metadata=md)
            del self.state.files[name]
            self.wrote(reply.snapshot)

        # -- restores ----------------------------------------------------------

        @precondition(lambda self: self.snapshots)
        @rule(data=st.data())
        def restore_full_chat(self, data: st.DataObject) -> None:
            target = data.draw(st.sampled_from(self.versions))
            reply = self.restore(target, pb.RESTORE_SCOPE_FULL_CHAT)
            self.becomes(self.snapshots[target][1])
            self.restored(reply, target)

        @precondition(lambda self: self.last_restore is not None)
        @rule()
        def undo(self) -> None:
            assert self.last_restore is not None
            previous_id, previous = self.last_restore
            assert self.snapshots[previous][0] == previous_id
            reply = self.restore(previous, pb.RESTORE_SCOPE_FULL_CHAT)
            self.becomes(self.snapshots[previous][1])
            self.restored(reply, previous)

        @precondition(lambda self: any(s.live() for _, s in self.snapshots.values()))
        @rule(data=st.data())
        def restore_messages(self, data: st.DataObject) -> None:
            target = data.draw(st.sampled_from([v for v in self.versions if self.snapshots[v][1].live()]))
            at = self.snapshots[target][1]
            chosen = data.draw(st.lists(st.sampled_from([i for i, _ in at.live()]), min_size=1, max_size=3))
            reply = self.restore(target, pb.RESTORE_SCOPE_SINGLE_MESSAGE, message_ids=chosen)
            for message_id in chosen:
                self.state.messages[message_id] = at.messages[message_id]
            self.restored(reply, target)

        @precondition(lambda self: any(s.live() for _, s in self.snapshots.values()))
        @rule(data=st.data())
        def restore_range(self, data: st.DataObject) -> None:
            target = data.draw(st.sampled_from([v for v in self.versions if self.snapshots[v][1].live()]))
            alive = self.snapshots[target][1].live()
            first = data.draw(st.integers(0, len(alive) - 1))
            last = data.draw(st.integers(first, len(alive) - 1))
            span = pb.MessageRange(first_message_id=alive[first][0], last_message_id=alive[last][0])
            reply = self.restore(target, pb.RESTORE_SCOPE_MESSAGE_RANGE, message_range=span)
            for message_id, m in alive[first : last + 1]:
                self.state.messages[message_id] = m
            self.restored(reply, target)

        @precondition(lambda self: any(s.files for _, s in self.snapshots.values()))
        @rule(data=st.data())
        def restore_file(self, data: st.DataObject) -> None:
            target = data.draw(st.sampled_from([v for v in self.versions if self.snapshots[v][1].files]))
            at = self.snapshots[target][1]
            name = data.draw(st.sampled_from(sorted(at.files)))
            point = api.GetChatAtSnapshotRequest(chat_id=self.chat, snapshot_id=self.snapshots[target][0])
            version_id = next(f.id for f in stub.GetChatAtSnapshot(point, metadata=md).files if f.original_name == name)
            reply = self.restore(target, pb.RESTORE_SCOPE_SINGLE_FILE, file_ids=[version_id])
            self.state.files[name] = at.files[name]
            self.restored(reply, target)

        @precondition(lambda self: self.snapshots)
        @rule(data=st.data())
        def restore_files_only(self, data: st.DataObject) -> None:
            target = data.draw(st.sampled_from(self.versions))
            reply = self.restore(target, pb.RESTORE_SCOPE_FILES_ONLY)
            self.state.files = dict(self.snapshots[target][1].files)
            self.restored(reply, target)

        # -- checks after every step -------------------------------------------

        @invariant()
        def the_chat_is_the_model(self) -> None:
            if not self.snapshots:
                return
            now = stub.GetChat(api.GetChatRequest(chat_id=self.chat), metadata=md)
            assert now.current_version == len(self.snapshots)
            assert seen(now.messages, now.files, now.title) == expected(self.state)
            assert now.snapshot.checksum == self.state.checksum()
            report = stub.VerifyChat(api.VerifyChatRequest(chat_id=self.chat, check_content=True), metadata=md)
            assert report.ok, list(report.problems)

        @precondition(lambda self: self.snapshots)
        @rule(data=st.data())
        def the_past_is_as_it_was(self, data: st.DataObject) -> None:
            version = data.draw(st.sampled_from(self.versions))
            snapshot_id, then = self.snapshots[version]
            past = stub.GetChatAtSnapshot(
                api.GetChatAtSnapshotRequest(chat_id=self.chat, snapshot_id=snapshot_id), metadata=md
            )
            assert seen(past.messages, past.files, past.title) == expected(then)
            assert past.snapshot.checksum == then.checksum()

    return ChatMachine


def test_random_histories_match_a_plain_model_of_the_chat(stack: Stack, caller: Caller) -> None:
    chat_machine = machine(caller)
    run_state_machine_as_test(
        chat_machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=not RANDOM,
        ),
    )
