"""Fixtures of the unit tests (helpers live in tests/support)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from casebridge.contact_center.webhook_gateway import parse_webhook_event
from casebridge.contact_center.webhook_signature import JwkCache, WebhookVerifier
from casebridge.services import build_services, set_services
from casebridge.settings import get_settings
from tests.support import connector
from tests.support.fakes import FakeContactCenter, StubJwkFetcher
from tests.support.lambdas import load_function


@pytest.fixture(autouse=True)
def _isolated(aws_env: None) -> Iterator[None]:
    """A cold container before and after every test: casebridge's caches and powertools' parameter caches."""
    connector.reset_casebridge(parameters=True)
    yield
    connector.reset_casebridge(parameters=True)


@pytest.fixture(scope="session")
def functions() -> SimpleNamespace:
    return SimpleNamespace(
        lifecycle=load_function("conversation_lifecycle"),
        outbound=load_function("outbound_sender"),
        webhook=load_function("webhook_intake"),
        channel_socket=load_function("channel_socket"),
    )


@pytest.fixture
def fake_8x8() -> FakeContactCenter:
    return FakeContactCenter()


@pytest.fixture
def jwk_fetcher(webhook_signer: Any) -> StubJwkFetcher:
    return StubJwkFetcher({webhook_signer.kid: webhook_signer.public_jwk})


@pytest.fixture
def real_services(casebridge_env: dict[str, str]) -> Any:
    """Services built from the environment exactly as the functions build them (real 8x8 client)."""

    return build_services(get_settings())


@pytest.fixture
def services(real_services: Any, fake_8x8: FakeContactCenter, jwk_fetcher: StubJwkFetcher) -> Any:
    """Real AWS side (moto) and real verifier; 8x8's client is the fake and its key endpoint a stub."""

    settings = real_services.settings
    verifier = WebhookVerifier(
        settings.tenant_id, JwkCache(jwk_fetcher), tolerance_s=settings.webhook_tolerance_seconds
    )
    wired = replace(real_services, contact_center=fake_8x8, verifier=verifier)
    set_services(wired)
    return wired


@pytest.fixture
def gateway_services(services: Any, fake_8x8: FakeContactCenter) -> Any:
    """`services` on the Chat Gateway: the fake speaks v1 and the intake reads the Gateway's webhook dialect."""
    fake_8x8.api = "chat-gateway-v1"
    wired = replace(services, webhook_parser=parse_webhook_event)
    set_services(wired)
    return wired
