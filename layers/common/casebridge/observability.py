"""Logger, Tracer and Metrics, set up once per container and shared by every module."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

__all__ = ["MetricUnit", "logger", "metrics", "tracer"]

SERVICE = "casebridge"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="Casebridge", service=SERVICE)
