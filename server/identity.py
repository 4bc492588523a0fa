"""Who is calling: tenant and user from metadata, or from a JWT."""

from __future__ import annotations

import contextvars
from collections.abc import Sequence

from server.tokens import TokenVerifier
from service.errors import Unauthenticated
from service.models import Identity
from service.validation import parse_uuid

_current: contextvars.ContextVar[Identity] = contextvars.ContextVar("identity")


def current() -> Identity:
    """The identity of the call being served (set by the interceptor)."""
    return _current.get()


def bind(identity: Identity) -> contextvars.Token[Identity]:
    return _current.set(identity)


def unbind(token: contextvars.Token[Identity]) -> None:
    _current.reset(token)


class Authenticator:
    def __init__(self, mode: str, tokens: TokenVerifier | None = None) -> None:
        if mode == "jwt" and tokens is None:
            raise ValueError("jwt mode needs a token verifier")
        self.mode = mode
        self.tokens = tokens

    def identify(self, metadata: Sequence[tuple[str, str | bytes]], *, user_required: bool) -> Identity:
        values = {key.lower(): value for key, value in metadata if isinstance(value, str)}
        if self.mode == "jwt":
            tenant, user = self._from_jwt(values.get("authorization", ""))
        else:
            tenant, user = values.get("x-tenant-id", ""), values.get("x-user-id", "")
        tenant_id = parse_uuid(tenant.strip())
        if tenant_id is None:
            raise Unauthenticated(
                "x-tenant-id metadata is required and must be a UUID"
                if self.mode == "metadata"
                else "the token's tenant_id claim is missing or not a UUID"
            )
        user_id = parse_uuid(user.strip()) if user else None
        if user and user_id is None:
            raise Unauthenticated("x-user-id must be a UUID" if self.mode == "metadata" else "sub must be a UUID")
        if user_required and user_id is None:
            raise Unauthenticated(
                "x-user-id metadata (a UUID) is required for writes, restores and exports"
                if self.mode == "metadata"
                else "the token's sub claim (a UUID) is required for writes, restores and exports"
            )
        return Identity(tenant_id=tenant_id, user_id=user_id)

    def _from_jwt(self, header: str) -> tuple[str, str]:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("authorization metadata must be 'Bearer <JWT>'")
        assert self.tokens is not None
        return self.tokens.claims(token.strip())
