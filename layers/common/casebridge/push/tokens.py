"""Channel tokens: what lets a browser widget connect to one case's pushes without ever holding the API key.

`POST /cases/{caseId}/channel-tokens` (API key) hands the business's backend a JWT (HS256, joserfc) signed with
the stack's key in Secrets Manager, bound to the case (`sub`) and to this use (`aud`), valid a few minutes;
the WebSocket's $connect checks it. A token only opens a connection: a connection already open lives on
after the token expires (API Gateway closes it after two hours at most).
"""

from __future__ import annotations

import secrets
import time
from typing import TypedDict

from aws_lambda_powertools.utilities import parameters
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from casebridge.errors import ConfigurationError, Unauthorized
from casebridge.identifiers import CASE_ID_RE
from casebridge.settings import Settings

AUDIENCE = "casebridge-channel"
ALGORITHM = "HS256"


class ChannelTokenView(TypedDict):
    token: str
    expiresAt: int  # epoch ms
    url: str  # the WebSocket URL to open, token included


def signing_key(settings: Settings) -> OctKey:
    """The stack's token key (Secrets Manager, cached 5 minutes)."""
    if not settings.channel_token_secret_id:
        raise ConfigurationError("CHANNEL_TOKEN_SECRET_ARN is not configured (the channel token signing key)")
    raw = parameters.get_secret(settings.channel_token_secret_id, max_age=300)
    value = raw if isinstance(raw, bytes) else str(raw).encode()
    if len(value) < 32:
        raise ConfigurationError("the channel token signing key must be at least 32 bytes")
    return OctKey.import_key(value)


def issue(settings: Settings, case_id: str, now: float | None = None) -> ChannelTokenView:
    issued = int(now if now is not None else time.time())
    expires = issued + settings.channel_token_seconds
    claims = {"sub": case_id, "aud": AUDIENCE, "iat": issued, "exp": expires, "jti": secrets.token_urlsafe(12)}
    token = jwt.encode({"alg": ALGORITHM}, claims, signing_key(settings))
    base = settings.channel_socket_url
    if not base:
        raise ConfigurationError("CHANNEL_SOCKET_URL is not configured (the channel WebSocket's URL)")
    return {"token": token, "expiresAt": expires * 1000, "url": f"{base}?token={token}"}


def verify(settings: Settings, token: str, now: float | None = None) -> str:
    """The case the token was issued for. Unauthorized: not ours, altered, for another use, or expired."""
    try:
        decoded = jwt.decode(token, signing_key(settings), algorithms=[ALGORITHM])
        _claims_at(int(now if now is not None else time.time())).validate(decoded.claims)
    except (JoseError, ValueError) as error:
        raise Unauthorized(f"channel token refused ({type(error).__name__})") from None
    case_id = decoded.claims.get("sub")
    if not isinstance(case_id, str) or not CASE_ID_RE.fullmatch(case_id):
        raise Unauthorized("channel token refused (no case)")
    return case_id


def _claims_at(now: int) -> jwt.JWTClaimsRegistry:
    return jwt.JWTClaimsRegistry(
        now=now, aud={"essential": True, "value": AUDIENCE}, sub={"essential": True}, exp={"essential": True}
    )
