"""Real-time Metrics v5 (ESCALATION.md section 1): its own OAuth, per-queue figures that follow the simulated
contact center, the refresh window, queues closed or empty of agents, and 8x8's documented errors."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from cc_emulator.config import AgentConfig, EmulatorConfig, QueueConfig, fast_timings
from cc_emulator.control import ControlClient, GatewayClient, MetricsClient
from cc_emulator.pytest_plugin import WebhookReceiver
from cc_emulator.server import EmulatorServer
from tests.emulator.emulator_support import new_gateway_conversation

DECISION = (
    "availableIdle.rt",
    "eligible.rt",
    "enabled.rt",
    "interactionsWaitInQueue.rt",
    "interactionsLongestWaitInQueue.rt",
    "interactionsAvgWaitTime.int-30m",
    "avgHandlingTime.int-30m",
)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Queue 101 with two hand-driven agents (nothing is taken unless a test says so), queue 102 scripted."""
    queues = [QueueConfig("101", "Support"), QueueConfig("102", "Billing")]
    agents = [
        AgentConfig("dave", "Dave", ["101"], mode="manual"),
        AgentConfig("erin", "Erin", ["101"], mode="manual"),
        AgentConfig("bob", "Bob", ["102"]),
    ]
    return EmulatorConfig(port=0, queues=queues, agents=agents, timings=fast_timings())


@pytest.fixture
def metrics(emulator: EmulatorServer) -> MetricsClient:
    return MetricsClient(emulator.base_url, emulator.config.metrics_api_key, emulator.config.metrics_api_secret)


def token(emulator: EmulatorServer, key: str, secret: str) -> requests.Response:
    return requests.post(emulator.token_url, auth=(key, secret), data={"grant_type": "client_credentials"}, timeout=5)


def get(emulator: EmulatorServer, path: str, bearer: str, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"}
    return requests.get(emulator.metrics_base() + path, headers=headers, params=params, timeout=5)


def test_metrics_take_their_own_oauth_token_and_no_other(emulator: EmulatorServer, gw: GatewayClient) -> None:
    cfg = emulator.config
    answer = token(emulator, cfg.metrics_api_key, cfg.metrics_api_secret)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "BearerToken" and body["expires_in"] == "1799"
    assert body["api_product_list"] == ["analytics realtime-api"]
    assert get(emulator, "/queues/101", body["access_token"]).status_code == 200

    chat_token = token(emulator, cfg.api_key, cfg.api_secret).json()["access_token"]
    refused = get(emulator, "/queues/101", chat_token)
    assert refused.status_code == 401
    assert refused.json()["fault"]["detail"]["errorcode"].endswith("InvalidAPICallAsNoApiProductMatchFound")
    # ...and the metrics token opens no chat API
    v2 = f"{emulator.v2_base}/web-hooks"
    assert requests.get(v2, headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=5).status_code == 401
    gateway_key = requests.get(emulator.metrics_base() + "/queues", headers={"x-api-key": cfg.api_key}, timeout=5)
    assert gateway_key.status_code == 401
    assert token(emulator, cfg.metrics_api_key, "wrong").status_code == 401
    emulator.engine.tokens.expire_all()
    expired = get(emulator, "/queues/101", body["access_token"])
    assert expired.status_code == 401 and expired.json()["fault"]["faultstring"] == "Access Token expired"


def test_figures_follow_waiting_accepting_and_ending(
    emulator: EmulatorServer, metrics: MetricsClient, gw: GatewayClient, gw_channel: str, control: ControlClient
) -> None:
    empty = metrics.queue("101", *DECISION)
    assert empty == {
        "availableIdle.rt": 2,
        "eligible.rt": 2,
        "enabled.rt": 2,
        "interactionsWaitInQueue.rt": 0,
        "interactionsLongestWaitInQueue.rt": 0,
        "interactionsAvgWaitTime.int-30m": None,
        "avgHandlingTime.int-30m": None,
    }
    first = new_gateway_conversation(gw, gw_channel)
    time.sleep(0.2)  # a measurable wait; the figures must show at least this much
    new_gateway_conversation(gw, gw_channel)
    waiting = metrics.queue("101", *DECISION)
    assert waiting["interactionsWaitInQueue.rt"] == 2
    assert waiting["interactionsLongestWaitInQueue.rt"] >= 200

    control.agent_accept("dave", first)
    taken = metrics.queue("101", *DECISION)
    assert (taken["availableIdle.rt"], taken["eligible.rt"], taken["interactionsWaitInQueue.rt"]) == (1, 2, 1)
    actual = emulator.engine.metrics.actual_waits("101")
    assert len(actual) == 1 and actual[0] >= 0.2
    assert taken["interactionsAvgWaitTime.int-30m"] == round(actual[0] * 1000)
    assert control.state()["queues"][0]["waits"] == actual

    control.agent_leave("dave")
    ended = metrics.queue("101", *DECISION)
    assert ended["availableIdle.rt"] == 2 and ended["avgHandlingTime.int-30m"] is not None
    # Every metric is served when none is named (E2), and the regional paths serve the same tenant.
    everything = metrics.queue("101")
    assert set(DECISION) <= set(everything) and "onBreak.rt" in everything
    for prefix in ("/eu", "/au", "/ca"):
        regional = MetricsClient(emulator.base_url, "AK", "AS", region_prefix=prefix)
        assert regional.queue("101", "interactionsWaitInQueue.rt") == {"interactionsWaitInQueue.rt": 1}


def test_figures_refresh_at_most_once_per_window(
    emulator: EmulatorServer, metrics: MetricsClient, gw: GatewayClient, gw_channel: str
) -> None:
    emulator.engine.update_settings({"metricsRefreshSeconds": 5})
    now = [1000.0]
    emulator.engine.metrics.clock = lambda: now[0]
    before = metrics.queue("101", "interactionsWaitInQueue.rt")
    computed = emulator.engine.metrics.computed
    new_gateway_conversation(gw, gw_channel)
    # Within the window the snapshot stands, as 8x8's ("refreshed every 5 s").
    now[0] += 4.9
    assert metrics.queue("101", "interactionsWaitInQueue.rt") == before
    assert emulator.engine.metrics.computed == computed
    now[0] += 0.1
    assert metrics.queue("101", "interactionsWaitInQueue.rt") == {"interactionsWaitInQueue.rt": 1}
    assert emulator.engine.metrics.computed == computed + 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("closed", {"availableIdle.rt": 0, "eligible.rt": 0, "enabled.rt": 0, "loggedOut.rt": 1, "onBreak.rt": 0}),
        ("empty", {"availableIdle.rt": 0, "eligible.rt": 0, "enabled.rt": 1, "loggedOut.rt": 0, "onBreak.rt": 1}),
    ],
)
def test_a_closed_or_empty_queue_has_nobody_to_answer(
    status: str,
    expected: dict[str, int],
    emulator: EmulatorServer,
    metrics: MetricsClient,
    gw: GatewayClient,
    gw_channel: str,
    control: ControlClient,
    webhook_receiver: WebhookReceiver,
) -> None:
    control.update_settings(queueStatus={"102": status})
    assert control.settings()["queueStatus"] == {"101": "open", "102": status}
    assert metrics.queue("102", *expected) == expected
    conv = new_gateway_conversation(gw, gw_channel)
    assert gw.assign(conv, "102").status_code == 202
    emulator.wait_quiet()
    # Bob (scripted) does not take it: the conversation waits in the queue.
    assert metrics.queue("102", "interactionsWaitInQueue.rt") == {"interactionsWaitInQueue.rt": 1}
    assert not webhook_receiver.events("MEMBERS_CHANGED")
    control.set_queue_status("102", "open")
    emulator.wait_for_delivery("MEMBERS_CHANGED", conv)
    assert metrics.queue("102", "interactionsHandling.rt") == {"interactionsHandling.rt": 1}


