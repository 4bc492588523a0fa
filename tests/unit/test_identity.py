"""Identity from metadata or from a JWT."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from server.identity import Authenticator
from server.tokens import TokenRules, TokenVerifier
from service.errors import Unauthenticated

KEY = "s" * 32  # HS256 keys shorter than 32 bytes are refused
TENANT, USER = str(uuid.uuid4()), str(uuid.uuid4())
LATER = int(time.time()) + 3600


def hs256() -> Authenticator:
    return Authenticator("jwt", TokenVerifier(TokenRules(secret=KEY)))


def test_metadata_mode_reads_tenant_and_user() -> None:
    who = Authenticator("metadata").identify([("x-tenant-id", TENANT), ("x-user-id", USER)], user_required=True)
    assert (str(who.tenant_id), str(who.user_id)) == (TENANT, USER)


def test_metadata_mode_requires_a_user_only_when_asked() -> None:
    auth = Authenticator("metadata")
    assert auth.identify([("x-tenant-id", TENANT)], user_required=False).user_id is None
    with pytest.raises(Unauthenticated):
        auth.identify([("x-tenant-id", TENANT)], user_required=True)


def test_jwt_mode_takes_claims_and_ignores_x_keys() -> None:
    auth = hs256()
    token = jwt.encode({"tenant_id": TENANT, "sub": USER, "exp": LATER}, KEY, algorithm="HS256")
    who = auth.identify([("authorization", f"Bearer {token}"), ("x-tenant-id", str(uuid.uuid4()))], user_required=True)
    assert (str(who.tenant_id), str(who.user_id)) == (TENANT, USER)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Basic abc",
        "Bearer not-a-jwt",
        "Bearer " + jwt.encode({"tenant_id": TENANT, "sub": USER, "exp": LATER}, "k" * 40, algorithm="HS256"),
        "Bearer " + jwt.encode({"sub": USER, "exp": LATER}, KEY, algorithm="HS256"),
        "Bearer " + jwt.encode({"tenant_id": TENANT, "sub": USER, "exp": 1}, KEY, algorithm="HS256"),
        "Bearer " + jwt.encode({"tenant_id": TENANT, "sub": USER}, KEY, algorithm="HS256"),
    ],
    ids=["missing", "not bearer", "garbage", "wrong key", "no tenant", "expired", "no exp"],
)
def test_jwt_mode_rejects_bad_tokens(header: str) -> None:
    with pytest.raises(Unauthenticated):
        hs256().identify([("authorization", header)], user_required=False)
