"""casebridge.contact_center.webhook_signature: 8x8's detached, unencoded-payload JWS (RS256)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import pytest
import requests
import responses

from casebridge.contact_center.webhook_signature import (
    JwkCache,
    WebhookVerifier,
    http_jwk_fetcher,
    jwk_url_template,
    signing_payload,
)
from casebridge.errors import SigningKeyUnavailable, Unauthorized
from tests.support.fakes import StubJwkFetcher
from tests.support.samples import sample_body

TENANT = "acme-tenant"
BASE = "https://api.8x8.test"
BODY = sample_body("chat-api-v2/webhook_text.json")  # raw bytes with non-ASCII text and whitespace


@contextmanager
def refused(reason: str) -> Iterator[None]:
    """Every signature failure gets the same answer (REFUSED); the reason is in the log only."""
    from casebridge.contact_center import webhook_signature  # noqa: PLC0415
    from casebridge.observability import logger  # noqa: PLC0415

    with patch.object(logger, "warning") as warning, pytest.raises(Unauthorized) as raised:
        yield
    assert raised.value.message == webhook_signature.REFUSED
    reasons = [str(c.kwargs.get("extra", {}).get("reason", "")) for c in warning.call_args_list]
    assert any(reason in r for r in reasons), reasons


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.fixture
def fetcher(webhook_signer: Any) -> StubJwkFetcher:
    return StubJwkFetcher({webhook_signer.kid: webhook_signer.public_jwk})


@pytest.fixture
def verifier(fetcher: StubJwkFetcher) -> WebhookVerifier:
    return WebhookVerifier(TENANT, JwkCache(fetcher), tolerance_s=300)


def test_valid_signature_verifies(verifier: WebhookVerifier, webhook_signer: Any, fetcher: StubJwkFetcher) -> None:
    headers = webhook_signer.headers(BODY, event_id="evt-1", retry=2)
    delivery = verifier.verify(headers, BODY)
    assert (delivery.tenant_id, delivery.event_id, delivery.retry, delivery.kid) == (TENANT, "evt-1", 2, "test-kid-1")
    assert delivery.customer_id == "acme-customer"
    assert delivery.transmission_time == int(headers["x-8x8-transmission-time"])
    assert fetcher.calls == ["test-kid-1"]


def test_payload_layout_matches_the_contract() -> None:
    payload = signing_payload(b"{}", "cid-1", "eid-1", 3, "tid-1", 1700000000000)
    assert payload == b'{"checksum":2745614147,"cid":"cid-1","eid":"eid-1","retry":3,"tid":"tid-1","tt":1700000000000}'


def test_crc_is_over_the_raw_bytes_not_reserialised_json(verifier: WebhookVerifier, webhook_signer: Any) -> None:
    assert any(b > 127 for b in BODY) and b"\n  " in BODY, "the sample must carry non-ASCII bytes and whitespace"
    headers = webhook_signer.headers(BODY)
    verifier.verify(headers, BODY)
    reserialised = json.dumps(json.loads(BODY)).encode()
    assert reserialised != BODY
    with pytest.raises(Unauthorized):
        verifier.verify(headers, reserialised)
    compact = json.dumps(json.loads(BODY), separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(Unauthorized):
        verifier.verify(headers, compact)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-8x8-retry", "1"),
        ("x-8x8-event-id", "another-event"),
        ("x-8x8-tenant-id", "other-tenant"),
        ("x-8x8-customer-id", "other-customer"),
    ],
)
def test_each_tampered_header_is_refused(
    verifier: WebhookVerifier, webhook_signer: Any, header: str, value: str
) -> None:
    headers = webhook_signer.headers(BODY)
    verifier.verify(dict(headers), BODY)
    headers[header] = value
    with pytest.raises(Unauthorized):
        verifier.verify(headers, BODY)


def test_tampered_transmission_time_is_refused(verifier: WebhookVerifier, webhook_signer: Any) -> None:
    headers = webhook_signer.headers(BODY)
    headers["x-8x8-transmission-time"] = str(int(headers["x-8x8-transmission-time"]) + 1)
    with pytest.raises(Unauthorized):
        verifier.verify(headers, BODY)


def test_a_tenant_signed_correctly_but_not_ours_is_refused(verifier: WebhookVerifier, webhook_signer: Any) -> None:
    headers = webhook_signer.headers(BODY, tenant_id="other-tenant")
    with refused("tenant"):
        verifier.verify(headers, BODY)


@pytest.mark.parametrize("position", [0, len(BODY) // 2, len(BODY) - 1])
def test_any_changed_body_byte_is_refused(verifier: WebhookVerifier, webhook_signer: Any, position: int) -> None:
    headers = webhook_signer.headers(BODY)
    tampered = bytearray(BODY)
    tampered[position] ^= 0x01
    with pytest.raises(Unauthorized):
        verifier.verify(headers, bytes(tampered))


def test_signature_by_another_key_is_refused(
    verifier: WebhookVerifier, webhook_signer: Any, other_rsa_private_key: Any
) -> None:
    headers = webhook_signer.headers(BODY, key=other_rsa_private_key)
    with refused("does not verify"):
        verifier.verify(headers, BODY)


def _header(**changes: Any) -> dict[str, Any]:
    header = {"b64": False, "crit": ["b64"], "kid": "test-kid-1", "alg": "RS256"}
    for name, value in changes.items():
        if value is ...:
            header.pop(name)
        else:
            header[name] = value
    return header


@pytest.mark.parametrize(
    "protected",
    [
        pytest.param(_header(alg="HS256"), id="alg-HS256"),
        pytest.param(_header(alg="none"), id="alg-none"),
        pytest.param(_header(alg="RS512"), id="alg-RS512"),
        pytest.param(_header(alg="PS256"), id="alg-PS256"),
        pytest.param(_header(alg=...), id="alg-missing"),
        pytest.param(_header(crit=...), id="crit-missing"),
        pytest.param(_header(crit=["b64", "exp"]), id="crit-extra"),
        pytest.param(_header(crit=[]), id="crit-empty"),
        pytest.param(_header(b64=True), id="b64-true"),
        pytest.param(_header(b64=...), id="b64-missing"),
        pytest.param(_header(kid="../x"), id="kid-traversal"),
        pytest.param(_header(kid="a/b"), id="kid-slash"),
        pytest.param(_header(kid="k" * 129), id="kid-too-long"),
        pytest.param(_header(kid=""), id="kid-empty"),
        pytest.param(_header(kid=7), id="kid-not-string"),
        pytest.param(_header(kid=...), id="kid-missing"),
        pytest.param(_header(jku="https://evil.example/keys"), id="extra-param-jku"),
        pytest.param(_header(x5u="https://evil.example/cert"), id="extra-param-x5u"),
    ],
)
def test_bad_protected_header_is_refused_before_any_key_fetch(
    verifier: WebhookVerifier, webhook_signer: Any, fetcher: StubJwkFetcher, protected: dict[str, Any]
) -> None:
    headers = webhook_signer.headers(BODY, protected=protected)
    with pytest.raises(Unauthorized):
        verifier.verify(headers, BODY)
    assert fetcher.calls == []


@pytest.mark.parametrize(
    "signature",
    [
        "not-a-jws",
        "a.b.c",  # attached payload
        "..c2ln",  # no protected header
        b64url(b"not json") + "..c2ln",
        b64url(b"[1,2]") + "..c2ln",
        b64url(b'{"alg":"RS256"') + "..c2ln",
        b64url(json.dumps(_header()).encode()) + "..",  # no signature
        b64url(json.dumps(_header()).encode()) + "..sig with spaces",
        "\u00e9" * 10 + "..c2ln",
    ],
)
def test_malformed_signature_is_refused_before_any_key_fetch(
    verifier: WebhookVerifier, webhook_signer: Any, fetcher: StubJwkFetcher, signature: str
) -> None:
    headers = webhook_signer.headers(BODY)
    headers["x-8x8-signature"] = signature
    with pytest.raises(Unauthorized):
        verifier.verify(headers, BODY)
    assert fetcher.calls == []


@pytest.mark.parametrize("missing", ["x-8x8-signature", "x-8x8-event-id", "x-8x8-retry", "x-8x8-transmission-time"])
def test_missing_header_is_refused(
    verifier: WebhookVerifier, webhook_signer: Any, fetcher: StubJwkFetcher, missing: str
) -> None:
    headers = webhook_signer.headers(BODY)
    del headers[missing]
    with refused("missing"):
        verifier.verify(headers, BODY)
    assert fetcher.calls == []


@pytest.mark.parametrize(("header", "value"), [("x-8x8-retry", "one"), ("x-8x8-transmission-time", "1e12")])
def test_non_integer_numbers_are_refused(
    verifier: WebhookVerifier, webhook_signer: Any, fetcher: StubJwkFetcher, header: str, value: str
) -> None:
    headers = webhook_signer.headers(BODY)
    headers[header] = value
    with pytest.raises(Unauthorized):
        verifier.verify(headers, BODY)
    assert fetcher.calls == []


@pytest.mark.parametrize("skew_s", [-301, 301, -3600, 86400])
def test_transmission_time_outside_the_window_is_refused(
    verifier: WebhookVerifier, webhook_signer: Any, fetcher: StubJwkFetcher, skew_s: int
) -> None:
    tt = int(time.time() * 1000) + skew_s * 1000
    headers = webhook_signer.headers(BODY, tt=tt)  # correctly signed, just too old / too far ahead
    with refused("window"):
        verifier.verify(headers, BODY)
    assert fetcher.calls == []


def test_transmission_time_inside_the_window_verifies(verifier: WebhookVerifier, webhook_signer: Any) -> None:
    for skew_s in (-290, 290):
        verifier.verify(webhook_signer.headers(BODY, tt=int(time.time() * 1000) + skew_s * 1000), BODY)


def test_key_endpoint_down_with_a_cached_key_still_verifies(
    verifier: WebhookVerifier, webhook_signer: Any, fetcher: StubJwkFetcher
) -> None:
    verifier.verify(webhook_signer.headers(BODY), BODY)
    fetcher.down = True
    verifier.verify(webhook_signer.headers(BODY, event_id="evt-2"), BODY)
    assert fetcher.calls == ["test-kid-1"]


def test_key_endpoint_down_without_a_key_is_a_5xx_not_a_401(
    verifier: WebhookVerifier, webhook_signer: Any, fetcher: StubJwkFetcher
) -> None:
    fetcher.down = True
    with pytest.raises(SigningKeyUnavailable) as raised:
        verifier.verify(webhook_signer.headers(BODY), BODY)
    assert not isinstance(raised.value, Unauthorized)
    assert raised.value.status_code >= 500


def test_unknown_kid_is_refused(verifier: WebhookVerifier, webhook_signer: Any, fetcher: StubJwkFetcher) -> None:
    headers = webhook_signer.headers(BODY, protected=_header(kid="unknown-kid"))
    with refused("unknown"):
        verifier.verify(headers, BODY)
    with pytest.raises(Unauthorized):
        verifier.verify(webhook_signer.headers(BODY, protected=_header(kid="unknown-kid")), BODY)
    assert fetcher.calls == ["unknown-kid"], "an unknown kid is remembered for a while, not fetched per request"


def test_jwk_cache_fetches_once_per_kid(webhook_signer: Any, other_rsa_private_key: Any) -> None:
    other = type(webhook_signer)(other_rsa_private_key, kid="test-kid-2")
    fetcher = StubJwkFetcher({"test-kid-1": webhook_signer.public_jwk, "test-kid-2": other.public_jwk})
    cache = JwkCache(fetcher)
    verifier = WebhookVerifier(TENANT, cache)
    for _ in range(5):
        verifier.verify(webhook_signer.headers(BODY), BODY)
        verifier.verify(other.headers(BODY), BODY)
    assert sorted(fetcher.calls) == ["test-kid-1", "test-kid-2"]
    assert cache.fetches == 2


def test_jwk_that_is_not_an_rsa_key_is_a_5xx(webhook_signer: Any) -> None:
    fetcher = StubJwkFetcher({"test-kid-1": {"kty": "oct", "k": "c2VjcmV0"}})
    verifier = WebhookVerifier(TENANT, JwkCache(fetcher))
    with pytest.raises(SigningKeyUnavailable):
        verifier.verify(webhook_signer.headers(BODY), BODY)


# ---- the real HTTP key fetcher, against a `responses` stand-in of 8x8's JWK endpoint ---------------
def _jwk_url(kid: str) -> str:
    return f"{BASE}/vcc/us/chat/v2/jwk/{kid}/public"


@responses.activate
def test_http_fetcher_serves_the_key_and_is_called_once(webhook_signer: Any) -> None:
    route = responses.get(_jwk_url("test-kid-1"), json=webhook_signer.public_jwk)
    verifier = WebhookVerifier(TENANT, JwkCache(http_jwk_fetcher(jwk_url_template("chat-api-v2", BASE, "us"))))
    verifier.verify(webhook_signer.headers(BODY), BODY)
    verifier.verify(webhook_signer.headers(BODY), BODY)
    assert route.call_count == 1


@responses.activate
def test_http_fetcher_accepts_the_jwk_sent_as_a_json_string(webhook_signer: Any) -> None:
    responses.get(_jwk_url("test-kid-1"), json=json.dumps(webhook_signer.public_jwk))
    verifier = WebhookVerifier(TENANT, JwkCache(http_jwk_fetcher(jwk_url_template("chat-api-v2", BASE, "us"))))
    verifier.verify(webhook_signer.headers(BODY), BODY)


@responses.activate
def test_http_fetcher_404_means_unknown_kid(webhook_signer: Any) -> None:
    responses.get(_jwk_url("test-kid-1"), status=404, json={"message": "not found"})
    verifier = WebhookVerifier(TENANT, JwkCache(http_jwk_fetcher(jwk_url_template("chat-api-v2", BASE, "us"))))
    with pytest.raises(Unauthorized):
        verifier.verify(webhook_signer.headers(BODY), BODY)


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500, "json": {"message": "boom"}},
        {"status": 503, "body": "unavailable"},
        {"status": 429, "json": {}},
        {"body": requests.ConnectionError("refused")},
        {"body": requests.ReadTimeout("slow")},
        {"status": 200, "json": [1, 2]},
    ],
)
@responses.activate
def test_http_fetcher_failures_are_5xx(webhook_signer: Any, failure: dict[str, Any]) -> None:
    responses.get(_jwk_url("test-kid-1"), **failure)
    verifier = WebhookVerifier(TENANT, JwkCache(http_jwk_fetcher(jwk_url_template("chat-api-v2", BASE, "us"))))
    with pytest.raises(SigningKeyUnavailable):
        verifier.verify(webhook_signer.headers(BODY), BODY)


@responses.activate
def test_http_fetcher_down_after_caching_still_verifies(webhook_signer: Any) -> None:
    responses.get(_jwk_url("test-kid-1"), json=webhook_signer.public_jwk)
    verifier = WebhookVerifier(TENANT, JwkCache(http_jwk_fetcher(jwk_url_template("chat-api-v2", BASE, "us"))))
    verifier.verify(webhook_signer.headers(BODY), BODY)
    responses.replace(responses.GET, _jwk_url("test-kid-1"), status=500)
    verifier.verify(webhook_signer.headers(BODY), BODY)
