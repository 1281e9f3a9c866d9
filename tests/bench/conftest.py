"""The bench is a script that sets the functions' environment in its own process; under pytest that process is
shared with every later test, so each bench test gets its environment back as it was."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
