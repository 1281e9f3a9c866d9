"""8x8's webhook signature, written from CONTRACT.md with `cryptography` only: a JWS (RS256) over a detached,
unencoded payload (RFC 7797). It stays independent of casebridge and of the emulator on purpose: the connector's
verifier is tested against it, so it must not share their code (a bug shared would pass unseen)."""

from __future__ import annotations

import base64
import json
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# The headers of a signed delivery, in CONTRACT.md's order.
SIGNATURE_HEADERS = tuple(
    f"x-8x8-{name}" for name in ("signature", "event-id", "retry", "transmission-time", "tenant-id", "customer-id")
)
TENANT_ID = "acme-tenant"
CUSTOMER_ID = "acme-customer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _int_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    """The key as 8x8's JWK endpoint serves it."""
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": _int_b64url(numbers.n),
        "e": _int_b64url(numbers.e),
    }


@dataclass
class WebhookSigner:
    """Signs webhook deliveries exactly as 8x8 does."""

    private_key: rsa.RSAPrivateKey
    kid: str
    tenant_id: str = TENANT_ID
    customer_id: str = CUSTOMER_ID
    extra_keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)

    @property
    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.private_key, self.kid)

    @staticmethod
    def payload(body: bytes, customer_id: str, event_id: str, retry: int, tenant_id: str, tt: int) -> bytes:
        """The detached payload: key order and compact separators are part of the contract."""
        checksum = zlib.crc32(body) & 0xFFFFFFFF
        return (
            f'{{"checksum":{checksum},"cid":"{customer_id}","eid":"{event_id}",'
            f'"retry":{retry},"tid":"{tenant_id}","tt":{tt}}}'
        ).encode()

    def jws(self, protected: dict[str, Any] | str, payload: bytes, key: rsa.RSAPrivateKey | None = None) -> str:
        """`protected` is a header dict (serialised compactly) or an already-encoded segment."""
        segment = (
            protected if isinstance(protected, str) else b64url(json.dumps(protected, separators=(",", ":")).encode())
        )
        signature = (key or self.private_key).sign(
            segment.encode("ascii") + b"." + payload, padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{segment}..{b64url(signature)}"

    def headers(
        self,
        body: bytes,
        *,
        event_id: str | None = None,
        retry: int = 0,
        tt: int | None = None,
        tenant_id: str | None = None,
        customer_id: str | None = None,
        protected: dict[str, Any] | str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        sign_tenant_id: str | None = None,
    ) -> dict[str, str]:
        """The six x-8x8-* headers of a delivery of `body`, signed now (unless `tt` says otherwise).
        `sign_tenant_id` signs another tenant than the header names (a forged header)."""
        event_id = event_id or str(uuid.uuid4())
        tt = int(time.time() * 1000) if tt is None else tt
        tenant_id = self.tenant_id if tenant_id is None else tenant_id
        customer_id = self.customer_id if customer_id is None else customer_id
        header = (
            protected if protected is not None else {"b64": False, "crit": ["b64"], "kid": self.kid, "alg": "RS256"}
        )
        payload = self.payload(body, customer_id, event_id, retry, sign_tenant_id or tenant_id, tt)
        return {
            "x-8x8-signature": self.jws(header, payload, key),
            "x-8x8-event-id": event_id,
            "x-8x8-retry": str(retry),
            "x-8x8-transmission-time": str(tt),
            "x-8x8-tenant-id": tenant_id,
            "x-8x8-customer-id": customer_id,
        }
