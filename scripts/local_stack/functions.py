"""The functions of the template, loaded in this process: their real `lambda_handler`, a Lambda context, and an
invoke that runs one event at a time per container (a Lambda container never runs two events at once). When
every container of a function is busy, another starts (the function's code imported again as a module of its
own), up to MAX_CONTAINERS, as Lambda scales a function out."""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from scripts.local_stack.template import Template, TemplateError

Handler = Callable[[dict[str, Any], Any], Any]
MAX_CONTAINERS = 4
# The invocation each thread is running: in Lambda every function has a process of its own, here they share one
# (and one Powertools logger), so the log sink reads the function and request of a line from here.
RUNNING = threading.local()


@dataclass
class LocalLambdaContext:
    """What the Lambda runtime hands a handler as `context` (the attributes Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: float
    region: str
    account_id: str
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{time.strftime('%Y/%m/%d')}/[$LATEST]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class LocalFunction:
    logical_id: str
    name: str
    module: ModuleType
    handler: Handler
    memory_mb: int
    timeout_s: float
    region: str
    account_id: str
    environment: dict[str, str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    invocations: int = 0
    # Another container's handler (None: the function keeps its one container); how many exist, the idle ones.
    new_container: Callable[[], Handler] | None = None
    containers: int = 1
    _idle: list[Handler] = field(default_factory=list)
    _freed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._idle.append(self.handler)
        self._freed = threading.Condition(self.lock)

    def invoke(self, event: dict[str, Any]) -> tuple[Any, LocalLambdaContext]:
        context = LocalLambdaContext(self.name, self.memory_mb, self.timeout_s, self.region, self.account_id)
        handler = self._container()
        outer = getattr(RUNNING, "context", None)
        RUNNING.context = context
        try:
            return handler(event, context), context
        finally:
            RUNNING.context = outer
            with self._freed:
                self._idle.append(handler)
                self._freed.notify()

    def _container(self) -> Handler:
        """An idle container, else a new one (a cold start) below MAX_CONTAINERS, else the next one freed."""
        with self._freed:
            self.invocations += 1
            cold = not self._idle and self.new_container is not None and self.containers < MAX_CONTAINERS
            if not cold:
                self._freed.wait_for(lambda: bool(self._idle))
                return self._idle.pop()
            self.containers += 1
        assert self.new_container is not None
        return self.new_container()


class InvocationLogStream:
    """The functions' log file. Each JSON line gets the function and request of the thread that wrote it: the
    shared Powertools logger's own keys are those of whichever function ran last in any thread."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        context: LocalLambdaContext | None = getattr(RUNNING, "context", None)
        if context is not None and text.startswith("{"):
            try:
                line = json.loads(text)
            except ValueError:
                line = None
            if isinstance(line, dict):
                line.update(
                    function_name=context.function_name,
                    function_arn=context.invoked_function_arn,
                    function_request_id=context.aws_request_id,
                    function_memory_size=context.memory_limit_in_mb,
                )
                text = json.dumps(line, ensure_ascii=False, default=str) + "\n"
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()

    @property
    def closed(self) -> bool:
        return self._stream.closed


def load_module(name: str, path: Path) -> ModuleType:
    """Import a file under a module name of our choice (each function's app.py gets its own name)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TemplateError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_handler(logical_id: str, path: Path, attribute: str) -> Handler:
    """Another container of a function: its code imported again under a module name of its own."""
    module = load_module(f"local_lambda_{logical_id}_{uuid.uuid4().hex[:8]}", path)
    handler: Handler = getattr(module, attribute)
    return handler


def load_functions(template: Template) -> dict[str, LocalFunction]:
    functions: dict[str, LocalFunction] = {}
    for logical_id in template.functions():
        # The layers first: in Lambda they are on sys.path (/opt/python) before the function's code runs.
        for layer_dir in template.function_layer_dirs(logical_id):
            if str(layer_dir) not in sys.path:
                sys.path.insert(0, str(layer_dir))
        module_name, attribute = template.function_handler(logical_id)
        code_dir = template.function_code_dir(logical_id)
        module = load_module(f"local_lambda_{logical_id}_{module_name}", code_dir / f"{module_name}.py")
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            name=f"{template.stack_name}-{logical_id}",
            module=module,
            handler=getattr(module, attribute),
            new_container=functools.partial(load_handler, logical_id, code_dir / f"{module_name}.py", attribute),
            memory_mb=int(template.function_property(logical_id, "MemorySize", 128)),
            timeout_s=float(template.function_property(logical_id, "Timeout", 3)),
            region=template.region,
            account_id=template.account_id,
            environment=template.function_environment(logical_id),
        )
    return functions
