"""The outbound queue (SQS FIFO, one message group per case): accepted messages wait here for delivery.

FIFO per case keeps a case's messages in the order they were accepted; a case whose delivery is failing
holds up only its own group.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from casebridge import aws

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_VISIBILITY_S = 43_200  # SQS's own limit (12 h)


class UnreadableMessage(ValueError):
    """A queue body that is not an outbound message (not JSON, a field missing, unknown or of another type): no
    later attempt can read it, so it is dead-lettered with this reason. The reason never quotes the body."""


_TYPES: dict[str, type] = {"str": str, "int": int, "bool": bool}


def _expected(annotation: str) -> tuple[type, bool]:
    """A field's JSON type from its annotation (postponed, so a string), and whether null is allowed."""
    base = annotation.removesuffix(" | None")
    return (list if base.startswith("list[") else _TYPES[base]), base != annotation


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
        """The message a queue body holds; UnreadableMessage, saying why, for anything else."""
        try:
            values = json.loads(body)
        except (ValueError, RecursionError) as error:
            raise UnreadableMessage(f"the queue body is not JSON ({type(error).__name__})") from error
        if not isinstance(values, dict):
            raise UnreadableMessage("the queue body is not a JSON object")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UnreadableMessage(f"the queue body has fields this sender does not know: {', '.join(unknown)[:200]}")
        for name, spec in known.items():
            if name not in values:
                if spec.default is MISSING and spec.default_factory is MISSING:
                    raise UnreadableMessage(f"the queue body has no {name}")
                continue
            value, (expected, nullable) = values[name], _expected(str(spec.type))
            if value is None and nullable:
                continue
            if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
                raise UnreadableMessage(f"the queue body's {name} is not a {expected.__name__}")
            if isinstance(value, list) and not all(isinstance(item, dict) for item in value):
                raise UnreadableMessage(f"the queue body's {name} holds something other than objects")
        return cls(**values)


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

    def dead_letter(self, body: str, group_id: str, deduplication_id: str, reason: str) -> None:
        """Park a body on the dead-letter queue. The deduplication id names this one dead-lettering: SQS drops a
        message whose id it saw in the last five minutes, so a message redriven and failing again needs a new one
        (the caller derives it from the queue message being dead-lettered)."""
        self.client.send_message(
            QueueUrl=self.dead_letter_queue_url,
            MessageBody=body,
            MessageGroupId=group_id,
            MessageDeduplicationId=deduplication_id[:128],
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:256] or "unknown"}},
        )
