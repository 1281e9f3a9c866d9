"""Logger, Metrics and (when asked for) the X-Ray SDK tracer, set up once per container and shared by every module.

Lambda's Active tracing (template.yaml) traces every invocation without any SDK in the package. The X-Ray SDK adds
subsegments per AWS and HTTP call, at a price in cold start (the SDK and its patching of botocore and requests)
and in package size (its botocore dependency). It is off unless CASEBRIDGE_XRAY_SDK=true, and then the SDK must be
in the layer too (`aws-xray-sdk` in layers/common/requirements.txt, then `make lock`; docs/performance.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

__all__ = ["MetricUnit", "logger", "metrics", "tracer", "xray_sdk_enabled"]

SERVICE = "casebridge"
Handler = TypeVar("Handler", bound=Callable[..., Any])


def xray_sdk_enabled() -> bool:
    return os.environ.get("CASEBRIDGE_XRAY_SDK", "").strip().lower() == "true"


class HandlerTracing:
    """The one tracing hook the handlers use. Without the SDK, the decorator returns the handler untouched."""

    def __init__(self, sdk_tracer: Any | None) -> None:
        self.sdk_tracer = sdk_tracer

    def capture_lambda_handler(self, *, capture_response: bool = True) -> Callable[[Handler], Handler]:
        if self.sdk_tracer is None:
            return _untouched
        decorate = self.sdk_tracer.capture_lambda_handler(capture_response=capture_response)
        return cast("Callable[[Handler], Handler]", decorate)


def _untouched(handler: Handler) -> Handler:
    return handler


def _sdk_tracer() -> Any | None:
    if not xray_sdk_enabled():
        return None
    from aws_lambda_powertools.tracing import Tracer  # noqa: PLC0415 - only when SDK tracing is asked for

    return Tracer(service=SERVICE)


logger = Logger(service=SERVICE)
tracer = HandlerTracing(_sdk_tracer())
metrics = Metrics(namespace="Casebridge", service=SERVICE)
