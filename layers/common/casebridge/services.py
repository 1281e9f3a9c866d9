"""Wiring: the collaborators each piece of logic uses, built lazily from Settings, replaceable in tests.

The configured 8x8 API (EIGHTXEIGHT_API) picks the client, the webhook dialect and the signing-key URL;
nothing after this module knows which API serves the case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities import parameters

from casebridge.contact_center.base import CHAT_API_V2, ContactCenterClient
from casebridge.contact_center.webhook_signature import JwkCache, WebhookVerifier, http_jwk_fetcher, jwk_url_template
from casebridge.errors import ConfigurationError
from casebridge.events import ContactCenterEvent
from casebridge.outbound_queue import OutboundQueue
from casebridge.publisher import EventPublisher
from casebridge.settings import Settings, get_settings
from casebridge.store import CaseStore

WebhookParser = Callable[[Any], ContactCenterEvent]


@dataclass
class Services:
    settings: Settings
    store: CaseStore
    publisher: EventPublisher
    queue: OutboundQueue
    contact_center: ContactCenterClient
    verifier: WebhookVerifier
    webhook_parser: WebhookParser
    escalation: Any = None  # casebridge.escalation.wiring.EscalationParts, built on first use


# What each API's credentials secret must hold.
SECRET_KEYS = {"chat-gateway-v1": ("apiKey",), "chat-api-v2": ("apiKey", "apiSecret")}


def secret_credentials(secret_id: str, api: str) -> dict[str, str]:
    """8x8 credentials from Secrets Manager, cached for 5 minutes. Gateway: {"apiKey"}; v2: {"apiKey",
    "apiSecret"}. A missing or wrong-shaped secret is a configuration error naming what it lacks."""
    if not secret_id:
        raise ConfigurationError("EIGHTXEIGHT_SECRET_ARN is not configured (the 8x8 credentials secret)")
    raw = parameters.get_secret(secret_id, max_age=300)
    try:
        values = json.loads(raw if isinstance(raw, str) else raw.decode())
    except (ValueError, UnicodeDecodeError):
        values = None
    required = SECRET_KEYS[api]
    if not isinstance(values, dict):
        raise ConfigurationError(f"the 8x8 credentials secret must be a JSON object with {', '.join(required)}")
    missing = [name for name in required if not isinstance(values.get(name), str) or not values[name]]
    if missing:
        raise ConfigurationError(f"the 8x8 credentials secret lacks {', '.join(missing)} (needed for {api})")
    return {name: values[name] for name in required}


def build_contact_center(settings: Settings, store: CaseStore) -> ContactCenterClient:
    def credentials() -> dict[str, str]:
        return secret_credentials(settings.credentials_secret_id, settings.contact_center_api)

    if settings.contact_center_api == CHAT_API_V2:
        from casebridge.contact_center.chat_api_v2 import ChatApiV2Client, token_fetcher  # noqa: PLC0415
        from casebridge.contact_center.token_store import TableTokenCache  # noqa: PLC0415
        from casebridge.contact_center.tokens import TokenProvider  # noqa: PLC0415

        def key_and_secret() -> tuple[str, str]:
            values = credentials()
            return values["apiKey"], values["apiSecret"]

        fetch = token_fetcher(settings.base_url, key_and_secret, timeout=settings.http_timeout_seconds)
        tokens = TokenProvider(settings.tenant_id, fetch, shared=TableTokenCache(store.table))
        return ChatApiV2Client(
            settings.base_url,
            settings.contact_center_region,
            settings.tenant_id,
            tokens,
            timeout=settings.http_timeout_seconds,
        )
    from casebridge.contact_center.chat_gateway_v1 import ChatGatewayV1Client  # noqa: PLC0415

    return ChatGatewayV1Client(
        settings.base_url,
        settings.tenant_id,
        lambda: credentials()["apiKey"],
        timeout=settings.http_timeout_seconds,
    )


def webhook_parser(api: str) -> WebhookParser:
    if api == CHAT_API_V2:
        from casebridge.contact_center.webhook_v2 import parse_webhook_event  # noqa: PLC0415
    else:
        from casebridge.contact_center.webhook_gateway import parse_webhook_event  # noqa: PLC0415
    return parse_webhook_event


def build_services(settings: Settings) -> Services:
    store = CaseStore(
        settings.cases_table_name,
        timeline_ttl_days=settings.timeline_ttl_days,
        receipt_ttl_days=settings.webhook_receipt_ttl_days,
    )
    url = jwk_url_template(settings.contact_center_api, settings.base_url, settings.contact_center_region)
    keys = JwkCache(http_jwk_fetcher(url), store=store)  # keys that verified, shared by every container
    return Services(
        settings=settings,
        store=store,
        publisher=EventPublisher(settings.event_bus_name),
        queue=OutboundQueue(settings.outbound_queue_url, settings.outbound_dead_letter_queue_url),
        contact_center=build_contact_center(settings, store),
        verifier=WebhookVerifier(settings.tenant_id, keys, tolerance_s=settings.webhook_tolerance_seconds),
        webhook_parser=webhook_parser(settings.contact_center_api),
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
