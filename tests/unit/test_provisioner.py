"""casebridge.provisioning and the provisioner custom resource.

Both APIs run against the 8x8 emulator (a real local HTTP server serving the Gateway and v2 surfaces on one
engine), with a real webhook receiver as the stack's webhook URL. `responses` pins what the emulator does not show:
the exact Gateway headers and bodies, and paging to a later page. The custom-resource tests run crhelper's real
protocol against a local HTTPS server standing in for CloudFormation's response URL.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import responses
from moto import mock_aws

from casebridge import provisioning
from casebridge.provisioning import (
    GATEWAY,
    V2,
    Credentials,
    ProvisioningError,
    deprovision_contact_center,
    parse_credentials,
    provision_contact_center,
)
from cc_emulator import pytest_plugin
from cc_emulator.pytest_plugin import WebhookReceiver
from cc_emulator.server import EmulatorServer
from tests.support.aws import aws_client
from tests.support.lambdas import LambdaContext, load_function
from tests.support.tls import self_signed

# The emulator plugin's fixtures, for the rig below.
emulator_config = pytest_plugin.emulator_config
emulator = pytest_plugin.emulator
webhook_receiver = pytest_plugin.webhook_receiver

NAME = "casebridge-test-stack"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:casebridge/8x8-AbCdEf"


class Rig(NamedTuple):
    """What each test on the emulator takes together (the `rig` fixture): 8x8, serving both APIs on one engine;
    the stack's webhook receiver; and the API under test."""

    emulator: EmulatorServer
    webhook_receiver: WebhookReceiver
    api: str


@pytest.fixture(params=[GATEWAY, V2])
def rig(
    request: pytest.FixtureRequest,
    emulator: EmulatorServer,
    webhook_receiver: WebhookReceiver,
) -> Rig:
    return Rig(emulator, webhook_receiver, str(request.param))


def args(emu: EmulatorServer, api: str, credentials: Any = None) -> tuple[str, str, str, str, Credentials]:
    """The emulator as the 8x8 place of `api` (it serves both surfaces on one engine)."""
    cfg = emu.config
    creds = credentials or Credentials(cfg.api_key, cfg.api_secret if api == V2 else "", SECRET_ARN)
    return api, emu.base_url, cfg.tenant_id, cfg.region, creds


def webhooks(emu: EmulatorServer) -> list[Any]:
    return emu.engine.list_webhooks()


def channels(emu: EmulatorServer) -> list[Any]:
    return emu.engine.list_channels()


# ---- credentials ------------------------------------------------------------------------------------------------
def test_each_api_needs_its_own_secret_shape() -> None:
    assert parse_credentials(GATEWAY, '{"apiKey": "k"}', SECRET_ARN) == Credentials("k", "", SECRET_ARN)
    assert parse_credentials(V2, {"apiKey": "k", "apiSecret": "s"}).api_secret == "s"
    with pytest.raises(ProvisioningError, match=r'has no "apiSecret" \(chat-api-v2 needs \{"apiKey", "apiSecret"\}'):
        parse_credentials(V2, '{"apiKey": "k"}', SECRET_ARN)
    with pytest.raises(ProvisioningError, match=rf'{SECRET_ARN} has no "apiKey"'):
        parse_credentials(GATEWAY, '{"key": "k"}', SECRET_ARN)
    with pytest.raises(ProvisioningError, match="is not JSON"):
        parse_credentials(GATEWAY, "k", SECRET_ARN)
    with pytest.raises(ProvisioningError, match="not one of chat-gateway-v1, chat-api-v2"):
        parse_credentials("chat-api-v3", '{"apiKey": "k"}')


