"""The simulated world's scheduler: virtual time, seeded choices, processes as greenlets, faults at every step, and
the Lambda runtime (containers warm and cold, killed invocations, timeouts).

Only one process runs at a time. A process runs the real code until that code calls a stand-in (DynamoDB, SQS,
EventBridge, 8x8); the stand-in calls `World.step`, which hands control back to the scheduler. The scheduler
then picks, by the seed, which waiting process takes its next step, and whether that step fails. So every
interleaving and every fault is a choice, and one seed decides them all: the same seed gives the same history.

Every choice goes through `World.draw`, and 0 is always the simplest answer (no fault, the oldest waiting
process, the fewest requests), so a failing history shrinks by replacing its choices with zeros.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from greenlet import greenlet

EPOCH_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z: virtual time starts here


class Killed(BaseException):
    """The Lambda running this process died here: nothing after this point runs, nothing is answered."""


class Violation(AssertionError):
    """An invariant did not hold."""


@dataclass
class Faults:
    """How often each kind of thing goes wrong in this history, per mille of steps (drawn per seed)."""

    dynamodb: int = 0
    sqs: int = 0
    events: int = 0
    contact_center: int = 0
    kill: int = 0
    cold: int = 0
    s3: int = 0

    def rate(self, service: str) -> int:
        return int(getattr(self, service))


@dataclass(eq=False)
class Proc:
    pid: int
    name: str
    glet: greenlet
    on_done: Callable[[Proc], None] | None = None
    container: Any = None  # the Lambda container running it (None: not a Lambda)
    deadline: float | None = None  # virtual time the Lambda times out at
    faultless: bool = False  # the operator's tools and the simulator's own reads
    killed: bool = False
    outcome: str = ""  # ok | error | killed
    result: Any = None
    error: BaseException | None = None
    faults: int = 0  # faults injected into this process's steps
    notes: dict[str, Any] = field(default_factory=dict)


class World:
    def __init__(self, seed: int, choices: Sequence[int] | None = None, *, trace: bool = False) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._replay = list(choices) if choices is not None else None
        self.choices: list[int] = []
        self.now = 0.0  # virtual seconds since EPOCH_S
        self.runnable: list[Proc] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._pids = 0
        self.current: Proc | None = None
        self.main = greenlet.getcurrent()
        self.history: list[str] = []
        self.trace = trace
        self.steps = 0
        self.faults_injected = 0
        self.faults = Faults()
        self.on_switch: Callable[[Proc | None], None] = lambda proc: None
        self.on_finish: Callable[[int, Proc], None] = lambda pid, proc: None
        self.stats: dict[str, int] = {}

    # ---- choices ------------------------------------------------------------------------------
    def draw(self, n: int, why: str = "") -> int:
        """A choice in [0, n): from the seed, or from the replayed list (shrinking); 0 is the simplest."""
        if n <= 1:
            return 0
        if self._replay is not None:
            index = len(self.choices)
            value = min(self._replay[index], n - 1) if index < len(self._replay) else 0
        else:
            value = self._rng.randrange(n)
        self.choices.append(value)
        return value

    def chance(self, per_mille: int, why: str = "") -> bool:
        """True with the given probability; the choice 0 means no."""
        if per_mille <= 0:
            return False
        return self.draw(1000, why) >= 1000 - per_mille

    # ---- history -------------------------------------------------------------------------------
    def log(self, line: str) -> None:
        text = f"{self.now:10.3f} {line}"
        self.history.append(text)
        if self.trace:
            print(text)

    def count(self, name: str, value: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + value

    # ---- time ----------------------------------------------------------------------------------
    def at(self, delay_s: float, callback: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (self.now + max(0.0, delay_s), self._seq, callback))

    def has_work(self) -> bool:
        """Something is still to run: a process, or a timer (the caller's own timer has fired already)."""
        return bool(self.runnable or self._timers)

    def wall_time(self) -> float:
        skew = self.current.container.skew_s if self.current is not None and self.current.container else 0.0
        return EPOCH_S + self.now + skew

    # ---- processes -----------------------------------------------------------------------------
    def spawn(
        self,
        name: str,
        run: Callable[[], Any],
        on_done: Callable[[Proc], None] | None = None,
        *,
        container: Any = None,
        deadline: float | None = None,
        faultless: bool = False,
    ) -> Proc:
        self._pids += 1
        proc = Proc(self._pids, name, greenlet(parent=self.main), on_done, container, deadline, faultless)

        def body() -> None:
            try:
                proc.result = run()
                proc.outcome = "ok"
            except Killed:
                proc.outcome = "killed"
            except Exception as error:  # the real code raised: the runtime turns it into an error answer
                proc.outcome, proc.error = "error", error

        proc.glet.run = body
        self.runnable.append(proc)
        return proc

    def step(self, label: str, service: str, kinds: Sequence[str] = (), latency_s: float = 0.005) -> str | None:
        """Called by a stand-in, inside a process, before the call takes effect. Returns the fault chosen for
        this call (one of `kinds`), or None."""
        proc = self.current
        if proc is None:
            raise RuntimeError(f"{label}: a stand-in was called outside any simulated process")
        if proc.killed:
            raise Killed
        # The call takes its latency (with some jitter, so concurrent calls overtake each other) while others run.
        self.at(latency_s * (1 + self.draw(3, "latency") / 2), lambda: self.runnable.append(proc))
        self.main.switch()
        if proc.killed:
            raise Killed
        self.steps += 1
        fault = None
        if kinds and not proc.faultless and self.chance(self.faults.rate(service), "fault"):
            fault = kinds[self.draw(len(kinds), "fault kind")]
            proc.faults += 1
            self.faults_injected += 1
            if proc.container is not None:
                proc.container.last_fault_at = self.now
        self.log(f"p{proc.pid} {proc.name}: {label}" + (f"  !! {fault}" if fault else ""))
        return fault

    def sleep(self, seconds: float) -> None:
        proc = self.current
        if proc is None:
            raise RuntimeError("sleep outside any simulated process")
        if proc.killed:
            raise Killed
        self.at(seconds, lambda: self.runnable.append(proc))
        self.main.switch()
        if proc.killed:
            raise Killed

    def _resume(self, proc: Proc) -> None:
        self.current = proc
        self.on_switch(proc)
        try:
            proc.glet.switch()
        finally:
            self.current = None
        if proc.glet.dead:
            self._finished(proc)

    def _kill(self, proc: Proc, why: str) -> None:
        proc.killed = True
        self.faults_injected += 1
        proc.faults += 1
        self.log(f"p{proc.pid} {proc.name}: killed ({why})")
        self.current = proc
        self.on_switch(proc)
        try:
            proc.glet.throw(Killed())
        finally:
            self.current = None
        self._finished(proc)

    def _finished(self, proc: Proc) -> None:
        if proc.killed:
            proc.outcome = "killed"
        self.on_finish(proc.pid, proc)
        if proc.on_done is not None:
            proc.on_done(proc)

    def run(self, until: float | None = None) -> None:
        """Run until nothing is left to do (the world is quiet), or until virtual time `until`."""
        while True:
            while self._timers and self._timers[0][0] <= self.now:
                _, _, callback = heapq.heappop(self._timers)
                callback()
            if self.runnable:
                proc = self.runnable.pop(self.draw(len(self.runnable), "schedule"))
                started = proc.glet.gr_frame is not None or proc.glet.dead
                if proc.deadline is not None and self.now > proc.deadline and started:
                    self._kill(proc, "timed out")
                elif (
                    started
                    and proc.container is not None
                    and not proc.faultless
                    and self.chance(self.faults.kill, "kill")
                ):
                    self._kill(proc, "container died")
                else:
                    self._resume(proc)
                continue
            if not self._timers or (until is not None and self._timers[0][0] > until):
                return
            self.now = max(self.now, self._timers[0][0])


# ---- the Lambda runtime ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Container:
    function: str
    slot: int
    services: Any
    skew_s: float
    busy: bool = False
    dead: bool = False
    invocations: int = 0
    last_fault_at: float = -1e9  # a container remembers some failures for a few seconds (signing keys)


class SimLambdaContext:
    """What powertools and the handlers read from Lambda's context, on virtual time."""

    def __init__(self, world: World, function: str, request_id: str, deadline: float) -> None:
        self.function_name = f"casebridge-{function}"
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:casebridge-{function}"
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/casebridge-{function}"
        self.log_stream_name = "sim"
        self._world = world
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._world.now) * 1000))


