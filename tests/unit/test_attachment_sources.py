"""The copier fetches agents' files only from 8x8: https, 8x8's file hosts (a setting), public addresses after DNS,
every redirect hop checked, and 8x8's credentials never sent anywhere but the configured 8x8 base URL.

The URL comes from a webhook body. Before, the copier fetched whatever it named (http to loopback or a private
address included, redirects followed), stored the answer and served it through the business API."""
# ruff: noqa: PLC0415, F811 - casebridge imported after the environment is set; fixtures imported

from __future__ import annotations

import dataclasses
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
import responses

from tests.support.connector import map_case
from tests.support.signing import WebhookSigner
from tests.unit.test_attachments import (  # noqa: F401 - `gateway` and `file_server` are fixtures
    CASE,
    CONVERSATION,
    PNG,
    agent_message,
    copy_jobs,
    file_server,
    gateway,
    run_copier,
)

FILES = "https://files.8x8.test"
PUBLIC = "93.184.216.34"


def policy(**changes: Any) -> Any:
    from casebridge.attachments.sources import SourcePolicy

    addresses = {"files.8x8.test": [PUBLIC], "metadata.8x8.test": ["169.254.169.254"], "inside.8x8.test": ["10.0.0.5"]}
    made = SourcePolicy(
        frozenset({"files.8x8.test", "metadata.8x8.test", "inside.8x8.test"}),
        resolver=lambda host, port: addresses[host],
    )
    return replace(made, **changes)


def refused(url: str, **changes: Any) -> bool:
    from casebridge.attachments import sources

    try:
        sources.fetch(policy(**changes), url, 5.0).close()
    except sources.SourceRefused:
        return True
    return False


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://files.8x8.test/att", "cleartext"),
        ("https://evil.example/att", "not one of 8x8's file hosts"),
        ("https://metadata.8x8.test/latest/meta-data", "link-local after DNS"),
        ("https://inside.8x8.test/admin", "private after DNS"),
        ("https://127.0.0.1/att", "loopback, and not a file host"),
        ("ftp://files.8x8.test/att", "another scheme"),
    ],
)
def test_only_https_to_8x8s_file_hosts_at_public_addresses_is_fetched(url: str, why: str) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(url, body=b"secret")
        assert refused(url), why
        assert len(rsps.calls) == 0, f"{why}: never requested"


def test_a_redirect_off_8x8s_hosts_or_to_cleartext_is_not_followed() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{FILES}/to-http", status=302, headers={"Location": "http://10.0.0.5/latest/meta-data"})
        rsps.get(f"{FILES}/to-other", status=302, headers={"Location": "https://evil.example/x"})
        rsps.get(f"{FILES}/fine", status=302, headers={"Location": f"{FILES}/file"})
        rsps.get(f"{FILES}/file", body=b"the file")
        inside = rsps.get("http://10.0.0.5/latest/meta-data", body=b"credentials")
        other = rsps.get("https://evil.example/x", body=b"x")
        assert refused(f"{FILES}/to-http") and refused(f"{FILES}/to-other")
        assert (inside.call_count, other.call_count) == (0, 0)
        assert not refused(f"{FILES}/fine"), "a redirect within 8x8's hosts is followed"


def test_loopback_over_http_only_when_the_setting_allows_it() -> None:
    loopback = {"files.8x8.test": ["127.0.0.1"]}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get("http://files.8x8.test/att", body=b"x")
        assert refused("http://files.8x8.test/att", resolver=lambda host, port: loopback[host])
        assert not refused("http://files.8x8.test/att", resolver=lambda host, port: loopback[host], loopback_http=True)


def test_the_default_hosts_are_8x8s_documented_ones_and_loopback_is_off() -> None:
    from casebridge.settings import load_settings

    settings = load_settings({"CASES_TABLE_NAME": "t", "EIGHTXEIGHT_TENANT_ID": "acme"})
    assert settings.attachment_source_hosts == "api.8x8.com"
    assert settings.attachment_sources_loopback == "false"


def test_a_webhooks_http_url_to_this_machine_is_not_fetched_by_default(
    gateway: SimpleNamespace, webhook_signer: WebhookSigner
) -> None:
    """With the settings' defaults (no loopback, 8x8's hosts), an agent file whose URL names this machine over
    http is taken from 8x8's API instead; the URL is never requested."""
    from casebridge import webhooks
    from casebridge.services import set_services

    settings = dataclasses.replace(
        gateway.services.settings, attachment_source_hosts="api.8x8.com", attachment_sources_loopback="false"
    )
    set_services(replace(gateway.services, settings=settings))
    gateway.services = replace(gateway.services, settings=settings)
    map_case(CASE, CONVERSATION)
    gateway.files.files["att-5"] = ("image/png", PNG)
    files = [{"id": "att-5", "type": "image", "fileName": "x.png", "preSignedUrl": f"{gateway.files.url}/signed/att-5"}]
    webhooks.handle_webhook(gateway.services, *agent_message(webhook_signer, files))
    assert run_copier(gateway, copy_jobs(gateway)) == {"batchItemFailures": []}
    assert gateway.files.hits == ["/content/att-5"], "only the API's content endpoint (the test's fake 8x8)"


def test_8x8s_credentials_never_follow_a_redirect_off_the_base_url() -> None:
    """8x8's content endpoint answering a redirect: not followed (requests would have sent x-api-key and
    X-8x8-Tenant along to wherever it points); the copy is retried, nothing reaches the other host."""
    from casebridge.attachments.copier import _from_api
    from casebridge.contact_center.chat_gateway_v1 import ChatGatewayV1Client
    from casebridge.errors import ContactCenterError

    base = "https://api.8x8.test"
    client = ChatGatewayV1Client(base, "acme", lambda: "the-api-key")
    content = f"{base}/chat-gateway/v1/conversations/conv-1/attachments/att-1/content"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(content, status=302, headers={"Location": f"{FILES}/signed/att-1"})
        signed = rsps.get(f"{FILES}/signed/att-1", body=b"the file")
        services = SimpleNamespace(contact_center=client)
        with pytest.raises(ContactCenterError):
            _from_api(services, {"conversationId": "conv-1", "contactCenterId": "att-1"})  # type: ignore[arg-type]
        assert signed.call_count == 0
        assert rsps.calls[0].request.headers["x-api-key"] == "the-api-key", "the base URL does get them"
