"""casebridge's per-container state, as tests need it: forgotten (a cold container) or seeded."""
# ruff: noqa: PLC0415 - casebridge is imported when called: powertools reads the environment at import time

from __future__ import annotations


def reset_casebridge(*, parameters: bool = False) -> None:
    """Forget cached settings, services and AWS clients (what a new Lambda container starts without);
    `parameters` also forgets powertools' parameter caches and providers (their clients were made for the last
    stand-in)."""
    from casebridge import aws, services, settings

    settings.get_settings.cache_clear()
    services.set_services(None)
    aws.reset_clients()
    if parameters:
        from aws_lambda_powertools.utilities import parameters as powertools_parameters

        powertools_parameters.clear_caches()  # type: ignore[no-untyped-call]
        vars(powertools_parameters.base)["DEFAULT_PROVIDERS"].clear()


def map_case(case_id: str, conversation_id: str, channel_id: str = "ch-1") -> None:
    """A case whose conversation is already recorded (as after a successful open)."""
    from casebridge.services import get_services

    store = get_services().store
    assert store.claim_opening(case_id, 30_000)
    store.record_conversation(case_id, conversation_id, channel_id)
