"""The escalation's collaborators, built lazily from the Services they extend (and replaceable in tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities import parameters

from casebridge.clock import now_ms
from casebridge.escalation.availability import Availability, QueueFiguresCache, decide
from casebridge.escalation.hours import ALWAYS_OPEN, BusinessHours, ScheduleInvalid, parse_business_hours
from casebridge.observability import logger

if TYPE_CHECKING:
    from casebridge.services import Services

HOURS_MAX_AGE_S = 60  # an edited document applies within a minute


@dataclass
class EscalationParts:
    figures: QueueFiguresCache | None  # None: no analytics credentials, so no figures
    hours_parameter: str = ""
    _parsed: dict[str, BusinessHours] = field(default_factory=dict)

    def hours(self) -> BusinessHours | None:
        """The business hours (cached by Powertools for a minute); None when the document cannot be read."""
        if not self.hours_parameter:
            return ALWAYS_OPEN
        try:
            raw = parameters.get_parameter(self.hours_parameter, max_age=HOURS_MAX_AGE_S)
            text = raw if isinstance(raw, str) else bytes(raw).decode()
            if text not in self._parsed:
                self._parsed.clear()
                self._parsed[text] = parse_business_hours(text)
            return self._parsed[text]
        except ScheduleInvalid as error:
            logger.error("business-hours document invalid", extra={"why": str(error)})
        except Exception:
            logger.exception("business-hours document could not be read")
        return None


def build_parts(services: Services) -> EscalationParts:
    from casebridge.contact_center.chat_api_v2 import token_fetcher  # noqa: PLC0415
    from casebridge.contact_center.token_store import TableTokenCache  # noqa: PLC0415
    from casebridge.contact_center.tokens import TokenProvider  # noqa: PLC0415
    from casebridge.escalation.metrics import RealtimeMetricsClient, analytics_credentials  # noqa: PLC0415

    settings = services.settings
    figures = None
    try:
        credentials = analytics_credentials(settings.credentials_secret_id)
    except Exception:
        logger.exception("analytics credentials could not be read; availability goes without figures")
        credentials = None
    if credentials is not None:

        def key_and_secret() -> tuple[str, str]:
            current = analytics_credentials(settings.credentials_secret_id) or credentials
            return current.key, current.secret

        fetch = token_fetcher(settings.base_url, key_and_secret, timeout=settings.http_timeout_seconds)
        tokens = TokenProvider(f"{settings.tenant_id}#analytics", fetch, shared=TableTokenCache(services.store.table))
        source = RealtimeMetricsClient(
            settings.base_url,
            settings.contact_center_region,
            tokens,
            lambda: credentials.tenant_info,
            timeout=settings.http_timeout_seconds,
        )
        figures = QueueFiguresCache(services.store, source, refresh_ms=settings.metrics_refresh_seconds * 1000)
    return EscalationParts(figures, settings.business_hours_parameter)


def parts(services: Services) -> EscalationParts:
    if services.escalation is None:
        services.escalation = build_parts(services)
    assert isinstance(services.escalation, EscalationParts)
    return services.escalation


def queue_availability(services: Services, queue_id: str) -> Availability:
    escalation = parts(services)
    return decide(queue_id, escalation.hours(), escalation.figures, now_ms())
