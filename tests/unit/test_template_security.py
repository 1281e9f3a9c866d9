"""template.yaml's security settings, read out of the template:

- each function gets exactly the DynamoDB actions its code uses, never Scan or BatchWriteItem;
- the public webhook intake can never read the shared 8x8 token (`TOKEN#<tenant>`), proved with a small evaluator
  of the policy's own conditions;
- the webhook method is throttled, the intake has reserved concurrency, every function logs to a log group with
  retention, the API has access logs, the webhook tolerance has a maximum below the receipt TTL;
- the dead-letter queues accept redrives from their own source queue only;
- the attachment bucket is private, encrypted, TLS-only, expires its files, and each function reaches exactly the
  objects (actions and key prefix) its code uses;
- every checkov skip carries its reason.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest

from casebridge.settings import Settings
from tests.support.paths import ROOT

TABLE = {"Fn::GetAtt": ["CasesTable", "Arn"]}
INTAKE = "WebhookIntakeFunction"
SENDER = "OutboundSenderFunction"
LIFECYCLE = "ConversationLifecycleFunction"
PROVISIONER = "ContactCenterProvisionerFunction"
COPIER = "AttachmentCopierFunction"
SOCKET = "ChannelSocketFunction"
PUSH = "ChannelPushFunction"
WEBHOOK_SENDER = "ChannelWebhookSenderFunction"
HOURS_CHECK = "BusinessHoursCheckFunction"
TIMERS = "EscalationTimersFunction"
SWEEPER = "OutboxSweeperFunction"
BUCKET_ARN = "${AttachmentsBucket.Arn}"

# What each function's code does on the table (store.py, token_store.py), as IAM actions. Transactions are
# authorised per item: Put → PutItem, Update → UpdateItem, ConditionCheck → ConditionCheckItem.
EXPECTED_TABLE_ACTIONS = {
    # lookup_for_webhook (BatchGetItem, GetItem), receipts (GetItem, PutItem), record_case_event (Put + Update),
    # early events (Put + ConditionCheck on the conversation map).
    INTAKE: {"GetItem", "BatchGetItem", "PutItem", "UpdateItem", "ConditionCheckItem"},
    # lookup_for_delivery (BatchGetItem), record_message (PutItem), opening the conversation on a first message
    # (GetItem, UpdateItem, transaction Update + Put, Query + DeleteItem of early events), the v2 token
    # (GetItem, UpdateItem lease, PutItem, DeleteItem).
    SENDER: {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"},
    # the same opening path, customer leaves, the timeline (Query), the outbox (BatchGetItem), the v2 token.
    LIFECYCLE: {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"},
    PROVISIONER: set(),
    # copy_agent_attachment: the attachment record (BatchGetItem), ready/failed (UpdateItem); CASE# items only.
    COPIER: {"BatchGetItem", "UpdateItem"},
    # connections (transaction of two Puts, GetItem, DeleteItem, UpdateItem of the cursor, Query of the timeline
    # on resume) and a widget's message by the REST route's path (as the sender's).
    SOCKET: {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"},
    # the case's connections and timeline (Query), a cursor read back (GetItem) and claimed (UpdateItem), a gone
    # connection's two items (DeleteItem); CASE# and CONNECTION# items only.
    PUSH: {"GetItem", "Query", "UpdateItem", "DeleteItem"},
    # the webhook's cursor (GetItem, UpdateItem) and the timeline (Query); CASE# items only.
    WEBHOOK_SENDER: {"GetItem", "Query", "UpdateItem"},
    HOURS_CHECK: set(),  # reads one SSM parameter, nothing else
    # the sweep: the index (Query), cases, marks and timeline, the outbox, queue figures, the analytics token.
    TIMERS: {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"},
    # the outbox sweeper: the PendingOutboxIndex (Query), the case (GetItem) and its pending entries
    # (BatchGetItem), the outbox marks taken off (UpdateItem); CASE# items and the index's OUTBOX key only.
    SWEEPER: {"GetItem", "BatchGetItem", "Query", "UpdateItem"},
}
NEVER = {"Scan", "BatchWriteItem", "*", "DeleteTable", "UpdateTable", "CreateTable", "PartiQLSelect"}
# boto3 DynamoDB client calls the package may make; a new kind of call must be granted (and added here) on purpose.
CLIENT_CALLS = {
    "get_item": "GetItem",
    "batch_get_item": "BatchGetItem",
    "query": "Query",
    "put_item": "PutItem",
    "update_item": "UpdateItem",
    "delete_item": "DeleteItem",
    "transact_write_items": None,  # authorised per item (see above)
}


def functions_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def statements(function: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in function["Properties"].get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            yield from policy["Statement"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def table_statements(function: dict[str, Any], effect: str) -> list[dict[str, Any]]:
    return [
        s
        for s in statements(function)
        if s["Effect"] == effect
        and TABLE in as_list(s["Resource"])
        and any(str(a).startswith("dynamodb:") for a in as_list(s["Action"]))
    ]


def table_actions(function: dict[str, Any]) -> set[str]:
    return {str(a).removeprefix("dynamodb:") for s in table_statements(function, "Allow") for a in as_list(s["Action"])}


# ---- least privilege on the table ---------------------------------------------------------------------------
def test_every_function_has_exactly_the_table_actions_its_code_uses(template: dict[str, Any]) -> None:
    found = functions_of(template)
    assert set(found) == set(EXPECTED_TABLE_ACTIONS)
    for name, function in found.items():
        assert table_actions(function) == EXPECTED_TABLE_ACTIONS[name], name
        assert not table_actions(function) & NEVER, name


def test_no_function_uses_a_table_wide_sam_policy_template(template: dict[str, Any]) -> None:
    """DynamoDBCrudPolicy & co. grant Scan, DeleteItem and BatchWriteItem on the whole table."""
    for name, function in functions_of(template).items():
        for policy in function["Properties"].get("Policies", []):
            if isinstance(policy, dict):
                assert not [k for k in policy if k.startswith("DynamoDB")], (name, policy)
            else:
                assert "DynamoDB" not in str(policy), (name, policy)


def test_the_code_makes_no_table_call_beyond_what_is_granted() -> None:
    """Scan or BatchWriteItem appearing in the package would need a grant; this names the call to look at."""
    granted = set().union(*EXPECTED_TABLE_ACTIONS.values())
    package = ROOT / "layers" / "common" / "casebridge"
    calls: set[str] = set()
    for path in package.rglob("*.py"):
        calls |= set(re.findall(r"client\.([a-z_]+)\(", path.read_text(encoding="utf-8")))
    dynamodb_like = {c for c in calls if c in CLIENT_CALLS or c in {"scan", "batch_write_item", "execute_statement"}}
    assert dynamodb_like, "found no DynamoDB calls: has the store moved?"
    assert dynamodb_like <= set(CLIENT_CALLS), sorted(dynamodb_like - set(CLIENT_CALLS))
    assert {CLIENT_CALLS[c] for c in dynamodb_like if CLIENT_CALLS[c]} <= granted


# ---- the token is out of the intake's reach -----------------------------------------------------------------
def _matches(statement: dict[str, Any], action: str, leading_keys: list[str]) -> bool:
    """IAM's evaluation of one statement for a table call on items with these partition keys."""
    if not any(fnmatchcase(action, pattern) for pattern in as_list(statement["Action"])):
        return False
    for operator, clauses in (statement.get("Condition") or {}).items():
        patterns = as_list(clauses["dynamodb:LeadingKeys"])
        hits = [any(fnmatchcase(k, p) for p in patterns) for k in leading_keys]
        if operator == "ForAllValues:StringLike" and not all(hits):
            return False
        if operator == "ForAnyValue:StringLike" and not any(hits):
            return False
        assert operator in ("ForAllValues:StringLike", "ForAnyValue:StringLike"), operator
    return True


