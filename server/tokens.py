"""Bearer tokens as identity providers issue them (TM_AUTH_MODE=jwt).

Keys: an HS256 secret (TM_JWT_SECRET) and/or public keys (TM_JWT_PUBLIC_KEYS:
a PEM file of keys or certificates, or a JWKS file), RS256 and ES256. Each
key verifies only its own algorithm, so a token cannot choose how it is
checked (no `none`, no HS256 signed with a public key). `exp` is required;
`iss` and `aud` are checked when configured, with a small leeway for clocks.
A refused token gets one sentence that helps a legitimate client (expired)
and nothing that helps a forger (which check failed).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from service.errors import ConfigurationError, Unauthenticated

log = logging.getLogger(__name__)
REFUSED = "the bearer token is not valid"
PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.DOTALL)
ASYMMETRIC = ("RS256", "ES256")


@dataclass(frozen=True)
class VerificationKey:
    key: Any
    algorithm: str
    kid: str | None = None


@dataclass(frozen=True)
class TokenRules:
    secret: str | None = None
    public_keys: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway_seconds: int = 30
    tenant_claim: str = "tenant_id"
    user_claim: str = "sub"


def _algorithm_of(key: Any, source: str) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ConfigurationError(f"TM_JWT_PUBLIC_KEYS: {source} holds a key that is neither RSA nor EC P-256")


def load_public_keys(path: Path) -> list[VerificationKey]:
    """The keys of a JWKS file ({"keys": [...]}) or of a PEM file (public keys or certificates)."""
    data = path.read_bytes()
    keys: list[VerificationKey] = []
    if data.lstrip().startswith(b"{"):
        try:
            jwks = jwt.PyJWKSet.from_json(data.decode())
        except (jwt.PyJWTError, ValueError, json.JSONDecodeError) as exc:
            raise ConfigurationError(
                f"TM_JWT_PUBLIC_KEYS: {path} is not a JWKS file this server can use ({exc})"
            ) from None
        for jwk in jwks.keys:
            algorithm = _algorithm_of(jwk.key, str(path))
            keys.append(VerificationKey(jwk.key, algorithm, jwk.key_id))
    else:
        for match in PEM_BLOCK.finditer(data):
            block, kind = match.group(0), match.group(1)
            try:
                key = (
                    x509.load_pem_x509_certificate(block).public_key()
                    if kind == b"CERTIFICATE"
                    else load_pem_public_key(block)
                )
            except ValueError:
                raise ConfigurationError(
                    f"TM_JWT_PUBLIC_KEYS: {path} has a PEM block that is not a public key"
                ) from None
            keys.append(VerificationKey(key, _algorithm_of(key, str(path))))
    if not keys:
        raise ConfigurationError(f"TM_JWT_PUBLIC_KEYS: {path} holds no public key")
    return keys


class TokenVerifier:
    def __init__(self, rules: TokenRules) -> None:
        self.rules = rules
        self.keys: list[VerificationKey] = []
        if rules.secret:
            self.keys.append(VerificationKey(rules.secret, "HS256"))
        if rules.public_keys is not None:
            self.keys += load_public_keys(rules.public_keys)
        if not self.keys:
            raise ConfigurationError(
                "TM_AUTH_MODE=jwt needs TM_JWT_SECRET (HS256) or TM_JWT_PUBLIC_KEYS (RS256, ES256)"
            )

    def claims(self, token: str) -> tuple[str, str]:
        """The tenant and user claims of a valid token."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated(REFUSED) from None
        algorithm, kid = header.get("alg"), header.get("kid")
        candidates = [k for k in self.keys if k.algorithm == algorithm and (kid is None or k.kid in (None, kid))]
        rules = self.rules
        for candidate in candidates:
            try:
                claims = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=[candidate.algorithm],
                    issuer=rules.issuer,
                    audience=rules.audience,
                    leeway=rules.leeway_seconds,
                    options={"require": ["exp"], "verify_aud": rules.audience is not None},
                )
            except jwt.InvalidSignatureError:
                continue  # another key of the same algorithm may have signed it
            except jwt.ExpiredSignatureError:
                raise Unauthenticated("the bearer token has expired") from None
            except jwt.PyJWTError as exc:
                log.info("bearer token refused: %s", type(exc).__name__)
                raise Unauthenticated(REFUSED) from None
            return str(claims.get(rules.tenant_claim, "")), str(claims.get(rules.user_claim, ""))
        log.info("bearer token refused: no key verifies it (alg %r)", str(algorithm)[:16])
        raise Unauthenticated(REFUSED)
