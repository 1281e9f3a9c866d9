"""template.yaml against the code: handlers exist, every API route is served, runtime and data settings.
(cfn-lint and `sam validate` run separately in `make test`.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from casebridge.contact_center import webhook_gateway, webhook_v2
from casebridge.provisioning import ResourceRequest
from casebridge.services import set_services
from casebridge.settings import Settings, get_settings, load_settings
from tests.support.signing import SIGNATURE_HEADERS
from tests.unit.unit_support import EVENTS, ROOT, invoke, load_event

FUNCTION_DIRS = {
    "WebhookIntakeFunction": "webhook_intake",
    "OutboundSenderFunction": "outbound_sender",
    "ConversationLifecycleFunction": "conversation_lifecycle",
    "ContactCenterProvisionerFunction": "provisioner",
    "AttachmentCopierFunction": "attachment_copier",
    "ChannelSocketFunction": "channel_socket",
    "ChannelPushFunction": "channel_push",
    "ChannelWebhookSenderFunction": "channel_webhook_sender",
    "BusinessHoursCheckFunction": "business_hours_check",
    "EscalationTimersFunction": "escalation_timers",
    "OutboxSweeperFunction": "outbox_sweeper",
}
API_DIRS = ("chat-gateway-v1", "chat-api-v2")  # each 8x8 API's webhook samples and environment
# The webhook event types each 8x8 API sends that casebridge knows (webhook_gateway.py, webhook_v2.py).
WEBHOOK_EVENT_TYPES = {
    "chat-gateway-v1": webhook_gateway.KNOWN_EVENT_TYPES | {"WEB_HOOK_VERIFY"},
    "chat-api-v2": frozenset({"WEB_HOOK_VERIFY", "QUEUED", "AGENT_JOINED", "AGENT_LEFT", "TRANSFER", "TEXT"}),
}
WEBHOOK_PARSERS = {
    "chat-gateway-v1": webhook_gateway.parse_webhook_event,
    "chat-api-v2": webhook_v2.parse_webhook_event,
}
API_FUNCTIONS = (
    "WebhookIntakeFunction",
    "OutboundSenderFunction",
    "ConversationLifecycleFunction",
    "ChannelSocketFunction",
)


def functions_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def api_routes(resource: dict[str, Any]) -> set[tuple[str, str]]:
    events = resource["Properties"].get("Events", {})
    return {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events.values() if e["Type"] == "Api"}


def served_routes(module: Any) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for route in [*module.app._static_routes, *module.app._dynamic_routes]:
        path = re.sub(r"<(\w+)>", r"{\1}", route.path)
        methods = route.method if isinstance(route.method, list | tuple) else [route.method]
        routes.update((m.upper(), path) for m in methods)
    return routes


def test_every_function_is_known_and_its_handler_file_exists(template: dict[str, Any]) -> None:
    found = functions_of(template)
    assert set(found) == set(FUNCTION_DIRS)
    for name, resource in found.items():
        props = resource["Properties"]
        code = ROOT / props["CodeUri"]
        module_name, _, attribute = props["Handler"].partition(".")
        assert (code / f"{module_name}.py").is_file(), name
        assert attribute == "lambda_handler"
        assert Path(props["CodeUri"].rstrip("/")).name == FUNCTION_DIRS[name]
        source = (code / f"{module_name}.py").read_text()
        assert f"def {attribute}(" in source


def test_every_api_route_is_served_by_its_handler(template: dict[str, Any], functions: SimpleNamespace) -> None:
    modules = {
        "WebhookIntakeFunction": functions.webhook,
        "OutboundSenderFunction": functions.outbound,
        "ConversationLifecycleFunction": functions.lifecycle,
        "ChannelSocketFunction": functions.channel_socket,
    }
    assert {n for n, r in functions_of(template).items() if api_routes(r)} == set(API_FUNCTIONS)
    for name in API_FUNCTIONS:
        resource = template["Resources"][name]
        declared = api_routes(resource)
        served = served_routes(modules[name])
        assert declared == served, f"{name}: template {sorted(declared)} vs handler {sorted(served)}"
        for event in resource["Properties"]["Events"].values():
            if event["Type"] == "Api":
                assert event["Properties"]["RestApiId"] == {"Ref": "BusinessApi"}


def test_every_api_route_resolves_in_its_handler(template: dict[str, Any], functions: SimpleNamespace) -> None:
    """Behavioural check of the same: an event for each declared route never meets the not-found answer."""
    modules = {
        "WebhookIntakeFunction": functions.webhook,
        "OutboundSenderFunction": functions.outbound,
        "ConversationLifecycleFunction": functions.lifecycle,
        "ChannelSocketFunction": functions.channel_socket,
    }
    for name in API_FUNCTIONS:
        resource = template["Resources"][name]
        for method, path in api_routes(resource):
            event = load_event("get_case.json")
            concrete = path.replace("{caseId}", "bad!id")  # refused before any AWS or 8x8 call
            event.update(resource=path, path=concrete, httpMethod=method, body="{}")
            event["requestContext"].update(resourcePath=path, httpMethod=method)
            answer = invoke(modules[name], event)
            assert answer.body["error"]["code"] != "RouteNotFound", (name, method, path)
            if "{caseId}" in path:
                assert answer.status == 400, (name, method, path, answer.raw)


def test_only_the_webhook_route_skips_the_api_key(template: dict[str, Any]) -> None:
    assert template["Resources"]["BusinessApi"]["Properties"]["Auth"]["ApiKeyRequired"] is True
    open_routes = [
        e["Properties"]["Path"]
        for f in functions_of(template).values()
        for e in f["Properties"].get("Events", {}).values()
        if e["Type"] == "Api" and e["Properties"].get("Auth", {}).get("ApiKeyRequired") is False
    ]
    assert open_routes == ["/webhooks/8x8"]


def test_runtime_architecture_and_layer(template: dict[str, Any]) -> None:
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert {"Ref": "CommonLayer"} in function_globals["Layers"]
    for resource in functions_of(template).values():
        props = resource["Properties"]
        assert props.get("Runtime", "python3.13") == "python3.13"
        assert props.get("Architectures", ["arm64"]) == ["arm64"]
    layer = template["Resources"]["CommonLayer"]
    # layers/common/Makefile builds it from requirements.lock (runtime's boto3 left out, bytecode precompiled).
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Metadata"].get("BuildArchitecture") == "arm64"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert (ROOT / layer["Properties"]["ContentUri"] / "casebridge" / "__init__.py").is_file()
    for name in ("requirements.txt", "requirements.lock", "Makefile"):
        assert (ROOT / layer["Properties"]["ContentUri"] / name).is_file(), name


def test_table_has_pitr_and_ttl(template: dict[str, Any]) -> None:
    table = template["Resources"]["CasesTable"]
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert table["DeletionPolicy"] == "Retain"
    assert {k["AttributeName"]: k["KeyType"] for k in props["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}


def test_outbound_queue_is_fifo_with_a_dlq_and_the_sender_consumes_it(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    queue = resources["OutboundQueue"]["Properties"]
    assert queue["FifoQueue"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["OutboundDeadLetterQueue", "Arn"]}
    assert resources["OutboundDeadLetterQueue"]["Properties"]["FifoQueue"] is True
    sqs_events = [e for e in resources["OutboundSenderFunction"]["Properties"]["Events"].values() if e["Type"] == "SQS"]
    [sqs] = sqs_events
    assert sqs["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["Properties"]["Queue"] == {"Fn::GetAtt": ["OutboundQueue", "Arn"]}


def test_every_setting_is_provided_by_the_template(template: dict[str, Any]) -> None:

    variables = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in functions_of(template).values():
        variables |= set(resource["Properties"].get("Environment", {}).get("Variables", {}))
    required = Settings.required_variables()
    assert required <= variables
    assert {"OUTBOUND_QUEUE_URL", "OUTBOUND_DLQ_URL"} <= set(
        template["Resources"]["OutboundSenderFunction"]["Properties"]["Environment"]["Variables"]
    )


# ---- the events/ samples match the template --------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "function"),
    [
        ("open_conversation.json", "ConversationLifecycleFunction"),
        ("open_conversation_refuse.json", "ConversationLifecycleFunction"),
        ("customer_leaves.json", "ConversationLifecycleFunction"),
        ("get_case.json", "ConversationLifecycleFunction"),
        ("case_events.json", "ConversationLifecycleFunction"),
        ("post_message.json", "OutboundSenderFunction"),
        ("post_message_attachment.json", "OutboundSenderFunction"),
        ("post_message_cards.json", "OutboundSenderFunction"),
        ("create_attachment.json", "OutboundSenderFunction"),
        ("send_typing.json", "OutboundSenderFunction"),
        ("get_attachment.json", "ConversationLifecycleFunction"),
        ("queue_availability.json", "ConversationLifecycleFunction"),
        ("case_transcript.json", "ConversationLifecycleFunction"),
        ("mark_read.json", "OutboundSenderFunction"),
        ("send_thinking.json", "OutboundSenderFunction"),
        ("channel_token.json", "ChannelSocketFunction"),
        *[
            (f"{api}/{p.name}", "WebhookIntakeFunction")
            for api in API_DIRS
            for p in sorted((EVENTS / api).glob("*.json"))
        ],
    ],
)
def test_api_sample_matches_a_route_of_its_function(template: dict[str, Any], name: str, function: str) -> None:
    event = load_event(name)
    assert (event["httpMethod"], event["resource"]) in api_routes(template["Resources"][function])
    assert event["requestContext"]["resourcePath"] == event["resource"]
    assert event["requestContext"]["httpMethod"] == event["httpMethod"]
    assert event["requestContext"]["stage"] == "v1"
    assert {"requestId", "identity"} <= set(event["requestContext"])
    assert {"apiKey", "sourceIp"} <= set(event["requestContext"]["identity"])
    assert event["isBase64Encoded"] is False
    assert {k: [v] for k, v in event["headers"].items()} == event["multiValueHeaders"]
    if Path(name).name.startswith("webhook_"):
        lower = {k.lower() for k in event["headers"]}
        assert set(SIGNATURE_HEADERS) <= lower
        api = Path(name).parent.name
        payload = json.loads(event["body"])
        assert payload["eventType"] in WEBHOOK_EVENT_TYPES[api], name
        WEBHOOK_PARSERS[api](payload)  # a known type in the wrong shape raises MalformedEvent


SOCKET_SAMPLES = {
    "socket_connect.json": ("$connect", "CONNECT"),
    "socket_message.json": ("message", "MESSAGE"),
    "socket_typing.json": ("typing", "MESSAGE"),
    "socket_resume.json": ("resume", "MESSAGE"),
    "socket_disconnect.json": ("$disconnect", "DISCONNECT"),
}


def socket_routes(template: dict[str, Any]) -> dict[str, str]:
    """The channel WebSocket's route keys, each with the function its integration invokes."""
    resources = template["Resources"]
    routes = {}
    for resource in resources.values():
        if resource["Type"] != "AWS::ApiGatewayV2::Route":
            continue
        props = resource["Properties"]
        assert props["ApiId"] == {"Ref": "ChannelSocketApi"}
        integration = resources[props["Target"]["Fn::Sub"].removeprefix("integrations/${").removesuffix("}")]
        uri = integration["Properties"]["IntegrationUri"]["Fn::Sub"]
        [function] = re.findall(r"\$\{(\w+)\.Arn\}", uri)
        routes[props["RouteKey"]] = function
    return routes