def allowed(function: dict[str, Any], action: str, leading_keys: list[str]) -> bool:
    if any(_matches(s, action, leading_keys) for s in table_statements(function, "Deny")):
        return False
    return any(_matches(s, action, leading_keys) for s in table_statements(function, "Allow"))


@pytest.mark.parametrize(
    ("action", "keys", "expected"),
    [
        ("dynamodb:GetItem", ["CASE#c-1"], True),
        ("dynamodb:BatchGetItem", ["CONVERSATION#v-1", "WEBHOOK#acme#e-1"], True),
        ("dynamodb:PutItem", ["WEBHOOK#acme#e-1"], True),
        ("dynamodb:GetItem", ["TOKEN#acme"], False),
        ("dynamodb:BatchGetItem", ["CASE#c-1", "TOKEN#acme"], False),
        ("dynamodb:PutItem", ["TOKEN#acme"], False),
        ("dynamodb:UpdateItem", ["TOKEN#acme"], False),
        ("dynamodb:DeleteItem", ["TOKEN#acme"], False),
        ("dynamodb:Query", ["TOKEN#acme"], False),
        ("dynamodb:Scan", [], False),
        ("dynamodb:GetItem", ["SOMETHING#else"], False),
    ],
)
def test_the_intake_reaches_case_items_and_never_the_token(
    template: dict[str, Any], action: str, keys: list[str], expected: bool
) -> None:
    assert allowed(template["Resources"][INTAKE], action, keys) is expected


