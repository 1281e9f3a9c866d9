"""The fuzz target: the real webhook handler (functions/webhook_intake/app.py) behind API Gateway REST events,
AWS on moto, the verifier's key served in-process (so signed inputs reach the parsing and the store).

Answers allowed for any input: 200 (accepted, duplicate, kept, verified), 400, 401, 413 (body over the
limit). 503 only while the key fetch is made to fail. Anything else, or an exception, is a finding."""
# ruff: noqa: PLC0415 - imports that must wait for moto, the environment or sys.path

from __future__ import annotations

import base64
import gc
import json
import os
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "layers" / "common", ROOT / "emulator", ROOT, ROOT / "tests" / "guarantees"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

TENANT, CUSTOMER, KID = "t1", "c1", "fuzz-kid"
ALLOWED = {200, 400, 401, 413}
SIGNATURE_HEADERS = (
    "x-8x8-signature",
    "x-8x8-event-id",
    "x-8x8-retry",
    "x-8x8-transmission-time",
    "x-8x8-tenant-id",
    "x-8x8-customer-id",
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FuzzTarget:
    """Set up once (moto must be active); then `deliver(...)` per input."""

    def __init__(self) -> None:
        import boto3
        from cryptography.hazmat.primitives.asymmetric import rsa

        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "CASES_TABLE_NAME": "fuzz-cases",
            "EVENT_BUS_NAME": "fuzz-bus",
            "EIGHTXEIGHT_TENANT_ID": TENANT,
            "EIGHTXEIGHT_BASE_URL": "http://127.0.0.1:9",  # never reached: keys are served in-process
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "CRITICAL",
        }
        os.environ.update(env)
        os.environ.pop("AWS_ENDPOINT_URL", None)
        self.ddb = boto3.client("dynamodb", region_name="us-east-1")
        self._create_table()
        boto3.client("events", region_name="us-east-1").create_event_bus(Name="fuzz-bus")
        from casebridge import aws, observability, services, settings
        from casebridge.contact_center.webhook_signature import JwkCache, WebhookVerifier
        from casebridge.errors import SigningKeyUnavailable

        settings.get_settings.cache_clear()
        services.set_services(None)
        aws.reset_clients()
        observability.logger.setLevel("CRITICAL")
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()

        def as_b64(value: int) -> str:
            return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        self.jwk = {
            "kty": "RSA",
            "kid": KID,
            "alg": "RS256",
            "use": "sig",
            "n": as_b64(numbers.n),
            "e": as_b64(numbers.e),
        }
        self.key_endpoint_down = False

        def fetch(kid: str) -> dict[str, Any] | None:
            if self.key_endpoint_down:
                raise SigningKeyUnavailable("injected: key endpoint down", retry_after=5)
            return dict(self.jwk, kid=kid) if kid == KID else None

        built = services.get_services()
        built.verifier = WebhookVerifier(TENANT, JwkCache(fetch), tolerance_s=300)
        from cb_guarantees_harness import FakeContext, load_app, map_case

        self.app = load_app("webhook_intake")
        self.context = FakeContext()
        self.conversation = "conv-fuzz"
        map_case("case-fuzz", self.conversation)
        self.count = 0
        self.statuses: dict[int, int] = {}

    def _create_table(self) -> None:
        self.ddb.create_table(
            TableName="fuzz-cases",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )

    def reset_table(self) -> None:
        """moto copies the whole table on every transaction: start from an empty one now and then, so the run
        keeps its speed and memory (the state of earlier inputs is not needed by later ones)."""
        from cb_guarantees_harness import map_case

        from casebridge.services import get_services

        self.ddb.delete_table(TableName="fuzz-cases")
        self._create_table()
        get_services().store._case_by_conversation.clear()
        map_case("case-fuzz", self.conversation)

    # -- building inputs -----------------------------------------------------------------------
    def sign(
        self,
        body: bytes,
        *,
        event_id: str,
        retry: int = 0,
        tt: int | None = None,
        tenant: str = TENANT,
        customer: str = CUSTOMER,
        protected: Any = None,
    ) -> dict[str, str]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        tt = int(time.time() * 1000) if tt is None else tt
        header = protected if protected is not None else {"b64": False, "crit": ["b64"], "kid": KID, "alg": "RS256"}
        segment = b64url(json.dumps(header, separators=(",", ":")).encode())
        payload = (
            f'{{"checksum":{zlib.crc32(body) & 0xFFFFFFFF},"cid":"{customer}","eid":"{event_id}",'
            f'"retry":{retry},"tid":"{tenant}","tt":{tt}}}'
        ).encode()
        signature = self.key.sign(segment.encode() + b"." + payload, padding.PKCS1v15(), hashes.SHA256())
        return {
            "x-8x8-signature": f"{segment}..{b64url(signature)}",
            "x-8x8-event-id": event_id,
            "x-8x8-retry": str(retry),
            "x-8x8-transmission-time": str(tt),
            "x-8x8-tenant-id": tenant,
            "x-8x8-customer-id": customer,
        }

    @staticmethod
    def new_event_id() -> str:
        return uuid.uuid4().hex

    # -- one input -----------------------------------------------------------------------------
    def deliver(
        self,
        headers: dict[str, str],
        body: bytes | None,
        *,
        force_base64: bool = False,
        raw_body: str | None = None,
        key_down: bool = False,
    ) -> int:
        from cb_guarantees_harness import webhook_event

        event = webhook_event(headers, body or b"", force_base64=force_base64)
        if body is None:
            event["body"] = None
        if raw_body is not None:  # a body API Gateway would mark as base64 but that is not valid base64
            event["body"], event["isBase64Encoded"] = raw_body, True
        self.key_endpoint_down = key_down
        try:
            answer = self.app.lambda_handler(event, self.context)
        finally:
            self.key_endpoint_down = False
        status = int(answer["statusCode"])
        self.count += 1
        if self.count % 1000 == 0:
            self.reset_table()
            gc.collect()  # moto keeps table copies in reference cycles (rolled-back transactions)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        allowed = ALLOWED | ({503} if key_down else set())
        if status not in allowed:
            raise AssertionError(f"answer {status} for input headers={headers!r} body={body!r}: {answer['body']}")
        return status