FAULT_MEMORY_S = 60.0  # the key-fetch budget window: failures spent in it are remembered that long


def fault_excused(proc: Proc, now: float) -> bool:
    """A fault was injected into this invocation, or into its container moments ago (which it may remember)."""
    recent = proc.container is not None and now - proc.container.last_fault_at <= FAULT_MEMORY_S
    return bool(proc.faults) or recent


class LambdaRuntime:
    """Containers per function: an invocation takes a warm idle one, or a cold new one (also as a fault). A function
    with reserved concurrency throttles the invocations past it (API Gateway then answers 429)."""

    TIMEOUT_S = 20.0  # template.yaml's Globals

    def __init__(
        self,
        world: World,
        load: Callable[[str, int], ModuleType],
        build_services: Callable[[], Any],
        reserved: dict[str, int] | None = None,
    ) -> None:
        self.world = world
        self._load = load
        self._build_services = build_services
        self.reserved = dict(reserved or {})
        self.containers: dict[str, list[Container]] = {}
        self._idle: dict[str, list[Container]] = {}
        self._busy: dict[str, int] = {}
        # The handler modules (functions/*/app.py), one copy per invocation running at once: a module holds its
        # resolver's current request, so two interleaved invocations must never share one.
        self._modules: dict[str, list[ModuleType]] = {}
        self._module_count: dict[str, int] = {}
        self.invocations: dict[str, int] = {}
        self.throttled: dict[str, int] = {}
        self.peak_concurrency: dict[str, int] = {}
        self._requests = 0

    def _container(self, function: str) -> Container:
        pool = self.containers.setdefault(function, [])
        idle = self._idle.setdefault(function, [])
        if idle and not self.world.chance(self.world.faults.cold, "cold container"):
            return idle.pop()
        skew = (self.world.draw(2001, "clock skew") - 1000) / 1000.0  # ±1 s between containers
        container = Container(function, len(pool), self._build_services(), skew)
        pool.append(container)
        self.world.count("cold starts")
        return container

    def _module(self, function: str) -> ModuleType:
        free = self._modules.setdefault(function, [])
        if free:
            return free.pop()
        index = self._module_count.get(function, 0)
        self._module_count[function] = index + 1
        return self._load(function, index)

    def invoke(self, function: str, event: dict[str, Any], on_done: Callable[[Proc], None], name: str = "") -> Proc:
        busy = self._busy.get(function, 0)
        if function in self.reserved and busy >= self.reserved[function]:
            return self._throttle(function, on_done, name)
        container = self._container(function)
        module = self._module(function)
        container.busy = True
        container.invocations += 1
        self._busy[function] = busy + 1
        self._requests += 1
        self.invocations[function] = self.invocations.get(function, 0) + 1
        self.peak_concurrency[function] = max(self.peak_concurrency.get(function, 0), busy + 1)
        deadline = self.world.now + self.TIMEOUT_S
        context = SimLambdaContext(self.world, function, f"req-{self._requests}", deadline)

        def done(proc: Proc) -> None:
            container.busy = False
            self._busy[function] -= 1
            self._modules[function].append(module)
            if proc.outcome == "killed":
                container.dead = True
            else:
                self._idle[function].append(container)
            on_done(proc)

        return self.world.spawn(
            name or function,
            lambda: module.lambda_handler(event, context),
            done,
            container=container,
            deadline=deadline,
        )

    def _throttle(self, function: str, on_done: Callable[[Proc], None], name: str) -> Proc:
        """Lambda refuses the invocation (TooManyRequestsException): nothing ran."""
        self.throttled[function] = self.throttled.get(function, 0) + 1
        self.world.log(f"   lambda: {name or function} throttled (reserved concurrency {self.reserved[function]})")
        proc = Proc(0, name or function, greenlet(parent=self.world.main), outcome="throttled", faults=1)
        self.world.at(0.0, lambda: on_done(proc))
        return proc
