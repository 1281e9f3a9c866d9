"""EmulatorServer: the engine plus its HTTP surfaces on one local port."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from .config import EmulatorConfig
from .delivery import DeliveryLogView, DeliveryQuery, DeliveryRecord
from .desk import DeskSurface
from .engine import Engine
from .faults import FaultRule
from .http_base import EmulatorHTTPServer, Surface
from .http_control import ControlSurface
from .http_gateway import ChatGatewaySurface
from .http_metrics import RealtimeMetricsSurface
from .http_v2 import ChatApiV2Surface
from .model import V2_VERSION


class EmulatorServer(DeliveryLogView[DeliveryRecord]):
    """Run in-process: `with EmulatorServer(cfg) as emu: emu.base_url ...`."""

    def __init__(self, config: EmulatorConfig | None = None, verbose: bool = False) -> None:
        self.config = config or EmulatorConfig()
        self.engine = Engine(self.config)
        # One engine, one HTTP surface per API (dispatch by path prefix), plus the control API.
        self.surfaces: list[Surface] = [
            ChatApiV2Surface(self.engine),
            ChatGatewaySurface(self.engine),
            # Real-time Metrics v5, on its own path with its own OAuth token.
            RealtimeMetricsSurface(self.engine),
            ControlSurface(self.engine),
            # The agent desk page at /desk (a browser front end over the control API).
            DeskSurface(self.engine),
        ]
        self.verbose = verbose
        self._httpd: EmulatorHTTPServer | None = None
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        if self._httpd is not None:
            return self.base_url
        self._httpd = EmulatorHTTPServer((self.config.host, self.config.port), self.engine, self.surfaces, self.verbose)
        self.base_url = self._httpd.base_url
        if self.config.public_base_url is None:
            # Pre-signed attachment URLs point at this server unless configured otherwise.
            self.engine.public_base_url = self.base_url
        self.engine.start()
        self._httpd.serve_in_background("cc-emulator-http")
        return self.base_url

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.close()
        self.engine.stop()
        self._httpd = None

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- URLs --------------------------------------------------------------------------------

    @property
    def v2_base(self) -> str:
        """Base of the tenant-scoped Chat API v2 paths."""
        return f"{self.base_url}/vcc/{self.config.region}/chat/v2/tenant/{self.config.tenant_id}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/v2/token"

    def jwk_url(self, kid: str) -> str:
        return f"{self.base_url}/vcc/{self.config.region}/chat/v2/jwk/{kid}/public"

    @property
    def gateway_base(self) -> str:
        """Base of the Chat Gateway v1 paths (`x-api-key` auth)."""
        return f"{self.base_url}/chat-gateway/v1"

    def gateway_jwk_url(self, kid: str) -> str:
        return f"{self.gateway_base}/jwk/{kid}/public"

    def metrics_base(self, region: str = "us") -> str:
        """Base of the Real-time Metrics v5 paths (Bearer token from `token_url` with the metrics key)."""
        prefix = {"us": "", "eu": "/eu", "ap": "/au", "au": "/au", "ca": "/ca"}[region]
        return f"{self.base_url}{prefix}/analytics/cc/v5/realtime-metrics"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_emulator"

    @property
    def desk_url(self) -> str:
        """The agent desk page."""
        return f"{self.base_url}/desk"

    # -- conveniences ------------------------------------------------------------------------

    def provision(
        self, webhook_uri: str, queue_id: str | None = None, name: str = "casebridge", version: str = V2_VERSION
    ) -> tuple[str, str]:
        """Create a webhook for `webhook_uri` and a channel on `queue_id`; returns (webhook_id, channel_id).

        `version`: "v2.0" / "chat-api-v2" (default) or "Chat Gateway v1.0" / "chat-gateway-v1".
        """
        return self.engine.provision(webhook_uri, queue_id, name, version)

    def add_fault(self, kind: str, op: str = "*", count: int | None = None, **kwargs: Any) -> FaultRule:
        """e.g. add_fault("status", "post_message", count=2, status=503, retry_after=1)."""
        return self.engine.faults.add(FaultRule(kind=kind, op=op, count=count, **kwargs))

    def clear_faults(self) -> None:
        self.engine.faults.clear()

    def _select(self, query: DeliveryQuery) -> list[DeliveryRecord]:
        return query.select(self.engine.delivery.records())

    def _wait(self, query: DeliveryQuery, count: int, timeout: float) -> list[DeliveryRecord]:
        return self.engine.delivery.wait_for_count(query.select, count, timeout)

    # The name the in-process tests know.
    wait_for_delivery = DeliveryLogView.wait_for_deliveries

    def wait_for(self, predicate: Callable[[list[DeliveryRecord]], Any], timeout: float = 5.0) -> Any:
        return self.engine.delivery.wait_for(predicate, timeout)

    def wait_quiet(self, timeout: float = 5.0) -> None:
        self.engine.wait_quiet(timeout)


def wait_until_interrupted(parent_pid: int | None = None) -> None:
    """Block until Ctrl-C, SIGTERM or SIGHUP (unless ignored, as under nohup): the foreground loop of the
    command-line servers. With `parent_pid`, also until that parent process exits: `make` forwards no signal to
    its recipe's command when it is killed, so a stopped `make local` is noticed by its exit."""
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # the terminal went
        signal.signal(signal.SIGHUP, _stop)
    try:
        while not done.wait(0.5):
            if parent_pid is not None and os.getppid() != parent_pid:  # orphaned: whoever started us is gone
                return
    except KeyboardInterrupt:
        pass
