"""The functions of the template, loaded in this process: their real `lambda_handler`, a Lambda context, and an
invoke that runs one event at a time per function (a Lambda container never runs two events at once)."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from scripts.local_stack.template import Template, TemplateError

Handler = Callable[[dict[str, Any], Any], Any]


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

    def invoke(self, event: dict[str, Any]) -> tuple[Any, LocalLambdaContext]:
        context = LocalLambdaContext(self.name, self.memory_mb, self.timeout_s, self.region, self.account_id)
        with self.lock:
            self.invocations += 1
            return self.handler(event, context), context


def load_module(name: str, path: Path) -> ModuleType:
    """Import a file under a module name of our choice (each function's app.py gets its own name)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TemplateError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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
        handler = getattr(module, attribute)
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            name=f"{template.stack_name}-{logical_id}",
            module=module,
            handler=handler,
            memory_mb=int(template.function_property(logical_id, "MemorySize", 128)),
            timeout_s=float(template.function_property(logical_id, "Timeout", 3)),
            region=template.region,
            account_id=template.account_id,
            environment=template.function_environment(logical_id),
        )
    return functions
