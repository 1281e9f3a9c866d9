"""One simulated history: the world assembled from the stand-ins, the real handlers in Lambda containers, the
channel's and 8x8's traffic (files both ways), an operator's redrive (casebridge's tool or SQS's own), and the
invariants checked once the world is quiet.

    result = run_seed(42)            # a history chosen by seed 42
    result = run_seed(42, choices=c)  # the same history with its choices replaced (shrinking)
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any

from tests.simulation.channel import Channel
from tests.simulation.contact_center import (
    API_KEY,
    BASE_URL,
    CHANNEL_ID,
    ContactCenterModel,
    ContactCenterSession,
)
from tests.simulation.contact_center_files import FILE_HOST
from tests.simulation.dynamodb import InMemoryDynamoDB, Key
from tests.simulation.queues import EventBridge, EventSourceMapping, FifoQueue, SqsClient
from tests.simulation.storage import BUCKET, S3
from tests.simulation.world import Faults, LambdaRuntime, Proc, World, fault_excused
from tests.support.lambdas import load_function
from tests.support.signing import TENANT_ID, WebhookSigner, new_rsa_key

TABLE = "cases"
BUS = "case-events"
APIS = ("chat-gateway-v1", "chat-api-v2")
SWEEP_EVERY_S = 60.0
QUIET_SWEEPS = 10  # sweeps once nothing else runs: well past the outbox hold (OUTBOX_HOLD_MS)
_SIGNING_KEY = None


def _signer() -> WebhookSigner:
    global _SIGNING_KEY  # noqa: PLW0603 - one RSA key per process: making one takes a while
    if _SIGNING_KEY is None:
        _SIGNING_KEY = new_rsa_key()
    return WebhookSigner(_SIGNING_KEY, "sim-key-1")


@dataclass
class Result:
    seed: int
    api: str
    steps: int
    faults: int
    violations: list[str]
    history: list[str]
    choices: list[int]
    stats: dict[str, int] = field(default_factory=dict)
    sim: Any = None
    known: dict[str, str] = field(default_factory=dict)  # violation -> the known open defect that explains it

    @property
    def failed(self) -> bool:
        return bool(self.violations)


class SimClock:
    """casebridge.clock on the world's virtual time; each container has its own skew."""

    def __init__(self, world: World) -> None:
        self.world = world

    def time(self) -> float:
        return self.world.wall_time()

    def monotonic(self) -> float:
        return self.world.now

    def sleep(self, seconds: float) -> None:
        self.world.sleep(seconds)


