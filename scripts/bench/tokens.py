"""Figure 2: token sharing. Many cold containers (fresh Services each, one shared table) send at once."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from moto import mock_aws

from casebridge.services import Services, build_services
from casebridge.settings import load_settings
from scripts.bench import harness as h

# 8x8's token is refreshed 120 s before it expires (TokenProvider.refresh_margin_ms): a 124 s token is
# fresh for about four seconds, so a second "lifetime" can be measured without waiting an hour.
SHORT_LIFETIME_S = 124
TOKEN_LATENCY_S = 0.15  # a slow token endpoint widens the race the lease must win


@dataclass
class TokenResult:
    containers: int
    lifetimes: int
    sends: int
    token_requests: int
    secret_reads: int
    token_table_calls: int
    slowest_wait_ms: float
    errors: int

    @property
    def met(self) -> bool:
        return self.token_requests == self.lifetimes and self.errors == 0


def run(containers: int = 20, lifetimes: int = 2) -> TokenResult:
    log = h.CallLog()
    fake = h.Fake8x8(log, h.new_signer(), token_lifetime_s=SHORT_LIFETIME_S, token_delay_s=TOKEN_LATENCY_S)
    waits: list[float] = []
    errors: list[BaseException] = []
    with mock_aws(), h.count_aws_calls(log), fake.serving():
        h.create_bench_resources()
        h.cold_container()
        h.silence_function_logs()
        settings = load_settings()
        fleet: list[Services] = [build_services(settings) for _ in range(containers)]
        log.clear()
        for lifetime in range(lifetimes):
            if lifetime:
                time.sleep(
                    SHORT_LIFETIME_S - 120 + 0.2
                )  # every token in memory and in the table is now due for refresh
            barrier = threading.Barrier(containers)

            def send(services: Services, barrier: threading.Barrier = barrier) -> None:
                try:
                    barrier.wait()
                    started = time.perf_counter()
                    services.contact_center.send_message("conv-token-bench", "hello", "user")
                    waits.append(time.perf_counter() - started)
                except BaseException as error:  # counted and reported, never hidden
                    errors.append(error)

            threads = [threading.Thread(target=send, args=(s,)) for s in fleet]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    h.cold_container()  # nothing made for this stand-in outlives it
    calls = log.snapshot()
    return TokenResult(
        containers=containers,
        lifetimes=lifetimes,
        sends=containers * lifetimes,
        token_requests=sum(1 for c in calls if c.service == "8x8" and c.operation == "token"),
        secret_reads=sum(1 for c in calls if c.service == "secretsmanager"),
        token_table_calls=sum(1 for c in calls if c.service == "dynamodb" and "TOKEN#" in str(c.params.get("Key", ""))),
        slowest_wait_ms=max(waits, default=0.0) * 1000,
        errors=len(errors),
    )
