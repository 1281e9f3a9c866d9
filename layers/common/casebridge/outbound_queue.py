"""The outbound queue (SQS FIFO, one message group per case): accepted messages wait here for delivery.

FIFO per case keeps a case's messages in the order they were accepted; a case whose delivery is failing
holds up only its own group.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from casebridge import aws

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_VISIBILITY_S = 43_200  # SQS's own limit (12 h)


@dataclass(frozen=True)
class OutboundMessage:
    caseId: str  # noqa: N815 - the wire name
    messageId: str  # noqa: N815
    text: str
    authorType: str  # noqa: N815
    acceptedAt: int  # noqa: N815
    redrive: int = 0  # bumped by scripts/redrive.py: a dead-lettered message is sent again only when redriven
    # Rich content (Chat Gateway only); defaults keep queue bodies written before these fields readable.
    # attachments: [{attachmentId, fileName, contentType, size}] as checked at accept time; cards: 8x8's shape.
    attachments: list[dict[str, Any]] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)
    clientMessageId: str | None = None  # noqa: N815 - echoed in MessageDelivered

    def to_json(self) -> str:
        body = asdict(self)
        for name in ("attachments", "cards", "clientMessageId"):  # plain text messages keep their old body
            if not body[name]:
                del body[name]
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> OutboundMessage:
        return cls(**json.loads(body))


class OutboundQueue:
    client = aws.InjectableClient(aws.sqs_client)

    def __init__(self, queue_url: str, dead_letter_queue_url: str = "", client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self.dead_letter_queue_url = dead_letter_queue_url
        self.client = client

    def enqueue(self, message: OutboundMessage, deduplication_id: str) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=message.to_json(),
            MessageGroupId=message.caseId,
            MessageDeduplicationId=deduplication_id,
        )

    def defer(self, receipt_handle: str, seconds: float) -> None:
        """Make a failed message visible again after `seconds` (the retry delay, without sleeping)."""
        self.client.change_message_visibility(
            QueueUrl=self.queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=max(0, min(int(seconds), MAX_VISIBILITY_S)),
        )

    def dead_letter(self, message: OutboundMessage, reason: str) -> None:
        self.client.send_message(
            QueueUrl=self.dead_letter_queue_url,
            MessageBody=message.to_json(),
            MessageGroupId=message.caseId,
            MessageDeduplicationId=f"dlq-{message.messageId}",
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:256]}},
        )
