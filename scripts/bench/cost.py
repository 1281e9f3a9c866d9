"""Figure 6: $ per 1M customer messages and per 1M webhook events, from the counted calls, the measured
code time and public unit prices. Every price and every assumption is a named input below."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Public list prices, us-east-1, as published on the AWS pricing pages (read 2025-06; on-demand DynamoDB
# after the 2024-11-01 price cut). Change them here; nothing else holds a price.
PRICES_DATE = "2025-06, us-east-1 list prices"
LAMBDA_ARM_PER_GB_S = 0.0000133334
LAMBDA_PER_1M_REQUESTS = 0.20
API_GATEWAY_REST_PER_1M = 3.50  # first 333M requests a month
DYNAMODB_PER_1M_WRU = 0.625
DYNAMODB_PER_1M_RRU = 0.125
SQS_FIFO_PER_1M_REQUESTS = 0.50  # per 64 KB chunk
EVENTBRIDGE_CUSTOM_PER_1M = 1.00  # per 64 KB chunk
SECRETS_MANAGER_PER_10K_CALLS = 0.05

# Assumptions (not measured here): round trips as seen from a Lambda in the same region, SDK time included.
DYNAMODB_CALL_MS = 6.0
SQS_CALL_MS = 10.0
EVENTBRIDGE_CALL_MS = 15.0
SECRETS_CALL_MS = 15.0
CONTACT_CENTER_CALL_MS = 120.0  # 8x8 (either API), public internet
# Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB. Our measured code time
# (one core of this machine, taken as equal to one Graviton vCPU) is stretched by 1769 / memory below that.
FULL_VCPU_MB = 1769
# The SQS event-source mapping: ReceiveMessage and DeleteMessageBatch per batch (BatchSize 10 in
# template.yaml; at low traffic a batch holds one message, which is what this model assumes).
MESSAGES_PER_BATCH = 1
MEMORY_SIZES_MB = (128, 256)


@dataclass(frozen=True)
class Invocation:
    """One Lambda invocation of a path: our code's time and the calls it waits on."""

    code_ms: float
    dynamodb: int = 0
    sqs: int = 0
    events: int = 0
    contact_center: int = 0
    secrets: int = 0

    def duration_ms(self, memory_mb: int) -> float:
        cpu = self.code_ms * max(1.0, FULL_VCPU_MB / memory_mb)
        io = (
            self.dynamodb * DYNAMODB_CALL_MS
            + self.sqs * SQS_CALL_MS
            + self.events * EVENTBRIDGE_CALL_MS
            + self.contact_center * CONTACT_CENTER_CALL_MS
            + self.secrets * SECRETS_CALL_MS
        )
        return cpu + io


@dataclass(frozen=True)
class PathCost:
    """Per unit of work (one customer message, one webhook event)."""

    invocations: tuple[Invocation, ...]
    api_requests: float
    rru: float
    wru: float
    sqs_requests: float
    events_published: float
    secret_calls: float = 0.0

    def breakdown(self, memory_mb: int) -> dict[str, float]:
        """$ per 1M units, by service."""
        gb = memory_mb / 1024
        lambda_gb_s = sum(gb * math.ceil(i.duration_ms(memory_mb)) / 1000 for i in self.invocations)
        return {
            "Lambda": 1e6 * lambda_gb_s * LAMBDA_ARM_PER_GB_S + len(self.invocations) * LAMBDA_PER_1M_REQUESTS,
            "API Gateway": self.api_requests * API_GATEWAY_REST_PER_1M,
            "DynamoDB": self.rru * DYNAMODB_PER_1M_RRU + self.wru * DYNAMODB_PER_1M_WRU,
            "SQS": self.sqs_requests * SQS_FIFO_PER_1M_REQUESTS,
            "EventBridge": self.events_published * EVENTBRIDGE_CUSTOM_PER_1M,
            "Secrets Manager": self.secret_calls * SECRETS_MANAGER_PER_10K_CALLS * 100,
        }

    def total(self, memory_mb: int) -> float:
        return sum(self.breakdown(memory_mb).values())

    def durations(self, memory_mb: int) -> list[float]:
        return [i.duration_ms(memory_mb) for i in self.invocations]


def message_path(
    accept_ms: float,
    deliver_ms: float,
    deliver_dynamodb: int,
    rru: float,
    wru: float,
    contact_center: int = 1,
    secrets: int = 0,
) -> PathCost:
    """Customer message: API accept (1 SQS send) + delivery (DynamoDB + the calls to 8x8: 1 for casebridge's steady
    state; token + post for a connector that fetches a token per call, which also reads its secret each time)."""
    return PathCost(
        invocations=(
            Invocation(accept_ms, sqs=1),
            Invocation(deliver_ms, dynamodb=deliver_dynamodb, contact_center=contact_center, secrets=secrets),
        ),
        api_requests=1,
        rru=rru,
        wru=wru,
        sqs_requests=1 + 2 / MESSAGES_PER_BATCH,  # send + the mapping's receive and delete
        events_published=0,
        secret_calls=secrets,
    )


def webhook_path(
    code_ms: float, dynamodb: int, events: int, rru: float, wru: float, contact_center: int = 0
) -> PathCost:
    """One webhook event: the intake's invocation (and, without a key cache, a key fetch from 8x8 each time)."""
    return PathCost(
        invocations=(Invocation(code_ms, dynamodb=dynamodb, events=events, contact_center=contact_center),),
        api_requests=1,
        rru=rru,
        wru=wru,
        sqs_requests=0,
        events_published=events,
    )


def events_per_second(duration_ms: float) -> float:
    """Events one container handles per second, one at a time (Lambda gives a container one event at once)."""
    return 1000.0 / duration_ms if duration_ms > 0 else 0.0
