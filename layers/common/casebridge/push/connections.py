"""API Gateway's @connections management API: post a frame to one widget connection, or close it."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from casebridge.errors import ConfigurationError
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.push.frames import MAX_FRAME_BYTES, fit_frame

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
        """Post the frame, cut to API Gateway's limit if it is over (a post over it fails on every retry and,
        pushes being in order, would hold up everything after it on this connection)."""
        sent, data = fit_frame(frame)
        if sent is not frame:
            cut = [name for name in ("text", "cards", "attachments") if sent.get(name) != frame.get(name)]
            logger.warning(
                "frame cut to API Gateway's WebSocket message limit",
                extra={"eventId": frame.get("eventId"), "cut": cut, "bytes": len(data), "limit": MAX_FRAME_BYTES},
            )
            metrics.add_metric(name="ChannelFramesCut", unit=MetricUnit.Count, value=1)
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
