"""OAuth access tokens of `POST /oauth/v2/token`, each good for the API products of the key that asked.

8x8 serves one token endpoint for its OAuth APIs; what a token opens depends on the Admin Console app's
products. Here the Chat API v2 key and secret get `CHAT_PRODUCT`, the Real-time Metrics key and secret
`METRICS_PRODUCT` (both when they are the same pair, as one app can carry several products).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

CHAT_PRODUCT = "vcc"
METRICS_PRODUCT = "analytics realtime-api"


@dataclass
class _Token:
    expiry: float  # monotonic
    products: frozenset[str]


class TokenStore:
    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    def issue(self, products: frozenset[str] = frozenset({CHAT_PRODUCT}), ttl: int | None = None) -> tuple[str, int]:
        token = secrets.token_urlsafe(24)
        lifetime = self.ttl if ttl is None else ttl
        with self._lock:
            self._tokens[token] = _Token(time.monotonic() + lifetime, products)
        return token, lifetime

    def status(self, token: str, product: str = CHAT_PRODUCT) -> str:
        """ "valid", "expired", "wrong_product" (a token of another API) or "unknown"."""
        with self._lock:
            found = self._tokens.get(token)
        if found is None:
            return "unknown"
        if time.monotonic() >= found.expiry:
            return "expired"
        return "valid" if product in found.products else "wrong_product"

    def valid(self, token: str, product: str = CHAT_PRODUCT) -> bool:
        return self.status(token, product) == "valid"

    def expire_all(self) -> int:
        now = time.monotonic()
        with self._lock:
            for token in self._tokens.values():
                token.expiry = now
            return len(self._tokens)
