"""DynamoDB in memory, as the connector uses it through the low-level client: items in wire format, condition and
update expressions, transactions (all or nothing, cancellation reasons, ReturnValuesOnConditionCheckFailure),
consistent and eventually consistent reads, query pages and batch reads with unprocessed keys.

Each call is a step of the simulation: the world decides whether it fails before its effect (throttling), takes
effect and loses its answer (botocore gives up with a read timeout), or goes through.
"""
# ruff: noqa: N803 - the stand-ins take boto3's parameter names

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ReadTimeoutError

if TYPE_CHECKING:
    from tests.simulation.world import World

Item = dict[str, dict[str, Any]]
Key = tuple[str, str]
_TOKEN = re.compile(r"\s*(#\w+|:\w+|[A-Za-z_][\w.]*|<>|<=|>=|[=<>(),+])")
_CONSISTENT_LAG_S = 1.0  # how far back an eventually consistent read may see


class ExpressionError(Exception):
    """An expression the stand-in does not understand: the simulation must learn it, never guess."""


def _copy(value: Any) -> Any:
    """A copy of an item in wire format (dicts, lists, immutable leaves): what deepcopy does, much faster."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ExpressionError(f"cannot read {text[pos:]!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


def _number(value: dict[str, Any]) -> Decimal:
    return Decimal(value["N"])


def _equal(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    if "N" in a and "N" in b:
        return _number(a) == _number(b)
    for kind in ("SS", "NS"):
        if kind in a and kind in b:
            return set(a[kind]) == set(b[kind])
    return a == b


def _compare(a: dict[str, Any] | None, b: dict[str, Any] | None) -> int | None:
    if a is None or b is None:
        return None
    if "N" in a and "N" in b:
        x, y = _number(a), _number(b)
    elif "S" in a and "S" in b:
        x, y = a["S"], b["S"]  # code point order is UTF-8 byte order
    else:
        return None
    return (x > y) - (x < y)


@dataclass
class _Expr:
    """One expression's tokens with its placeholders resolved on demand."""

    tokens: list[str]
    names: dict[str, str]
    values: dict[str, dict[str, Any]]
    pos: int = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.upper() != expected.upper()):
            raise ExpressionError(f"expected {expected!r}, found {token!r} in {' '.join(self.tokens)}")
        self.pos += 1
        return token

    def path(self) -> str:
        token = self.take()
        if token.startswith("#"):
            return self.names[token]
        if token.startswith(":") or not re.fullmatch(r"[A-Za-z_]\w*", token):
            raise ExpressionError(f"{token!r} is not an attribute name")
        return token

    def operand(self, item: Item) -> dict[str, Any] | None:
        token = self.peek()
        if token is not None and token.startswith(":"):
            self.take()
            return self.values[token]
        if token == "size":
            self.take()
            self.take("(")
            value = item.get(self.path())
            self.take(")")
            if value is None:
                return None
            ((kind, inner),) = value.items()
            return {"N": str(len(inner))} if kind != "N" else None
        if token == "if_not_exists":
            self.take()
            self.take("(")
            name = self.path()
            self.take(",")
            fallback = self.operand(item)
            self.take(")")
            return item.get(name, fallback)
        return item.get(self.path())


def _condition(expr: _Expr, item: Item) -> bool:
    result = _conjunction(expr, item)
    while expr.peek() is not None and expr.peek().upper() == "OR":  # type: ignore[union-attr]
        expr.take()
        other = _conjunction(expr, item)
        result = result or other
    return result


def _conjunction(expr: _Expr, item: Item) -> bool:
    result = _factor(expr, item)
    while expr.peek() is not None and expr.peek().upper() == "AND":  # type: ignore[union-attr]
        expr.take()
        other = _factor(expr, item)
        result = result and other
    return result


def _factor(expr: _Expr, item: Item) -> bool:
    token = expr.peek()
    if token is not None and token.upper() == "NOT":
        expr.take()
        return not _factor(expr, item)
    if token == "(":
        expr.take()
        result = _condition(expr, item)
        expr.take(")")
        return result
    if token in ("attribute_exists", "attribute_not_exists"):
        expr.take()
        expr.take("(")
        name = expr.path()
        expr.take(")")
        return (name in item) == (token == "attribute_exists")
    if token == "contains":
        expr.take()
        expr.take("(")
        value = item.get(expr.path())
        expr.take(",")
        member = expr.operand(item)
        expr.take(")")
        if not value or not member:
            return False
        if "S" in value:
            return "S" in member and member["S"] in value["S"]
        ((kind, members),) = value.items()
        return any(_equal({kind[0]: m}, member) for m in members) if kind in ("SS", "NS") else member in members
    if token == "begins_with":
        expr.take()
        expr.take("(")
        value = item.get(expr.path())
        expr.take(",")
        prefix = expr.operand(item)
        expr.take(")")
        return bool(value and prefix and "S" in value and value["S"].startswith(prefix["S"]))
    left = expr.operand(item)
    op = expr.take()
    right = expr.operand(item)
    if op == "=":
        return _equal(left, right)
    if op == "<>":
        return not _equal(left, right)
    order = _compare(left, right)
    if order is None:
        return False
    if op not in ("<", "<=", ">", ">="):
        raise ExpressionError(f"unknown comparator {op!r}")
    return {"<": order < 0, "<=": order <= 0, ">": order > 0, ">=": order >= 0}[op]