class Simulation:
    def __init__(self, world: World, api: str, cases: int) -> None:
        self.world = world
        self.api = api
        self.case_ids = [f"case-{i + 1}" for i in range(cases)]
        self.ddb = InMemoryDynamoDB(world)
        self.dlq = FifoQueue(world, "outbound-dlq.fifo", visibility_timeout=30)
        self.queue = FifoQueue(
            world,
            "outbound.fifo",
            visibility_timeout=120,
            max_receive_count=1000,
            dlq=self.dlq,
            per_group_deduplication=True,
        )
        # The attachment copy queue: SQS standard, maxReceiveCount 20 into its own dead-letter queue (template.yaml).
        self.copy_dlq = FifoQueue(world, "attachment-copy-dlq", visibility_timeout=30, fifo=False)
        self.copy_queue = FifoQueue(
            world, "attachment-copy", visibility_timeout=360, max_receive_count=20, dlq=self.copy_dlq, fifo=False
        )
        self.sqs = SqsClient(world, [self.queue, self.dlq, self.copy_queue, self.copy_dlq])
        self.s3 = S3(world)
        self.bus = EventBridge(world)
        self.model = ContactCenterModel(world, api, _signer())
        # template.yaml: IntakeReservedConcurrency (default 20) caps the webhook intake; one outbox sweep at a time.
        self.runtime = LambdaRuntime(
            world, self._load, self.build_services, reserved={"webhook_intake": 20, "outbox_sweeper": 1}
        )
        self.model.runtime = self.runtime
        self.esm = EventSourceMapping(world, self.queue, self.runtime, "outbound_sender", concurrency=1000)
        self.copier = EventSourceMapping(
            world, self.copy_queue, self.runtime, "attachment_copier", concurrency=5, name="copier batch"
        )
        self.channel = Channel(world, self.runtime, api == "chat-gateway-v1")
        self.channel.s3 = self.s3
        self.redrives: list[str] = []  # how each redrive was made: "tool" (scripts/redrive.py) or "console" (SQS's)
        self.bus.on_published = self.channel.nudge
        self._sweeping = False
        self._idle_sweeps = 0
        self._extra_quiet_sweeps = 0
        self.message_writes: list[tuple[int, str, str, float]] = []  # (pid, messageId, status, time)
        self.procs: dict[int, Proc] = {}
        self.webhook_answers: list[tuple[str, int, int]] = []  # (eventId, status, faults)
        self.ddb.on_write.append(self._observe_write)
        self.model.on_delivery_done = lambda e, p, s: self.webhook_answers.append(
            (e.event_id, s, int(fault_excused(p, world.now)))
        )

    def _observe_write(self, key: Key, item: dict[str, Any] | None) -> None:
        if key[1].startswith("MESSAGE#") and item is not None and self.world.current is not None:
            status = item.get("status", {}).get("S", "")
            self.message_writes.append((self.world.current.pid, key[1][8:], status, self.world.now))

    @staticmethod
    def _load(function: str, slot: int) -> ModuleType:
        return load_function(function, f"_sim{slot}")

    def build_services(self) -> Any:
        """What services.build_services makes in a container, over the stand-ins."""
        from casebridge.attachments.storage import AttachmentBucket  # noqa: PLC0415
        from casebridge.contact_center.chat_api_v2 import ChatApiV2Client, token_fetcher  # noqa: PLC0415
        from casebridge.contact_center.chat_gateway_v1 import ChatGatewayV1Client  # noqa: PLC0415
        from casebridge.contact_center.token_store import TableTokenCache  # noqa: PLC0415
        from casebridge.contact_center.tokens import TokenProvider  # noqa: PLC0415
        from casebridge.contact_center.webhook_signature import (  # noqa: PLC0415
            JwkCache,
            WebhookVerifier,
            http_jwk_fetcher,
            jwk_url_template,
        )
        from casebridge.outbound_queue import OutboundQueue  # noqa: PLC0415
        from casebridge.publisher import EventPublisher  # noqa: PLC0415
        from casebridge.services import Services, webhook_parser  # noqa: PLC0415
        from casebridge.settings import Settings  # noqa: PLC0415
        from casebridge.store import CaseStore  # noqa: PLC0415

        settings = Settings(
            cases_table_name=TABLE,
            tenant_id=TENANT_ID,
            contact_center_api=self.api,
            event_bus_name=BUS,
            outbound_queue_url=self.queue.url,
            outbound_dead_letter_queue_url=self.dlq.url,
            contact_center_base_url=BASE_URL,
            channel_id=CHANNEL_ID,
            credentials_secret_id="sim-secret",
            max_send_attempts=5,
            retry_base_seconds=2.0,
            retry_cap_seconds=60.0,
            attachments_bucket_name=BUCKET,
            attachment_copy_queue_url=self.copy_queue.url,
            attachment_source_hosts=FILE_HOST,
            attachment_copy_max_receives=20,
        )
        session: Any = ContactCenterSession(self.model)
        store = CaseStore(TABLE, client=self.ddb)  # type: ignore[arg-type]
        contact_center: Any
        if self.api == "chat-api-v2":
            fetch = token_fetcher(BASE_URL, lambda: (API_KEY, "sim-secret"), session=session)
            tokens = TokenProvider(TENANT_ID, fetch, shared=TableTokenCache(TABLE, client=self.ddb))  # type: ignore[arg-type]
            contact_center = ChatApiV2Client(BASE_URL, "us", TENANT_ID, tokens, session=session)
        else:
            contact_center = ChatGatewayV1Client(BASE_URL, TENANT_ID, lambda: API_KEY, session=session)
        keys = JwkCache(http_jwk_fetcher(jwk_url_template(self.api, BASE_URL, "us"), session=session))
        services = Services(
            settings=settings,
            store=store,
            publisher=EventPublisher(BUS, client=self.bus),  # type: ignore[arg-type]
            queue=OutboundQueue(self.queue.url, self.dlq.url, client=self.sqs),  # type: ignore[arg-type]
            contact_center=contact_center,
            verifier=WebhookVerifier(TENANT_ID, keys, tolerance_s=300),
            webhook_parser=webhook_parser(self.api),
        )
        vars(services)["_attachment_bucket"] = AttachmentBucket(BUCKET, client=self.s3)  # type: ignore[arg-type]
        return services

    # ---- the world's rules, for the length of one history ---------------------------------------------
    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        import scripts.redrive  # noqa: F401, PLC0415 - the tools put the casebridge layer on the path (make simulate)
        from casebridge import aws, clock, messages, observability, services  # noqa: PLC0415
        from casebridge.attachments import sources, uploads  # noqa: PLC0415

        ids = __import__("random").Random(self.world.seed * 7919 + 1)
        saved: list[tuple[Any, str, Any]] = []

        def patch(target: Any, name: str, value: Any) -> None:
            saved.append((target, name, getattr(target, name)))
            setattr(target, name, value)

        def no_real_aws(service: str, **_: Any) -> Any:
            raise AssertionError(f"the simulated code asked for a real {service} client")

        patch(uuid, "uuid4", lambda: uuid.UUID(int=ids.getrandbits(128), version=4))
        patch(messages, "random", __import__("random").Random(self.world.seed))
        patch(aws, "boto3", SimpleNamespace(client=no_real_aws))
        patch(uploads, "secrets", SimpleNamespace(token_urlsafe=lambda n: f"up{ids.getrandbits(8 * n):x}"))
        patch(aws, "sqs_client", lambda: self.sqs)  # the copy jobs' queue (agent_files asks for the shared client)
        # 8x8's pre-signed file URLs (the checked GET's connection-time peer check needs a socket: none here)
        patch(sources, "checked_get", lambda policy, url, timeout: self.model.files.file_get(url))
        patch(sources, "resolve", lambda host, port: ["93.184.216.34"])  # 8x8's file host: a public address
        patch(observability.metrics, "add_metric", lambda *a, **k: None)
        aws.reset_clients()
        clock.set_clock(SimClock(self.world))
        self.world.on_switch = lambda proc: services.set_services(
            proc.container.services if proc and proc.container else None
        )
        self.world.on_finish = self.procs.__setitem__
        try:
            yield
        finally:
            clock.set_clock(None)
            services.set_services(None)
            aws.reset_clients()
            for target, name, value in reversed(saved):
                setattr(target, name, value)

    # ---- the outbox sweeper: EventBridge runs it every minute (template.yaml) -----------------------------
    def start_outbox_sweeper(self) -> None:
        if not self._sweeping:
            self._sweeping = True
            self._idle_sweeps = 0
            self.world.at(SWEEP_EVERY_S, self._sweep_tick)

    def _outbox_pending(self) -> bool:
        return any(sk == "CASE" and "outboxShard" in item for (_, sk), item in self.ddb.items.items())

    def _sweep_tick(self) -> None:
        """A minute's schedule. Runs while anything else does; once the world is otherwise quiet, a few minutes
        more while an outbox holds something (longer than any outbox hold), then stops, so a history ends."""
        if self.world.has_work():
            self._idle_sweeps = 0
        elif self._outbox_pending() and self._idle_sweeps < QUIET_SWEEPS:
            self._idle_sweeps += 1
        else:
            self._sweeping = False
            return
        scheduled = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
        self.runtime.invoke("outbox_sweeper", scheduled, self._quiet_sweep_done, name="outbox sweeper")
        self.world.at(SWEEP_EVERY_S, self._sweep_tick)

    def _quiet_sweep_done(self, proc: Proc) -> None:
        """A quiet sweep that met a fault (killed holding entries for OUTBOX_HOLD_MS, throttled) does not count
        toward QUIET_SWEEPS, up to as many again: the promise is "published once the faults stop", and a run of
        faulted sweeps at the end of a history is the faults, not the outbox."""
        if proc.faults and self._idle_sweeps > 0 and self._extra_quiet_sweeps < QUIET_SWEEPS:
            self._idle_sweeps -= 1
            self._extra_quiet_sweeps += 1

    # ---- the operator ---------------------------------------------------------------------------------
    def redrive(self) -> None:
        """The operator moves the dead-letter queue back: with casebridge's tool (a new redrive number in each body),
        or with SQS's console ("start DLQ redrive": every body as it was)."""
        import scripts.redrive  # noqa: PLC0415

        if self.world.draw(2, "redrive with") == 1:
            self.redrives.append("console")
            moved = self.dlq.move_to(self.queue)
            self.world.log(f"   operator: SQS's DLQ redrive (console) moved {moved} message(s) back as they were")
            return

        def run() -> int:
            with contextlib.redirect_stdout(None):
                return scripts.redrive.redrive(self.sqs, self.dlq.url, self.queue.url)  # type: ignore[arg-type]

        self.redrives.append("tool")
        self.world.log("   operator: redrive of the dead-letter queue (scripts/redrive.py)")
        self.world.spawn("operator redrive", run, faultless=True)

    # ---- the table as it is (ground truth for the checks) ---------------------------------------------
    def timeline(self, case_id: str) -> list[dict[str, Any]]:
        from casebridge.store.codec import from_item  # noqa: PLC0415

        return [from_item(i) for sk, i in self.ddb.partition(f"CASE#{case_id}") if sk.startswith("EVENT#")]

    def case_item(self, case_id: str) -> dict[str, Any] | None:
        from casebridge.store.codec import from_item  # noqa: PLC0415

        item = self.ddb.items.get((f"CASE#{case_id}", "CASE"))
        return from_item(item) if item else None

    def bus_by_event(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for entry in self.bus.published:
            found.setdefault(str(entry["detail"].get("eventId")), []).append(entry["pid"])
        return found


def _environment() -> None:
    for name, value in {
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Casebridge",
        "POWERTOOLS_SERVICE_NAME": "casebridge",
        "POWERTOOLS_LOG_LEVEL": "CRITICAL",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore", message="No application metrics to publish")


def draw_faults(world: World) -> Faults:
    pick: Callable[[Sequence[int], str], int] = lambda options, why: options[world.draw(len(options), why)]  # noqa: E731
    return Faults(
        dynamodb=pick((0, 10, 30, 60), "dynamodb faults"),
        sqs=pick((0, 10, 40), "sqs faults"),
        events=pick((0, 20, 60, 150), "eventbridge faults"),
        contact_center=pick((0, 30, 80, 150), "8x8 faults"),
        kill=pick((0, 5, 20), "kills"),
        cold=pick((0, 100, 400), "cold starts"),
        s3=pick((0, 20, 60), "s3 faults"),
    )


def run_seed(
    seed: int,
    *,
    choices: Sequence[int] | None = None,
    api: str | None = None,
    cases: int | None = None,
    trace: bool = False,
    check: Callable[[Simulation], list[str]] | None = None,
) -> Result:
    from tests.simulation.invariants import check_invariants  # noqa: PLC0415

    _environment()
    world = World(seed, choices, trace=trace)
    api = api or APIS[world.draw(2, "api")]
    world.faults = draw_faults(world)
    sim = Simulation(world, api, cases or 1 + world.draw(3, "cases"))
    world.log(f"seed {seed}: {api}, {len(sim.case_ids)} case(s), faults per mille {world.faults}")
    with sim.patched():
        sim.model.skew_ms = world.draw(3001, "8x8 clock skew") - 1500
        sim.channel.plan(sim.case_ids)
        sim.start_outbox_sweeper()
        if world.draw(4, "8x8 outage") == 1:
            start, length = float(world.draw(60, "outage start")), 60.0 * (1 + world.draw(8, "outage length"))
            sim.model.outage = (start, start + length)
            world.log(f"   8x8 will be down from {start:.0f} s for {length:.0f} s")
            world.at(start + length * world.draw(3, "redrive moment") / 2 + 40, sim.redrive)
        world.run()
        if sim.dlq.messages and world.draw(2, "final redrive"):
            sim.redrive()
            sim.start_outbox_sweeper()
            world.run()
        violations = (check or check_invariants)(sim)
    return Result(
        seed, api, world.steps, world.faults_injected, violations, world.history, world.choices, dict(world.stats), sim
    )


def describe(result: Result) -> str:
    return json.dumps({"seed": result.seed, "api": result.api, "violations": result.violations})
