"""moto's server in a process of its own, as AWS is another machine: `python -m scripts.local_stack.moto_process`
prints `{"port": ..., "backlog": ...}` once it listens, and serves until its standard input closes (the stack
that started it stopped or died). `aws_standin.AwsStandIn` starts and stops it.

moto is a test double, not a service: where its way of doing a thing costs time or CPU that AWS does not, the
stand-in does that thing the way AWS behaves, and nothing else changes:

- **DynamoDB one request at a time.** moto's DynamoDB is not safe under concurrent requests (a transaction
  deep-copies the tables it touches while another thread writes them: "dictionary changed size during
  iteration", a 500, a rolled-back write of another request). A WSGI middleware serialises DynamoDB requests;
  SQS and EventBridge stay concurrent.
- **Transactions undo items, not tables.** moto deep-copies every table a TransactWriteItems names, to roll
  back: one write costs time proportional to the whole table (tens of milliseconds once a few hundred cases'
  events are stored). Under the lock above nothing else writes meanwhile, so keeping the touched items and
  putting back only those gives the same all-or-nothing answer.
- **EventBridge parses its input paths once.** Delivering to a target without an InputTransformer, moto
  parses its eight default JSONPath expressions with a freshly built parser on every event (about 10 ms of CPU
  per event): the parsed expressions are kept.
- **Requests find their service and action without a scan.** moto's dispatcher lists its own package's
  directories (a listdir and ~150 stats) on every request to find the service, and lists a service's
  methods (inspect.getmembers) on every request to find the action: both lists are made once.
- **Connections are kept alive.** werkzeug's development server answers every request with `Connection: close`:
  each AWS call paid a TCP connect, a new server thread and werkzeug's 10 ms wait for leftover input. AWS keeps
  connections alive, and so does this server for requests whose body has a Content-Length (a chunked body, an
  `Expect: 100-continue` or a HEAD goes werkzeug's way and closes), with Nagle off (an answer's head and body
  are two writes; with Nagle and the client's delayed ACK the second would wait ~40 ms).
- **DynamoDB's data answers are written with json.dumps.** moto builds a data-plane answer (GetItem, Query,
  BatchGetItem...) as a dict already in DynamoDB's JSON shape, then walks it member by member against the
  botocore model to write it: most of a Query's CPU (5 ms for ten items). An answer of plain JSON values (no
  None, no binary attribute, only members of the operation's output) is written as it is; anything else goes
  moto's way.
- **Long polls wake on change.** moto's ReceiveMessage long poll spins while a FIFO queue holds visible
  messages of a group that is in flight, and does not see a group freed by a delete until the poll ends (up
  to WaitTimeSeconds later). Here a poll looks again whenever the queue changes (a send, a delete, a
  visibility change) or its next invisible or delayed message becomes visible, and sleeps otherwise; one
  look at a queue at a time, so two concurrent polls cannot both take a FIFO group.
"""

from __future__ import annotations

import argparse
import copy
import functools
import io
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jsonpath_ng.ext
from moto import backends
from moto.core import responses as moto_responses
from moto.core import utils as moto_utils
from moto.core.utils import unix_time_millis
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoResult
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.sqs.models import Queue, SQSBackend
from werkzeug.serving import BaseWSGIServer, make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_DYNAMODB_TARGET = "DynamoDB_"  # X-Amz-Target of every DynamoDB JSON API call (DynamoDB_20120810.PutItem...)


class SerialisedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time (module docstring), the response read under the lock."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(_DYNAMODB_TARGET):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, keeping the connection open between requests (module docstring)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def run_wsgi(self) -> None:
        if (
            self.command == "HEAD"
            or "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            or self.headers.get("Expect")
        ):
            super().run_wsgi()  # werkzeug's way, which closes the connection after
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""  # all of it: the next request follows on the stream
        environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        answer: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., None]:
            answer[:] = [status, headers]
            return lambda data: None

        result = self.server.app(environ, start_response)
        try:
            data = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = answer
        code, _, reason = str(status).partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class MotoServer:
    """moto's server (as moto.server.ThreadedMotoServer runs it: threaded werkzeug, moto's request handler),
    with DynamoDB serialised and connections kept alive. werkzeug's listen backlog is already 128."""

    def __init__(self, host: str, port: int) -> None:
        self.app = SerialisedDynamoDB(DomainDispatcherApplication(create_backend_app))
        self.httpd: BaseWSGIServer = make_server(
            host, port, self.app, threaded=True, request_handler=KeepAliveRequestHandler
        )
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="moto", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()


