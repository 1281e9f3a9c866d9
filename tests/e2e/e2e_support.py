"""Helpers of the end-to-end tests: the business API client and the agents' controls (emulator control API)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from cc_emulator import AgentConfig, EmulatorConfig, QueueConfig, ScriptConfig, TimingConfig
from scripts.local_stack.stack import LocalStack

SUPPORT, BILLING = "support", "billing"


def e2e_emulator_config() -> EmulatorConfig:
    """Silent scripted agents: they accept at once and say nothing; the tests type for them (control API)."""
    silent = ScriptConfig(kind="silent")
    agents = [AgentConfig(f"s{i}", f"Support {i}", [SUPPORT], script=silent) for i in (1, 2, 3)]
    agents += [AgentConfig(f"b{i}", f"Billing {i}", [BILLING], script=silent) for i in (1, 2)]
    return EmulatorConfig(
        port=0,
        tenant_id="e2e-tenant",
        customer_id="e2e-customer",
        api_key="e2e-key",
        api_secret=uuid.uuid4().hex,
        queues=[QueueConfig(SUPPORT, "Support"), QueueConfig(BILLING, "Billing")],
        agents=agents,
        timings=TimingConfig(accept_delay=0.05, reply_delay=0.05, delivery_timeout=5.0, retry_base_delay=0.1),
    )


def wait_until(what: str, check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s")


@dataclass
class Client:
    """The business API (with the key) plus the emulator's control API (the agents' hands and eyes)."""

    stack: LocalStack
    http: requests.Session

    def url(self, path: str) -> str:
        return f"{self.stack.api_url}{path}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 15)
        return self.http.request(method, self.url(path), **kwargs)

    def open(self, case_id: str, body: dict[str, Any] | None = None) -> requests.Response:
        return self.call("POST", f"/cases/{case_id}/conversation", json=body if body is not None else {})

    def post(self, case_id: str, text: str, **extra: Any) -> requests.Response:
        return self.call("POST", f"/cases/{case_id}/messages", json={"text": text, **extra})

    def case(self, case_id: str) -> dict[str, Any]:
        answer = self.call("GET", f"/cases/{case_id}")
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def timeline(self, case_id: str) -> list[dict[str, Any]]:
        answer = self.call("GET", f"/cases/{case_id}/events", params={"limit": 100})
        assert answer.status_code == 200, answer.text
        events: list[dict[str, Any]] = answer.json()["events"]
        return events

    def types(self, case_id: str) -> list[str]:
        return [e["type"] for e in self.timeline(case_id)]

    def wait_state(self, case_id: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
        return dict(
            wait_until(
                f"case {case_id} in state {state}",
                lambda: (c := self.case(case_id))["state"] == state and c,
                timeout,
            )
        )

    def wait_event(self, case_id: str, type_: str, count: int = 1, **detail: Any) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]] | None:
            events = [
                e
                for e in self.timeline(case_id)
                if e["type"] == type_ and all(e.get(k) == v for k, v in detail.items())
            ]
            return events if len(events) >= count else None

        result: list[dict[str, Any]] = wait_until(f"{count} {type_} {detail} on case {case_id}", found)
        return result

    # -- the agents (emulator control API) -----------------------------------------------------

    def control(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return requests.request(method, f"{self.stack.control_url}{path}", **kwargs)

    def agent_view(self, conversation_id: str) -> dict[str, Any]:
        answer = self.control("GET", f"/conversations/{conversation_id}")
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def agent_of(self, case_id: str) -> str:
        case = self.wait_state(case_id, "with_agent")
        return str(case["agent"]["id"])

    def agent(self, agent_id: str, action: str, **body: Any) -> None:
        answer = self.control("POST", f"/agents/{agent_id}/{action}", json=body)
        assert answer.status_code == 200, answer.text
