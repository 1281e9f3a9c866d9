"""`make bench` / `python -m scripts.bench [--quick]`: what the connector costs per message and per event.

Prints six figures, each beside its target (docs/performance.md explains them and records a run).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Sequence

from scripts.bench import coldstart, cost, counts, e2e, throughput, tokens


def verdict(met: bool | None) -> str:
    return "" if met is None else ("MET" if met else "MISSED")


def mb(size: int | None) -> str:
    return "n/a" if size is None else f"{size / 1e6:.2f} MB"


def section(title: str) -> None:
    print(f"\n== {title}")


def print_counts(rows: list[counts.Row]) -> None:
    section("1. Calls per operation (real lambda_handlers; AWS = moto in-process, 8x8 = counting fake)")
    print(
        f"{'scenario':<52}{'8x8':>4}{'tok':>4}{'jwk':>4}{'DDB':>5}{'SQS':>4}{'EB':>4}{'SM':>4}"
        f"{'RRU':>5}{'WRU':>5}{'code ms':>9}  target / verdict"
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
        "DynamoDB, SQS, EventBridge, Secrets Manager calls;\n  RRU/WRU = DynamoDB request units; code ms = our "
        "code's time (median), AWS and 8x8 round trips and their clients excluded."
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


def print_cold(floor_ms: float, results: list[coldstart.ColdStart], sizes: coldstart.Sizes, repeats: int) -> None:
    section(f"3. Cold start (fresh subprocess per sample, median of {repeats}, Lambda-like env with tracing on)")
    print(f"  import floor (boto3 + requests + aws_lambda_powertools): {floor_ms:.0f} ms")
    for r in results:
        print(
            f"  {r.name:<24} import {r.import_ms:6.0f} ms  ratio {r.ratio:4.2f} (target <= 1.3) -> {verdict(r.met):<7}"
            f" first-use init +{r.init_ms:4.0f} ms, peak RSS {r.rss_mb:4.0f} MB"
        )
    fn = ", ".join(f"{name} {size / 1e3:.1f} kB" for name, size in sizes.functions.items())
    print(f"  unzipped: functions {fn}; layer code (casebridge) {sizes.layer_code / 1e3:.0f} kB")
    if sizes.layer_deps is None:
        print(f"  layer dependencies: not measured: {sizes.note}")
    else:
        print(
            f"  layer dependencies (arm64 / cp313 wheels, boto3+botocore excluded): {mb(sizes.layer_deps)}; "
            f"runtime-provided packages pip pulls in anyway ({', '.join(sizes.runtime_dupes)}): "
            f"{mb(sizes.layer_deps_runtime_dupes)}"
        )


def print_throughput(t: throughput.Throughput) -> None:
    section("4. Webhook verification and intake overhead (one thread, AWS stubbed, warm container)")
    print(
        f"  verification: {t.verifications_per_s:,.0f} verifications/s ({t.verify_us:.0f} us each) "
        f"(target >= 5,000) -> {verdict(t.verify_met)}"
    )
    print(
        f"  intake handler, per event: p50 {t.intake_ms_p50:.3f} ms, p99 {t.intake_ms_p99:.3f} ms over {t.events} "
        f"events (target p50 <= 1 ms) -> {verdict(t.intake_met)}"
    )


def print_e2e(result: object) -> None:
    section("5. End to end through the local stack")
    print(e2e.describe(result))


def cost_model(rows: list[counts.Row], t: throughput.Throughput) -> None:
    section(f"6. Cost model (arm64; prices: {cost.PRICES_DATE}; latencies assumed, see docs/performance.md)")
    by_name = {r.name: r for r in rows}
    steady = by_name["steady-state message (accept + deliver)"]
    accept = [r for r in rows if r.name.strip() == "of which API accept"][-1]
    deliver_ms = max(0.0, steady.code_ms - accept.code_ms)
    message = cost.message_path(
        accept.code_ms, deliver_ms, steady.of("dynamodb"), steady.units["RRU"], steady.units["WRU"]
    )
    events = [by_name[f"webhook {kind}"] for kind in counts.WEBHOOK_TYPES]
    webhook = cost.webhook_path(
        t.intake_ms_p50,
        round(statistics.mean(r.of("dynamodb") for r in events)),
        round(statistics.mean(r.of("events") for r in events)),
        statistics.mean(r.units["RRU"] for r in events),
        statistics.mean(r.units["WRU"] for r in events),
    )
    for label, path in (("per 1M customer messages", message), ("per 1M webhook events", webhook)):
        for memory in cost.MEMORY_SIZES_MB:
            parts = path.breakdown(memory)
            durations = "+".join(f"{d:.0f}" for d in path.durations(memory))
            detail = ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if v)
            print(f"  {label:<26} {memory:>4} MB: ${path.total(memory):7.2f}  (Lambda {durations} ms; {detail})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no pip install, no end-to-end run")
    parser.add_argument("--skip-e2e", action="store_true", help="leave out the end-to-end run (figure 5)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    print(
        f"casebridge bench ({'quick' if args.quick else 'full'}) on {platform.machine()}, "
        f"Python {platform.python_version()}, {platform.system()}; one run, figures are counts and ratios"
    )

    rows = counts.run(quick=args.quick)
    print_counts(rows)
    sys.stdout.flush()

    print_tokens(tokens.run(containers=20, lifetimes=2 if args.quick else 3))
    sys.stdout.flush()

    repeats = 2 if args.quick else 7
    floor_ms, cold = coldstart.cold_starts(repeats)
    print_cold(floor_ms, cold, coldstart.sizes(install=not args.quick), repeats)
    sys.stdout.flush()

    t = throughput.run(seconds=0.3 if args.quick else 1.5, events=300 if args.quick else 3000)
    print_throughput(t)
    sys.stdout.flush()

    if args.quick or args.skip_e2e:
        section("5. End to end through the local stack")
        print("  not run (--quick / --skip-e2e)")
    else:
        print_e2e(e2e.run())
    cost_model(rows, t)
    print(f"\nbench finished in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
