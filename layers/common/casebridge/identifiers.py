"""Identifiers the business API accepts, in one place (no request models: the webhook intake imports this too)."""

from __future__ import annotations

import re

CASE_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
