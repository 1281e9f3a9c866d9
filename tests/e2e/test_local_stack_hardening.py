"""The local stack against a new user's bad input: over HTTP, like
curl or a channel app would reach it."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from scripts.local_stack import REPO_ROOT
from scripts.local_stack.__main__ import parse_args
from scripts.local_stack.stack import LocalStack
from tests.e2e.e2e_support import Client, wait_until

JSON = {"Content-Type": "application/json"}


def assert_json_error(answer: requests.Response, status: int) -> dict[str, str]:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    error: dict[str, str] = answer.json()["error"]
    assert error["code"] and error["message"]
    return error


def raw_request(stack: LocalStack, request: bytes) -> bytes:
    """Bytes on a socket, for framings `requests` would not send; returns everything until the server closes."""
    target = urlsplit(stack.api_url)
    assert target.hostname is not None and target.port is not None
    with socket.create_connection((target.hostname, target.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


# ---- listen backlog ------------------------------------------------------------
@contextmanager
def accept_paused(server: socketserver.BaseServer) -> Iterator[None]:
    """The server's socket keeps listening but nothing accepts: connections can only wait in the backlog."""
    server.shutdown()
    try:
        yield
    finally:
        threading.Thread(target=server.serve_forever, daemon=True).start()


def connections_completed(address: tuple[str, int], count: int, within: float) -> int:
    """Start `count` connects at once; how many complete their handshake within `within` seconds. A connect
    whose SYN finds the accept queue full is dropped and retried by the kernel only after a second."""
    selector = selectors.DefaultSelector()
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(address)
            selector.register(sock, selectors.EVENT_WRITE)
            sockets.append(sock)
        done = 0
        deadline = time.monotonic() + within
        while done < count and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(timeout=left):
                selector.unregister(key.fileobj)
                connected = key.fileobj
                assert isinstance(connected, socket.socket)
                done += connected.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        return done
    finally:
        selector.close()
        for sock in sockets:
            sock.close()


BURST = 100  # more than a backlog of 5 could hold, less than 128


def test_local_api_holds_a_burst_of_connections(stack: LocalStack, client: Client) -> None:
    server = stack.api.httpd
    assert server is not None
    address = (str(server.server_address[0]), int(server.server_address[1]))
    with accept_paused(server):
        completed = connections_completed(address, BURST, within=0.8)
    assert completed == BURST
    assert client.call("GET", f"/cases/never-{uuid.uuid4().hex}").status_code == 404  # serving again


def test_moto_has_a_realistic_backlog(stack: LocalStack) -> None:
    # werkzeug closes its socket when serve_forever ends, so moto cannot be paused like the API above; its
    # process reports its server's backlog.
    assert stack.aws.listen_backlog >= 128


def conversation_opened_by_the_sender(client: Client, case_id: str) -> str:
    """A first message's case exists once the sender took the message off the queue (the accept only queues it)."""
    conversation: str = wait_until(
        "the case's conversation",
        lambda: client.call("GET", f"/cases/{case_id}").ok and client.case(case_id)["conversationId"],
    )
    return conversation


# ---- chunked bodies ------------------------------------------------------------------------------
def test_a_chunked_body_is_read(client: Client, stack: LocalStack, case_id: str) -> None:
    text = f"sent in chunks {uuid.uuid4().hex[:6]}"
    body = f'{{"text": "{text}", "authorType": "user"}}'.encode()
    parts = [body[:7], body[7:20], body[20:]]
    # A generator body makes requests send Transfer-Encoding: chunked, no Content-Length.
    answer = client.call("POST", f"/cases/{case_id}/messages", data=iter(parts), headers=JSON)
    assert answer.status_code == 202, answer.text
    assert answer.request.headers.get("Transfer-Encoding") == "chunked"
    conversation_id = conversation_opened_by_the_sender(client, case_id)
    wait_until(
        "the chunked message reaches 8x8",
        lambda: any(m.get("text") == text for m in client.agent_view(conversation_id)["transcript"]),
    )


