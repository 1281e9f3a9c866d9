"""LocalStack: template.yaml running on this machine, with the 8x8 emulator and a business channel around it.

    with LocalStack().start() as stack:
        requests.post(f"{stack.api_url}/cases/C-1/conversation", headers={"x-api-key": stack.api_key}, json={})

Start order (each step needs the one before):
  moto + the template's resources + the 8x8 credentials secret → the 8x8 emulator → the local API (listening,
  holding requests) → the emulator's webhook + channel for the API's webhook URL → the functions' environment
  (os.environ, once) → the functions imported → requests let through → SQS pollers → the business channel.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from types import TracebackType
from typing import IO, Any

import requests
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base as parameters_base

from cc_emulator import EmulatorServer
from scripts.local_stack.api_gateway import LocalApi
from scripts.local_stack.aws_standin import LOCAL_CREDENTIALS, AwsStandIn
from scripts.local_stack.channel import BusinessChannel
from scripts.local_stack.channel_push import EventBridgeTarget, WebhookReceiver
from scripts.local_stack.chat_page import ChatPageServer
from scripts.local_stack.functions import InvocationLogStream, LocalFunction, load_functions
from scripts.local_stack.options import (
    CONTACT_CENTER_APIS,
    DEFAULT_API,
    LOCAL_ENVIRONMENT,
    ContactCenterApi,
    PortInUse,
    StackOptions,
    default_api,
    demo_emulator_config,
    listening,
)
from scripts.local_stack.scheduler import Scheduler, build_scheduler
from scripts.local_stack.sqs_poller import SqsPoller, start_pollers
from scripts.local_stack.template import Template, TemplateError
from scripts.local_stack.websocket_api import LocalWebSocketApi

# Re-exported: callers import the options from here.
__all__ = [
    "CONTACT_CENTER_APIS",
    "DEFAULT_API",
    "LOCAL_ENVIRONMENT",
    "ContactCenterApi",
    "LocalStack",
    "PortInUse",
    "StackOptions",
    "default_api",
    "demo_emulator_config",
]


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
        apis = self.template.websocket_apis()
        if len(apis) > 1:
            raise TemplateError("the local stack serves one WebSocket API")
        self.socket = (
            LocalWebSocketApi(
                apis[0],
                self.functions,
                host=self.options.host,
                port=self.options.socket_port,
                on_frame=self.options.on_frame,
            )
            if apis
            else None
        )
        self.webhook_receiver = WebhookReceiver(host=self.options.host) if self.options.channel_webhook else None
        self.rule_targets: list[EventBridgeTarget] = []
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
        # Conditions are decided before any resource is made: the webhook's resources exist only with its URL.
        pushes = {"ChannelWebhookUrl": self.webhook_receiver.start().url} if self.webhook_receiver else {}
        self.template.parameter_values = dict(pushes)
        with listening("AWS stand-in (moto)", options.host, options.moto_port, "moto_port"):
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
        with listening("8x8 emulator and agent desk", options.host, options.emulator_port, "emulator_port"):
            self.emulator.start()
        with listening("local API", options.host, options.api_port, "api_port"):
            self.api.start()
        if self.socket is not None:
            with listening("channel WebSocket", options.host, options.socket_port, "socket_port"):
                self.socket.start()
            self.template.physical[self.socket.api.api_id] = {"Ref": "localws01", "ApiEndpoint": self.socket.url}
        queue_id = options.channel_queue_id or config.queues[0].id
        self.template.parameter_values = {
            "EightByEightBaseUrl": self.emulator.base_url,
            "EightByEightRegion": config.region,
            "EightByEightTenantId": config.tenant_id,
            "EightByEightChannelId": "",  # empty: the stack provisions 8x8 itself, as a deploy does
            "EightByEightQueueId": queue_id,
            "EightByEightCredentialsSecretArn": self.secret_arn,
            **({"EightByEightApi": options.api} if "EightByEightApi" in self.template.parameters else {}),
            **self._business_hours_parameter(),
            **pushes,
            **options.parameters,
        }
        self._set_environ(self.aws_environment())
        self._layers_on_path()
        self._forget_cached_configuration()
        self.webhook_id, self.channel_id = self._provision()
        self._check_business_hours()
        self.environment = self.function_environment()
        self._set_environ(self.environment)
        self.functions.update(load_functions(self.template))
        self._forget_cached_configuration()
        self._route_function_logs()
        self.api.ready.set()
        if self.socket is not None:
            self.socket.ready.set()
        if self.webhook_receiver is not None:
            self.webhook_receiver.secret = self.aws.secret_value(self.environment["CHANNEL_WEBHOOK_SECRET_ARN"])
        for rule in self.template.eventbridge_rules():
            target = EventBridgeTarget(
                self.functions[rule.function_id],
                self.aws.sqs,
                self.aws.client("events"),
                bus_name=str(self.template.resolve(rule.bus_name)),
                pattern=rule.pattern,
                name=f"{options.stack_name}-{rule.function_id}-{rule.event_id}",
            )
            target.start()
            self.rule_targets.append(target)
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
            with listening("customer chat page", options.host, options.chat_port, "chat_port"):
                self.chat_page = ChatPageServer(
                    self.api_url,
                    self.api_key,
                    host=options.host,
                    port=options.chat_port,
                    attachments=options.api == "chat-gateway-v1",
                    read_receipts=options.api == "chat-gateway-v1",
                ).start()

    def _layers_on_path(self) -> None:
        """As in Lambda, the layers' packages import before any function's code (the provisioning runs first)."""
        for function_id in self.template.functions():
            for layer_dir in self.template.function_layer_dirs(function_id):
                if str(layer_dir) not in sys.path:
                    sys.path.insert(0, str(layer_dir))

    def _business_hours_parameter(self) -> dict[str, str]:
        hours = self.options.business_hours
        if hours is None:
            return {}
        name = f"/{self.options.stack_name}/business-hours"
        value = hours if isinstance(hours, str) else json.dumps(hours)
        self.aws.client("ssm").put_parameter(Name=name, Type="String", Value=value, Overwrite=True)
        return {"BusinessHoursParameterName": name}

    def _check_business_hours(self) -> None:
        """The template's Custom::BusinessHoursCheck, through its function's own check (what CloudFormation's
        Create calls): a bad document stops the start with the reason, as it fails a deploy."""
        for logical_id, _ in self.template.resources_of("Custom::BusinessHoursCheck"):
            from casebridge.escalation.hours import parse_business_hours  # noqa: PLC0415 - the layer is on sys.path now

            name = str(self.template.resolve(self.template.properties(logical_id)["ParameterName"]))
            document = self.aws.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
            parse_business_hours(document)  # ScheduleInvalid: the deploy's reason

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
        for target in self.rule_targets:
            target.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.channel is not None:
            self.channel.stop()
        self.api.stop()
        if self.socket is not None:
            self.socket.stop()
        if self.webhook_receiver is not None:
            self.webhook_receiver.stop()
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
        if self.socket is not None:
            # The URLs CloudFormation would give the WebSocket API's stage, as the stand-in serves them.
            remote = f"{self.template.ref(self.socket.api.api_id)}.execute-api.{self.options.region}.amazonaws.com"
            local = {
                f"wss://{remote}/{self.socket.api.stage}": self.socket.url,
                f"https://{remote}/{self.socket.api.stage}": self.socket.connections_url,
            }
            merged = {name: local.get(value, value) for name, value in merged.items()}
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
        from casebridge.push import connections  # noqa: PLC0415

        settings.get_settings.cache_clear()
        connections._client.cache_clear()
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
                if getattr(handler.stream, "closed", False):
                    # Its stream was closed under it (the logger was made inside a pytest capture that has ended):
                    # setStream would flush it and fail.
                    handler.stream = sys.stderr
                previous = handler.setStream(self._log_stream)
                if previous is not None:
                    self._replaced_streams.append((handler, previous))

    def _close_function_logs(self) -> None:
        # Two stacks in one process (tests) route and restore in any order: give a handler back only if it still
        # writes here, and never to a stream another stack has closed meanwhile.
        for handler, previous in self._replaced_streams:
            if handler.stream is self._log_stream:
                handler.setStream(sys.stderr if getattr(previous, "closed", False) else previous)
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

    def run_schedules(self, function_id: str | None = None) -> list[Any]:
        """Every scheduled function (or only `function_id`'s) once, now (as if its rate came round), and their
        results."""
        assert self.scheduler is not None, "the stack is not started"
        return self.scheduler.run_now(function_id)

    def problems(self) -> list[str]:
        """Errors the background workers swallowed (a poller or the channel); empty when all is well."""
        found = [f"{p.source.function_id}: {e}" for p in self.pollers for e in p.errors]
        found += [f"{t.name}: {e}" for t in self.rule_targets for e in t.errors]
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
            "channelSocketUrl": self.socket.url if self.socket else "",
            "channelWebhookUrl": self.webhook_receiver.url if self.webhook_receiver else "",
            "tenantId": self.emulator.config.tenant_id,
            "api": self.options.api,
        }
