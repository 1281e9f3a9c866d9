"""LocalStack: template.yaml running on this machine, with the 8x8 emulator and a business channel around it.

    with LocalStack().start() as stack:
        requests.post(f"{stack.api_url}/cases/C-1/conversation", headers={"x-api-key": stack.api_key}, json={})

Start order (each step needs the one before):
  moto + the template's resources + the 8x8 credentials secret → the 8x8 emulator → the local API (listening,
  holding requests) → the emulator's webhook + channel for the API's webhook URL → the functions' environment
  (os.environ, once) → the functions imported → requests let through → SQS pollers → the business channel.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import requests
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base as parameters_base

from cc_emulator import AgentConfig, EmulatorConfig, EmulatorServer, QueueConfig, ScriptConfig, TimingConfig
from scripts.local_stack import REPO_ROOT
from scripts.local_stack.api_gateway import LocalApi, RequestLog
from scripts.local_stack.aws_standin import LOCAL_CREDENTIALS, AwsStandIn
from scripts.local_stack.channel import BusinessChannel, EventCallback
from scripts.local_stack.chat_page import ChatPageServer
from scripts.local_stack.functions import InvocationLogStream, LocalFunction, load_functions
from scripts.local_stack.scheduler import Scheduler, build_scheduler
from scripts.local_stack.sqs_poller import BatchLog, SqsPoller, start_pollers
from scripts.local_stack.template import Template, TemplateError

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
    # The template's Schedule events (the escalation's timers) run at their rate; a shorter period here lets a
    # demo see a minute's timers in seconds. None: the template's own rate. 0: never by themselves (a test calls
    # run_schedules()).
    schedule_seconds: float | None = None


class PortInUse(OSError):
    """A port the stack was asked to listen on is taken: `option` is the StackOptions field that chooses it."""

    def __init__(self, what: str, host: str, port: int, option: str) -> None:
        super().__init__(errno.EADDRINUSE, f"{host}:{port} ({what}) is already in use")
        self.what, self.host, self.port, self.option = what, host, port, option


@contextmanager
def _listening(what: str, host: str, port: int, option: str) -> Iterator[None]:
    """Turns "address already in use" from binding `port` into a PortInUse naming it and its option."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.EADDRINUSE and not isinstance(error, PortInUse):
            raise PortInUse(what, host, port, option) from error
        raise


