"""`make bench` / `python -m scripts.bench [--quick]`: what the connector costs per message and per event.

Prints six figures, each beside its target (docs/performance.md explains them and records a run).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Sequence

from scripts.bench import alternatives, coldstart, cost, counts, e2e, push, throughput, tokens
from scripts.bench import harness as h
from tests.support.events import api_gateway_event, webhook_body, webhook_event


def verdict(met: bool | None) -> str:
    return "" if met is None else ("MET" if met else "MISSED")


def mb(size: int | None) -> str:
    return "n/a" if size is None else f"{size / 1e6:.2f} MB"


def section(title: str) -> None:
    print(f"\n== {title}")


def print_counts(rows: list[counts.Row]) -> None:
    section(
        "1. Calls per operation (real lambda_handlers; AWS = moto as a server via real botocore, 8x8 = counting fake)"
    )
    print(
        f"{'scenario':<52}{'8x8':>4}{'tok':>4}{'jwk':>4}{'DDB':>5}{'SQS':>4}{'EB':>4}{'SM':>4}"
        f"{'RRU':>5}{'WRU':>5}{'CPU ms':>9}  target / verdict"
    )
    for r in rows:
        api_8x8 = r.cc - r.of("8x8", "token") - r.of("8x8", "jwk")
        target = f"{r.target} -> {verdict(r.met)}" if r.target else ""
        print(
            f"{r.name:<52}{api_8x8:>4}{r.of('8x8', 'token'):>4}{r.of('8x8', 'jwk'):>4}{r.of('dynamodb'):>5}"
            f"{r.of('sqs'):>4}{r.of('events'):>4}{r.of('secretsmanager'):>4}"
            f"{r.units.get('RRU', 0):>5g}{r.units.get('WRU', 0):>5g}{r.code_ms:>9.2f}  {target}"
        )
        ddb = ", ".join(f"{k.split('.')[1]} {n}" for k, n in sorted(r.calls.items()) if k.startswith("dynamodb."))
        if r.of("dynamodb") > 2:
            print(f"{'':<6}DynamoDB: {ddb}")
    print(
        "  8x8 = Chat API calls (create/post/leave); tok = token requests; jwk = key fetches; DDB/SQS/EB/SM = "
        "DynamoDB, SQS, EventBridge, Secrets Manager calls;\n  RRU/WRU = DynamoDB request units; CPU ms = the invoking "
        "thread's CPU (median): our code + botocore's serialising and signing + requests; the servers run elsewhere."
    )


def print_tokens(result: tokens.TokenResult) -> None:
    section("2. Token sharing (cold containers, fresh Services each, one shared table, slow token endpoint)")
    print(
        f"  {result.containers} containers x {result.lifetimes} token lifetimes = {result.sends} concurrent sends: "
        f"{result.token_requests} token requests (target {result.lifetimes}, 1 per lifetime) -> {verdict(result.met)}"
    )
    print(
        f"  secret reads {result.secret_reads}; DynamoDB calls on the token item {result.token_table_calls} "
        f"(waiting peers poll every 50 ms); slowest send {result.slowest_wait_ms:.0f} ms; errors {result.errors}"
    )


def print_cold(result: coldstart.ColdStarts, sizes: coldstart.Sizes, repeats: int) -> None:
    section(
        f"3. Cold start as deployed ({repeats} pairs of fresh processes; Python 3.13; layer built as sam build does)"
    )
    if not result.handlers:
        print(f"  not measured: {result.note}")
    else:
        print(
            f"  {result.python}; floor (boto3 precompiled as the runtime ships it + requests + Powertools): "
            f"{result.floor_ms:.0f} ms"
        )
        for r in result.handlers:
            print(
                f"  {r.name:<24} import {r.import_ms:5.0f} ms  ratio median {r.ratio:4.2f} (pairs {r.ratio_low:4.2f}-"
                f"{r.ratio_high:4.2f}) target <= 1.3 -> {verdict(r.met)}"
            )
        for r in result.baseline:
            print(
                f"  alternative: layer as before (no .pyc, X-Ray SDK on) {r.name:<24} import {r.import_ms:5.0f} ms  "
                f"ratio {r.ratio:4.2f} ({r.ratio_low:4.2f}-{r.ratio_high:4.2f})"
            )
    if sizes.layer_bytes is None:
        print(f"  layer size: not measured: {sizes.note}")
    else:
        sam = f"; .aws-sam/build/CommonLayer {mb(sizes.sam_layer_bytes)}" if sizes.sam_layer_bytes else ""
        print(
            f"  layer (arm64, as it ships): {mb(sizes.layer_bytes)} unzipped ({sizes.layer_bytes / 2**20:.1f} MiB), "
            f"{sizes.layer_files} files, {sizes.pyc_files} .pyc; runtime packages in it: "
            f"{', '.join(sizes.runtime_dupes) or 'none'} (target <= 30 MB) -> {verdict(sizes.met)}{sam}"
        )


def print_memory(found: dict[str, dict[str, tuple[int, int]]]) -> None:
    section("3b. Peak memory (clean Python 3.13 child: import the handler from the built layer, run one request)")
    if not found:
        print("  not measured (no Python 3.13 or no built layer)")
    for api, rows in found.items():
        text = ", ".join(f"{name} {kib / 1024:.0f} MiB (HTTP {status})" for name, (status, kib) in rows.items())
        print(f"  {api}: {text}")


def print_throughput(t: throughput.Throughput, rows: list[counts.Row]) -> None:
    section("4. Webhook verification and the intake's CPU per event (one thread, warm container)")
    print(
        f"  verification: {t.verifications_per_s:,.0f} verifications/s ({t.verify_us:.0f} us each) "
        f"(target >= 5,000) -> {verdict(t.verify_met)}"
    )
    text = next(r for r in rows if r.name == "webhook TEXT")
    print(
        f"  intake handler with real botocore against moto's server: {text.code_ms:.2f} ms CPU per event (median of "
        f"{text.runs}); with in-memory fakes instead of botocore: p50 {t.intake_ms_p50:.3f} ms, p99 "
        f"{t.intake_ms_p99:.3f} ms over {t.events} events"
    )


def print_e2e(result: object) -> None:
    section("5. End to end through the local stack")
    print(e2e.describe(result))


def memory_events() -> dict[str, dict[str, object]]:
    """One request per handler that needs no 8x8: a message accepted (SQS), a case read (DynamoDB), a webhook
    refused for its signature (the intake's parsing and verification path)."""
    body = webhook_body("TEXT", "conv-memory")
    return {
        "outbound_sender": api_gateway_event(
            "POST", "/cases/{caseId}/messages", path_parameters={"caseId": "memory"}, body=json.dumps({"text": "hi"}),
            headers={"Content-Type": "application/json"},
        ),
        "conversation_lifecycle": api_gateway_event("GET", "/cases/{caseId}", path_parameters={"caseId": "memory"}),
        "webhook_intake": webhook_event({"Content-Type": "application/json", "x-8x8-signature": "bad"}, body),
    }  # fmt: skip


def peak_memory() -> dict[str, dict[str, tuple[int, int]]]:
    found: dict[str, dict[str, tuple[int, int]]] = {}
    with h.moto_server() as endpoint:
        resources = h.create_bench_resources()
        extra = {**resources.environment(), "AWS_ENDPOINT_URL": endpoint}
        for api in ("chat-gateway-v1", "chat-api-v2"):
            found[api] = coldstart.peak_memory(extra, memory_events(), api)
    return found


def webhook_duration_ms(cpu_ms: float, dynamodb: int, events: int, memory_mb: int) -> float:
    return cost.Invocation(cpu_ms, dynamodb=dynamodb, events=events).duration_ms(memory_mb)


def print_alternative(rows: list[counts.Row], alt: list[counts.Row], batching: alternatives.Batching) -> None:
    section("7. Beside the obvious alternative (same run, same stand-ins): token per call, read-then-write, no caching")
    by_name = {r.name: r for r in rows}
    ours = {
        "message delivery": by_name["steady-state message (accept + deliver)"],
        "webhook event": by_name["webhook TEXT"],
    }
    accept = [r for r in rows if r.name.strip() == "of which API accept"][-1]
    for (label, mine), theirs in zip(ours.items(), alt, strict=True):
        cpu = mine.code_ms - (accept.code_ms if label == "message delivery" else 0)
        print(
            f"  {label:<17} casebridge: AWS {mine.aws - (1 if label == 'message delivery' else 0)}, 8x8 {mine.cc}, "
            f"CPU {cpu:5.2f} ms, {mine.units.get('RRU', 0):g} RRU + {mine.units.get('WRU', 0):g} WRU   |   "
            f"straightforward: AWS {theirs.aws}, 8x8 {theirs.cc} (token/key each time), CPU {theirs.code_ms:5.2f} ms, "
            f"{theirs.units.get('RRU', 0):g} RRU + {theirs.units.get('WRU', 0):g} WRU"
        )
    print(
        f"  publishing: PutEvents of 1 event {batching.cpu_us_per_event_single:.0f} us CPU per event; of 10 events "
        f"{batching.cpu_us_per_event_batched:.0f} us per event ({batching.events} events; EventBridge bills per event "
        f"either way, batching saves calls and CPU)"
    )


def cost_model(rows: list[counts.Row], alt: list[counts.Row]) -> None:
    section(
        f"6. Cost model and throughput (arm64; prices: {cost.PRICES_DATE}; latencies assumed, see docs/performance.md)"
    )
    by_name = {r.name: r for r in rows}
    steady = by_name["steady-state message (accept + deliver)"]
    accept = [r for r in rows if r.name.strip() == "of which API accept"][-1]
    deliver_ms = max(0.0, steady.code_ms - accept.code_ms)
    message = cost.message_path(
        accept.code_ms, deliver_ms, steady.of("dynamodb"), steady.units["RRU"], steady.units["WRU"]
    )
    events = [by_name[f"webhook {kind}"] for kind in counts.WEBHOOK_TYPES]
    webhook_cpu = statistics.median(r.code_ms for r in events)
    webhook_ddb = round(statistics.mean(r.of("dynamodb") for r in events))
    webhook_eb = round(statistics.mean(r.of("events") for r in events))
    webhook = cost.webhook_path(
        webhook_cpu,
        webhook_ddb,
        webhook_eb,
        statistics.mean(r.units["RRU"] for r in events),
        statistics.mean(r.units["WRU"] for r in events),
    )
    alt_deliver, alt_webhook = alt
    alt_message = cost.message_path(
        accept.code_ms, alt_deliver.code_ms, alt_deliver.of("dynamodb"), alt_deliver.units["RRU"],
        alt_deliver.units["WRU"], contact_center=alt_deliver.cc, secrets=alt_deliver.of("secretsmanager"),
    )  # fmt: skip
    alt_hook = cost.webhook_path(
        alt_webhook.code_ms, alt_webhook.of("dynamodb"), alt_webhook.of("events"), alt_webhook.units["RRU"],
        alt_webhook.units["WRU"], contact_center=alt_webhook.cc,
    )  # fmt: skip
    for label, path, other in (
        ("per 1M customer messages", message, alt_message),
        ("per 1M webhook events", webhook, alt_hook),
    ):
        for memory in cost.MEMORY_SIZES_MB:
            parts = path.breakdown(memory)
            durations = "+".join(f"{d:.0f}" for d in path.durations(memory))
            detail = ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if v)
            print(
                f"  {label:<26} {memory:>4} MB: ${path.total(memory):7.2f}  (Lambda {durations} ms; {detail})"
                f"  | straightforward ${other.total(memory):7.2f}"
            )
    for memory in cost.MEMORY_SIZES_MB:
        ours = webhook_duration_ms(webhook_cpu, webhook_ddb, webhook_eb, memory)
        theirs = alt_hook.durations(memory)[0]
        print(
            f"  webhook throughput per container at {memory} MB: {cost.events_per_second(ours):5.0f} events/s "
            f"({ours:.1f} ms each)  | straightforward {cost.events_per_second(theirs):5.0f} events/s ({theirs:.1f} ms)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no end-to-end run")
    parser.add_argument("--skip-e2e", action="store_true", help="leave out the end-to-end run (figure 5)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    print(
        f"casebridge bench ({'quick' if args.quick else 'full'}) on {platform.machine()}, "
        f"Python {platform.python_version()} (handlers: Python 3.13 from the built layer), {platform.system()}; one run"
    )

    rows = counts.run(quick=args.quick)
    print_counts(rows)
    sys.stdout.flush()

    print_tokens(tokens.run(containers=20, lifetimes=2 if args.quick else 3))
    sys.stdout.flush()

    repeats = 3 if args.quick else 15  # the pairs' spread on a shared 2-core machine is +-30%: 15 steady the median
    print_cold(coldstart.cold_starts(repeats), coldstart.sizes(), repeats)
    print_memory(peak_memory())
    sys.stdout.flush()

    t = throughput.run(seconds=0.3 if args.quick else 1.5, events=300 if args.quick else 3000)
    print_throughput(t, rows)
    sys.stdout.flush()

    if args.quick or args.skip_e2e:
        section("5. End to end through the local stack")
        print("  not run (--quick / --skip-e2e)")
    else:
        section("5. End to end through the local stack (target p50 <= 150 ms, p99 <= 400 ms)")
        for api in ("chat-gateway-v1", "chat-api-v2"):
            print(f"  {api}:")
            print(e2e.describe(e2e.run(api=api)))
            sys.stdout.flush()
    if args.quick or args.skip_e2e:
        section("8. Pushes to the channel through the local stack")
        print("  not run (--quick / --skip-e2e)")
    else:
        section(f"8. Pushes to the channel through the local stack (target p50 <= {push.TARGET_P50_MS:.0f} ms)")
        print(push.describe(push.run(), push.run(webhook=True)))
        sys.stdout.flush()
    alt, batching = alternatives.run(quick=args.quick)
    cost_model(rows, alt)
    print_alternative(rows, alt, batching)
    print(f"\nbench finished in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
