"""8x8's OpenAPI files for the contract tests: loaded with every $ref resolved (or the test skipped, saying
why), an operation found from a request's method and URL, and the findings of recorded exchanges."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from openapi_schema_validator import OAS30Validator

from tests.support.paths import ROOT


def resolve_refs(node: Any, root: dict[str, Any]) -> Any:
    """`node` with every local `$ref` replaced by what it points at (the files have no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolve_refs(target, root)
        return {k: resolve_refs(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_refs(v, root) for v in node]
    return node


def load_spec(filename: str, api_name: str) -> dict[str, Any]:
    """The contract `filename` (JSON or YAML) from $EIGHTXEIGHT_CONTRACT_DIR or ../shared/8x8, resolved;
    skips the calling test when it is not there (the file is never copied into the repo)."""
    directory = Path(os.environ.get("EIGHTXEIGHT_CONTRACT_DIR") or ROOT.parent / "shared" / "8x8")
    path = directory / filename
    if not path.is_file():
        pytest.skip(f"8x8's {api_name} contract is not at {path}; set EIGHTXEIGHT_CONTRACT_DIR to check against it")
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return dict(resolve_refs(raw, raw))


def find_operation(spec: dict[str, Any], method: str, url: str) -> tuple[str, dict[str, Any]]:
    """The path template and operation serving `method url` (a full URL or a path)."""
    path = urlsplit(url).path
    # Literal paths first, so /web-hooks/verify is not taken for /web-hooks/{web-hook-id}.
    for template in sorted(spec["paths"], key=lambda p: p.count("{")):
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) and method.lower() in spec["paths"][template]:
            return template, dict(spec["paths"][template][method.lower()])
    raise AssertionError(f"{method} {path} is not an operation of {spec.get('info', {}).get('title', 'the contract')}")


class Finding(NamedTuple):
    """One way an exchange departs from the contract (a tuple, so tests may compare it with plain tuples)."""

    op: str
    where: str  # "request" or "response <status>"
    message: str


class ExchangeRecorder:
    """Keeps (path template, method, request body, response) of each exchange and checks them all against
    the contract. `body=None` marks a deliberately invalid request: only its response is checked."""

    def __init__(self, spec: dict[str, Any], format_checker: Any = None) -> None:
        self.spec = spec
        self.format_checker = format_checker
        self.exchanges: list[tuple[str, str, Any, requests.Response]] = []

    def record(self, method: str, path: str, body: Any, resp: requests.Response) -> requests.Response:
        template, _ = find_operation(self.spec, method, path)
        self.exchanges.append((template, method.lower(), body, resp))
        return resp

    def response_schema(self, op_id: str, status: int, schema: dict[str, Any]) -> dict[str, Any]:
        """The schema a response is checked against; a subclass may replace a defective one."""
        return schema

    def _errors(self, schema: dict[str, Any], value: Any) -> list[str]:
        return [e.message for e in OAS30Validator(schema, format_checker=self.format_checker).iter_errors(value)]

    def findings(self) -> set[Finding]:
        found: set[Finding] = set()
        for template, method, body, resp in self.exchanges:
            op = self.spec["paths"][template][method]
            op_id = op["operationId"]
            request_body = op.get("requestBody")
            if body is not None and request_body:
                schema = next(iter(request_body["content"].values()))["schema"]
                found |= {Finding(op_id, "request", message) for message in self._errors(schema, body)}
            declared = op["responses"].get(str(resp.status_code)) or op["responses"].get("default")
            where = f"response {resp.status_code}"
            if declared is None:
                found.add(Finding(op_id, where, "undeclared status"))
                continue
            content = declared.get("content")
            if not content:
                if resp.content:
                    found.add(Finding(op_id, where, "must have no body"))
                continue
            media = resp.headers.get("Content-Type", "").split(";")[0]
            if media not in content:
                found.add(Finding(op_id, where, f"content type {media} not in {sorted(content)}"))
                continue
            if not media.endswith("json"):
                continue  # binary download: the media type is the contract
            schema = self.response_schema(op_id, resp.status_code, content[media]["schema"])
            found |= {Finding(op_id, where, message) for message in self._errors(schema, resp.json())}
        return found

    def covered(self) -> set[tuple[str, str]]:
        return {(t, m) for t, m, _, _ in self.exchanges}