def test_the_intakes_token_deny_stands_on_its_own(template: dict[str, Any]) -> None:
    """Even if someone widens the Allow later, the explicit Deny on TOKEN# keys remains."""
    [deny] = table_statements(template["Resources"][INTAKE], "Deny")
    assert deny["Action"] == "dynamodb:*"
    assert deny["Condition"] == {"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": ["TOKEN#*"]}}


def test_the_policy_key_prefixes_are_the_codes() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "layers" / "common" / "casebridge").rglob("*.py"))
    for prefix in ("CASE#", "CONVERSATION#", "WEBHOOK#", "TOKEN#", "CONNECTION#"):
        assert f'f"{prefix}{{' in source, prefix


def secret_readers(template: dict[str, Any]) -> dict[str, set[str]]:
    """Each secret (parameter or resource name) → the functions that may read it."""
    readers: dict[str, set[str]] = {}
    for name, function in functions_of(template).items():
        for policy in function["Properties"].get("Policies", []):
            if isinstance(policy, dict) and "AWSSecretsManagerGetSecretValuePolicy" in policy:
                secret = policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]["Ref"]
                readers.setdefault(secret, set()).add(name)
    return readers


def test_each_secret_is_read_only_by_the_functions_that_use_it(template: dict[str, Any]) -> None:
    readers = secret_readers(template)
    # The copier: the Gateway's content endpoint (x-api-key) once 8x8's pre-signed URL has expired. The timers:
    # ending a case (customer leaves) and the queue figures (Real-time Metrics' own key). The socket: a widget's
    # first message opens the case's conversation, as the REST route does.
    assert readers == {
        "EightByEightCredentialsSecretArn": {SENDER, LIFECYCLE, PROVISIONER, COPIER, TIMERS, SOCKET},
        "ChannelTokenSigningKey": {SOCKET},
        "ChannelWebhookSigningSecret": {WEBHOOK_SENDER},
    }