def condition_holds(
    expression: str | None, item: Item, names: dict[str, str] | None, values: dict[str, Any] | None
) -> bool:
    if not expression:
        return True
    expr = _Expr(_tokens(expression), names or {}, values or {})
    result = _condition(expr, item)
    if expr.peek() is not None:
        raise ExpressionError(f"left over in condition: {expr.tokens[expr.pos :]}")
    return result


def apply_update(
    expression: str, item: Item, names: dict[str, str] | None, values: dict[str, Any] | None
) -> tuple[Item, set[str]]:
    """The item after SET / REMOVE / ADD / DELETE clauses, and the attributes they touched."""
    expr = _Expr(_tokens(expression), names or {}, values or {})
    new = _copy(item)
    touched: set[str] = set()
    while expr.peek() is not None:
        clause = expr.take().upper()
        while True:
            name = expr.path()
            touched.add(name)
            if clause == "SET":
                expr.take("=")
                value = expr.operand(item)
                if expr.peek() == "+":
                    expr.take()
                    other = expr.operand(item)
                    assert value is not None and other is not None
                    value = {"N": str(_number(value) + _number(other))}
                if value is None:
                    raise ExpressionError(f"SET {name} to a missing value")
                new[name] = _copy(value)
            elif clause == "REMOVE":
                new.pop(name, None)
            elif clause in ("ADD", "DELETE"):
                value = expr.operand(item)
                assert value is not None
                _add_or_delete(new, name, value, clause == "ADD")
            else:
                raise ExpressionError(f"unknown clause {clause}")
            if expr.peek() != ",":
                break
            expr.take()
    return new, touched


def _add_or_delete(item: Item, name: str, value: dict[str, Any], add: bool) -> None:
    current = item.get(name)
    if "N" in value:
        if not add:
            raise ExpressionError("DELETE takes a set")
        base = _number(current) if current else Decimal(0)
        item[name] = {"N": str(base + _number(value))}
        return
    kind = "SS" if "SS" in value else "NS"
    members = set(current[kind]) if current else set()
    members = members | set(value[kind]) if add else members - set(value[kind])
    if members:
        item[name] = {kind: sorted(members)}
    else:
        item.pop(name, None)  # DynamoDB keeps no empty set


def _key_of(key: dict[str, Any]) -> Key:
    return key["pk"]["S"], key["sk"]["S"]


class _Conditional(Exception):
    def __init__(self, old: Item | None) -> None:
        self.old = old