@pytest.mark.parametrize(("name", "route"), [(n, r) for n, (r, _) in SOCKET_SAMPLES.items()])
def test_socket_sample_matches_a_route_of_the_channel_websocket(
    template: dict[str, Any], name: str, route: str
) -> None:
    event = load_event(name)
    context = event["requestContext"]
    assert socket_routes(template)[context["routeKey"]] == "ChannelSocketFunction"
    assert context["routeKey"] == route
    assert context["eventType"] == SOCKET_SAMPLES[name][1]
    assert context["stage"] == template["Resources"]["ChannelSocketStage"]["Properties"]["StageName"]
    assert {"connectionId", "requestId", "connectedAt", "requestTimeEpoch", "domainName", "apiId"} <= set(context)
    # One widget's session: every sample is on the same connection.
    assert context["connectionId"] == load_event("socket_connect.json")["requestContext"]["connectionId"]
    if context["eventType"] == "MESSAGE":
        # RouteSelectionExpression $request.body.action picks the route from the frame.
        assert template["Resources"]["ChannelSocketApi"]["Properties"]["RouteSelectionExpression"] == (
            "$request.body.action"
        )
        assert json.loads(event["body"])["action"] == route
        assert "messageId" in context
    else:
        assert "body" not in event
    if route == "$connect":
        assert set(event["queryStringParameters"]) == {"token", "after"}
        assert {k: [v] for k, v in event["queryStringParameters"].items()} == event["multiValueQueryStringParameters"]
        assert {k: [v] for k, v in event["headers"].items()} == event["multiValueHeaders"]


