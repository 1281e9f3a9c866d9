"""The run-time settings (`GET/POST /_emulator/settings`): camelCase names, each checked before anything changes.

`SettingsOps` is one part of `Engine`. Each setting maps to a config field (or `timings.` field) and a parser
that raises ValueError in words; `queueStatus` is a partial map of queue id -> open | closed | empty.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import GATEWAY_REOPEN_MODES, METRICS_SHAPES, QUEUE_STATUSES
from .model import NotFound
from .routing import Router
from .state import CenterState


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number of seconds, 0 or more")
    return float(value)


def _one_of(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(name: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{name} must be one of {list(choices)}")
        return str(value)

    return parse


def _optional_text(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value


# name -> (config field, "timings." prefix for timing fields; parser)
SETTINGS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "gatewayReopen": ("gateway_reopen", _one_of(GATEWAY_REOPEN_MODES)),
    "gatewayEchoIsEcho": ("gateway_echo_is_echo", _flag),
    "gatewayRemovedAcceptsMessages": ("gateway_removed_accepts_messages", _flag),
    "gatewayScripts": ("gateway_scripts", lambda n, v: {str(k): str(x) for k, x in dict(v).items()}),
    "attachmentUrlTtl": ("attachment_url_ttl", lambda n, v: int(v)),
    "agentWrapUpIdle": ("timings.agent_wrap_up_idle", _seconds),
    "deskSignInTtl": ("timings.desk_signin_ttl", _seconds),
    "customerIdleSeconds": ("timings.customer_idle", _seconds),
    "metricsRefreshSeconds": ("timings.metrics_refresh", _seconds),
    "postAgentMinuteSeconds": ("timings.post_agent_minute", _seconds),
    "metricsSingleQueueShape": ("metrics_single_queue_shape", _one_of(METRICS_SHAPES)),
    "metricsTenantInfo": ("metrics_tenant_info", _optional_text),
    "wrapUpCodeOnWebhook": ("wrap_up_code_on_webhook", _flag),
    "gatewayReadReceipts": ("gateway_read_receipts", _flag),
}
QUEUE_STATUS = "queueStatus"


class SettingsOps(CenterState):
    router: Router

    def _target(self, path: str) -> tuple[object, str]:
        if path.startswith("timings."):
            return self.config.timings, path.removeprefix("timings.")
        return self.config, path

    def settings(self) -> dict[str, Any]:
        with self.lock:
            result = {name: getattr(*self._target(path)) for name, (path, _) in SETTINGS.items()}
            result[QUEUE_STATUS] = {q.id: q.status for q in self.queues.values()}
            return result

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change run-time settings (names as in `settings()`); nothing changes if one is unknown or wrong."""
        unknown = set(changes) - set(SETTINGS) - {QUEUE_STATUS}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted([*SETTINGS, QUEUE_STATUS])}")
        parsed = {name: SETTINGS[name][1](name, value) for name, value in changes.items() if name != QUEUE_STATUS}
        statuses = self._queue_statuses(changes.get(QUEUE_STATUS, {}))
        with self.lock:
            for name, value in parsed.items():
                setattr(*self._target(SETTINGS[name][0]), value)
            for queue_id, status in statuses.items():
                self.set_queue_status(queue_id, status)
        return self.settings()

    def _queue_statuses(self, raw: Any) -> dict[str, str]:
        if not isinstance(raw, dict):
            raise ValueError(f"{QUEUE_STATUS} must be an object of queue id -> {list(QUEUE_STATUSES)}")
        with self.lock:
            missing = [str(q) for q in raw if str(q) not in self.queues]
        if missing:
            raise ValueError(f"{QUEUE_STATUS}: unknown queues {missing}")
        return {str(q): _one_of(QUEUE_STATUSES)(f"{QUEUE_STATUS}.{q}", s) for q, s in raw.items()}

    def set_queue_status(self, queue_id: str, status: str) -> None:
        """open | closed (its agents logged out: after hours) | empty (open, its agents on break: nobody eligible).
        Conversations keep waiting in it; opening it again offers them to its agents."""
        _one_of(QUEUE_STATUSES)("status", status)
        with self.lock:
            queue = self.queues.get(queue_id)
            if queue is None:
                raise NotFound("Queue", queue_id)
            queue.status = status
            self.router.dispatch(queue_id)
