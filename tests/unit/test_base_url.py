"""The 8x8 base URL may be cleartext http:// only to this machine, sam local's Docker host included."""

from __future__ import annotations

import json

import pytest

from casebridge.contact_center.http import require_safe_base_url
from casebridge.errors import ConfigurationError
from tests.support.paths import ROOT


@pytest.mark.parametrize(
    "url",
    ["https://api.8x8.com/", "http://127.0.0.1:8088", "http://localhost:8088", "http://host.docker.internal:8088"],
)
def test_allowed(url: str) -> None:
    assert require_safe_base_url(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://api.8x8.com", "http://10.0.0.5:8088", "ftp://api.8x8.com", "https://"])
def test_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        require_safe_base_url(url)


@pytest.mark.parametrize("api", ["chat-gateway-v1", "chat-api-v2"])
def test_the_sam_local_sample_environment_is_allowed(api: str) -> None:
    env = json.loads((ROOT / "events" / f"env.{api}.json").read_text())
    require_safe_base_url(env["Parameters"]["EIGHTXEIGHT_BASE_URL"])