def test_every_socket_route_has_a_sample(template: dict[str, Any]) -> None:
    assert set(socket_routes(template)) - {"$default"} == {r for r, _ in SOCKET_SAMPLES.values()}


def names_a_resource(value: Any, parameters: set[str]) -> bool:
    """Whether a template value is made from a resource (which `sam local invoke` cannot resolve)."""
    if isinstance(value, dict):
        [(function, argument)] = value.items()
        if function == "Ref":
            return argument not in parameters and not argument.startswith("AWS::")
        if function == "Fn::GetAtt":
            return True
        if function == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            names = {n.split(".")[0] for n in re.findall(r"\$\{([^}!]+)\}", text)}
            return any(n not in parameters and not n.startswith("AWS::") for n in names)
        return names_a_resource(argument, parameters)
    if isinstance(value, list):
        return any(names_a_resource(v, parameters) for v in value)
    return False


@pytest.mark.parametrize("api", API_DIRS)
def test_the_env_file_gives_every_function_what_sam_local_cannot_resolve(template: dict[str, Any], api: str) -> None:
    """sam local's --env-vars file is keyed by function id ("Parameters": all of them). A variable the template
    makes from a resource (a queue URL, a bucket, a secret, a WebSocket URL) must be given there; a key the
    function does not declare would be ignored by sam."""
    env = json.loads((EVENTS / f"env.{api}.json").read_text())
    parameters = set(template["Parameters"])
    global_variables = template["Globals"]["Function"]["Environment"]["Variables"]
    for variable, value in global_variables.items():
        if names_a_resource(value, parameters):
            assert variable in env["Parameters"], variable
    for name, resource in functions_of(template).items():
        own = resource["Properties"].get("Environment", {}).get("Variables", {})
        if not own:
            assert name not in env, f"{name} declares no variables of its own"
            continue
        assert name in env, f"{name} reads its own variables: give it an entry"
        assert set(env[name]) <= set(own), f"{name}: {sorted(set(env[name]) - set(own))} are not declared"
        for variable, value in own.items():
            if names_a_resource(value, parameters):
                assert variable in env[name] or variable in env["Parameters"], (name, variable)


