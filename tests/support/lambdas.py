"""The three handlers as modules, and the context Lambda hands them."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from dataclasses import dataclass, field
from types import ModuleType

from tests.support.paths import FUNCTIONS_DIR

FUNCTIONS = ("outbound_sender", "webhook_intake", "conversation_lifecycle")


def load_function(name: str, copy: str = "") -> ModuleType:
    """functions/<name>/app.py as a module of its own (all three files are called app.py), loaded once.
    Another `copy` is another container: the same code with its own module-level state."""
    module_name = f"casebridge_fn_{name}{copy}"
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(module_name, FUNCTIONS_DIR / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    """What powertools reads from the Lambda context; a new request id per instance."""

    function_name: str = "casebridge-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:casebridge-test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/casebridge-test"
    log_stream_name: str = "2025/03/10/[$LATEST]test"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 20_000


@dataclass
class ScriptedTime(LambdaContext):
    """A Lambda context whose remaining time is scripted: one value per call, the last one repeated."""

    remaining: tuple[int, ...] = (20_000,)
    calls: int = 0

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        value = self.remaining[min(self.calls, len(self.remaining) - 1)]
        self.calls += 1
        return value
