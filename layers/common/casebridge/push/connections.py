"""API Gateway's @connections management API: post a frame to one widget connection, or close it."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from casebridge.errors import ConfigurationError

# A frame is small and API Gateway answers at once; a slow answer must not hold up the other connections long.
_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 2})


class ConnectionGone(Exception):
    """410: the widget disconnected (API Gateway forgets the connection); drop it."""


@cache
def _client(endpoint_url: str) -> Any:
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint_url, config=_CONFIG)


class Connections:
    """The @connections endpoint of the channel WebSocket's stage (https://{api}.execute-api.../{stage})."""

    def __init__(self, endpoint_url: str, client: Any = None) -> None:
        self.endpoint_url = endpoint_url
        self._given = client

    @property
    def client(self) -> Any:
        if self._given is not None:
            return self._given
        if not self.endpoint_url:
            raise ConfigurationError("CHANNEL_CONNECTIONS_URL is not configured (the WebSocket's @connections URL)")
        return _client(self.endpoint_url)

    def post(self, connection_id: str, frame: dict[str, Any]) -> None:
        data = json.dumps(frame, separators=(",", ":"), default=_plain).encode()
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "GoneException":
                raise ConnectionGone(connection_id) from None
            raise

    def close(self, connection_id: str) -> None:
        try:
            self.client.delete_connection(ConnectionId=connection_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "GoneException":
                raise


def _plain(value: Any) -> Any:
    from decimal import Decimal  # noqa: PLC0415 - only DynamoDB numbers ever need it

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