class InMemoryDynamoDB:
    """One table (the cases table), whatever the TableName."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.items: dict[Key, Item] = {}
        self._partitions: dict[str, set[str]] = {}  # pk -> its sort keys (queries read one partition)
        self.versions: dict[Key, list[tuple[float, Item | None]]] = {}  # for eventually consistent reads
        self.writes = 0
        self.partition_writes: dict[str, list[float]] = {}  # pk -> write times (the capacity report)
        self.on_write: list[Callable[[Key, Item | None], None]] = []  # observers (the simulation's bookkeeping)

    # ---- the client API ----------------------------------------------------------------------
    def get_item(self, *, TableName: str, Key: dict[str, Any], ConsistentRead: bool = False, **_: Any) -> Any:
        key = _key_of(Key)
        self._step("GetItem", key, write=False)
        found = self._read(key, ConsistentRead)
        return {"Item": _copy(found)} if found else {}

    def put_item(self, *, TableName: str, Item: Item, **request: Any) -> Any:
        key = _key_of(Item)
        return self._write("PutItem", key, request, lambda _old: _copy(Item))

    def update_item(self, *, TableName: str, Key: dict[str, Any], UpdateExpression: str, **request: Any) -> Any:
        key = _key_of(Key)
        names, values = request.get("ExpressionAttributeNames"), request.get("ExpressionAttributeValues")

        def updated(old: Item | None) -> Item:
            new, _ = apply_update(UpdateExpression, old or _copy(Key), names, values)
            return new

        return self._write("UpdateItem", key, request, updated, update=UpdateExpression)

    def delete_item(self, *, TableName: str, Key: dict[str, Any], **request: Any) -> Any:
        return self._write("DeleteItem", _key_of(Key), request, lambda _old: None)

    def transact_write_items(self, *, TransactItems: list[dict[str, Any]], **_: Any) -> Any:
        keys = []
        for entry in TransactItems:
            ((kind, body),) = entry.items()
            keys.append(_key_of(body["Item"] if kind == "Put" else body["Key"]))
        if len(set(keys)) != len(keys):
            raise self._error(
                "ValidationException", "Transaction request cannot include multiple operations on one item"
            )
        fault = self._step("TransactWriteItems", keys[0], write=True)
        if fault == "throttle":
            reasons = [{"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity"}] * len(keys)
            raise self._error("TransactionCanceledException", "Transaction cancelled", reasons=reasons)
        if fault == "conflict":
            reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}] * len(keys)
            raise self._error("TransactionCanceledException", "Transaction cancelled", reasons=reasons)
        results: list[Item | None] = []
        reasons, failed = [], False
        for entry, key in zip(TransactItems, keys, strict=True):
            ((kind, body),) = entry.items()
            old = self.items.get(key)
            holds = condition_holds(
                body.get("ConditionExpression"),
                old or {},
                body.get("ExpressionAttributeNames"),
                body.get("ExpressionAttributeValues"),
            )
            reason: dict[str, Any] = {"Code": "None"}
            if not holds:
                failed = True
                reason = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
                if old is not None and body.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                    reason["Item"] = _copy(old)
            reasons.append(reason)
            if kind == "Put":
                results.append(_copy(body["Item"]))
            elif kind == "Update":
                names, values = body.get("ExpressionAttributeNames"), body.get("ExpressionAttributeValues")
                results.append(apply_update(body["UpdateExpression"], old or _copy(body["Key"]), names, values)[0])
            elif kind == "Delete":
                results.append(None)
            else:  # ConditionCheck
                results.append(old)
        if failed:
            raise self._error("TransactionCanceledException", "Transaction cancelled", reasons=reasons)
        for key, new in zip(keys, results, strict=True):
            self._store(key, new)
        return self._answer(fault, {})

    def batch_get_item(self, *, RequestItems: dict[str, Any], **_: Any) -> Any:
        ((table, request),) = RequestItems.items()
        keys = [_key_of(k) for k in request["Keys"]]
        if len(keys) > 100:
            raise self._error("ValidationException", "Too many items requested for the BatchGetItem call")
        fault = self._step("BatchGetItem", keys[0], write=False, unprocessed=True)
        found, unprocessed = [], []
        for index, key in enumerate(keys):
            if fault == "unprocessed" and index % 2 == 0:
                unprocessed.append(request["Keys"][index])
                continue
            item = self._read(key, bool(request.get("ConsistentRead")))
            if item:
                found.append(_copy(item))
        answer: dict[str, Any] = {"Responses": {table: found}}
        if unprocessed:
            answer["UnprocessedKeys"] = {table: {**request, "Keys": unprocessed}}
        return answer

    def query(self, *, TableName: str, KeyConditionExpression: str, **request: Any) -> Any:
        names, values = request.get("ExpressionAttributeNames"), request.get("ExpressionAttributeValues") or {}
        if "IndexName" in request:
            return self._query_index(request["IndexName"], KeyConditionExpression, names, values)
        match = re.search(r"\bpk\s*=\s*(:\w+)", KeyConditionExpression)
        if match is None:
            raise ExpressionError(f"no partition key in {KeyConditionExpression!r}")
        pk = values[match.group(1)]["S"]
        self._step("Query", (pk, "*"), write=False)
        keys = [(pk, sk) for sk in sorted(self._partitions.get(pk, ()))]
        if request.get("ScanIndexForward") is False:
            keys.reverse()
        start = request.get("ExclusiveStartKey")
        if start:
            mark = _key_of(start)
            keys = [k for k in keys if (k[1] > mark[1]) == (request.get("ScanIndexForward", True) is not False)]
        limit = request.get("Limit")
        out: list[Item] = []
        last: Key | None = None
        for key in keys:
            item = self._read(key, bool(request.get("ConsistentRead")))
            if not item or not condition_holds(KeyConditionExpression, item, names, values):
                continue
            if limit is not None and len(out) >= limit:
                break
            out.append(_copy(item))
            last = key
        answer: dict[str, Any] = {"Items": out, "Count": len(out)}
        if limit is not None and len(out) >= limit and last is not None:
            answer["LastEvaluatedKey"] = {"pk": {"S": last[0]}, "sk": {"S": last[1]}}
        filtered = request.get("FilterExpression")
        if filtered:
            answer["Items"] = [i for i in out if condition_holds(filtered, i, names, values)]
            answer["Count"] = len(answer["Items"])
        return answer

    def _query_index(
        self, index: str, condition: str, names: dict[str, str] | None, values: dict[str, Any]
    ) -> dict[str, Any]:
        """A global secondary index: sparse (only items carrying its key) and always eventually consistent, so
        each item is seen as it is or as it was within the lag. One page (the sweepers' indexes stay small)."""
        match = re.fullmatch(r"\s*([#\w]+)\s*=\s*(:\w+)\s*", condition)
        if match is None:
            raise ExpressionError(f"index {index}: cannot read {condition!r}")
        attribute = (names or {}).get(match.group(1), match.group(1))
        self._step(f"Query {index}", (attribute, "*"), write=False)
        out = []
        for item_key in sorted(self.versions):
            item = self._read(item_key, consistent=False)
            if item is not None and _equal(item.get(attribute), values[match.group(2)]):
                out.append(_copy(item))
        return {"Items": out, "Count": len(out)}

    def partition(self, pk: str) -> list[tuple[str, Item]]:
        """The partition's items in sort key order, as they are (the simulation's own reads, not a step)."""
        return [(sk, self.items[(pk, sk)]) for sk in sorted(self._partitions.get(pk, ()))]

    # ---- plumbing -------------------------------------------------------------------------------
    def _step(self, op: str, key: Key, *, write: bool, unprocessed: bool = False) -> str | None:
        """A step the world schedules; returns the fault it chose for this call (None: none)."""
        kinds = ["throttle"] + (["lost", "conflict"] if write else []) + (["unprocessed"] if unprocessed else [])
        if op in ("TransactWriteItems",):
            kinds = ["throttle", "conflict", "lost"]
        fault = self.world.step(f"dynamodb {op} {key[0]} {key[1]}", "dynamodb", kinds)
        if fault == "throttle" and op != "TransactWriteItems":
            raise self._error("ProvisionedThroughputExceededException", "injected throttling")
        return fault

    def _write(
        self, op: str, key: Key, request: dict[str, Any], make: Callable[[Item | None], Item | None], update: str = ""
    ) -> Any:
        fault = self._step(op, key, write=True)
        if fault == "conflict":
            raise self._error("TransactionConflictException", "Transaction is ongoing for the item")
        old = self.items.get(key)
        if not condition_holds(
            request.get("ConditionExpression"),
            old or {},
            request.get("ExpressionAttributeNames"),
            request.get("ExpressionAttributeValues"),
        ):
            extra: dict[str, Any] = {}
            if old is not None and request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                extra["Item"] = _copy(old)
            raise self._error("ConditionalCheckFailedException", "The conditional request failed", **extra)
        new = make(old)
        self._store(key, new)
        return self._answer(fault, self._return_values(request.get("ReturnValues", "NONE"), old, new, update))

    def _return_values(self, what: str, old: Item | None, new: Item | None, update: str) -> dict[str, Any]:
        if what == "NONE":
            return {}
        if what == "ALL_OLD":
            return {"Attributes": _copy(old)} if old else {}
        if what == "ALL_NEW":
            return {"Attributes": _copy(new)} if new else {}
        changed = {n for n in set(old or {}) | set(new or {}) if (old or {}).get(n) != (new or {}).get(n)}
        source = old if what == "UPDATED_OLD" else new
        picked = {n: _copy(v) for n, v in (source or {}).items() if n in changed}
        return {"Attributes": picked} if picked else {}

    def _answer(self, fault: str | None, answer: dict[str, Any]) -> Any:
        if fault == "lost":  # it took effect; botocore's retries ran out before an answer came
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        return answer

    def _store(self, key: Key, new: Item | None) -> None:
        if new is None:
            self.items.pop(key, None)
            self._partitions.get(key[0], set()).discard(key[1])
        else:
            self.items[key] = new
            self._partitions.setdefault(key[0], set()).add(key[1])
        self.writes += 1
        self.partition_writes.setdefault(key[0], []).append(self.world.now)
        history = self.versions.setdefault(key, [(-1.0, None)])
        history.append((self.world.now, new))  # stored items are never changed in place: no copy needed
        del history[:-8]
        for observe in self.on_write:
            observe(key, new)

    def _read(self, key: Key, consistent: bool) -> Item | None:
        if consistent:
            return self.items.get(key)
        # Eventually consistent: the newest version, or one replaced within the lag (0, the simplest, is the newest).
        history = self.versions.get(key, [])
        candidates = [self.items.get(key)]
        for index in range(len(history) - 1, 0, -1):
            if history[index][0] < self.world.now - _CONSISTENT_LAG_S:
                break
            candidates.append(history[index - 1][1])
        return candidates[self.world.draw(len(candidates), "stale read")] if len(candidates) > 1 else candidates[0]

    @staticmethod
    def _error(code: str, message: str, *, reasons: list[dict[str, Any]] | None = None, **extra: Any) -> ClientError:
        response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        if reasons is not None:
            response["CancellationReasons"] = reasons
        response.update(extra)
        return ClientError(response, code)  # type: ignore[arg-type]
