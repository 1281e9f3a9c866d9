"""EmulatorServer: the engine plus its HTTP surfaces on one local port."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from .config import EmulatorConfig
from .delivery import DeliveryRecord
from .desk import DeskSurface
from .engine import Engine
from .faults import FaultRule
from .http_base import EmulatorHTTPServer, Surface
from .http_control import ControlSurface, filter_records
from .http_gateway import ChatGatewaySurface
from .http_v2 import ChatApiV2Surface
from .model import V2_VERSION


class EmulatorServer:
    """Run in-process: `with EmulatorServer(cfg) as emu: emu.base_url ...`."""

    def __init__(self, config: EmulatorConfig | None = None, verbose: bool = False) -> None:
        self.config = config or EmulatorConfig()
        self.engine = Engine(self.config)
        # One engine, one HTTP surface per API (dispatch by path prefix), plus the control API.
        self.surfaces: list[Surface] = [
            ChatApiV2Surface(self.engine),
            ChatGatewaySurface(self.engine),
            ControlSurface(self.engine),
            # The agent desk page at /desk (a browser front end over the control API).
            DeskSurface(self.engine),
        ]
        self.verbose = verbose
        self._httpd: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        if self._httpd is not None:
            return self.base_url
        self._httpd = EmulatorHTTPServer((self.config.host, self.config.port), self.engine, self.surfaces, self.verbose)
        host, port = str(self._httpd.server_address[0]), int(self._httpd.server_address[1])
        shown = f"[{host}]" if ":" in str(host) else str(host)
        self.base_url = f"http://{shown}:{port}"
        if self.config.public_base_url is None:
            # Pre-signed attachment URLs point at this server unless configured otherwise.
            self.engine.public_base_url = self.base_url
        self.engine.start()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="cc-emulator-http", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)
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

    def deliveries(
        self, event_type: str | None = None, conversation_id: str | None = None, ok_only: bool = False
    ) -> list[DeliveryRecord]:
        return filter_records(self.engine.delivery.records(), event_type, conversation_id, 0, ok_only)

    def wait_for(self, predicate: Callable[[list[DeliveryRecord]], Any], timeout: float = 5.0) -> Any:
        return self.engine.delivery.wait_for(predicate, timeout)

    def wait_for_delivery(
        self,
        event_type: str | None = None,
        conversation_id: str | None = None,
        count: int = 1,
        ok_only: bool = True,
        timeout: float = 5.0,
    ) -> list[DeliveryRecord]:
        """Block until `count` matching attempts are logged; returns them."""

        def enough(records: list[DeliveryRecord]) -> list[DeliveryRecord] | None:
            found = filter_records(records, event_type, conversation_id, 0, ok_only)
            return found if len(found) >= count else None

        result: list[DeliveryRecord] = self.wait_for(enough, timeout)
        return result

    def wait_quiet(self, timeout: float = 5.0) -> None:
        self.engine.wait_quiet(timeout)


def wait_until_interrupted() -> None:
    """Block until Ctrl-C or SIGTERM: the foreground loop of the command-line servers."""
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