@pytest.mark.parametrize("api", API_DIRS)
def test_every_event_file_is_valid_json_and_env_names_real_functions(template: dict[str, Any], api: str) -> None:
    for path in [*EVENTS.glob("*.json"), *(EVENTS / api).glob("*.json")]:
        json.loads(path.read_text(encoding="utf-8"))
    env = json.loads((EVENTS / f"env.{api}.json").read_text())
    assert env["Parameters"]["EIGHTXEIGHT_API"] == api, "each API's environment selects that API"
    assert set(env) - {"Parameters"} <= set(functions_of(template))
    tenant = env["Parameters"]["EIGHTXEIGHT_TENANT_ID"]
    assert {load_event(f"{api}/{p.name}")["headers"]["x-8x8-tenant-id"] for p in (EVENTS / api).glob("*.json")} == {
        tenant
    }


def test_sqs_sample_is_a_fifo_batch(template: dict[str, Any]) -> None:
    batch = load_event("sqs_outbound_batch.json")
    assert len(batch["Records"]) == 3
    for record in batch["Records"]:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].endswith(".fifo")
        body = json.loads(record["body"])
        assert record["attributes"]["MessageGroupId"] == body["caseId"]
        assert record["attributes"]["MessageDeduplicationId"] == body["messageId"]


