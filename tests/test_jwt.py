"""TM_AUTH_MODE=jwt end to end: tenant from tenant_id, user from sub; x- keys ignored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.app import App
from service.errors import ConfigurationError
from tests.conftest import Stack, rpc_error

SECRET = "j" * 48


@pytest.fixture
def jwt_stub(stack: Stack) -> Iterator[service_pb2_grpc.TimeMachineServiceStub]:
    settings = replace(stack.app.settings, auth_mode="jwt", jwt_secret=SECRET, export_workers=0)
    app = App(settings, stack.stores, address="127.0.0.1:0")
    app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    yield service_pb2_grpc.TimeMachineServiceStub(channel)
    channel.close()
    app.stop(grace=1)


def bearer(tenant: str, user: str | None = None, key: str = SECRET) -> tuple[tuple[str, str], ...]:
    claims = {"tenant_id": tenant, "exp": int(time.time()) + 300, **({"sub": user} if user else {})}
    return (("authorization", "Bearer " + jwt.encode(claims, key, algorithm="HS256")),)


def test_claims_decide_the_tenant(jwt_stub: service_pb2_grpc.TimeMachineServiceStub) -> None:
    tenant, user, chat = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    request = api.SaveMessageRequest(chat_id=chat, role=pb.MESSAGE_ROLE_USER, content="signed")
    saved = jwt_stub.SaveMessage(request, metadata=bearer(tenant, user))
    assert saved.snapshot.user_id == user
    read = jwt_stub.GetChat(api.GetChatRequest(chat_id=chat), metadata=bearer(tenant))
    assert [m.content for m in read.messages] == ["signed"]
    # Another tenant's token, even with this tenant's x-tenant-id, sees nothing.
    spoof = (*bearer(str(uuid.uuid4())), ("x-tenant-id", tenant))
    assert rpc_error(jwt_stub.GetChat, api.GetChatRequest(chat_id=chat), metadata=spoof).code() == (
        grpc.StatusCode.NOT_FOUND
    )


def test_missing_or_bad_tokens_are_unauthenticated(jwt_stub: service_pb2_grpc.TimeMachineServiceStub) -> None:
    tenant = str(uuid.uuid4())
    request = api.SaveMessageRequest(chat_id=str(uuid.uuid4()), role=pb.MESSAGE_ROLE_USER, content="x")
    for metadata in (
        (("x-tenant-id", tenant), ("x-user-id", str(uuid.uuid4()))),
        bearer(tenant, str(uuid.uuid4()), key="k" * 48),
        bearer(tenant),  # a write needs sub
    ):
        assert rpc_error(jwt_stub.SaveMessage, request, metadata=metadata).code() == grpc.StatusCode.UNAUTHENTICATED


@contextmanager
def serving_jwt(stack: Stack, **rules: Any) -> Iterator[service_pb2_grpc.TimeMachineServiceStub]:
    settings = replace(stack.app.settings, auth_mode="jwt", export_workers=0, **rules)
    app = App(settings, stack.stores, address="127.0.0.1:0")
    app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield service_pb2_grpc.TimeMachineServiceStub(channel)
    finally:
        channel.close()
        app.stop(grace=1)


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    encoding, form = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, form, serialization.NoEncryption())


def _signed(claims: dict[str, Any], key: Any, algorithm: str, kid: str | None = None) -> tuple[tuple[str, str], ...]:
    headers = {"kid": kid} if kid else None
    return (("authorization", "Bearer " + jwt.encode(claims, key, algorithm=algorithm, headers=headers)),)


def _claims(tenant: str, **more: Any) -> dict[str, Any]:
    return {"tenant_id": tenant, "sub": str(uuid.uuid4()), "exp": int(time.time()) + 300, **more}


def _outcome(stub: service_pb2_grpc.TimeMachineServiceStub, metadata: tuple[tuple[str, str], ...]) -> str:
    """OK, or the code and details of the refusal."""
    request = api.GetTimelineRequest(chat_id=str(uuid.uuid4()))
    try:
        stub.GetTimeline(request, metadata=metadata)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:  # authenticated: the chat just does not exist
            return "OK"
        return f"{error.code().name}: {error.details()}"
    return "OK"


REFUSED = "UNAUTHENTICATED: the bearer token is not valid"


def _hs256_by_hand(claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token keyed by `secret` (PyJWT refuses to use a PEM key as an HMAC secret; a forger would not)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + part(json.dumps(claims).encode())
    return signing + "." + part(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


def test_rs256_from_pem_and_es256_from_jwks(stack: Stack, tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "keys.pem"
    pem.write_bytes(_public_pem(rsa_key))
    jwks = tmp_path / "jwks.json"
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "ec-1", "use": "sig"}]}))
    tenant = str(uuid.uuid4())
    with serving_jwt(stack, jwt_secret=None, jwt_public_keys=pem) as stub:
        assert _outcome(stub, _signed(_claims(tenant), _private_pem(rsa_key), "RS256")) == "OK"
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert _outcome(stub, _signed(_claims(tenant), _private_pem(other), "RS256")) == REFUSED
        # HS256 with the public key as its secret (algorithm confusion) and alg none: no key accepts them.
        assert _outcome(stub, (("authorization", "Bearer " + _hs256_by_hand(_claims(tenant), pem.read_bytes())),)) == (
            REFUSED
        )
        unsigned = jwt.encode(_claims(tenant), "", algorithm="none")
        assert _outcome(stub, (("authorization", "Bearer " + unsigned),)) == REFUSED
    with serving_jwt(stack, jwt_secret=None, jwt_public_keys=jwks) as stub:
        assert _outcome(stub, _signed(_claims(tenant), _private_pem(ec_key), "ES256", kid="ec-1")) == "OK"
        assert _outcome(stub, _signed(_claims(tenant), _private_pem(ec_key), "ES256", kid="unknown")) == REFUSED


def test_expiry_issuer_audience_leeway_and_claim_names(stack: Stack) -> None:
    tenant, now = str(uuid.uuid4()), int(time.time())
    rules = {
        "jwt_secret": SECRET,
        "jwt_issuer": "https://id.example.com/",
        "jwt_audience": "time-machine",
        "jwt_leeway_seconds": 30,
        "jwt_tenant_claim": "https://example.com/tenant",
        "jwt_user_claim": "uid",
    }
    good: dict[str, Any] = {"https://example.com/tenant": tenant, "uid": str(uuid.uuid4())}
    good |= {"iss": "https://id.example.com/", "aud": "time-machine", "exp": now + 300}
    with serving_jwt(stack, **rules) as stub:
        assert _outcome(stub, _signed(good, SECRET, "HS256")) == "OK"
        assert _outcome(stub, _signed(good | {"exp": now - 10}, SECRET, "HS256")) == "OK"  # within the leeway
        expired = _outcome(stub, _signed(good | {"exp": now - 120}, SECRET, "HS256"))
        assert expired == "UNAUTHENTICATED: the bearer token has expired"
        no_exp = {k: v for k, v in good.items() if k != "exp"}
        assert _outcome(stub, _signed(no_exp, SECRET, "HS256")) == REFUSED
        assert _outcome(stub, _signed(good | {"iss": "https://evil.example.com/"}, SECRET, "HS256")) == REFUSED
        assert _outcome(stub, _signed(good | {"aud": "another-service"}, SECRET, "HS256")) == REFUSED
        # The default claim names are not read when others are configured.
        assert (
            _outcome(stub, _signed(good | {"https://example.com/tenant": "", "tenant_id": tenant}, SECRET, "HS256"))
            != "OK"
        )


def test_unusable_key_files_stop_the_start(stack: Stack, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("no keys here")
    with pytest.raises(ConfigurationError, match="TM_JWT_PUBLIC_KEYS"):
        App(replace(stack.app.settings, auth_mode="jwt", jwt_secret=None, jwt_public_keys=empty), stack.stores)
