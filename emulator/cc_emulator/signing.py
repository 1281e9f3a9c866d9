"""Webhook signatures as 8x8 makes them: JWS compact, detached, unencoded payload (RFC 7797), RS256."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import zlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def crc32(body: bytes) -> int:
    return zlib.crc32(body) & 0xFFFFFFFF


def signature_payload(body: bytes, cid: str, eid: str, retry: int, tid: str, tt: int) -> bytes:
    """The detached payload; key order and compact separators are part of the contract."""
    doc = {"checksum": crc32(body), "cid": cid, "eid": eid, "retry": retry, "tid": tid, "tt": tt}
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "e": _int_b64url(numbers.e),
            "kid": self.kid,
            "n": _int_b64url(numbers.n),
            "alg": "RS256",
            "use": "sig",
        }

    def sign_detached(self, payload: bytes) -> str:
        header = {"b64": False, "crit": ["b64"], "kid": self.kid, "alg": "RS256"}
        protected = b64url(json.dumps(header, separators=(",", ":")).encode("utf-8"))
        signing_input = protected.encode("ascii") + b"." + payload
        sig = self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{protected}..{b64url(sig)}"


def new_signing_key(key_size: int = 2048) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    return SigningKey(kid=b64url(secrets.token_bytes(16)), private_key=key)


class KeyStore:
    """Active signing key plus every retired one, so old kids stay resolvable after rotation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        first = new_signing_key()
        self._keys: dict[str, SigningKey] = {first.kid: first}
        self._active = first

    @property
    def active(self) -> SigningKey:
        with self._lock:
            return self._active

    def rotate(self) -> str:
        key = new_signing_key()
        with self._lock:
            self._keys[key.kid] = key
            self._active = key
        return key.kid

    def jwk(self, kid: str) -> dict[str, str] | None:
        with self._lock:
            key = self._keys.get(kid)
        return key.public_jwk() if key else None

    def kids(self) -> list[str]:
        with self._lock:
            return list(self._keys)

    def sign_event(self, body: bytes, cid: str, eid: str, retry: int, tid: str, tt: int) -> str:
        return self.active.sign_detached(signature_payload(body, cid, eid, retry, tid, tt))