# ---- the channel push -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("function", "action", "keys", "expected"),
    [
        (PUSH, "dynamodb:Query", ["CASE#c-1"], True),
        (PUSH, "dynamodb:DeleteItem", ["CONNECTION#k-1"], True),
        (PUSH, "dynamodb:UpdateItem", ["CASE#c-1"], True),
        (PUSH, "dynamodb:GetItem", ["TOKEN#acme"], False),
        (PUSH, "dynamodb:GetItem", ["WEBHOOK#acme#e-1"], False),
        (PUSH, "dynamodb:PutItem", ["CASE#c-1"], False),
        (WEBHOOK_SENDER, "dynamodb:Query", ["CASE#c-1"], True),
        (WEBHOOK_SENDER, "dynamodb:UpdateItem", ["CASE#c-1"], True),
        (WEBHOOK_SENDER, "dynamodb:GetItem", ["CONNECTION#k-1"], False),
        (WEBHOOK_SENDER, "dynamodb:GetItem", ["TOKEN#acme"], False),
        (WEBHOOK_SENDER, "dynamodb:DeleteItem", ["CASE#c-1"], False),
    ],
)
def test_the_push_functions_reach_only_case_and_connection_items(
    template: dict[str, Any], function: str, action: str, keys: list[str], expected: bool
) -> None:
    assert allowed(template["Resources"][function], action, keys) is expected


def test_only_the_socket_and_the_fan_out_post_to_connections_and_only_on_their_stage(template: dict[str, Any]) -> None:
    found = {
        name: s["Resource"]
        for name, function in functions_of(template).items()
        for s in statements(function)
        if "execute-api:ManageConnections" in as_list(s["Action"])
    }
    assert set(found) == {SOCKET, PUSH}
    for resource in found.values():
        assert resource == {
            "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ChannelSocketApi}"
            "/v1/POST/@connections/*"
        }
    assert not [s for f in functions_of(template).values() for s in statements(f) if "execute-api:*" in str(s)]


def test_the_webhook_sender_only_sends_to_its_dead_letter_queue_and_defers_on_its_own_queue(
    template: dict[str, Any],
) -> None:
    function = template["Resources"][WEBHOOK_SENDER]
    sends = [
        p["SQSSendMessagePolicy"]["QueueName"]
        for p in function["Properties"]["Policies"]
        if "SQSSendMessagePolicy" in p
    ]
    assert sends == [{"Fn::GetAtt": ["ChannelWebhookDeadLetterQueue", "QueueName"]}]
    [defer] = [s for s in statements(function) if s.get("Sid") == "DeferRetry"]
    assert defer["Action"] == "sqs:ChangeMessageVisibility"
    assert defer["Resource"] == {"Fn::GetAtt": ["ChannelWebhookQueue", "Arn"]}
    # Everything of the webhook exists only with a ChannelWebhookUrl.
    for logical_id in (
        WEBHOOK_SENDER,
        "ChannelWebhookQueue",
        "ChannelWebhookDeadLetterQueue",
        "ChannelWebhookDeadLetterAlarm",
        "ChannelWebhookSigningSecret",
    ):
        assert template["Resources"][logical_id]["Condition"] == "PushWebhooks", logical_id


