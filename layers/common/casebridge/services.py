"""Wiring: the collaborators each piece of logic uses, built lazily from Settings, replaceable in tests."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_lambda_powertools.utilities import parameters

from casebridge.contact_center.base import ContactCenterClient
from casebridge.contact_center.chat_api_v2 import ChatApiV2Client, token_fetcher
from casebridge.contact_center.tokens import TokenProvider
from casebridge.contact_center.webhook_signature import JwkCache, WebhookVerifier, http_jwk_fetcher
from casebridge.errors import ContactCenterError
from casebridge.outbound_queue import OutboundQueue
from casebridge.publisher import EventPublisher
from casebridge.settings import Settings, get_settings
from casebridge.store import CaseStore


@dataclass
class Services:
    settings: Settings
    store: CaseStore
    publisher: EventPublisher
    queue: OutboundQueue
    contact_center: ContactCenterClient
    verifier: WebhookVerifier


def secret_credentials(secret_id: str) -> tuple[str, str]:
    """8x8 API key and secret from Secrets Manager ({"apiKey", "apiSecret"}), cached for 5 minutes."""
    if not secret_id:
        raise ContactCenterError("EIGHTXEIGHT_SECRET_ARN is not configured")
    raw = parameters.get_secret(secret_id, max_age=300)
    values = json.loads(raw if isinstance(raw, str) else raw.decode())
    return str(values["apiKey"]), str(values["apiSecret"])


def build_services(settings: Settings) -> Services:
    store = CaseStore(
        settings.cases_table_name,
        timeline_ttl_days=settings.timeline_ttl_days,
        receipt_ttl_days=settings.webhook_receipt_ttl_days,
    )
    fetch = token_fetcher(
        settings.base_url,
        lambda: secret_credentials(settings.credentials_secret_id),
        timeout=settings.http_timeout_seconds,
    )
    tokens = TokenProvider(settings.tenant_id, fetch, shared=store)
    contact_center = ChatApiV2Client(
        settings.base_url,
        settings.contact_center_region,
        settings.tenant_id,
        tokens,
        timeout=settings.http_timeout_seconds,
    )
    keys = JwkCache(http_jwk_fetcher(settings.base_url, settings.contact_center_region))
    return Services(
        settings=settings,
        store=store,
        publisher=EventPublisher(settings.event_bus_name),
        queue=OutboundQueue(settings.outbound_queue_url, settings.outbound_dead_letter_queue_url),
        contact_center=contact_center,
        verifier=WebhookVerifier(settings.tenant_id, keys, tolerance_s=settings.webhook_tolerance_seconds),
    )


_services: Services | None = None


def get_services() -> Services:
    global _services  # noqa: PLW0603 - one set of collaborators per container, built on first use
    if _services is None:
        _services = build_services(get_settings())
    return _services


def set_services(services: Services | None) -> None:
    """Tests hand in their own collaborators (or None to rebuild from the environment)."""
    global _services  # noqa: PLW0603
    _services = services
