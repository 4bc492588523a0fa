"""Hostile requests for every RPC, built from the proto descriptors: never UNKNOWN or INTERNAL.

Every field gets random and hostile values: huge, empty, NUL and control
characters, random and another tenant's ids, numbers at the edges of their
types, enum numbers no one defined, random page tokens, times outside the
calendar; the streams (UploadFile, WatchChat) whole. Whatever comes back must
be a status a caller can act on, and the server must still be SERVING.
`make fuzz` runs many more examples (TM_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import threading
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from tests.conftest import Caller, Stack, incomplete_uploads

SERVICE = api.DESCRIPTOR.services_by_name["TimeMachineService"]
EXAMPLES = int(os.environ.get("TM_FUZZ_EXAMPLES", "12"))
# make test draws the same examples every run (CI must not flake on a new
# draw); make fuzz draws new ones each time (TM_FUZZ_RANDOM=1).
RANDOM = os.environ.get("TM_FUZZ_RANDOM") == "1"
BAD_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
INT64 = (-(2**63), 2**63 - 1)
SOME_IDS = [str(uuid.UUID(int=0)), str(uuid.uuid4()), "6f9619ff-8b86-4d01-b42d-00cf4fc964ff"]

texts = st.one_of(
    st.sampled_from(["", " ", "\x00", "a\x00b", "\r\n", "../../etc/passwd", "🙂" * 300, "x" * 5000, "%s%n", "'; --"]),
    st.sampled_from(SOME_IDS),
    st.sampled_from([i + "\n" for i in SOME_IDS]),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
)
tokens = st.one_of(
    st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    st.sampled_from(["eyJrIjogMSwgImYiOiAiMCJ9", "W1tbW1tbW1tbXV1dXV1dXV1d", "!!", "=" * 10]),
)


def _integers(field: FieldDescriptor) -> st.SearchStrategy[int]:
    if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        low, high = -(2**31), 2**31 - 1
    elif field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        low, high = 0, 2**32 - 1
    elif field.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        low, high = 0, 2**64 - 1
    else:
        low, high = INT64
    return st.one_of(st.sampled_from([low, high, -1, 0, 1, 2**31]), st.integers(low, high)).filter(
        lambda v: low <= v <= high
    )


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        return tokens if field.name.endswith("token") else texts
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=300)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-5, 40)  # named values and numbers no one defined
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message(field.message_type, depth + 1)
    return _integers(field)


def _message(descriptor: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    if descriptor.full_name == "google.protobuf.Struct":
        return st.dictionaries(
            st.text(max_size=8), st.one_of(st.floats(), st.text(max_size=20), st.booleans(), st.none()), max_size=3
        ).map(_struct)
    if depth > 3:
        return st.just(None)

    @st.composite
    def build(draw: Any) -> Any:
        message = descriptor._concrete_class()
        chosen_oneof: set[str] = set()
        for field in descriptor.fields:
            if not draw(st.booleans()):
                continue
            if field.containing_oneof is not None:
                if field.containing_oneof.name in chosen_oneof:
                    continue
                chosen_oneof.add(field.containing_oneof.name)
            strategy = _value(field, depth)
            try:
                if field.is_repeated:
                    for item in draw(st.lists(strategy, max_size=3)):
                        if field.type == FieldDescriptor.TYPE_MESSAGE:
                            if item is not None:
                                getattr(message, field.name).add().CopyFrom(item)
                        else:
                            getattr(message, field.name).append(item)
                elif field.type == FieldDescriptor.TYPE_MESSAGE:
                    item = draw(strategy)
                    if item is not None:
                        getattr(message, field.name).CopyFrom(item)
                else:
                    setattr(message, field.name, draw(strategy))
            except (ValueError, TypeError):  # a value protobuf itself refuses never reaches the wire
                continue
        return message

    return build()


def _struct(values: dict[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    result = struct_pb2.Struct()
    result.update(values)
    return result


def _call(stub_method: Any, method: Any, request: Any, md: Any) -> grpc.StatusCode:
    try:
        if method.client_streaming:
            reply = stub_method(iter([request, request]), metadata=md, timeout=10)
        else:
            reply = stub_method(request, metadata=md, timeout=10)
        if method.server_streaming:
            for _, _message in zip(range(3), reply, strict=False):
                pass
            reply.cancel()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


# Streams are fuzzed whole below: a watch waits for writes, an upload is more than its first message.
METHODS = [m for m in SERVICE.methods if m.name != "WatchChat"]


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_hostile_requests_get_caller_error_codes(stack: Stack, caller: Caller, other: Caller, method: Any) -> None:
    # A chat of this tenant under one of the ids the strategies pick, and the same id in another tenant.
    caller.save(SOME_IDS[2], "fuzz target")
    other.save(SOME_IDS[2], "not yours")
    stub_method = getattr(caller.stub, method.name)
    seen: dict[str, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=not RANDOM,
    )
    @given(_message(method.input_type))
    def probe(request: Any) -> None:
        code = _call(stub_method, method, request, caller.md)
        seen[code.name] = seen.get(code.name, 0) + 1
        assert code not in BAD_CODES, f"{method.name} answered {code.name} to {request!r}"[:2000]

    probe()
    assert_serving(stack)
    assert seen


def assert_serving(stack: Stack) -> None:
    health = health_pb2_grpc.HealthStub(stack.channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert health.status == health_pb2.HealthCheckResponse.SERVING


FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=not RANDOM
)
UPLOAD = api.DESCRIPTOR.message_types_by_name["UploadFileRequest"]
WATCH = api.DESCRIPTOR.message_types_by_name["WatchChatRequest"]
# Headers the service would accept, so that what follows them is what gets tried.
plausible_headers = st.builds(
    lambda name, mime: api.UploadFileRequest(
        chat_id=SOME_IDS[2], name=name, mime_type=mime, source=pb.FILE_SOURCE_USER_UPLOAD
    ),
    st.sampled_from(["a.txt", "picture.png", "doc.pdf", "x" * 300]),
    st.sampled_from(["", "text/plain", "image/png", "application/pdf", "text/html"]),
)
follow_ups = st.one_of(
    st.binary(max_size=70_000).map(lambda b: api.UploadFileRequest(chunk=b)),  # bytes, perhaps a fake PNG or PDF
    st.sampled_from([b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"%PDF-1.7\n" + b"0" * 50]).map(
        lambda b: api.UploadFileRequest(chunk=b)
    ),
    st.just(api.UploadFileRequest()),  # an empty message
    _message(UPLOAD),  # a second header, or header fields with a chunk
)


def test_hostile_upload_streams_get_caller_error_codes(stack: Stack, caller: Caller) -> None:
    """Whole streams: a header (plausible or hostile), then any mix of chunks, empty messages and headers."""
    caller.save(SOME_IDS[2], "fuzz target")
    seen: dict[str, int] = {}

    @FUZZ
    @given(st.one_of(plausible_headers, _message(UPLOAD)), st.lists(follow_ups, max_size=5))
    def probe(first: Any, rest: list[Any]) -> None:
        try:
            caller.stub.UploadFile(iter([first, *rest]), metadata=caller.md, timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
        seen[code.name] = seen.get(code.name, 0) + 1
        assert code not in BAD_CODES, f"UploadFile answered {code.name} to {[first, *rest]!r}"[:2000]

    probe()
    assert_serving(stack)
    assert incomplete_uploads(stack) == []
    assert len(seen) > 1, seen  # some streams were accepted, some refused


def test_hostile_watches_get_caller_error_codes(stack: Stack, caller: Caller) -> None:
    """A watch that is valid waits for writes: each is cancelled after a moment, as a client leaving."""
    caller.save(SOME_IDS[2], "fuzz target")
    seen: dict[str, int] = {}

    @FUZZ
    @given(
        st.one_of(
            _message(WATCH),
            st.builds(lambda v: api.WatchChatRequest(chat_id=SOME_IDS[2], after_version=v), st.integers(*INT64)),
        )
    )
    def probe(request: Any) -> None:
        call = caller.stub.WatchChat(request, metadata=caller.md, timeout=10)
        leave = threading.Timer(0.3, call.cancel)
        leave.start()
        try:
            for _ in call:
                pass
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
        finally:
            leave.cancel()
        seen[code.name] = seen.get(code.name, 0) + 1
        assert code not in BAD_CODES, f"WatchChat answered {code.name} to {request!r}"[:2000]

    probe()
    assert_serving(stack)
    assert "CANCELLED" in seen and len(seen) > 1, seen  # some watches were served, some refused


IMPORT = api.DESCRIPTOR.message_types_by_name["ImportChatRequest"]
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),  # NaN and infinities too: Python's JSON writes and reads them
        texts,
        st.sampled_from(["\ud800", "2026-13-45T99:00:00", "1999-01-01T00:00:00", "user_upload", "full_chat"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document, containers included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def test_hostile_imports_get_caller_error_codes(stack: Stack, caller: Caller) -> None:
    """A real export with one place replaced by any JSON value, or raw hostile streams: never INTERNAL."""
    chat = str(uuid.uuid4())
    first = caller.save(chat, "one", tokens=2)
    caller.edit(chat, first.message.message_id, "one, edited")
    caller.upload(chat, "a.txt", b"abc", mime_type="text/plain")
    caller.rename(chat, "fuzzed")
    replies = caller.stub.ExportChat(
        api.ExportChatRequest(chat_id=chat, format=pb.EXPORT_FORMAT_JSON, include_version_history=True),
        metadata=caller.md,
    )
    document = json.loads(b"".join(r.chunk for r in replies))
    paths = _paths(document)
    seen: dict[str, int] = {}

    def send(requests: list[Any]) -> None:
        try:
            caller.stub.ImportChat(iter(requests), metadata=caller.md, timeout=20)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
        seen[code.name] = seen.get(code.name, 0) + 1
        assert code not in BAD_CODES, f"ImportChat answered {code.name} to {requests!r}"[:2000]

    @FUZZ
    @given(st.sampled_from(paths), json_values)
    def mutated(path: tuple[Any, ...], value: Any) -> None:
        damaged = copy.deepcopy(document)
        if path:
            place = damaged
            for step in path[:-1]:
                place = place[step]
            place[path[-1]] = value
        else:
            damaged = value
        body = json.dumps(damaged).encode("utf-8", "surrogatepass")
        send([api.ImportChatRequest(chat_id=str(uuid.uuid4())), api.ImportChatRequest(export_chunk=body)])

    @FUZZ
    @given(_message(IMPORT), st.lists(_message(IMPORT), max_size=4))
    def raw(header: Any, rest: list[Any]) -> None:
        send([header, *rest])

    mutated()
    raw()
    assert_serving(stack)
    assert "OK" in seen and "INVALID_ARGUMENT" in seen, seen  # some imports went through, some were refused
