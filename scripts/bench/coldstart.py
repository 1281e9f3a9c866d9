"""Figure 3: cold start (import time of each handler against the import floor, fresh subprocesses, median)
and the unzipped size of each function and of the layer."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench import harness as h
from tests.support.lambdas import FUNCTIONS

FLOOR = "import boto3, requests, aws_lambda_powertools"

# Runs in a fresh interpreter: times the imports only (the interpreter's own start is the same for all),
# then the first-use init the first invocation pays (settings, Services, boto3 clients), then peak memory.
CHILD = r"""
import json, resource, sys, time
started = time.perf_counter()
{imports}
imported = time.perf_counter()
{init}
ready = time.perf_counter()
print(json.dumps({{"import_s": imported - started, "init_s": ready - imported,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

HANDLER_IMPORT = """
sys.path.insert(0, {layer!r})
import importlib.util
spec = importlib.util.spec_from_file_location("app", {app!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
"""

HANDLER_INIT = """
from casebridge.services import get_services
services = get_services()
services.store.client, services.publisher.client, services.queue.client
"""


@dataclass
class ColdStart:
    name: str
    import_ms: float
    ratio: float
    init_ms: float
    rss_mb: float
    samples: list[float] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return self.ratio <= 1.3


@dataclass
class Sizes:
    functions: dict[str, int]
    layer_code: int
    layer_deps: int | None  # without boto3/botocore
    layer_deps_runtime_dupes: int | None  # what pip brings that the runtime already has (botocore & co.)
    runtime_dupes: list[str]
    note: str = ""


def _lambda_env() -> dict[str, str]:
    """A Lambda-like environment: tracing on as the template sets it (Tracer imports the X-Ray SDK)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
    env.update(h.LAMBDA_ENV)
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "casebridge-bench",
            "LAMBDA_TASK_ROOT": str(h.REPO),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "EIGHTXEIGHT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench",
            "OUTBOUND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench.fifo",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def _child(imports: str, init: str, env: dict[str, str]) -> dict[str, float]:
    code = CHILD.format(imports=imports.strip(), init=init.strip() or "pass")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()
    )
    last = out.stdout.strip().splitlines()[-1]
    result: dict[str, float] = json.loads(last)
    return result


def cold_starts(repeats: int) -> tuple[float, list[ColdStart]]:
    env = _lambda_env()
    layer = str(h.REPO / "layers" / "common")
    targets = {"floor": (FLOOR, "")}
    for name in FUNCTIONS:
        app = str(h.REPO / "functions" / name / "app.py")
        targets[name] = (HANDLER_IMPORT.format(layer=layer, app=app), HANDLER_INIT)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for imports, init in targets.values():  # one unmeasured round: the OS file cache warms up
        _child(imports, init, env)
    for _ in range(repeats):  # interleaved, so a noisy moment hurts every target alike
        for name, (imports, init) in targets.items():
            samples[name].append(_child(imports, init, env))
    floor_ms = statistics.median(s["import_s"] for s in samples["floor"]) * 1000
    results = []
    for name in FUNCTIONS:
        imports_ms = [s["import_s"] * 1000 for s in samples[name]]
        median_ms = statistics.median(imports_ms)
        results.append(
            ColdStart(
                name=name,
                import_ms=median_ms,
                ratio=median_ms / floor_ms,
                init_ms=statistics.median(s["init_s"] for s in samples[name]) * 1000,
                rss_mb=max(s["rss_mb"] for s in samples[name]),
                samples=imports_ms,
            )
        )
    return floor_ms, results


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


# What the Lambda python3.13 runtime already ships (boto3 and its dependencies).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "python_dateutil", "six")


def sizes(install: bool = True) -> Sizes:
    functions = {name: _tree_size(h.REPO / "functions" / name) for name in FUNCTIONS}
    layer_code = _tree_size(h.REPO / "layers" / "common" / "casebridge")
    if not install:
        return Sizes(functions, layer_code, None, None, [], "dependencies not installed (--quick)")
    target = Path(tempfile.mkdtemp(prefix="casebridge-bench-layer-"))
    # The layer is built for arm64 / python3.13 (template.yaml): ask pip for those wheels, not this machine's.
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(target),
        "--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.13",
        "--only-binary=:all:", "-r", str(h.REPO / "layers" / "common" / "requirements.txt"),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["pip failed"])[-1][:160]
            return Sizes(functions, layer_code, None, None, [], f"pip could not install the layer: {reason}")
        dupes: list[str] = []
        dupe_bytes = 0
        for entry in sorted(target.iterdir()):
            base = entry.name.split("-")[0].lower()
            if base in RUNTIME_PACKAGES:
                dupe_bytes += _tree_size(entry)
                if not entry.name.endswith(".dist-info"):
                    dupes.append(entry.name)
        excluded = sum(_tree_size(e) for e in target.iterdir() if e.name.split("-")[0].lower() in ("boto3", "botocore"))
        return Sizes(functions, layer_code, _tree_size(target) - excluded, dupe_bytes, dupes)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Sizes(functions, layer_code, None, None, [], f"pip could not run: {error}")
    finally:
        shutil.rmtree(target, ignore_errors=True)
