"""`make local`: the local stack, left running. Ctrl-C, SIGTERM, SIGHUP or the exit of its parent (`make`) stops it."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from cc_emulator.server import wait_until_interrupted
from scripts.local_stack.channel import ChannelEvent
from scripts.local_stack.stack import CONTACT_CENTER_APIS, LocalStack, PortInUse, StackOptions, default_api

# The command-line option that chooses each port (StackOptions field -> option).
PORT_OPTIONS = {
    "api_port": "--api-port",
    "emulator_port": "--emulator-port",
    "chat_port": "--chat-port",
    "moto_port": "--aws-port",
    "socket_port": "--socket-port",
}


def port_in_use_message(error: PortInUse) -> str:
    option = PORT_OPTIONS[error.option]
    return (
        f"could not start the local stack: port {error.port} on {error.host} ({error.what}) is already in use.\n"
        f"Stop what uses it, or choose another port with {option} PORT (0 = any free port), "
        f'e.g. make local ARGS="{option} {error.port + 100}"'
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.local_stack", description=__doc__)
    parser.add_argument("--api-port", type=int, default=3000, help="local API port (default 3000, 0 = any free)")
    parser.add_argument("--emulator-port", type=int, default=8088, help="8x8 emulator port (default 8088, 0 = any)")
    parser.add_argument("--chat-port", type=int, default=3001, help="customer chat page port (default 3001, 0 = any)")
    parser.add_argument("--aws-port", type=int, default=0, help="moto port (default: any free port)")
    parser.add_argument(
        "--socket-port", type=int, default=0, help="the channel's WebSocket API port (default: any free port)"
    )
    parser.add_argument("--api-key", default="local-api-key", help="the x-api-key the business API requires")
    parser.add_argument(
        "--api",
        default=default_api(),
        choices=CONTACT_CENTER_APIS,
        help="the 8x8 API the connector uses and the emulator speaks (default: $EIGHTXEIGHT_API, else %(default)s)",
    )
    parser.add_argument("--log", type=Path, help="write the functions' logs to this file instead of stdout")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--quiet", action="store_true", help="do not print requests and case events")
    return parser.parse_args(argv)


def curl_examples(stack: LocalStack) -> str:
    api, key = stack.api_url, stack.api_key
    h = f"-H 'x-api-key: {key}'"
    j = "-H 'Content-Type: application/json'"
    open_body = (
        '{"customer":{"name":"Jane Doe","email":"jane@example.com"},'
        '"history":[{"authorType":"bot","text":"Hi, I am the assistant."},'
        '{"authorType":"user","text":"A human please"}]}'
    )
    return "\n".join(
        [
            "# open a case's conversation (201 the first time, 200 after)",
            f"curl -s -X POST {h} {j} -d '{open_body}' {api}/cases/CASE-1/conversation",
            "# the customer writes (202; delivered to 8x8 through the outbound FIFO queue)",
            f'curl -s -X POST {h} {j} -d \'{{"text":"My invoice is wrong"}}\' {api}/cases/CASE-1/messages',
            "# the case: state, queue, agent",
            f"curl -s {h} {api}/cases/CASE-1",
            "# the case's timeline, paged",
            f"curl -s {h} '{api}/cases/CASE-1/events?limit=5'",
            f"curl -s {h} '{api}/cases/CASE-1/events?limit=5&after=<next from the previous page>'",
            '# a channel token for a widget: connect to its url (a WebSocket), send {"action":"resume"}',
            f"curl -s -X POST {h} {api}/cases/CASE-1/channel-tokens",
            "# the customer leaves (writing again reopens the case on the same conversation)",
            f"curl -s -X DELETE {h} {api}/cases/CASE-1/conversation",
            "# 8x8's webhook route (public, trusted only by its signature: unsigned calls get 401)",
            f'curl -s -X POST {j} -d \'{{"eventType":"QUEUED"}}\' {stack.webhook_url}',
            "# the agents' side, in the emulator",
            f"curl -s {stack.control_url}/state",
            f"curl -s {stack.control_url}/conversations/<conversationId>",
            f'curl -s -X POST {j} -d \'{{"text":"Hello from the agent"}}\' {stack.control_url}/agents/alice/reply',
            f'curl -s -X POST {j} -d \'{{"queueId":"billing"}}\' {stack.control_url}/agents/alice/transfer',
            f"curl -s -X POST {stack.control_url}/agents/bob/leave",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parent = os.getppid()  # before the slow start: its exit while we start stops us too
    args = parse_args(argv)
    lock = threading.Lock()

    def show(text: str) -> None:
        if not args.quiet:
            with lock:
                print(text, flush=True)

    def on_event(event: ChannelEvent) -> None:
        show(f"channel <- {event.case_id}: {event.describe()}")

    def on_request(method: str, path: str, status: int, ms: float) -> None:
        show(f"api {method} {path} -> {status} ({ms:.0f} ms)")

    def on_frame(connection_id: str, route: str, status: int) -> None:
        show(f"socket {route} {connection_id} -> {status}")

    options = StackOptions(
        api_port=args.api_port,
        emulator_port=args.emulator_port,
        moto_port=args.aws_port,
        chat_port=args.chat_port,
        socket_port=args.socket_port,
        api_key=args.api_key,
        api=args.api,
        parameters={"LogLevel": args.log_level},
        log_path=args.log,
        on_event=on_event,
        on_request=on_request,
        on_frame=on_frame,
        channel_webhook=True,
    )
    try:
        stack = LocalStack(options).start()
    except PortInUse as error:
        print(port_in_use_message(error), file=sys.stderr)
        return 1
    except OSError as error:
        print(f"could not start the local stack: {error}", file=sys.stderr)
        return 1
    if stack.webhook_receiver is not None:
        stack.webhook_receiver.on_delivery = lambda d: show(
            f"webhook <- {d.event.get('caseId')}: {d.event.get('type')} #{d.event.get('sequence', '-')} "
            f"(webhook-id {d.headers.get('webhook-id')}, signature verified)"
        )
    summary = stack.summary()
    print("casebridge local stack is running (Ctrl-C stops it)\n")
    print(f"  customer chat     {stack.chat_url}   (open in a browser: the business's channel)")
    print(f"  agent desk        {stack.desk_url}   (open in another tab: sign in as an agent)\n")
    print(f"  API (stage v1)    {stack.api_url}")
    print(f"  8x8 API           {summary['api']}   (--api)")
    print(f"  API key           {stack.api_key}   (header x-api-key)")
    print(f"  webhook URL       {stack.webhook_url}")
    print(
        f"  8x8 emulator      {stack.emulator.base_url}   tenant {summary['tenantId']}, channel {summary['channelId']}"
    )
    print(f"  emulator control  {stack.control_url}/state")
    if stack.socket is not None:
        print(f"  channel WebSocket {stack.socket.url}   (?token= from POST /cases/{{caseId}}/channel-tokens)")
    if stack.webhook_receiver is not None:
        print(f"  channel webhook   {stack.webhook_receiver.url}   (signed deliveries, verified and printed below)")
    print(f"  AWS (moto)        {stack.aws.endpoint_url}   e.g. aws --endpoint-url {stack.aws.endpoint_url} ...")
    print(f"  resources         {summary['resources']}")
    print("  agents            " + ", ".join(f"{a.id} on {a.queues}" for a in stack.emulator.config.agents))
    print("\n  routes:\n    " + "\n    ".join(summary["routes"]))
    print("\n" + curl_examples(stack) + "\n", flush=True)
    try:
        wait_until_interrupted(parent)
    finally:
        with contextlib.suppress(OSError):  # the terminal or pipe may be gone with our parent
            print("\nstopping the local stack...", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
