"""Kept for test files that still import `unit_support`: the helpers now live in tests/support."""

from __future__ import annotations

from tests.support.aws import aws_client as client
from tests.support.fakes import FakeContactCenter, StubJwkFetcher
from tests.support.lambdas import LambdaContext, load_function
from tests.support.paths import EVENTS_DIR as EVENTS
from tests.support.paths import ROOT
from tests.support.samples import CONVERSATION_ID, Answer, invoke, load_event, sample_body
from tests.support.samples import sample_api_event as api_event
from tests.support.samples import sample_webhook_event as webhook_event
from tests.support.signing import SIGNATURE_HEADERS

__all__ = [
    "CONVERSATION_ID",
    "EVENTS",
    "ROOT",
    "SIGNATURE_HEADERS",
    "Answer",
    "FakeContactCenter",
    "LambdaContext",
    "StubJwkFetcher",
    "api_event",
    "client",
    "invoke",
    "load_event",
    "load_function",
    "sample_body",
    "webhook_event",
]
