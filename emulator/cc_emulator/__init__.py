"""Offline emulator of 8x8 Contact Center Chat API v2 (webhooks, channels, conversations, agents)."""

from .config import AgentConfig, EmulatorConfig, FaultSpec, QueueConfig, ScriptConfig, TimingConfig, load_config
from .engine import Engine
from .faults import FaultRule
from .server import EmulatorServer

__all__ = [
    "AgentConfig",
    "EmulatorConfig",
    "EmulatorServer",
    "Engine",
    "FaultRule",
    "FaultSpec",
    "QueueConfig",
    "ScriptConfig",
    "TimingConfig",
    "load_config",
]