def test_chunk_extensions_and_trailers_are_allowed(stack: LocalStack, case_id: str) -> None:
    target = urlsplit(stack.api_url)
    body = b'{"customer": {"name": "Chunk"}}'
    request = (
        f"POST {target.path}/cases/{case_id}/conversation HTTP/1.1\r\nHost: {target.netloc}\r\n"
        f"x-api-key: {stack.api_key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    request += b"5;ext=1\r\n" + body[:5] + b"\r\n" + f"{len(body) - 5:x}\r\n".encode() + body[5:] + b"\r\n"
    request += b"0\r\nX-Trailer: yes\r\n\r\n"
    response = raw_request(stack, request)
    assert response.startswith(b"HTTP/1.1 201"), response[:300]


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhello world\r\n0\r\n\r\n", b"-1\r\n\r\n", b"5\r\nhel"],
    ids=["not-hex", "size-mismatch", "negative", "truncated"],
)
def test_a_malformed_chunked_body_is_400_json(stack: LocalStack, case_id: str, chunks: bytes) -> None:
    target = urlsplit(stack.api_url)
    request = (
        f"POST {target.path}/cases/{case_id}/messages HTTP/1.1\r\nHost: {target.netloc}\r\n"
        f"x-api-key: {stack.api_key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode() + chunks
    with socket.create_connection((target.hostname or "", target.port or 0), timeout=10) as sock:
        sock.sendall(request)
        if chunks.endswith(b"hel"):
            sock.shutdown(socket.SHUT_WR)  # the client gives up mid-chunk
        received = b""
        while chunk := sock.recv(65536):  # the gateway closes the connection after answering
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), received[:300]
    assert b"application/json" in head and b'"error"' in body


def post_message_head(stack: LocalStack, case_id: str, framing_header: str) -> bytes:
    """A POST of a case message with only headers, `framing_header` saying how the body is framed."""
    target = urlsplit(stack.api_url)
    request = (
        f"POST {target.path}/cases/{case_id}/messages HTTP/1.1\r\nHost: {target.netloc}\r\n"
        f"x-api-key: {stack.api_key}\r\nContent-Type: application/json\r\n{framing_header}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return raw_request(stack, request)


def test_a_transfer_coding_other_than_chunked_is_refused(stack: LocalStack, case_id: str) -> None:
    response = post_message_head(stack, case_id, "Transfer-Encoding: gzip")
    assert response.startswith(b"HTTP/1.1 501"), response[:300]


def test_an_invalid_content_length_is_400(stack: LocalStack, case_id: str) -> None:
    response = post_message_head(stack, case_id, "Content-Length: 1e3")
    assert response.startswith(b"HTTP/1.1 400"), response[:300]


# ---- bodies that are not UTF-8 -------------------------------------------------------------------
@pytest.mark.parametrize("route", ["conversation", "messages"])
def test_invalid_utf8_is_refused_not_replaced(client: Client, case_id: str, route: str) -> None:
    body = b'{"text": "caf\xe9 au lait", "customer": {"name": "Ren\xe9e"}}'
    answer = client.call("POST", f"/cases/{case_id}/{route}", data=body, headers=JSON)
    error = assert_json_error(answer, 400)
    assert "JSON" in error["message"]
    assert client.call("GET", f"/cases/{case_id}").status_code == 404


def test_valid_utf8_text_arrives_intact(client: Client, case_id: str) -> None:
    text = "Crème brûlée, 東京, 🙂"
    answer = client.call("POST", f"/cases/{case_id}/messages", data=f'{{"text": "{text}"}}'.encode(), headers=JSON)
    assert answer.status_code == 202, answer.text
    conversation_id = conversation_opened_by_the_sender(client, case_id)
    wait_until(
        "the message reaches 8x8 unchanged",
        lambda: any(m.get("text") == text for m in client.agent_view(conversation_id)["transcript"]),
    )


# ---- a bad case id on every route; %2F stays inside its segment ----------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/cases/bad%24id"),
        ("GET", "/cases/" + "x" * 129),
        ("POST", "/cases/bad%20id/conversation"),
        ("POST", "/cases/bad%24id/messages"),
        ("GET", "/cases/bad%24id/events"),
        ("DELETE", "/cases/bad%24id/conversation"),
        # An encoded slash is part of the case id (which it makes invalid), not a path separator.
        ("POST", "/cases/a%2Fb/conversation"),
        ("POST", "/cases/a%2fb/messages"),
        ("GET", "/cases/a%2Fb"),
        ("GET", "/cases/a%2Fb/events"),
        ("DELETE", "/cases/a%2Fb/conversation"),
    ],
)
def test_a_bad_case_id_is_400_on_every_route(client: Client, method: str, path: str) -> None:
    answer = client.call(method, path, json={"text": "hi"} if method == "POST" else None)
    error = assert_json_error(answer, 400)
    assert error["code"] == "InvalidRequest" and "caseId" in error["message"]


