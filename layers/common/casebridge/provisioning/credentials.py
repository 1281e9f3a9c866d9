"""Which 8x8 API the stack provisions in, and its credentials from Secrets Manager."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GATEWAY = "chat-gateway-v1"
V2 = "chat-api-v2"
APIS = (GATEWAY, V2)


class ProvisioningError(Exception):
    """A failure a person can act on; the message names what to check."""


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str = ""
    source: str = "the credentials secret"  # named in error messages (the secret's ARN)


def parse_credentials(api: str, values: Mapping[str, Any] | str | bytes, source: str = "") -> Credentials:
    """The secret's JSON: {"apiKey"} for the Gateway, {"apiKey", "apiSecret"} for v2. A missing key is named."""
    where = source or "the credentials secret"
    check_api(api)
    if isinstance(values, str | bytes):
        try:
            values = json.loads(values)
        except ValueError:
            raise ProvisioningError(f"{where} is not JSON; store {_shape(api)}") from None
    if not isinstance(values, Mapping):
        raise ProvisioningError(f"{where} is not a JSON object; store {_shape(api)}")
    needed = ["apiKey"] + (["apiSecret"] if api == V2 else [])
    for name in needed:
        value = values.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ProvisioningError(f'{where} has no "{name}" ({api} needs {_shape(api)})')
    return Credentials(str(values["apiKey"]).strip(), str(values.get("apiSecret") or "").strip(), where)


def read_credentials(api: str, secret_id: str) -> Credentials:
    """Read the credentials secret (always fresh: a fixed secret must work on the next deploy attempt)."""
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415 - only the custom resource reads it

    try:
        raw = parameters.get_secret(secret_id, force_fetch=True)
    except Exception as error:  # Powertools wraps every AWS error in GetParameterError
        raise ProvisioningError(
            f"cannot read the secret {secret_id} ({type(error).__name__}): check EightByEightCredentialsSecretArn"
        ) from None
    return parse_credentials(api, raw if isinstance(raw, str | bytes) else json.dumps(raw), secret_id)


def check_api(api: str) -> None:
    if api not in APIS:
        raise ProvisioningError(f"EightByEightApi {api!r} is not one of {', '.join(APIS)}")


def _shape(api: str) -> str:
    return '{"apiKey"}' if api == GATEWAY else '{"apiKey", "apiSecret"}'