def test_a_misconfigured_function_answers_500_not_the_clients_400(
    functions: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No table or tenant in the environment: a configuration error, not a bad request."""
    for name in ("CASES_TABLE_NAME", "EIGHTXEIGHT_TENANT_ID"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    set_services(None)
    answer = invoke(functions.lifecycle, load_event("get_case.json"))
    assert answer.status == 500, answer.raw
    assert answer.body["error"]["code"] == "ConfigurationError"
    assert "CASES_TABLE_NAME" in answer.body["error"]["message"]
    assert "Traceback" not in answer.raw


def test_settings_parse_the_templates_values() -> None:

    settings = load_settings(
        {
            "CASES_TABLE_NAME": "t",
            "EIGHTXEIGHT_TENANT_ID": "acme",
            "EIGHTXEIGHT_BASE_URL": "http://localhost:8088/",
            "WEBHOOK_TOLERANCE_SECONDS": "300",
            "MAX_SEND_ATTEMPTS": "8",
            "OUTBOUND_QUEUE_URL": "",
        }
    )
    assert (settings.base_url, settings.webhook_tolerance_seconds, settings.max_send_attempts) == (
        "http://localhost:8088",
        300,
        8,
    )
    assert settings.outbound_queue_url == ""


# ---- the 8x8 API choice and the provisioning custom resource -------------------------------------
def test_the_api_is_a_parameter_every_function_reads(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["EightByEightApi"]
    assert parameter["AllowedValues"] == ["chat-gateway-v1", "chat-api-v2"]
    assert parameter["Default"] == "chat-gateway-v1"
    assert template["Globals"]["Function"]["Environment"]["Variables"]["EIGHTXEIGHT_API"] == {"Ref": "EightByEightApi"}
    secret = template["Parameters"]["EightByEightCredentialsSecretArn"]["Description"]
    assert '{"apiKey"} for chat-gateway-v1' in secret
    assert '{"apiKey", "apiSecret"} for chat-api-v2' in secret
    assert "chat-api-v2 only" in template["Parameters"]["EightByEightRegion"]["Description"]


def test_the_channel_is_given_or_provisioned(template: dict[str, Any]) -> None:
    assert template["Parameters"]["EightByEightChannelId"]["Default"] == ""
    assert template["Parameters"]["EightByEightQueueId"]["Default"] == ""
    conditions = template["Conditions"]
    assert conditions["HasChannel"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "EightByEightChannelId"}, ""]}]}
    assert conditions["ProvisionContactCenter"] == {"Fn::Equals": [{"Ref": "EightByEightChannelId"}, ""]}
    channel = {
        "Fn::If": [
            "HasChannel",
            {"Ref": "EightByEightChannelId"},
            {"Fn::GetAtt": ["EightByEightProvisioning", "ChannelId"]},
        ]
    }
    resources = template["Resources"]
    for name in ("ConversationLifecycleFunction", "OutboundSenderFunction"):
        assert resources[name]["Properties"]["Environment"]["Variables"]["EIGHTXEIGHT_CHANNEL_ID"] == channel
    # The intake must exist before the resource (WEB_HOOK_VERIFY), so it cannot depend on it: no channel there.
    assert "EIGHTXEIGHT_CHANNEL_ID" not in json.dumps(resources["WebhookIntakeFunction"])
    assert "EIGHTXEIGHT_CHANNEL_ID" not in template["Globals"]["Function"]["Environment"]["Variables"]
    assert template["Outputs"]["ChannelId"]["Value"] == channel
    assert template["Outputs"]["WebhookId"]["Condition"] == "ProvisionContactCenter"
    rule = template["Rules"]["QueueToProvision"]
    assert rule["RuleCondition"] == conditions["ProvisionContactCenter"]


def test_the_custom_resource_runs_after_the_intake_answers(template: dict[str, Any]) -> None:
    resource = template["Resources"]["EightByEightProvisioning"]
    function = template["Resources"]["ContactCenterProvisionerFunction"]
    assert resource["Condition"] == function["Condition"] == "ProvisionContactCenter"
    assert resource["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["ContactCenterProvisionerFunction", "Arn"]}
    assert {"WebhookIntakeFunction", "WebhookIntakeFunctionWebhookPermissionv1"} <= set(resource["DependsOn"])
    url = resource["Properties"]["WebhookUrl"]["Fn::Sub"]
    assert "${BusinessApi.Stage}" in url  # a reference to the stage: registered only once the stage is live
    assert url.endswith("/webhooks/8x8")
    # The crhelper answer comes before the Lambda timeout, which comes before CloudFormation's.
    assert function["Properties"]["Timeout"] < resource["Properties"]["ServiceTimeout"]
    props = resource["Properties"]
    assert props["Api"] == {"Ref": "EightByEightApi"}
    assert props["QueueId"] == {"Ref": "EightByEightQueueId"}
    assert props["SecretArn"] == {"Ref": "EightByEightCredentialsSecretArn"}
    assert set(ResourceRequest.REQUIRED) <= set(props)