class LocalStack:
    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        if self.options.api not in CONTACT_CENTER_APIS:
            raise TemplateError(f"unknown 8x8 API {self.options.api!r}: {' or '.join(CONTACT_CENTER_APIS)}")
        self.template = Template.load(
            self.options.template_path, stack_name=self.options.stack_name, region=self.options.region
        )
        self.aws = AwsStandIn(region=self.options.region, host=self.options.host, port=self.options.moto_port)
        config = self.options.emulator_config or demo_emulator_config()
        config.host = self.options.host
        config.port = self.options.emulator_port if self.options.emulator_port else config.port
        self.emulator = EmulatorServer(config)
        self.functions: dict[str, LocalFunction] = {}
        self.api = LocalApi(
            self.template,
            self.functions,
            api_key=self.options.api_key,
            host=self.options.host,
            port=self.options.api_port,
            on_request=self.options.on_request,
        )
        self.pollers: list[SqsPoller] = []
        self.scheduler: Scheduler | None = None
        self.channel: BusinessChannel | None = None
        self.chat_page: ChatPageServer | None = None
        self.environment: dict[str, str] = {}
        self.secret_arn = ""
        self.webhook_id = ""
        self.channel_id = ""
        self._saved_environ: dict[str, str | None] = {}
        self._log_stream: InvocationLogStream | None = None
        self._replaced_streams: list[tuple[logging.StreamHandler[Any], IO[str]]] = []
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._started = True
        options = self.options
        # Metrics are disabled locally; Powertools still warns on every invocation that none were published.
        warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
        with _listening("AWS stand-in (moto)", options.host, options.moto_port, "moto_port"):
            self.aws.start()
        self.aws.create_from_template(self.template)
        config = self.emulator.config
        self.secret_arn = self.aws.put_secret(
            f"{options.stack_name}/8x8-credentials",
            {
                "apiKey": config.api_key,
                "apiSecret": config.api_secret,
                # Real-time Metrics' own OAuth key and secret (docs/escalation.md): the emulator plays it too.
                "analyticsKey": config.metrics_api_key,
                "analyticsSecret": config.metrics_api_secret,
            },
        )
        with _listening("8x8 emulator and agent desk", options.host, options.emulator_port, "emulator_port"):
            self.emulator.start()
        with _listening("local API", options.host, options.api_port, "api_port"):
            self.api.start()
        queue_id = options.channel_queue_id or config.queues[0].id
        self.template.parameter_values = {
            "EightByEightBaseUrl": self.emulator.base_url,
            "EightByEightRegion": config.region,
            "EightByEightTenantId": config.tenant_id,
            "EightByEightChannelId": "",  # empty: the stack provisions 8x8 itself, as a deploy does
            "EightByEightQueueId": queue_id,
            "EightByEightCredentialsSecretArn": self.secret_arn,
            **({"EightByEightApi": options.api} if "EightByEightApi" in self.template.parameters else {}),
            **options.parameters,
        }
        self._set_environ(self.aws_environment())
        self._layers_on_path()
        self._forget_cached_configuration()
        self.webhook_id, self.channel_id = self._provision()
        self.environment = self.function_environment()
        self._set_environ(self.environment)
        self.functions.update(load_functions(self.template))
        self._forget_cached_configuration()
        self._route_function_logs()
        self.api.ready.set()
        self.pollers = start_pollers(
            self.template.sqs_sources(),
            self.functions,
            self.aws.sqs,
            self.template.resolve,
            self.aws.queue_url_for_arn,
            options.region,
            on_batch=options.on_batch,
        )
        self.scheduler = build_scheduler(
            self.template,
            self.functions,
            options.region,
            self.template.account_id,
            period_s=options.schedule_seconds or None,
        )
        if options.schedule_seconds != 0:
            self.scheduler.start()
        self.channel = BusinessChannel(
            self.aws.sqs,
            self.aws.client("events"),
            bus_name=self.event_bus_name,
            name=f"{options.stack_name}-business-channel",
            on_event=options.on_event,
        )
        self.channel.start()
        if options.chat_page:
            with _listening("customer chat page", options.host, options.chat_port, "chat_port"):
                self.chat_page = ChatPageServer(
                    self.api_url,
                    self.api_key,
                    self.channel,
                    host=options.host,
                    port=options.chat_port,
                    attachments=options.api == "chat-gateway-v1",
                ).start()

    def _layers_on_path(self) -> None:
        """As in Lambda, the layers' packages import before any function's code (the provisioning runs first)."""
        for function_id in self.template.functions():
            for layer_dir in self.template.function_layer_dirs(function_id):
                if str(layer_dir) not in sys.path:
                    sys.path.insert(0, str(layer_dir))

    def _provision(self) -> tuple[str, str]:
        """Run the template's 8x8 provisioning custom resource through the provisioner's own code
        (casebridge.provisioning.on_create, what CloudFormation's Create calls), with the local webhook URL in
        place of the API Gateway URL CloudFormation would give. A channel id given as a parameter skips it."""
        given = self.template.parameter_values.get("EightByEightChannelId", "")
        if given:
            return "", given
        from casebridge import provisioning  # noqa: PLC0415 - the layer is on sys.path only now

        for logical_id, _ in self.template.resources_of("Custom::EightByEightProvisioning"):
            props = {
                key: self.template.resolve(value)
                for key, value in self.template.properties(logical_id).items()
                if key not in ("ServiceToken", "WebhookUrl")
            }
            props["WebhookUrl"] = self.webhook_url
            physical_id, data = provisioning.on_create(props)
            self.template.physical[logical_id] = {"Ref": physical_id, **data}
            return data["WebhookId"], data["ChannelId"]
        raise RuntimeError("template.yaml has no Custom::EightByEightProvisioning resource to provision 8x8 with")

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.chat_page is not None:
            self.chat_page.stop()
            self.chat_page = None
        for poller in self.pollers:
            poller.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.channel is not None:
            self.channel.stop()
        self.api.stop()
        self.emulator.stop()
        self.aws.stop()
        self._restore_environ()
        if self.functions:  # casebridge was imported: leave no client or setting bound to this stack behind
            self._forget_cached_configuration()
        self._close_function_logs()

    def __enter__(self) -> LocalStack:
        return self if self._started else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the functions' environment ------------------------------------------------------------

    def function_environment(self) -> dict[str, str]:
        """Globals + every function's own variables, resolved against the local resources, plus what makes the
        AWS SDK and Powertools work locally. One process runs every function, so one environment serves all:
        a variable two functions set differently would be a conflict, and fails here."""
        merged: dict[str, str] = {}
        for function_id in self.template.functions():
            for name, value in self.template.function_environment(function_id).items():
                if name in merged and merged[name] != value:
                    raise TemplateError(f"{name} differs between functions; one local process cannot serve both")
                merged[name] = value
        merged.update(self.options.environment)
        merged["EIGHTXEIGHT_API"] = self.options.api
        merged.update(self.aws_environment())
        return merged

    def aws_environment(self) -> dict[str, str]:
        """What points the AWS SDK (and Powertools) at the local stand-in."""
        return {
            "AWS_ENDPOINT_URL": self.aws.endpoint_url,
            "AWS_DEFAULT_REGION": self.options.region,
            "AWS_REGION": self.options.region,
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
            "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"])),
        }

    def _set_environ(self, values: dict[str, str]) -> None:
        # A profile or session token of the developer's own AWS setup must not leak into the local stack.
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            self._saved_environ.setdefault(name, os.environ.get(name))
            os.environ.pop(name, None)
        for name, value in values.items():
            self._saved_environ.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_environ(self) -> None:
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()

    @staticmethod
    def _forget_cached_configuration() -> None:
        """casebridge caches its settings, services and AWS clients per container; a stack started earlier in
        this process (tests, a second demo run) must not leave its endpoints or secrets behind."""
        from casebridge import aws, services, settings  # noqa: PLC0415 - the layer is on sys.path only now

        settings.get_settings.cache_clear()
        services.set_services(None)
        aws.reset_clients()
        # Powertools' parameters utility keeps its own client (bound to the old endpoint) and cached values.
        parameters.clear_caches()  # type: ignore[no-untyped-call]
        parameters_base.DEFAULT_PROVIDERS.clear()  # type: ignore[attr-defined]

    def _route_function_logs(self) -> None:
        if self.options.log_path is None:
            return
        path = self.options.log_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():  # one earlier run is kept beside this one's, never more
            path.replace(path.with_name(path.name + ".1"))
        self._log_stream = InvocationLogStream(path.open("w", encoding="utf-8"))
        for handler in logging.getLogger("casebridge").handlers:
            if isinstance(handler, logging.StreamHandler):
                previous = handler.setStream(self._log_stream)
                if previous is not None:
                    self._replaced_streams.append((handler, previous))

    def _close_function_logs(self) -> None:
        for handler, previous in self._replaced_streams:
            handler.setStream(previous)
        self._replaced_streams.clear()
        if self._log_stream is not None:
            self._log_stream.close()
            self._log_stream = None

    # -- what callers need ---------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.api.base_url

    @property
    def api_key(self) -> str:
        return self.api.api_key

    @property
    def webhook_url(self) -> str:
        return f"{self.api.base_url}/webhooks/8x8"

    @property
    def control_url(self) -> str:
        return self.emulator.control_url

    @property
    def chat_url(self) -> str:
        """The customer chat page ("" when `StackOptions.chat_page` is off)."""
        return self.chat_page.url if self.chat_page is not None else ""

    @property
    def desk_url(self) -> str:
        """The emulator's agent desk page."""
        return self.emulator.desk_url

    @property
    def table_name(self) -> str:
        return self.resource("AWS::DynamoDB::Table")

    @property
    def event_bus_name(self) -> str:
        return self.resource("AWS::Events::EventBus")

    def resource(self, type_: str, attribute: str = "Ref") -> str:
        found = [r for r in self.aws.created if r.type == type_]
        if len(found) != 1:
            raise TemplateError(f"expected one {type_} in the template, found {len(found)}")
        return found[0].attributes[attribute]

    def session(self) -> requests.Session:
        """An HTTP session for the business API, with the API key."""
        session = requests.Session()
        session.headers["x-api-key"] = self.api_key
        session.trust_env = False
        return session

    def run_schedules(self) -> list[Any]:
        """Every scheduled function once, now (as if its rate came round), and their results."""
        assert self.scheduler is not None, "the stack is not started"
        return self.scheduler.run_now()

    def problems(self) -> list[str]:
        """Errors the background workers swallowed (a poller or the channel); empty when all is well."""
        found = [f"{p.source.function_id}: {e}" for p in self.pollers for e in p.errors]
        if self.scheduler is not None:
            found += [f"{e.rule}: {error}" for e in self.scheduler.entries for error in e.errors]
        if self.channel is not None:
            found += [f"channel: {e}" for e in self.channel.errors]
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "apiUrl": self.api_url,
            "apiKey": self.api_key,
            "webhookUrl": self.webhook_url,
            "emulatorUrl": self.emulator.base_url,
            "emulatorControl": self.control_url,
            "awsEndpoint": self.aws.endpoint_url,
            "resources": {r.logical_id: r.name for r in self.aws.created},
            "routes": [f"{r.method} {r.path} -> {r.function_id}" for r in self.api.routes],
            "channelId": self.channel_id,
            "tenantId": self.emulator.config.tenant_id,
            "api": self.options.api,
        }