# ---- both APIs on the emulator -----------------------------------------------------------------------------------
def test_create_registers_a_webhook_and_a_channel_on_the_queue(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    webhook_id, channel_id = provision_contact_center(*args(emulator, api), webhook_receiver.url, "101", NAME)
    [hook] = webhooks(emulator)
    assert (hook.id, hook.name, hook.uri, hook.version) == (
        webhook_id,
        NAME,
        webhook_receiver.url,
        provisioning.EVENT_VERSION[api],
    )
    [channel] = channels(emulator)
    assert (channel.id, channel.webhook_id, channel.queue_id, channel.name) == (channel_id, webhook_id, "101", NAME)
    # 8x8 verified the URL: the stack's intake must already answer WEB_HOOK_VERIFY when this runs.
    webhook_receiver.wait_for_events("WEB_HOOK_VERIFY")


def test_a_cloudformation_retry_makes_nothing_twice(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    first = provision_contact_center(*args(emulator, api), webhook_receiver.url, "101", NAME)
    second = provision_contact_center(*args(emulator, api), webhook_receiver.url, "101", NAME)
    assert first == second
    assert len(webhooks(emulator)) == 1
    assert len(channels(emulator)) == 1


def test_an_existing_webhook_with_the_same_name_and_uri_is_adopted(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    other = emulator.engine.create_webhook("someone-else", "https://elsewhere.example/hook")
    mine = emulator.engine.create_webhook(NAME, webhook_receiver.url)
    webhook_id, _ = provision_contact_center(*args(emulator, api), webhook_receiver.url, "102", NAME)
    assert webhook_id == mine.id
    assert {h.id for h in webhooks(emulator)} == {other.id, mine.id}
    [channel] = channels(emulator)
    assert (channel.webhook_id, channel.queue_id) == (mine.id, "102")


def test_an_adopted_channel_on_another_queue_is_moved_to_the_queue_asked_for(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    webhook_id, channel_id = provision_contact_center(*args(emulator, api), webhook_receiver.url, "101", NAME)
    assert provision_contact_center(*args(emulator, api), webhook_receiver.url, "102", NAME) == (webhook_id, channel_id)
    assert emulator.engine.get_channel(channel_id).queue_id == "102"


def test_update_repoints_the_channel_to_a_new_queue_and_the_webhook_to_a_new_url(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    ids = provision_contact_center(*args(emulator, api), webhook_receiver.url, "101", NAME)
    new_url = webhook_receiver.url + "?stage=v2"
    assert provision_contact_center(*args(emulator, api), new_url, "102", NAME, existing=ids) == ids
    assert emulator.engine.get_channel(ids[1]).queue_id == "102"
    assert emulator.engine.get_webhook(ids[0]).uri == new_url
    assert len(webhooks(emulator)) == len(channels(emulator)) == 1


def test_update_of_a_webhook_that_is_gone_provisions_afresh(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    old_webhook, old_channel = provision_contact_center(*args(emulator, api), webhook_receiver.url, "101", NAME)
    emulator.engine.delete_channel(old_channel)
    emulator.engine.delete_webhook(old_webhook)
    old_ids = (old_webhook, old_channel)
    new_ids = provision_contact_center(*args(emulator, api), webhook_receiver.url, "102", NAME, existing=old_ids)
    assert new_ids != (old_webhook, old_channel)
    assert emulator.engine.get_channel(new_ids[1]).queue_id == "102"


def test_delete_removes_both_and_deleting_again_is_fine(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    ids = provision_contact_center(*args(emulator, api), webhook_receiver.url, "101", NAME)
    deprovision_contact_center(*args(emulator, api), *ids)
    assert webhooks(emulator) == channels(emulator) == []
    deprovision_contact_center(*args(emulator, api), *ids)  # 404: already gone


def test_delete_without_ids_finds_what_a_failed_create_left_by_name_and_uri(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    keep = emulator.engine.create_webhook("someone-else", webhook_receiver.url)
    provision_contact_center(*args(emulator, api), webhook_receiver.url, "101", NAME)
    deprovision_contact_center(*args(emulator, api), None, None, name=NAME, webhook_url=webhook_receiver.url)
    assert [h.id for h in webhooks(emulator)] == [keep.id]
    assert channels(emulator) == []


def test_8x8_refusing_the_credentials_is_a_reason_naming_the_secret(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    wrong = Credentials("not-the-key", "not-the-secret", SECRET_ARN)
    with pytest.raises(ProvisioningError) as refused:
        provision_contact_center(*args(emulator, api, wrong), webhook_receiver.url, "101", NAME)
    assert (
        str(refused.value)
        == {
            V2: f"8x8 refused the API key and secret (401): check apiKey and apiSecret in {SECRET_ARN}",
            GATEWAY: f"8x8 refused the API key (401): check the apiKey in {SECRET_ARN}",
        }[api]
    )
    assert len(str(refused.value)) <= 256  # CloudFormation's status reason
    assert webhooks(emulator) == []


def test_8x8_refusing_the_queue_names_the_parameter_and_leaves_no_webhook_behind(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    with pytest.raises(ProvisioningError) as refused:
        provision_contact_center(*args(emulator, api), webhook_receiver.url, "999", NAME)
    message = str(refused.value)
    assert message.startswith("8x8 refused the channel on queue 999 (check EightByEightQueueId) (400: ")
    assert "999" in message.split("(400: ", 1)[1]  # 8x8's own validation text comes along
    assert len(message) <= 256
    assert webhooks(emulator) == channels(emulator) == []


def test_another_tenant_is_a_reason_naming_the_tenant_parameter(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    _, base, _, region, creds = args(emulator, api)
    with pytest.raises(ProvisioningError, match=r"\(403: .*\): check EightByEightTenantId \(other-tenant\)"):
        provision_contact_center(api, base, "other-tenant", region, creds, webhook_receiver.url, "101", NAME)


def test_an_unreachable_8x8_is_a_reason_naming_the_base_url() -> None:
    creds = Credentials("k", "s", SECRET_ARN)
    with pytest.raises(
        ProvisioningError, match=r"cannot reach 8x8 at http://127.0.0.1:9 \(.*\): check EightByEightBaseUrl"
    ):
        provision_contact_center(V2, "http://127.0.0.1:9", "t1", "us", creds, "https://x.example/h", "101", NAME)


def test_no_time_left_is_a_reason_not_a_hang(rig: Rig) -> None:
    emulator, webhook_receiver, api = rig
    with pytest.raises(ProvisioningError, match="did not finish answering in the time CloudFormation allows"):
        provision_contact_center(
            *args(emulator, api), webhook_receiver.url, "101", NAME, deadline=time.monotonic() + 0.5
        )
    assert webhooks(emulator) == []


# ---- Chat Gateway v1 request shapes and paging (responses) ----------------------------------------
GW = "https://api.8x8.test"
GW_CREDS = Credentials("gw-key", "", SECRET_ARN)
HOOK_URL = "https://abc.execute-api.us-east-1.amazonaws.com/v1/webhooks/8x8"


def hal(key: str, items: list[dict[str, Any]], page: int = 0, total_pages: int = 1) -> dict[str, Any]:
    return {
        "_embedded": {key: items},
        "_links": {"self": {"href": "..."}},
        "page": {"size": 50, "number": page, "totalElements": len(items), "totalPages": total_pages},
    }


@responses.activate
def test_gateway_create_sends_the_api_key_the_tenant_and_both_version_keys() -> None:
    responses.get(f"{GW}/chat-gateway/v1/webhooks", json=hal("webhooks", []))
    hook = responses.post(f"{GW}/chat-gateway/v1/webhooks", json={"id": "wh-1", "name": NAME, "uri": HOOK_URL})
    responses.get(f"{GW}/chat-gateway/v1/channels", json=hal("channels", []))
    chan = responses.post(f"{GW}/chat-gateway/v1/channels", json={"id": "ch-1", "webHookId": "wh-1"})
    assert provision_contact_center(GATEWAY, GW, "acme", "us", GW_CREDS, HOOK_URL, "101", NAME) == ("wh-1", "ch-1")
    for call in responses.calls:
        assert call.request.headers["x-api-key"] == "gw-key"
        assert call.request.headers["X-8x8-Tenant"] == "acme"
        assert "Authorization" not in call.request.headers
    assert json.loads(hook.calls[0].request.body) == {
        "name": NAME,
        "uri": HOOK_URL,
        "version": "Chat Gateway v1.0",
        "notificationVersion": "Chat Gateway v1.0",
    }
    assert json.loads(chan.calls[0].request.body) == {
        "name": NAME,
        "webHookId": "wh-1",
        "routingOptions": {"type": "queue", "id": "101"},
    }


@responses.activate
def test_gateway_adopts_a_webhook_found_on_a_later_page() -> None:
    responses.get(
        f"{GW}/chat-gateway/v1/webhooks",
        match=[responses.matchers.query_param_matcher({"page": "0", "size": "50"})],
        json=hal("webhooks", [{"id": "other", "name": NAME, "uri": "https://old.example/h"}], 0, 2),
    )
    responses.get(
        f"{GW}/chat-gateway/v1/webhooks",
        match=[responses.matchers.query_param_matcher({"page": "1", "size": "50"})],
        json=hal("webhooks", [{"id": "wh-9", "name": NAME, "uri": HOOK_URL}], 1, 2),
    )
    responses.get(
        f"{GW}/chat-gateway/v1/channels",
        json=hal("channels", [{"id": "ch-9", "name": NAME, "webHookId": "wh-9", "routingOptions": {"id": "101"}}]),
    )
    assert provision_contact_center(GATEWAY, GW, "acme", "us", GW_CREDS, HOOK_URL, "101", NAME) == ("wh-9", "ch-9")
    assert [c.request.method for c in responses.calls] == ["GET", "GET", "GET"]  # nothing created


@responses.activate
def test_gateway_refusing_the_api_key_names_the_secret() -> None:
    responses.get(
        f"{GW}/chat-gateway/v1/webhooks",
        status=401,
        json={"message": "Access Denied", "errors": [{"message": "Invalid API key", "code": "access_denied"}]},
    )
    with pytest.raises(ProvisioningError) as refused:
        provision_contact_center(GATEWAY, GW, "acme", "us", GW_CREDS, HOOK_URL, "101", NAME)
    assert str(refused.value) == f"8x8 refused the API key (401): check the apiKey in {SECRET_ARN}"


@responses.activate
def test_gateway_update_repoints_with_put_and_delete_treats_404_as_gone() -> None:
    hook = responses.put(f"{GW}/chat-gateway/v1/webhooks/wh-1", json={"id": "wh-1"})
    chan = responses.put(f"{GW}/chat-gateway/v1/channels/ch-1", json={"id": "ch-1"})
    known = ("wh-1", "ch-1")
    ids = provision_contact_center(GATEWAY, GW, "acme", "us", GW_CREDS, HOOK_URL, "102", NAME, existing=known)
    assert ids == ("wh-1", "ch-1")
    assert json.loads(hook.calls[0].request.body)["version"] == "Chat Gateway v1.0"
    assert json.loads(chan.calls[0].request.body)["routingOptions"] == {"type": "queue", "id": "102"}
    responses.delete(f"{GW}/chat-gateway/v1/channels/ch-1", status=404, json={"message": "not found", "errors": []})
    responses.delete(f"{GW}/chat-gateway/v1/webhooks/wh-1", status=204)
    deprovision_contact_center(GATEWAY, GW, "acme", "us", GW_CREDS, "wh-1", "ch-1")


# ---- the custom resource, through crhelper, answering a local "CloudFormation" -----------------------------------
@dataclass
class CloudFormationStandIn:
    """HTTPS server recording the PUTs crhelper makes to the pre-signed response URL."""

    answers: list[dict[str, Any]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.answers) >= count, timeout):
                raise TimeoutError(f"{len(self.answers)} CloudFormation answers, expected {count}")
            return list(self.answers)


@pytest.fixture
def cloudformation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudFormationStandIn]:
    certificate = self_signed(tmp_path, "cfn")
    cert, key = certificate.cert, certificate.key
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # crhelper verifies the response URL's certificate
    stand_in = CloudFormationStandIn()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_PUT(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with stand_in._cond:
                stand_in.answers.append({"path": self.path, **body})
                stand_in._cond.notify_all()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    stand_in.url = f"https://localhost:{server.server_address[1]}/response"
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()


def cfn_event(request_type: str, url: str, props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": f"{url}?request={request_type}",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/casebridge/1b2c3d4e",
        "RequestId": f"req-{request_type}",
        "LogicalResourceId": "EightByEightProvisioning",
        "ResourceType": "Custom::EightByEightProvisioning",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", **props},
        **extra,
    }


def v2_props(emu: EmulatorServer, webhook_url: str, secret_name: str, secret: dict[str, str]) -> dict[str, Any]:
    """The custom resource's properties for Chat API v2 on the emulator, queue 101, with `secret` stored
    under `secret_name` (inside mock_aws)."""
    secret_arn = aws_client("secretsmanager").create_secret(Name=secret_name, SecretString=json.dumps(secret))["ARN"]
    return {
        "Api": V2,
        "BaseUrl": emu.base_url,
        "TenantId": emu.config.tenant_id,
        "Region": emu.config.region,
        "SecretArn": secret_arn,
        "QueueId": "101",
        "Name": NAME,
        "WebhookUrl": webhook_url,
    }


def test_the_custom_resource_answers_cloudformation_on_create_update_and_delete(
    emulator: EmulatorServer,
    webhook_receiver: WebhookReceiver,
    cloudformation: CloudFormationStandIn,
) -> None:
    with mock_aws():
        secret = {"apiKey": emulator.config.api_key, "apiSecret": emulator.config.api_secret}
        props = v2_props(emulator, webhook_receiver.url, "casebridge/8x8", secret)
        app = load_function("provisioner")
        app.lambda_handler(cfn_event("Create", cloudformation.url, props), LambdaContext())
        [created] = cloudformation.wait(1)
        assert created["Status"] == "SUCCESS", created["Reason"]
        assert created["RequestId"] == "req-Create"
        [hook], [channel] = webhooks(emulator), channels(emulator)
        assert created["Data"] == {"WebhookId": hook.id, "ChannelId": channel.id}
        physical_id = created["PhysicalResourceId"]
        assert provisioning.parse_physical_id(physical_id) == (hook.id, channel.id)

        moved = {**props, "QueueId": "102"}
        update = cfn_event(
            "Update", cloudformation.url, moved, PhysicalResourceId=physical_id, OldResourceProperties=props
        )
        app.lambda_handler(update, LambdaContext())
        updated = cloudformation.wait(2)[1]
        assert (updated["Status"], updated["PhysicalResourceId"]) == ("SUCCESS", physical_id)
        assert updated["Data"] == created["Data"]
        assert emulator.engine.get_channel(channel.id).queue_id == "102"

        delete = cfn_event("Delete", cloudformation.url, moved, PhysicalResourceId=physical_id)
        app.lambda_handler(delete, LambdaContext())
        deleted = cloudformation.wait(3)[2]
        assert (deleted["Status"], deleted["PhysicalResourceId"]) == ("SUCCESS", physical_id)
        assert webhooks(emulator) == channels(emulator) == []


def test_the_custom_resource_fails_with_the_reason_and_its_rollback_succeeds(
    emulator: EmulatorServer,
    webhook_receiver: WebhookReceiver,
    cloudformation: CloudFormationStandIn,
) -> None:
    with mock_aws():
        props = v2_props(
            emulator, webhook_receiver.url, "casebridge/8x8-gateway-shape", {"apiKey": emulator.config.api_key}
        )
        secret_arn = props["SecretArn"]
        app = load_function("provisioner")
        app.lambda_handler(cfn_event("Create", cloudformation.url, props), LambdaContext())
        [failed] = cloudformation.wait(1)
        assert failed["Status"] == "FAILED"
        assert failed["Reason"] == f'{secret_arn} has no "apiSecret" (chat-api-v2 needs {{"apiKey", "apiSecret"}})'
        # CloudFormation rolls back with a Delete of crhelper's generated id: nothing to delete, and no
        # ROLLBACK_FAILED stack for a secret that is still wrong.
        rollback = cfn_event("Delete", cloudformation.url, props, PhysicalResourceId=failed["PhysicalResourceId"])
        app.lambda_handler(rollback, LambdaContext())
        assert cloudformation.wait(2)[1]["Status"] == "SUCCESS"
        assert webhooks(emulator) == []
