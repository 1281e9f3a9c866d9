"""What a LocalStack is started with: its options, the demo's 8x8 topology, and the error for a port in use."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cc_emulator import AgentConfig, EmulatorConfig, QueueConfig, ScriptConfig, TimingConfig
from scripts.local_stack import REPO_ROOT
from scripts.local_stack.api_gateway import RequestLog
from scripts.local_stack.channel import EventCallback
from scripts.local_stack.sqs_poller import BatchLog
from scripts.local_stack.template import TemplateError
from scripts.local_stack.websocket_api import FrameLog

ContactCenterApi = Literal["chat-gateway-v1", "chat-api-v2"]
CONTACT_CENTER_APIS: tuple[ContactCenterApi, ...] = ("chat-gateway-v1", "chat-api-v2")
DEFAULT_API: ContactCenterApi = "chat-gateway-v1"


def default_api() -> ContactCenterApi:
    value = os.environ.get("EIGHTXEIGHT_API") or DEFAULT_API
    for api in CONTACT_CENTER_APIS:
        if value == api:
            return api
    raise TemplateError(f"EIGHTXEIGHT_API={value!r}: the local stack runs {' or '.join(CONTACT_CENTER_APIS)}")


# Added to the template's environment, for every function (one process serves them all).
LOCAL_ENVIRONMENT = {
    # Outbound retries are deferred on the queue; short delays keep a local retry visible within seconds.
    "RETRY_BASE_SECONDS": "0.2",
    "RETRY_CAP_SECONDS": "2",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
    # The emulator serves agents' files over http on loopback: allowed here, never by default.
    "ATTACHMENT_SOURCES_LOOPBACK": "true",
}


def demo_emulator_config(**timings: float) -> EmulatorConfig:
    """Two queues, one scripted agent on each: Alice (support) and Bob (billing)."""
    queues = [QueueConfig("support", "Support"), QueueConfig("billing", "Billing")]
    agents = [
        AgentConfig(
            "alice",
            "Alice (Support)",
            ["support"],
            script=ScriptConfig(
                kind="auto_reply",
                greeting="Hi Jane, Alice from Support here. I can see your chat with our assistant.",
                reply_text="I see two identical charges on your last invoice. Let me look into it.",
            ),
        ),
        AgentConfig(
            "bob",
            "Bob (Billing)",
            ["billing"],
            script=ScriptConfig(
                kind="auto_reply",
                greeting="Hello Jane, Bob from Billing. I have your case and the whole conversation.",
                reply_text="The duplicate charge is refunded; it shows on your account within 3-5 business days.",
            ),
        ),
    ]
    timing = TimingConfig(accept_delay=0.3, reply_delay=0.3, delivery_timeout=5.0, retry_base_delay=0.2)
    for name, value in timings.items():
        setattr(timing, name, value)
    return EmulatorConfig(
        port=0,
        tenant_id="casebridge-local",
        customer_id="local-customer",
        api_key="local-8x8-api-key",
        api_secret=secrets.token_urlsafe(16),
        queues=queues,
        agents=agents,
        timings=timing,
    )


@dataclass
class StackOptions:
    stack_name: str = "casebridge-local"
    # The 8x8 API the functions use (EIGHTXEIGHT_API) and the emulator's webhook speaks; by default the caller's
    # own EIGHTXEIGHT_API if set (e.g. `EIGHTXEIGHT_API=chat-api-v2 pytest tests/e2e`), else the Chat Gateway.
    api: ContactCenterApi = field(default_factory=default_api)
    region: str = "us-east-1"
    template_path: Path = REPO_ROOT / "template.yaml"
    host: str = "127.0.0.1"
    api_port: int = 0
    emulator_port: int = 0
    moto_port: int = 0
    api_key: str | None = None
    # Template parameters beyond the ones the stack fills in (the 8x8 ones), e.g. {"LogLevel": "WARNING"}.
    parameters: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=lambda: dict(LOCAL_ENVIRONMENT))
    emulator_config: EmulatorConfig | None = None
    channel_queue_id: str | None = None  # the queue of the provisioned 8x8 channel (default: the first)
    # Where the functions' logs go: a file path, or None for this process's stdout.
    log_path: Path | None = None
    on_event: EventCallback | None = None
    on_request: RequestLog | None = None
    on_batch: BatchLog | None = None
    # The customer chat page (a browser front end for the business API, with the API key held server-side).
    chat_page: bool = True
    chat_port: int = 0
    # The channel push: the WebSocket API's port, and a local receiver as the stack's ChannelWebhookUrl (signed
    # webhooks are pushed only with one, as in a deploy).
    socket_port: int = 0
    channel_webhook: bool = False
    on_frame: FrameLog | None = None
    # The template's Schedule events (the escalation's timers) run at their rate; a shorter period here lets a
    # demo see a minute's timers in seconds. None: the template's own rate. 0: never by themselves (a test calls
    # run_schedules()).
    schedule_seconds: float | None = None
    # The queues' business hours (docs/escalation.md): put in an SSM parameter of the stand-in, named by the
    # template's BusinessHoursParameterName, and checked at start as a deploy checks it. None: always open.
    business_hours: dict[str, Any] | str | None = None


class PortInUse(OSError):
    """A port the stack was asked to listen on is taken: `option` is the StackOptions field that chooses it."""

    def __init__(self, what: str, host: str, port: int, option: str) -> None:
        super().__init__(errno.EADDRINUSE, f"{host}:{port} ({what}) is already in use")
        self.what, self.host, self.port, self.option = what, host, port, option


@contextmanager
def listening(what: str, host: str, port: int, option: str) -> Iterator[None]:
    """Turns "address already in use" from binding `port` into a PortInUse naming it and its option."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.EADDRINUSE and not isinstance(error, PortInUse):
            raise PortInUse(what, host, port, option) from error
        raise