# -- DynamoDB: TransactWriteItems with an item-level undo ------------------------------------------------

TRANSACTION_OPERATIONS = ("ConditionCheck", "Put", "Delete", "Update")
CONDITION_FAILED = "The conditional request failed"
Reason = tuple[str | None, str | None, dict[str, Any] | None]  # moto's (code, message, item) per operation


@dataclass
class TouchedItem:
    """An item a transaction writes, as it was before: what a rollback puts back."""

    table: Table
    hash_key: DynamoType
    range_key: DynamoType | None
    before: Item | None

    def restore(self) -> None:
        items: Any = self.table.items  # {hash: item} or {hash: {range: item}}
        slot, key = (items, self.hash_key) if self.range_key is None else (items[self.hash_key], self.range_key)
        slot.pop(key, None)
        if self.before is not None:
            slot[key] = self.before


def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """As DynamoDB: a malformed request changes nothing; every operation is tried, so the cancellation reasons
    cover them all; one failed operation undoes the others."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    operations: list[tuple[str, dict[str, Any], TouchedItem]] = []
    seen: set[tuple[str, DynamoType, DynamoType | None]] = set()
    for entry in transact_items:
        if len(entry) != 1:
            raise TransactWriteSingleOpException()
        kind, op = next(iter(entry.items()))
        if kind not in TRANSACTION_OPERATIONS:
            raise MockValidationException(f"Unsupported transaction operation {kind}")
        table = backend.get_table(op["TableName"])
        # A Put names its key inside its item; get_keys_value reads the key attributes only.
        hash_key, range_key = backend.get_keys_value(table, op["Item"] if kind == "Put" else op["Key"])
        if (table.name, hash_key, range_key) in seen:
            raise MultipleTransactionsException()
        seen.add((table.name, hash_key, range_key))
        before = copy.deepcopy(table.get_item(hash_key, range_key))  # an update changes the item in place
        operations.append((kind, op, TouchedItem(table, hash_key, range_key, before)))
    try:
        reasons = [_apply(backend, kind, op, touched) for kind, op, touched in operations]
    except MockValidationException:
        _undo(operations)
        raise
    if any(code is not None for code, _, _ in reasons):
        _undo(operations)
        raise TransactionCanceledException(reasons)


def _undo(operations: list[tuple[str, dict[str, Any], TouchedItem]]) -> None:
    for _, _, touched in operations:
        touched.restore()


def _apply(backend: DynamoDBBackend, kind: str, op: dict[str, Any], touched: TouchedItem) -> Reason:
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    condition = op.get("ConditionExpression")
    current = touched.table.get_item(touched.hash_key, touched.range_key)
    try:
        if condition is not None and not get_filter_expression(condition, names, values).expr(current):
            all_old = op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
            return (
                "ConditionalCheckFailed",
                CONDITION_FAILED,
                current.to_json()["Attributes"] if all_old and current else None,
            )
        expression: dict[str, Any] = {"expression_attribute_names": names, "expression_attribute_values": values}
        if kind == "Put":
            backend.put_item(op["TableName"], op["Item"], **expression)
        elif kind == "Delete":
            backend.delete_item(op["TableName"], op["Key"], **expression)
        elif kind == "Update":
            backend.update_item(op["TableName"], op["Key"], update_expression=op["UpdateExpression"], **expression)
    except MockValidationException:
        raise
    except Exception as error:  # as moto: any other failure is this operation's cancellation reason
        return type(error).__name__, str(error), None
    return None, None, None


# -- DynamoDB: data answers written with json.dumps ----------------------------------------------------

FAST_ANSWERS = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem", "TransactGetItems"}
)
_BINARY = frozenset({"B", "BS"})  # moto keeps binary values as it got them; its serializer encodes them


def plain_json(value: Any) -> bool:
    """True when json.dumps writes `value` as moto's serializer would: only dicts, lists, strings, numbers and
    booleans, no None (the serializer leaves those out) and no binary attribute value."""
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if _BINARY.intersection(current):
                return False
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
        elif current is None or not isinstance(current, (str, int, float)):
            return False
    return True


def fast_execute_result(slow: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(slow)
    def execute_result(result: Any, context: Any) -> Any:
        answer = result.result
        operation = context.operation_model
        if (
            operation.name in FAST_ANSWERS
            and isinstance(answer, dict)
            and set(answer) <= set(operation.output_shape.members)
            and plain_json(answer)
        ):
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(answer, separators=(",", ":"))
        return slow(result, context)

    return execute_result


# -- SQS: long polls that wake on change ----------------------------------------------------------------

_changes: dict[int, int] = {}  # id(queue) -> changes so far, under the queue's own condition
_looks: dict[int, threading.Lock] = {}
_looks_guard = threading.Lock()


def queue_changed(queue: Queue) -> None:
    with queue._messages_lock:
        _changes[id(queue)] = _changes.get(id(queue), 0) + 1
        queue._messages_lock.notify_all()


def _look_lock(queue: Queue) -> threading.Lock:
    with _looks_guard:
        return _looks.setdefault(id(queue), threading.Lock())


def _changed_since(queue: Queue, seen: int) -> bool:
    return _changes.get(id(queue), 0) != seen


def _seconds_to_next_visible(queue: Queue) -> float | None:
    now = unix_time_millis()
    due = [t for m in list(queue._messages) if (t := max(m.visible_at, m.delayed_until)) > now]
    return (min(due) - now) / 1000 + 0.002 if due else None  # moto's "visible" is strictly after visible_at


def long_poll(look: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    """SQSBackend.receive_message: one moto look at a time per queue (no wait inside it), then sleep until
    the queue changes or a message becomes visible, until WaitTimeSeconds."""

    @functools.wraps(look)
    def receive_message(
        backend: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        queue = backend.get_queue(queue_name)
        deadline = time.monotonic() + int(wait_seconds_timeout or 0)
        while True:
            with queue._messages_lock:
                seen = _changes.get(id(queue), 0)
            with _look_lock(queue):
                found = look(backend, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            wake = _seconds_to_next_visible(queue)
            with queue._messages_lock:
                queue._messages_lock.wait_for(
                    functools.partial(_changed_since, queue, seen), min(remaining, wake or remaining)
                )

    return receive_message


def notifying(change: Callable[..., Any], queue_of: Callable[..., Queue]) -> Callable[..., Any]:
    @functools.wraps(change)
    def changed(*args: Any, **kwargs: Any) -> Any:
        try:
            return change(*args, **kwargs)
        finally:
            queue_changed(queue_of(*args, **kwargs))

    return changed


moto_modules = backends.list_of_moto_modules


def install() -> None:
    """Make this process's moto behave as the module docstring says (the child process only)."""
    backends.list_of_moto_modules = functools.cache(lambda: tuple(moto_modules()))
    moto_responses.method_names_from_class = functools.cache(moto_utils.method_names_from_class)  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign,assignment]
    DynamoResult.execute_result = fast_execute_result(DynamoResult.execute_result)  # type: ignore[method-assign]
    # moto imports jsonpath_ng.ext's parse at each call, so the cached one is what it gets.
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)  # type: ignore[attr-defined]
    SQSBackend.receive_message = long_poll(SQSBackend.receive_message)  # type: ignore[method-assign]
    Queue.add_message = notifying(Queue.add_message, lambda queue, *_, **__: queue)  # type: ignore[method-assign]
    Queue.delete_message = notifying(Queue.delete_message, lambda queue, *_, **__: queue)  # type: ignore[method-assign]
    # moto's response calls it with keywords (queue_name=...), a direct call may pass the name positionally.
    SQSBackend.change_message_visibility = notifying(  # type: ignore[method-assign]
        SQSBackend.change_message_visibility,
        lambda backend, *args, **kwargs: backend.get_queue(kwargs["queue_name"] if "queue_name" in kwargs else args[0]),
    )


def _check_bindable(host: str, port: int) -> None:
    """OSError if `port` cannot be bound (werkzeug would print and exit, leaving the stack no reason to show)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
        probe.bind((host, port))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.local_stack.moto_process", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    # moto's werkzeug logs every request on stderr; the stack reports what matters itself.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    install()
    try:
        _check_bindable(args.host, args.port)
    except OSError as error:  # e.g. the port is in use: the stack names it
        print(json.dumps({"errno": error.errno, "error": str(error)}), flush=True)
        sys.exit(1)
    server = MotoServer(args.host, args.port)
    server.start()
    port = int(server.httpd.server_address[1])
    print(json.dumps({"port": port, "backlog": server.httpd.request_queue_size}), flush=True)
    sys.stdin.read()  # until the stack closes its end (or exits)
    server.stop()


if __name__ == "__main__":
    main()
