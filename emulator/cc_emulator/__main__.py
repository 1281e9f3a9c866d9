"""CLI: python -m cc_emulator [--config FILE] [--port N] [--fault KIND[:OP[:COUNT[:STATUS]]]] ..."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from typing import Any

from .config import QUEUE_STATUSES, EmulatorConfig, FaultSpec, load_config
from .server import EmulatorServer, wait_until_interrupted


def parse_fault(text: str) -> FaultSpec:
    """KIND[:OP[:COUNT[:STATUS_OR_SECONDS]]], e.g. status:post_message:3:503, latency:*::0.5, hang:token."""
    parts = text.split(":")
    kind = parts[0]
    op = parts[1] if len(parts) > 1 and parts[1] else "*"
    count = int(parts[2]) if len(parts) > 2 and parts[2] else None
    spec = FaultSpec(kind=kind, op=op, count=count)
    if len(parts) > 3 and parts[3]:
        if kind in ("latency", "hang"):
            spec.seconds = float(parts[3])
        else:
            spec.status = int(parts[3])
    elif kind == "hang":
        spec.seconds = 30.0
    return spec


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cc_emulator", description="Offline 8x8 Contact Center emulator: Chat Gateway v1 and Chat API v2"
    )
    p.add_argument("--config", help="YAML or JSON config file")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8088, 0 = any free port)")
    p.add_argument("--tenant", help="tenant id")
    p.add_argument("--customer-id", help="customer id (x-8x8-customer-id)")
    p.add_argument("--region", choices=["us", "eu", "ca", "ap"])
    p.add_argument("--api-key")
    p.add_argument("--api-secret")
    p.add_argument("--token-ttl", type=int, help="access token lifetime in seconds")
    p.add_argument("--accept-delay", type=float, help="seconds before a scripted agent accepts")
    p.add_argument("--reply-delay", type=float, help="seconds before a scripted agent answers")
    p.add_argument("--retry-base-delay", type=float, help="first webhook retry delay in seconds")
    p.add_argument("--max-attempts", type=int, help="webhook delivery attempts per event")
    p.add_argument(
        "--fault", action="append", default=[], metavar="SPEC", help="KIND[:OP[:COUNT[:STATUS|SECONDS]]], repeatable"
    )
    p.add_argument("--provision", metavar="WEBHOOK_URI", help="create a webhook + channel for this URI at start")
    p.add_argument("--provision-queue", help="queue id for --provision (default: first queue)")
    p.add_argument(
        "--provision-api",
        choices=["chat-gateway-v1", "chat-api-v2"],
        default="chat-gateway-v1",
        help="event dialect of the webhook --provision creates (default chat-gateway-v1)",
    )
    p.add_argument(
        "--gateway-reopen",
        choices=["requeue", "needs_assignment"],
        help="a user message to an idle Gateway conversation: requeue (default) or needs_assignment",
    )
    p.add_argument(
        "--gateway-echo-is-echo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Gateway MESSAGE echoes of user/bot posts carry isEcho true (default false)",
    )
    p.add_argument(
        "--gateway-removed-accepts-messages",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a Gateway conversation whose user was removed accepts user messages (default true)",
    )
    p.add_argument("--agent-wrap-up-idle", type=float, help="seconds before an idle scripted agent leaves (0 = never)")
    p.add_argument(
        "--desk-signin-ttl", type=float, help="seconds a desk sign-in outlives its page's last heartbeat (default 30)"
    )
    p.add_argument(
        "--customer-idle",
        type=float,
        help="Gateway CONVERSATION_UPDATE idle after this much customer silence (0 = never)",
    )
    p.add_argument(
        "--queue-status",
        action="append",
        default=[],
        metavar="QUEUE=STATUS",
        help="open | closed (agents logged out) | empty (agents on break), repeatable",
    )
    p.add_argument("--metrics-api-key", help="Real-time Metrics OAuth key (default AK)")
    p.add_argument("--metrics-api-secret", help="Real-time Metrics OAuth secret (default AS)")
    p.add_argument("--metrics-refresh", type=float, help="seconds between Real-time Metrics recomputations (default 5)")
    p.add_argument("--metrics-tenant-info", help="require X-Tenant-Info with this value on Real-time Metrics calls")
    p.add_argument("--metrics-single-queue-shape", choices=["array", "object"], help="GET /queues/{id} answer (E5)")
    p.add_argument("--post-agent-minute", type=float, help="seconds one post-agent-assignment minute lasts (60)")
    p.add_argument(
        "--wrap-up-code-on-webhook",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="agent-left events carry wrapUpCode (not 8x8's behaviour; default false)",
    )
    p.add_argument(
        "--gateway-read-receipts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Gateway ACTIVITY read-receipts when an agent reads (GATEWAY.md T19; default false)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return p


def _set_given(target: object, values: dict[str, Any]) -> None:
    """Sets each attribute whose command-line value was given (None: not given, keep the config's)."""
    for name, value in values.items():
        if value is not None:
            setattr(target, name, value)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    cfg = load_config(args.config)
    overrides = {
        "host": args.host,
        "port": args.port,
        "tenant_id": args.tenant,
        "customer_id": args.customer_id,
        "region": args.region,
        "api_key": args.api_key,
        "api_secret": args.api_secret,
        "token_ttl": args.token_ttl,
        "gateway_reopen": args.gateway_reopen,
        "gateway_echo_is_echo": args.gateway_echo_is_echo,
        "gateway_removed_accepts_messages": args.gateway_removed_accepts_messages,
        "metrics_api_key": args.metrics_api_key,
        "metrics_api_secret": args.metrics_api_secret,
        "metrics_tenant_info": args.metrics_tenant_info,
        "metrics_single_queue_shape": args.metrics_single_queue_shape,
        "wrap_up_code_on_webhook": args.wrap_up_code_on_webhook,
        "gateway_read_receipts": args.gateway_read_receipts,
    }
    _set_given(cfg, overrides)
    # These flags are named after the TimingConfig fields they set.
    timing_names = (
        *("accept_delay", "reply_delay", "retry_base_delay", "max_attempts", "agent_wrap_up_idle"),
        *("customer_idle", "post_agent_minute"),
        "desk_signin_ttl",
    )
    _set_given(cfg.timings, {name: getattr(args, name) for name in timing_names})
    _set_given(cfg.timings, {"metrics_refresh": args.metrics_refresh})
    for item in args.queue_status:
        queue_id, _, status = item.partition("=")
        queue = next((q for q in cfg.queues if q.id == queue_id), None)
        if queue is None or status not in QUEUE_STATUSES:
            raise SystemExit(f"--queue-status {item}: want QUEUE=open|closed|empty for a configured queue")
        queue.status = status
    cfg.faults.extend(parse_fault(f) for f in args.fault)
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    server = EmulatorServer(cfg, verbose=args.verbose)
    try:
        base = server.start()
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        print(
            f"port {cfg.port} on {cfg.host} is already in use: stop what uses it, or choose another port with "
            "--port PORT (0 = any free port)",
            file=sys.stderr,
        )
        return 1
    print(f"8x8 CC emulator listening on {base}", flush=True)
    print(f"  Chat Gateway v1: {server.gateway_base}  (x-api-key)", flush=True)
    print(f"  Chat API v2:     {server.v2_base}", flush=True)
    print(f"  token (v2, metrics): {server.token_url}", flush=True)
    print(f"  Real-time Metrics: {server.metrics_base()}  (Bearer, key {cfg.metrics_api_key})", flush=True)
    print(f"  control:         {server.control_url}/state", flush=True)
    if args.provision:
        webhook_id, channel_id = server.provision(args.provision, args.provision_queue, version=args.provision_api)
        print(f"  provisioned ({args.provision_api}) webHookId={webhook_id} channelId={channel_id}", flush=True)
    try:
        wait_until_interrupted()
    finally:
        server.stop()
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
