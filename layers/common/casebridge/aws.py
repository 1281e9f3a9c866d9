"""AWS clients: created lazily on first use, cached per container, replaceable in tests.

boto3 honours AWS_ENDPOINT_URL, which is how the local stack points every client at its AWS stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Generic, TypeVar, overload

import boto3
from botocore.config import Config

ClientT = TypeVar("ClientT")

# Short timeouts: a Lambda must answer API Gateway within 29 s, whatever AWS does.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
# S3 signs pre-signed URLs with SigV4 (s3v4); a file is streamed, so reads may take longer.
_S3_CONFIG = Config(
    signature_version="s3v4", connect_timeout=2, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}
)

# One client per service and container, made on the first call (never at import).
dynamodb_client = cache(lambda: boto3.client("dynamodb", config=_CONFIG))
events_client = cache(lambda: boto3.client("events", config=_CONFIG))
sqs_client = cache(lambda: boto3.client("sqs", config=_CONFIG))
secrets_client = cache(lambda: boto3.client("secretsmanager", config=_CONFIG))
s3_client = cache(lambda: boto3.client("s3", config=_S3_CONFIG))
_SHARED = (dynamodb_client, events_client, sqs_client, secrets_client, s3_client)


def reset_clients() -> None:
    """Forget cached clients (tests that change the environment call this)."""
    for factory in _SHARED:
        factory.cache_clear()


class InjectableClient(Generic[ClientT]):
    """A class attribute for the AWS client an object uses: the one its constructor was given (tests, the bench),
    else the container's shared one, asked for on each use, so nothing is made before the first call.

        class EventPublisher:
            client = aws.InjectableClient(aws.events_client)

            def __init__(self, client: EventBridgeClient | None = None) -> None:
                self.client = client  # None: the shared client
    """

    def __init__(self, shared: Callable[[], ClientT]) -> None:
        self._shared = shared
        self._slot = "_client"

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name  # where an instance keeps the client it was given

    @overload
    def __get__(self, instance: None, owner: type) -> InjectableClient[ClientT]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> ClientT: ...
    def __get__(self, instance: object | None, owner: type) -> InjectableClient[ClientT] | ClientT:
        if instance is None:
            return self
        given: ClientT | None = vars(instance).get(self._slot)
        return self._shared() if given is None else given

    def __set__(self, instance: object, client: ClientT | None) -> None:
        vars(instance)[self._slot] = client
