"""Figure 3: cold start as deployed. Each handler is imported by Python 3.13 from the layer `make bench-layers`
builds with sam build's own recipe (layers/common/Makefile, this machine's wheels), beside boto3 and its
dependencies precompiled as the Lambda runtime ships them; the floor is the same interpreter importing boto3,
requests and Powertools' core from the same places. Floor and handler run in pairs of fresh processes; the
figure is the median of the pairs' ratios, with their spread. Then the layer as it ships (arm64) is sized, and
each handler's peak memory taken in a clean child that only imports the handler and runs one request."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench import harness as h

BUILD = h.REPO / ".aws-sam" / "bench"
RUNTIME_DIR = BUILD / "runtime"
HOST_LAYER = BUILD / f"manylinux2014_{os.uname().machine}" / "python"
SHIPPED_LAYER = BUILD / "manylinux2014_aarch64" / "python"
SAM_LAYER = h.REPO / ".aws-sam" / "build" / "CommonLayer" / "python"
# What the Lambda python3.13 runtime ships besides the standard library: boto3 and its dependencies.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
HANDLERS = ("outbound_sender", "webhook_intake", "conversation_lifecycle")
FLOOR = "import boto3, requests, aws_lambda_powertools"

# Runs in a fresh Python 3.13: only the import is timed (the interpreter's own start is the same for all).
CHILD = r"""
import sys, time
sys.path[:0] = {paths!r}
started = time.perf_counter()
{imports}
print(time.perf_counter() - started)
"""
HANDLER_IMPORT = """
import importlib.util
spec = importlib.util.spec_from_file_location("app", {app!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
"""

# A clean child for memory: imports the handler, runs one request through it, reports the process's peak
# resident set (VmHWM of its own address space: nothing of the bench process that started it).
MEMORY_CHILD = r"""
import io, json, sys, contextlib
sys.path[:0] = {paths!r}
import importlib.util
spec = importlib.util.spec_from_file_location("app", {app!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
class Context:
    function_name = "casebridge-bench"; function_version = "$LATEST"; memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:casebridge-bench"
    aws_request_id = "bench"; log_group_name = "/aws/lambda/casebridge-bench"
    def get_remaining_time_in_millis(self): return 20000
with contextlib.redirect_stdout(io.StringIO()):
    answer = module.lambda_handler(json.loads({event!r}), Context())
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({{"status": answer.get("statusCode"), "peak_kib": hwm}}))
"""


@dataclass
class ColdStart:
    name: str
    import_ms: float  # median
    ratio: float  # median of the paired ratios
    ratio_low: float
    ratio_high: float
    samples: list[float] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return self.ratio <= 1.3


@dataclass
class ColdStarts:
    python: str
    floor_ms: float
    handlers: list[ColdStart]
    baseline: list[ColdStart]  # the same handlers from a layer as `sam build` made it before (no .pyc, X-Ray SDK)
    note: str = ""


@dataclass
class Sizes:
    layer_bytes: int | None  # the arm64 layer as it ships
    layer_files: int = 0
    pyc_files: int = 0
    runtime_dupes: list[str] = field(default_factory=list)
    sam_layer_bytes: int | None = None  # .aws-sam/build/CommonLayer when `make build` ran
    note: str = ""

    @property
    def met(self) -> bool:
        return self.layer_bytes is not None and self.layer_bytes <= 30e6


def python313() -> str | None:
    candidates = [
        shutil.which("python3.13"),
        *sorted(str(p) for p in Path("/root/.pyenv/versions").glob("3.13*/bin/python3.13")),
    ]
    pyenv = os.environ.get("PYENV_ROOT")
    if pyenv:
        candidates += sorted(str(p) for p in Path(pyenv).glob("versions/3.13*/bin/python3.13"))
    for candidate in candidates:
        if not candidate:
            continue
        done = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.stdout.strip() == "True":
            return candidate
    return None


def runtime_dir(python: str) -> Path:
    """boto3 and its dependencies as the runtime ships them: the venv's copies (the versions the tests use),
    compiled by Python 3.13. Built once."""
    stamp = RUNTIME_DIR / ".built"
    if stamp.exists():
        return RUNTIME_DIR
    import boto3  # noqa: PLC0415 - where the venv keeps it

    site = Path(boto3.__file__).resolve().parents[1]
    shutil.rmtree(RUNTIME_DIR, ignore_errors=True)
    RUNTIME_DIR.mkdir(parents=True)
    for name in RUNTIME_PACKAGES:
        source = site / name
        if source.is_dir():
            shutil.copytree(source, RUNTIME_DIR / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, RUNTIME_DIR / name)
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(RUNTIME_DIR)],
        check=True,
    )
    stamp.touch()
    return RUNTIME_DIR


def lambda_env(api: str = "chat-gateway-v1", **extra: str) -> dict[str, str]:
    """A Lambda-like environment: what the runtime and template.yaml set (Active tracing needs no SDK)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_", "PYTHON"))}
    env.update(h.LAMBDA_ENV)
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "casebridge-bench",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "EIGHTXEIGHT_API": api,
            "EIGHTXEIGHT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench",
            "OUTBOUND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench.fifo",
            "PYTHONDONTWRITEBYTECODE": "1",  # /opt is read-only on Lambda: nothing compiled here may be kept
            **extra,
        }
    )
    return env


def _import_s(python: str, paths: list[str], imports: str, env: dict[str, str]) -> float:
    code = CHILD.format(paths=paths, imports=imports.strip())
    out = subprocess.run(
        [python, "-I", "-c", code], env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()
    )
    return float(out.stdout.strip().splitlines()[-1])


def _paired(python: str, paths: list[str], repeats: int, env: dict[str, str]) -> tuple[float, list[ColdStart]]:
    floor: list[float] = []
    samples: dict[str, list[float]] = {name: [] for name in HANDLERS}
    ratios: dict[str, list[float]] = {name: [] for name in HANDLERS}
    imports = {name: HANDLER_IMPORT.format(app=str(h.REPO / "functions" / name / "app.py")) for name in HANDLERS}
    for name in HANDLERS:  # one unmeasured round: the OS file cache warms up
        _import_s(python, paths, imports[name], env)
    for repeat in range(repeats):
        for name in HANDLERS:  # a pair: floor and handler back to back, so a noisy moment hurts both
            if repeat % 2:  # every other pair the handler goes first: neither side always runs second
                took = _import_s(python, paths, imports[name], env)
                base = _import_s(python, paths, FLOOR, env)
            else:
                base = _import_s(python, paths, FLOOR, env)
                took = _import_s(python, paths, imports[name], env)
            floor.append(base)
            samples[name].append(took * 1000)
            ratios[name].append(took / base)
    results = [
        ColdStart(
            name,
            statistics.median(samples[name]),
            statistics.median(ratios[name]),
            min(ratios[name]),
            max(ratios[name]),
            samples[name],
        )
        for name in HANDLERS
    ]
    return statistics.median(floor) * 1000, results


def _baseline_layer(python: str) -> Path | None:
    """The layer as the plain `BuildMethod: python3.13` build made it before: the host's layer with its
    bytecode removed (so every import compiles) and the X-Ray SDK beside it, as the [tracer] extra put it.
    None when the venv has no X-Ray SDK to copy."""
    try:
        modules = [importlib.import_module(name) for name in ("aws_xray_sdk", "wrapt")]
    except ImportError:
        return None
    target = BUILD / "baseline" / "python"
    if (BUILD / "baseline" / ".built").exists() and (
        BUILD / "baseline" / ".built"
    ).stat().st_mtime >= HOST_LAYER.stat().st_mtime:
        return target
    shutil.rmtree(target.parent, ignore_errors=True)
    shutil.copytree(HOST_LAYER, target, ignore=shutil.ignore_patterns("__pycache__"))
    for module in modules:
        source = Path(module.__file__ or "").parent
        shutil.copytree(source, target / source.name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    (BUILD / "baseline" / ".built").touch()
    return target


def cold_starts(repeats: int) -> ColdStarts:
    python = python313()
    if python is None:
        return ColdStarts("none", 0.0, [], [], "no Python 3.13 here (pyenv install 3.13)")
    if not (HOST_LAYER / "casebridge").is_dir():
        return ColdStarts(python, 0.0, [], [], f"no built layer at {HOST_LAYER} (make bench-layers)")
    runtime = str(runtime_dir(python))
    floor_ms, handlers = _paired(python, [str(HOST_LAYER), runtime], repeats, lambda_env())
    baseline: list[ColdStart] = []
    old = _baseline_layer(python)
    if old is not None:
        _, baseline = _paired(python, [str(old), runtime], max(2, repeats // 2), lambda_env(CASEBRIDGE_XRAY_SDK="true"))
    return ColdStarts(python, floor_ms, handlers, baseline)


def _tree(path: Path) -> tuple[int, int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files), sum(1 for p in files if p.suffix == ".pyc")


def sizes() -> Sizes:
    if not (SHIPPED_LAYER / "casebridge").is_dir():
        return Sizes(None, note=f"no arm64 layer at {SHIPPED_LAYER} (make bench-layers)")
    size, files, pyc = _tree(SHIPPED_LAYER)
    dupes = [p.name for p in SHIPPED_LAYER.iterdir() if p.name in RUNTIME_PACKAGES or p.name == "boto3"]
    sam = _tree(SAM_LAYER)[0] if (SAM_LAYER / "casebridge").is_dir() else None
    return Sizes(size, files, pyc, dupes, sam)


def peak_memory(
    env_extra: dict[str, str], events: dict[str, dict[str, object]], api: str
) -> dict[str, tuple[int, int]]:
    """handler -> (HTTP status of its one request, peak KiB) in a clean Python 3.13 child."""
    python = python313()
    if python is None or not (HOST_LAYER / "casebridge").is_dir():
        return {}
    paths = [str(HOST_LAYER), str(runtime_dir(python))]
    env = lambda_env(api, **env_extra)
    found: dict[str, tuple[int, int]] = {}
    for name, event in events.items():
        code = MEMORY_CHILD.format(
            paths=paths, app=str(h.REPO / "functions" / name / "app.py"), event=json.dumps(event)
        )
        out = subprocess.run(
            [python, "-I", "-c", code], env=env, capture_output=True, text=True, check=False, cwd=tempfile.gettempdir()
        )
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            raise RuntimeError(f"memory child of {name} failed: {out.stderr.strip()[-600:]}")
        result = json.loads(lines[-1])
        found[name] = (int(result["status"] or 0), int(result["peak_kib"]))
    return found