def test_an_encoded_valid_case_id_opens_that_case(client: Client) -> None:
    case_id = f"order:{uuid.uuid4().hex[:8]}"
    encoded = case_id.replace(":", "%3A")
    try:
        answer = client.call("POST", f"/cases/{encoded}/conversation", json={})
        assert answer.status_code == 201, answer.text
        assert answer.json()["caseId"] == case_id
        assert client.case(case_id)["caseId"] == case_id
    finally:
        client.call("DELETE", f"/cases/{encoded}/conversation")


# ---- bodies that are not JSON, through the gateway -----------------------------------------------
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_non_json_body_is_415(client: Client, case_id: str, content_type: str) -> None:
    answer = client.call(
        "POST", f"/cases/{case_id}/messages", data=b'{"text": "hi"}', headers={"Content-Type": content_type}
    )
    assert assert_json_error(answer, 415)["code"] == "UnsupportedMediaType"
    assert client.call("GET", f"/cases/{case_id}").status_code == 404


# ---- moto under concurrent transactions ----------------------------------------------------------
CONCURRENT_TRANSACTIONS = textwrap.dedent(
    """
    import threading

    import boto3
    from botocore.config import Config
    from scripts.local_stack.aws_standin import AwsStandIn

    aws = AwsStandIn()
    aws.start()
    aws.dynamodb.create_table(
        TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    failures = []

    def work(n):
        # No SDK retries: a request moto fails must show up here, not be hidden by a retry.
        client = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
            region_name=aws.region).client("dynamodb", endpoint_url=aws.endpoint_url,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}))
        for i in range(ROUNDS):
            try:
                client.transact_write_items(TransactItems=[
                    {"Put": {"TableName": "t", "Item": {"pk": {"S": f"{n}-{i}-a"}},
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Update": {"TableName": "t", "Key": {"pk": {"S": "counter"}},
                                "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                ])
            except Exception as error:
                failures.append(repr(error)[:200])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads: t.start()
    for t in threads: t.join()
    items = aws.dynamodb.scan(TableName="t")["Items"]
    counter = next(int(i["n"]["N"]) for i in items if i["pk"]["S"] == "counter")
    print(f"failures={len(failures)} items={len(items)} counter={counter}")
    for f in failures[:3]: print(f)
    aws.stop()
    """
)


def test_concurrent_transactions_leave_moto_quiet_and_correct(tmp_path: Path) -> None:
    threads, rounds = 12, 15
    script = tmp_path / "concurrent_transactions.py"
    script.write_text(CONCURRENT_TRANSACTIONS.replace("THREADS", str(threads)).replace("ROUNDS", str(rounds)))
    result = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output and "RuntimeError" not in output, output[-3000:]
    assert f"failures=0 items={threads * rounds + 1} counter={threads * rounds}" in result.stdout, output[-3000:]


# ---- the --api switch ----------------------------------------------------------------------------
def test_the_stack_runs_the_api_it_was_given(stack: LocalStack) -> None:
    api = stack.options.api
    assert stack.environment["EIGHTXEIGHT_API"] == api
    hook = stack.emulator.engine.get_webhook(stack.webhook_id)
    assert hook.gateway is (api == "chat-gateway-v1")


def test_local_takes_the_api_option() -> None:
    assert parse_args(["--api", "chat-api-v2"]).api == "chat-api-v2"
    assert parse_args(["--api", "chat-gateway-v1", "--api-port", "9000"]).api_port == 9000
    with pytest.raises(SystemExit):
        parse_args(["--api", "chat-api-v3"])


def make(*args: str) -> str:
    command = ["make", "-s", *args]
    result = subprocess.run(command, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def has_make() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")


def test_make_local_passes_its_args(has_make: None) -> None:
    command = make("-n", "local", "ARGS=--api-port 9000 --emulator-port 0 --api chat-api-v2").strip().splitlines()
    assert command[-1].endswith("-m scripts.local_stack --api-port 9000 --emulator-port 0 --api chat-api-v2")


def test_make_help_lists_every_target_with_a_description(has_make: None) -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z0-9_-]*):(?!=)", makefile, flags=re.MULTILINE))
    listed = {
        m.group(1): m.group(2).strip() for m in re.finditer(r"^  (\S+)\s*(.*)$", make("help"), flags=re.MULTILINE)
    }
    assert targets and set(listed) == targets
    assert all(listed.values()), {t: d for t, d in listed.items() if not d}
