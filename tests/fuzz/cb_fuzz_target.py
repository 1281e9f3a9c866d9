"""The fuzz target: the real webhook handler (functions/webhook_intake/app.py) behind API Gateway REST events,
AWS on moto, the verifier's key served in-process (so signed inputs reach the parsing and the store).

Answers allowed for any input: 200 (accepted, duplicate, kept, verified), 400, 401, 413 (body over the
limit). 503 `SigningKeyUnavailable` only for a kid the verifier must fetch: while the fetch is made to fail, or for
a made-up kid once made-up kids spent the key-fetch budget (by design: 8x8 retries). 8x8's own key is fetched at
set-up, as a first event would, and is never refused 503 after. Anything else, or an exception, is a finding."""
# ruff: noqa: PLC0415 - casebridge is imported once the environment is set (powertools reads it at import time)

from __future__ import annotations

import base64
import gc
import json
import os
import uuid
from typing import Any

import boto3

from tests.support.aws import REGION, create_cases_table
from tests.support.connector import map_case, reset_casebridge
from tests.support.events import webhook_event
from tests.support.lambdas import LambdaContext, load_function
from tests.support.signing import WebhookSigner, b64url, new_rsa_key

TENANT, CUSTOMER, KID = "t1", "c1", "fuzz-kid"
TABLE = "fuzz-cases"
ALLOWED = {200, 400, 401, 413}


class FuzzTarget:
    """Set up once (moto must be active); then `deliver(...)` per input."""

    def __init__(self) -> None:
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "CASES_TABLE_NAME": TABLE,
            "EVENT_BUS_NAME": "fuzz-bus",
            "EIGHTXEIGHT_TENANT_ID": TENANT,
            "EIGHTXEIGHT_BASE_URL": "http://127.0.0.1:9",  # never reached: keys are served in-process
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "CRITICAL",
        }
        os.environ.update(env)
        os.environ.pop("AWS_ENDPOINT_URL", None)
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        create_cases_table(TABLE, self._client)
        boto3.client("events", region_name=REGION).create_event_bus(Name="fuzz-bus")
        from casebridge import observability, services
        from casebridge.contact_center.webhook_signature import JwkCache, WebhookVerifier
        from casebridge.errors import SigningKeyUnavailable

        reset_casebridge()
        observability.logger.setLevel("CRITICAL")
        self.signer = WebhookSigner(new_rsa_key(), KID, tenant_id=TENANT, customer_id=CUSTOMER)
        self.jwk = self.signer.public_jwk
        self.key_endpoint_down = False

        def fetch(kid: str) -> dict[str, Any] | None:
            if self.key_endpoint_down:
                raise SigningKeyUnavailable("injected: key endpoint down", retry_after=5)
            return dict(self.jwk, kid=kid) if kid == KID else None

        built = services.get_services()
        keys = JwkCache(fetch)
        # Fetched now, as 8x8's first event would: otherwise the order hypothesis draws inputs in decides whether
        # made-up kids spend the fetch budget before 8x8's key is first asked for (then 503, rightly, and a finding).
        assert keys.get(KID) is not None
        built.verifier = WebhookVerifier(TENANT, keys, tolerance_s=300)
        self.app = load_function("webhook_intake")
        self.context = LambdaContext()
        self.conversation = "conv-fuzz"
        map_case("case-fuzz", self.conversation)
        self.count = 0
        self.statuses: dict[int, int] = {}

    def _client(self, service: str) -> Any:
        assert service == "dynamodb"
        return self.ddb

    def reset_table(self) -> None:
        """moto copies the whole table on every transaction: start from an empty one now and then, so the run
        keeps its speed and memory (the state of earlier inputs is not needed by later ones)."""
        from casebridge.services import get_services

        self.ddb.delete_table(TableName=TABLE)
        create_cases_table(TABLE, self._client)
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
        if protected is not None and not isinstance(protected, dict):  # any JSON value as the header, encoded
            protected = b64url(json.dumps(protected, separators=(",", ":")).encode())
        return self.signer.headers(
            body, event_id=event_id, retry=retry, tt=tt, tenant_id=tenant, customer_id=customer, protected=protected
        )

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
        allowed = ALLOWED | ({503} if key_down or self._key_refused_for_a_made_up_kid(headers, answer) else set())
        if status not in allowed:
            raise AssertionError(f"answer {status} for input headers={headers!r} body={body!r}: {answer['body']}")
        return status

    @staticmethod
    def _key_refused_for_a_made_up_kid(headers: dict[str, str], answer: dict[str, Any]) -> bool:
        """A 503 SigningKeyUnavailable for a signature naming a kid other than 8x8's (the key-fetch budget)."""
        if answer["statusCode"] != 503:
            return False
        try:
            code = json.loads(answer["body"])["error"]["code"]
            signature = next(v for k, v in headers.items() if k.lower() == "x-8x8-signature")
            protected = json.loads(base64.urlsafe_b64decode(signature.split(".")[0] + "=="))
            kid = protected.get("kid") if isinstance(protected, dict) else None
        except (ValueError, KeyError, TypeError, StopIteration):
            return False
        return code == "SigningKeyUnavailable" and kid != KID
