"""`make deploy` (scripts/deploy.py): credentials are checked before anything is built, only what has no default
is asked, and every answer is checked against template.yaml's own constraints where it is typed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from scripts import deploy
from scripts.local_stack.template import Template

GOOD = {
    "EightByEightApi": "chat-gateway-v1",
    "EightByEightTenantId": "acme-tenant",
    "EightByEightCredentialsSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:casebridge/8x8-AbCdEf",
    "EightByEightQueueId": "101",
}


@pytest.fixture
def parameters() -> dict[str, deploy.Parameter]:
    return deploy.template_parameters()


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    yield


def answers(*typed: str) -> Any:
    pending = list(typed)
    prompts: list[str] = []

    def read(prompt: str) -> str:
        prompts.append(prompt)
        return pending.pop(0)

    read.prompts = prompts  # type: ignore[attr-defined]
    return read


def test_missing_credentials_stop_before_any_build_with_what_to_do(
    no_credentials: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[Any] = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))
    assert deploy.main(["--region", "us-east-1"]) == 1
    assert ran == [], "nothing is built or deployed without credentials"
    err = capsys.readouterr().err
    assert "No AWS credentials found" in err and "aws configure" in err
    assert "Traceback" not in err


def test_credentials_check_names_the_account(no_credentials: None) -> None:
    with pytest.raises(deploy.DeployError, match="No AWS credentials"):
        deploy.check_credentials(boto3.session.Session(region_name="us-east-1"))


def test_only_what_has_no_default_is_asked(parameters: dict[str, deploy.Parameter]) -> None:
    read = answers("", "acme-tenant", GOOD["EightByEightCredentialsSecretArn"], "101")
    got = deploy.gather(parameters, {}, read=read, say=lambda _: None)
    assert got == GOOD, "an empty answer takes the default (the Gateway)"
    assert len(read.prompts) == 4, read.prompts


def test_a_value_typed_at_the_wrong_prompt_is_refused_there_and_asked_again(
    parameters: dict[str, deploy.Parameter],
) -> None:
    said: list[str] = []
    read = answers(
        "acme-tenant",
        "chat-api-v2",
        "acme-tenant",
        "not-an-arn",
        GOOD["EightByEightCredentialsSecretArn"],
        "",
        "channel-1",
    )
    got = deploy.gather(parameters, {}, read=read, say=said.append)
    assert got["EightByEightApi"] == "chat-api-v2"
    assert got["EightByEightCredentialsSecretArn"] == GOOD["EightByEightCredentialsSecretArn"]
    assert got["EightByEightChannelId"] == "channel-1", "no queue id: a channel id is required"
    assert any("EightByEightApi must be one of" in s for s in said), said
    assert any("EightByEightCredentialsSecretArn must be a Secrets Manager secret ARN" in s for s in said), said


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("EightByEightRegion", "acme-tenant", "must be one of us, eu, ca, ap"),
        ("EightByEightTenantId", "acme tenant", "must be your 8x8 tenant id"),
        ("EightByEightBaseUrl", "https://api.8x8.com/path", "must be a base URL"),
        ("MaxSendAttempts", "0", "must be at least 1"),
        ("NoSuchParameter", "x", "not a parameter of template.yaml"),
    ],
)
def test_bad_values_given_up_front_are_refused_before_anything_runs(
    parameters: dict[str, deploy.Parameter], name: str, value: str, reason: str
) -> None:
    with pytest.raises(deploy.DeployError, match=reason):
        deploy.gather(parameters, {**GOOD, name: value}, read=answers(), say=lambda _: None)


def test_saved_answers_are_read_back_from_samconfig(tmp_path: Path) -> None:
    config = tmp_path / "samconfig.toml"
    config.write_text(
        'version = 0.1\n[default.deploy.parameters]\nregion = "eu-west-1"\n'
        'parameter_overrides = "EightByEightTenantId=\\"acme-tenant\\" EightByEightQueueId=\\"101\\""\n'
    )
    known, region = deploy.saved_answers(config)
    assert known == {"EightByEightTenantId": "acme-tenant", "EightByEightQueueId": "101"}
    assert region == "eu-west-1"


def test_the_business_hours_version_goes_with_the_deploy_so_an_edited_document_is_checked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto import mock_aws  # noqa: PLC0415

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        ssm = session.client("ssm")
        ssm.put_parameter(Name="/casebridge/hours", Value='{"queues": {}}', Type="String")
        ssm.put_parameter(Name="/casebridge/hours", Value='{"queues": {}} ', Type="String", Overwrite=True)
        hours = {"BusinessHoursParameterName": "/casebridge/hours"}
        assert deploy.business_hours_version(session, hours) == {"BusinessHoursVersion": "2"}
        assert deploy.business_hours_version(session, {}) == {"BusinessHoursVersion": ""}
        with pytest.raises(deploy.DeployError, match="/casebridge/missing does not exist"):
            deploy.business_hours_version(session, {"BusinessHoursParameterName": "/casebridge/missing"})
    check = Template.load(deploy.ROOT / "template.yaml").body["Resources"]["BusinessHoursCheck"]
    assert check["Properties"]["DocumentVersion"] == {"Ref": "BusinessHoursVersion"}  # a new version: an update
    assert deploy.template_parameters()["BusinessHoursVersion"].problem("2") is None