def test_a_closed_queue_refuses_a_desk_agent(
    emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, control: ControlClient
) -> None:
    control.set_queue_status("101", "closed")
    conv = new_gateway_conversation(gw, gw_channel)
    answer = requests.post(f"{emulator.control_url}/agents/dave/accept", json={"conversationId": conv}, timeout=5)
    assert answer.status_code == 409 and "closed" in answer.json()["error"]


def test_multi_tenant_needs_x_tenant_info(emulator: EmulatorServer, metrics: MetricsClient) -> None:
    emulator.engine.update_settings({"metricsTenantInfo": "acme"})
    missing = metrics.request("/queues/101")
    assert (missing.status_code, missing.json()) == (400, {"message": "Bad request: X-Tenant-Info header is missing."})
    metrics.tenant_info = "other"
    wrong = metrics.request("/queues/101")
    assert wrong.json() == {"message": "Bad request: Invalid value for X-Tenant-Info header."}
    metrics.tenant_info = "acme"
    assert metrics.request("/queues/101").status_code == 200


def test_list_paging_summary_shapes_and_errors(emulator: EmulatorServer, metrics: MetricsClient) -> None:
    page = metrics.request("/queues", size=1, page=1, metrics="availableIdle.rt")
    assert page.status_code == 200
    assert page.json() == [{"id": "102", "name": "Billing", "metrics": [{"key": "availableIdle.rt", "value": 1}]}]
    headers = {k: page.headers[k] for k in ("X-Page-Size", "X-Page", "X-Total-Pages", "X-Total-Elements")}
    assert headers == {"X-Page-Size": "1", "X-Page": "1", "X-Total-Pages": "2", "X-Total-Elements": "2"}
    assert metrics.request("/queues", summary="true").json() == [
        {"id": "101", "name": "Support"},
        {"id": "102", "name": "Billing"},
    ]
    both = metrics.request("/queues", **{"queue-ids": "101,102", "metrics": "eligible.rt"}).json()
    assert [q["id"] for q in both] == ["101", "102"]
    too_big = metrics.request("/queues", size=1001)
    assert too_big.json() == {"message": "Bad request: Field 'size' must be less than or equal to 1000"}
    assert metrics.request("/queues", page=5).status_code == 400
    # The OAS example's typo (E3) is refused, not silently empty.
    assert metrics.request("/queues/101", metrics="eligibl.rt").status_code == 400
    assert metrics.request("/queues/999").status_code == 404
    assert isinstance(metrics.request("/queues/101").json(), list)
    emulator.engine.update_settings({"metricsSingleQueueShape": "object"})
    assert metrics.request("/queues/101").json()["id"] == "101"
    agents = metrics.request("/queues/101/agents").json()
    assert [(a["id"], a["metrics"][0]["value"]) for a in agents] == [("dave", "Available"), ("erin", "Available")]


def test_a_metrics_outage_is_a_fault_like_any_other(
    emulator: EmulatorServer, metrics: MetricsClient, control: ControlClient
) -> None:
    control.add_fault("status", "realtime_queue", count=1, status=503, retry_after=2)
    failed = metrics.request("/queues/101")
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "2"
    assert metrics.request("/queues/101").status_code == 200
    assert emulator.engine.request_counts()["realtime_queue"] == 2
    assert [r["surface"] for r in control.requests("realtime_queue")["requests"]] == ["metrics", "metrics"]
