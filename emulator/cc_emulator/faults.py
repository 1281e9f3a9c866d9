"""Faults on demand: rules that target API operations or webhook deliveries."""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import FaultSpec

# API faults, matched against the operation name (e.g. "post_message") or "*".
#   status            answer `status` (e.g. 500/503/429) without processing; 429/503 add Retry-After
#   latency           sleep `seconds`, then process normally (combines with the others)
#   hang              sleep `seconds` (longer than the client timeout), then drop without processing
#   reset             reset the TCP connection without processing
#   accept_then_fail  process, then answer `status` (the ambiguous case)
#   accept_then_drop  process, then close the connection without an answer
API_KINDS = frozenset({"status", "latency", "hang", "reset", "accept_then_fail", "accept_then_drop"})
# Delivery faults, matched against the event type (e.g. "TEXT") or "*".
#   duplicate         deliver the event twice (same event id)
#   out_of_order      hold the event back and send it after the next one
#   bad_signature     send it with a signature that does not verify
DELIVERY_KINDS = frozenset({"duplicate", "out_of_order", "bad_signature"})
KINDS = API_KINDS | DELIVERY_KINDS


@dataclass
class FaultRule(FaultSpec):
    """A configured fault (FaultSpec: kind, op, count = how many more times it fires, None until cleared,
    status, retry_after, seconds) once it is live: its id and how often it fired."""

    id: int = 0
    fired: int = 0

    def matches(self, target: str) -> bool:
        return self.op in ("*", target)

    def retry_after_headers(self) -> dict[str, str]:
        """A 429 or 503 tells the client when to come back: `retry_after` seconds, 1 unless the rule says."""
        if self.status not in (429, 503):
            return {}
        return {"Retry-After": str(self.retry_after if self.retry_after is not None else 1)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaultManager:
    _rules: list[FaultRule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, rule: FaultRule) -> FaultRule:
        if rule.kind not in KINDS:
            raise ValueError(f"unknown fault kind {rule.kind!r}; expected one of {sorted(KINDS)}")
        if rule.count is not None and rule.count < 1:
            raise ValueError("count must be >= 1 or null")
        with self._lock:
            rule.id = next(self._ids)
            self._rules.append(rule)
        return rule

    def add_from_dict(self, data: dict[str, Any]) -> FaultRule:
        allowed = {"kind", "op", "count", "status", "retry_after", "seconds"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if "kind" not in data:
            raise ValueError("fault needs a kind")
        return self.add(FaultRule(**data))

    def clear(self, rule_id: int | None = None) -> int:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if rule_id is not None and r.id != rule_id]
            return before - len(self._rules)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def take_api(self, op: str) -> tuple[float, FaultRule | None]:
        """Total added latency plus at most one terminal fault for `op`; consumes one use of each."""
        latency = 0.0
        terminal: FaultRule | None = None
        with self._lock:
            for rule in self._rules:
                if rule.kind not in API_KINDS or not rule.matches(op):
                    continue
                if rule.kind == "latency":
                    latency += rule.seconds
                elif terminal is None:
                    terminal = rule
                else:
                    continue
                self._consume(rule)
            self._prune()
        return latency, terminal

    def take_delivery(self, event_type: str) -> set[str]:
        """Delivery fault kinds that fire for one event of `event_type`."""
        kinds: set[str] = set()
        with self._lock:
            for rule in self._rules:
                if rule.kind in DELIVERY_KINDS and rule.kind not in kinds and rule.matches(event_type):
                    kinds.add(rule.kind)
                    self._consume(rule)
            self._prune()
        return kinds

    @staticmethod
    def _consume(rule: FaultRule) -> None:
        rule.fired += 1
        if rule.count is not None:
            rule.count -= 1

    def _prune(self) -> None:
        self._rules = [r for r in self._rules if r.count is None or r.count > 0]