def test_the_fan_out_rule_retries_then_dead_letters_to_a_queue_only_its_bus_rules_may_write(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    [rule] = [e["Properties"] for e in resources[PUSH]["Properties"]["Events"].values()]
    assert rule["EventBusName"] == {"Ref": "CaseEventBus"} and rule["Pattern"] == {"source": ["casebridge"]}
    assert rule["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert rule["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ChannelPushDeadLetterQueue", "Arn"]}}
    [statement] = resources["ChannelPushDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    source = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert source.endswith(":rule/${CaseEventBus}/*")
    alarm = resources["ChannelPushDeadLetterAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["ChannelPushDeadLetterQueue", "QueueName"]}


def test_the_socket_stage_is_throttled_and_logs_no_token_or_frame(template: dict[str, Any]) -> None:
    stage = template["Resources"]["ChannelSocketStage"]
    settings = stage["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0
    assert settings["DataTraceEnabled"] is False  # a data trace would log frames (message text)
    log_format = stage["Properties"]["AccessLogSettings"]["Format"]
    for secret_or_body in ("querystring", "$input", "body", "token"):
        assert secret_or_body not in log_format
    assert stage["DependsOn"] == "ApiGatewayAccount"


# ---- the public webhook: throttle, concurrency, tolerance ---------------------------------------------------
def test_the_webhook_method_is_throttled(template: dict[str, Any]) -> None:
    api = template["Resources"]["BusinessApi"]["Properties"]
    [intake_route] = [
        e["Properties"] for e in template["Resources"][INTAKE]["Properties"]["Events"].values() if e["Type"] == "Api"
    ]
    settings = [
        s
        for s in api["MethodSettings"]
        if s["ResourcePath"].removeprefix("/").replace("~1", "/") == intake_route["Path"]
        and s["HttpMethod"] == intake_route["Method"].upper()
    ]
    assert len(settings) == 1, api["MethodSettings"]
    # API Gateway spells a method path with each "/" as "~1" after a leading "/".
    rate, burst = settings[0]["ThrottlingRateLimit"], settings[0]["ThrottlingBurstLimit"]
    assert 0 < rate <= burst
    assert rate <= api["Auth"]["UsagePlan"]["Throttle"]["RateLimit"]


def test_the_intake_has_reserved_concurrency(template: dict[str, Any]) -> None:
    reserved = template["Resources"][INTAKE]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == {
        "Fn::If": ["ReserveIntakeConcurrency", {"Ref": "IntakeReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    parameter = template["Parameters"]["IntakeReservedConcurrency"]
    assert parameter["Type"] == "Number"
    assert parameter["Default"] == 20
    assert parameter["MinValue"] == 0
    assert template["Conditions"]["ReserveIntakeConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "IntakeReservedConcurrency"}, 0]}]
    }


def test_the_webhook_tolerance_has_a_maximum_below_the_receipt_ttl(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["WebhookToleranceSeconds"]
    assert 0 < parameter["MinValue"] <= parameter["Default"] <= parameter["MaxValue"] <= 900
    receipt_ttl_days = int({f.name: f.default for f in dataclasses.fields(Settings)}["webhook_receipt_ttl_days"])  # type: ignore[arg-type]
    receipt_ttl_env = {
        name: value
        for function in functions_of(template).values()
        for name, value in function["Properties"].get("Environment", {}).get("Variables", {}).items()
        if name == "WEBHOOK_RECEIPT_TTL_DAYS"
    }
    assert not receipt_ttl_env, "the receipt TTL is set in the template: compare against that value"
    assert parameter["MaxValue"] < receipt_ttl_days * 86400


# ---- logs ---------------------------------------------------------------------------------------------------
def test_every_function_logs_to_its_own_log_group_with_retention(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    groups = []
    for name, function in functions_of(template).items():
        group_ref = function["Properties"]["LoggingConfig"]["LogGroup"]
        group_id = group_ref["Ref"]
        group = resources[group_id]
        assert group["Type"] == "AWS::Logs::LogGroup", name
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert group.get("Condition") == function.get("Condition"), name
        groups.append(group_id)
    assert len(set(groups)) == len(groups)
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_the_api_writes_access_logs_without_keys_or_bodies(template: dict[str, Any]) -> None:
    setting = template["Resources"]["BusinessApi"]["Properties"]["AccessLogSetting"]
    group_id = setting["DestinationArn"]["Fn::GetAtt"][0]
    group = template["Resources"][group_id]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert "$context.requestId" in setting["Format"]
    for secret_or_body in ("apiKey", "$input", "authorizer"):
        assert secret_or_body not in setting["Format"]
    # Access logging needs API Gateway's account-level CloudWatch role before the stage exists.
    assert template["Resources"]["BusinessApi"]["DependsOn"] == "ApiGatewayAccount"


# ---- queues ---------------------------------------------------------------------------------------------------
def test_the_dead_letter_queue_takes_redrives_from_the_outbound_queue_only(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    policy = resources["OutboundDeadLetterQueue"]["Properties"]["RedriveAllowPolicy"]
    assert policy["redrivePermission"] == "byQueue"
    [source] = policy["sourceQueueArns"]
    text, variables = source["Fn::Sub"]
    name_text, name_variables = resources["OutboundQueue"]["Properties"]["QueueName"]["Fn::Sub"]
    assert text.endswith(f":{name_text}")
    assert text.startswith("arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:")
    assert variables == name_variables


# ---- checkov ----------------------------------------------------------------------------------------------------
def test_every_checkov_skip_gives_a_one_line_reason(template: dict[str, Any]) -> None:
    skips = [
        (logical_id, skip)
        for logical_id, resource in template["Resources"].items()
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", [])
    ]
    assert skips
    for logical_id, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
        comment = skip.get("comment", "")
        assert 20 <= len(comment) <= 160 and "\n" not in comment, (logical_id, skip)
    # What checkov found real is fixed, not skipped: access logging and the intake's concurrency.
    skipped = {(logical_id, skip["id"]) for logical_id, skip in skips}
    assert ("BusinessApi", "CKV_AWS_76") not in skipped
    assert (INTAKE, "CKV_AWS_115") not in skipped


# ---- the attachment bucket ------------------------------------------------------------------------------------
# What each function does in the bucket (casebridge/attachments/), and under which keys: the sender signs upload
# URLs and reads customer/bot files; the lifecycle signs download URLs (HEAD too); the copier writes agent files.
EXPECTED_BUCKET_ACCESS = {
    SENDER: ({"s3:PutObject", "s3:GetObject"}, f"{BUCKET_ARN}/cases/*/outbound/*"),
    LIFECYCLE: ({"s3:GetObject"}, f"{BUCKET_ARN}/cases/*"),
    COPIER: ({"s3:PutObject", "s3:AbortMultipartUpload"}, f"{BUCKET_ARN}/cases/*/inbound/*"),
    # a widget's message naming attachments is checked as on the REST route (HEAD).
    SOCKET: ({"s3:GetObject"}, f"{BUCKET_ARN}/cases/*/outbound/*"),
    TIMERS: ({"s3:PutObject"}, f"{BUCKET_ARN}/transcripts/*"),  # transcripts only, never a case's files
}


def s3_statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    """The object statements (the bucket-level listing is checked on its own below)."""
    return [
        s
        for s in statements(function)
        if any(str(a).startswith("s3:") for a in as_list(s["Action"])) and s["Action"] != "s3:ListBucket"
    ]


# Who checks that a customer or bot file was uploaded (HEAD): S3 answers 403, not 404, for a missing key to a role
# that may not list it, and the code (attachments/storage.py) lists the one key when HEAD says 403.
LISTS_OUTBOUND_FILES = {SENDER, LIFECYCLE, SOCKET}


def test_the_functions_that_check_uploads_may_list_the_outbound_prefix_and_nothing_else(
    template: dict[str, Any],
) -> None:
    for name, function in functions_of(template).items():
        listing = [s for s in statements(function) if "s3:ListBucket" in as_list(s["Action"])]
        if name not in LISTS_OUTBOUND_FILES:
            assert listing == [], name
            continue
        [statement] = listing
        assert statement["Effect"] == "Allow" and as_list(statement["Action"]) == ["s3:ListBucket"], name
        assert as_list(statement["Resource"]) == [{"Fn::GetAtt": ["AttachmentsBucket", "Arn"]}], name
        assert statement["Condition"] == {"StringLike": {"s3:prefix": ["cases/*/outbound/*"]}}, name


def test_the_listing_the_code_makes_is_one_the_condition_allows() -> None:
    from casebridge.attachments.storage import outbound_key  # noqa: PLC0415

    # list_objects_v2(Prefix=<the key>) is what AttachmentBucket.head asks after a 403.
    assert fnmatchcase(outbound_key("case-1", "a1"), "cases/*/outbound/*")


def test_only_the_functions_that_need_the_bucket_reach_it_and_only_under_cases(template: dict[str, Any]) -> None:
    for name, function in functions_of(template).items():
        found = s3_statements(function)
        if name not in EXPECTED_BUCKET_ACCESS:
            assert not found, name
            assert "AttachmentsBucket" not in str(function["Properties"].get("Policies")), name
            continue
        actions, resource = EXPECTED_BUCKET_ACCESS[name]
        [statement] = found
        assert statement["Effect"] == "Allow", name
        assert set(as_list(statement["Action"])) == actions, name
        assert as_list(statement["Resource"]) == [{"Fn::Sub": resource}], name
        assert not any("*" in a for a in as_list(statement["Action"])), name


def test_the_code_uses_the_key_prefixes_the_policies_name() -> None:
    from casebridge.attachments.storage import inbound_key, outbound_key  # noqa: PLC0415

    assert fnmatchcase(outbound_key("c-1", "a1"), "cases/*/outbound/*")
    assert fnmatchcase(inbound_key("c-1", "in-1"), "cases/*/inbound/*")
    # A caseId cannot climb out of its prefix: it has no "/" (models.CASE_ID_RE).
    assert not fnmatchcase(outbound_key("c-1", "a1"), "cases/*/inbound/*")


def test_the_bucket_is_private_encrypted_tls_only_and_expires_its_files(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    props = resources["AttachmentsBucket"]["Properties"]
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    lifecycle, transcripts = props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["Status"] == "Enabled"
    assert (lifecycle["Prefix"], lifecycle["ExpirationInDays"]) == ("cases/", {"Ref": "AttachmentRetentionDays"})
    assert lifecycle["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1
    # Transcripts: their own prefix and retention, the same bucket (and so the same encryption).
    assert transcripts["Status"] == "Enabled"
    assert (transcripts["Prefix"], transcripts["ExpirationInDays"]) == (
        "transcripts/",
        {"Ref": "TranscriptRetentionDays"},
    )
    [deny] = resources["AttachmentsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    limits = template["Parameters"]
    assert limits["AttachmentMaxBytes"]["Default"] == 10 * 1024 * 1024
    assert limits["AttachmentMaxPerMessage"]["Default"] == 5


def test_the_intake_only_queues_copy_jobs_and_the_copier_only_touches_case_items(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    intake_policies = resources[INTAKE]["Properties"]["Policies"]
    assert {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["AttachmentCopyQueue", "QueueName"]}}} in (
        intake_policies
    )
    copier = resources[COPIER]
    assert allowed(copier, "dynamodb:UpdateItem", ["CASE#c-1"])
    assert not allowed(copier, "dynamodb:UpdateItem", ["TOKEN#acme"])
    assert not allowed(copier, "dynamodb:PutItem", ["CASE#c-1"])
    [source] = resources["AttachmentCopyDeadLetterQueue"]["Properties"]["RedriveAllowPolicy"]["sourceQueueArns"]
    text, variables = source["Fn::Sub"]
    name_text, name_variables = resources["AttachmentCopyQueue"]["Properties"]["QueueName"]["Fn::Sub"]
    assert text.endswith(f":{name_text}") and variables == name_variables
    # The copier's last receive marks the file failed: its setting is the queue's maxReceiveCount.
    max_receives = resources["AttachmentCopyQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    assert copier["Properties"]["Environment"]["Variables"]["ATTACHMENT_COPY_MAX_RECEIVES"] == str(max_receives)
    # SQS event source: visibility timeout at least the function's timeout (6x, as AWS advises).
    assert resources["AttachmentCopyQueue"]["Properties"]["VisibilityTimeout"] >= 6 * copier["Properties"]["Timeout"]


# ---- the escalation ---------------------------------------------------------------------------------------------
HOURS_ARN = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${BusinessHoursParameterName}"


def _ssm_statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    found = [s for s in statements(function) if any(str(a).startswith("ssm:") for a in as_list(s["Action"]))]
    for policy in function["Properties"].get("Policies", []):
        # A statement granted only when hours are configured (PushWebhooks' grant is the webhook queue's).
        if isinstance(policy, dict) and "Fn::If" in policy and policy["Fn::If"][0] != "PushWebhooks":
            condition, granted, otherwise = policy["Fn::If"]
            assert condition == "HasBusinessHours" and otherwise == {"Ref": "AWS::NoValue"}
            found += granted["Statement"]
    return found


def test_only_the_functions_that_read_business_hours_reach_ssm_and_only_that_parameter(
    template: dict[str, Any],
) -> None:
    readers = {}
    for name, function in functions_of(template).items():
        granted = _ssm_statements(function)
        if granted:
            readers[name] = granted
    assert set(readers) == {LIFECYCLE, HOURS_CHECK}
    for granted in readers.values():
        [statement] = granted
        assert statement["Action"] == "ssm:GetParameter"
        assert statement["Resource"] == {"Fn::Sub": HOURS_ARN}
    check = template["Resources"][HOURS_CHECK]
    assert check["Condition"] == "HasBusinessHours"
    assert not [p for p in check["Properties"]["Policies"] if "SecretsManager" in str(p)]


def test_the_sweep_reaches_only_its_index_cases_figures_and_tokens(template: dict[str, Any]) -> None:
    function = template["Resources"][TIMERS]
    [statement] = table_statements(function, "Allow")
    assert statement["Resource"] == [TABLE, {"Fn::Sub": "${CasesTable.Arn}/index/ActiveCasesIndex"}]
    keys = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert set(keys) == {"CASE#*", "QUEUE#*", "TOKEN#*", "ACTIVE"}
    assert not allowed(function, "dynamodb:GetItem", ["WEBHOOK#acme#e-1"])
    assert not allowed(function, "dynamodb:Query", ["CONVERSATION#v-1"])
    assert function["Properties"]["ReservedConcurrentExecutions"] == 1  # sweeps never overlap
    [sweep] = function["Properties"]["Events"].values()
    assert sweep["Type"] == "Schedule" and sweep["Properties"]["Schedule"] == "rate(1 minute)"
    indexes = {i["IndexName"]: i for i in template["Resources"]["CasesTable"]["Properties"]["GlobalSecondaryIndexes"]}
    assert indexes["ActiveCasesIndex"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_the_outbox_sweeper_reaches_only_its_index_and_case_items(template: dict[str, Any]) -> None:
    """Every minute, one at a time; the pending outboxes' index (keys only), case items, the bus; no secret."""
    function = template["Resources"][SWEEPER]
    [statement] = table_statements(function, "Allow")
    assert statement["Resource"] == [TABLE, {"Fn::Sub": "${CasesTable.Arn}/index/PendingOutboxIndex"}]
    assert set(statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]) == {"CASE#*", "OUTBOX"}
    assert allowed(function, "dynamodb:Query", ["OUTBOX"]) and allowed(function, "dynamodb:GetItem", ["CASE#c-1"])
    for keys in (["TOKEN#acme"], ["WEBHOOK#acme#e-1"], ["CONVERSATION#v-1"], ["QUEUE#q"]):
        assert not allowed(function, "dynamodb:GetItem", keys), keys
    assert not allowed(function, "dynamodb:PutItem", ["CASE#c-1"])
    assert function["Properties"]["ReservedConcurrentExecutions"] == 1
    [sweep] = function["Properties"]["Events"].values()
    assert sweep["Type"] == "Schedule" and sweep["Properties"]["Schedule"] == "rate(1 minute)"
    assert not [p for p in function["Properties"]["Policies"] if "AWSSecretsManagerGetSecretValuePolicy" in p]
    indexes = {i["IndexName"]: i for i in template["Resources"]["CasesTable"]["Properties"]["GlobalSecondaryIndexes"]}
    outbox = indexes["PendingOutboxIndex"]
    assert [k["AttributeName"] for k in outbox["KeySchema"]] == ["outboxShard", "outboxSince"]
    assert outbox["Projection"] == {"ProjectionType": "KEYS_ONLY"}
