"""`make deploy`: check AWS credentials first, ask only for what has no default, check each answer against the
template's own constraints at the prompt, then `sam build` and `sam deploy`.

`sam deploy --guided` asks for every parameter (two dozen questions) and only CloudFormation checks the answers,
after the build and the upload; a value typed at the wrong prompt (a tenant id as the region) fails minutes later.
Here every answer is checked where it is typed, and the answers are saved in samconfig.toml (`--save-params`) so
the next `make deploy` asks nothing.

    make deploy                       # asks what is missing, then builds and deploys
    make deploy ARGS="--check"        # credentials and answers only: no build, no deploy
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from scripts.local_stack.template import Template

ROOT = Path(__file__).resolve().parents[1]
SAMCONFIG = ROOT / "samconfig.toml"
# Asked when neither samconfig.toml nor the command line has them: what only the user knows.
ASKED = ("EightByEightApi", "EightByEightTenantId", "EightByEightCredentialsSecretArn", "EightByEightQueueId")
NO_CREDENTIALS = """No AWS credentials found, so nothing can be deployed.
Give this shell some, then run make deploy again:
  aws configure                              (an access key), or
  aws sso login --profile NAME && export AWS_PROFILE=NAME
(`aws sts get-caller-identity` must work.)"""


class DeployError(Exception):
    """A reason to stop before building, said in words."""


@dataclass(frozen=True)
class Parameter:
    name: str
    spec: Mapping[str, Any]

    @property
    def default(self) -> str | None:
        value = self.spec.get("Default")
        return None if value is None else str(value)

    def problem(self, value: str) -> str | None:
        """Why CloudFormation would refuse this value, in words (None: it would take it)."""
        spec = self.spec
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(v) for v in allowed]:
            return spec.get("ConstraintDescription") or f"must be one of: {', '.join(str(v) for v in allowed)}"
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(str(pattern), value):
            return spec.get("ConstraintDescription") or f"must match {pattern}"
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            return f"must have at least {spec['MinLength']} characters"
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                return "must be a number"
            if "MinValue" in spec and number < float(spec["MinValue"]):
                return f"must be at least {spec['MinValue']}"
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                return f"must be at most {spec['MaxValue']}"
        return None


def template_parameters(path: Path = ROOT / "template.yaml") -> dict[str, Parameter]:
    body = Template.load(path).body
    return {name: Parameter(name, spec) for name, spec in body.get("Parameters", {}).items()}


def saved_answers(path: Path = SAMCONFIG) -> tuple[dict[str, str], str | None]:
    """The parameter overrides and region a previous deploy saved in samconfig.toml."""
    if not path.exists():
        return {}, None
    deploy = tomllib.loads(path.read_text()).get("default", {}).get("deploy", {}).get("parameters", {})
    overrides = deploy.get("parameter_overrides", "")
    pairs = shlex.split(" ".join(overrides) if isinstance(overrides, list) else str(overrides))
    answers = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
    return answers, deploy.get("region")


def check_credentials(session: boto3.session.Session) -> str:
    """The caller's account, or a DeployError saying how to get credentials."""
    try:
        identity = session.client("sts").get_caller_identity()
    except NoCredentialsError:
        raise DeployError(NO_CREDENTIALS) from None
    except NoRegionError:
        identity = session.client("sts", region_name="us-east-1").get_caller_identity()
    except (ClientError, BotoCoreError) as error:
        raise DeployError(f"The AWS credentials in this shell do not work ({error}).\n{NO_CREDENTIALS}") from None
    return str(identity["Account"])


def business_hours_version(session: boto3.session.Session, answers: Mapping[str, str]) -> dict[str, str]:
    """The business-hours parameter's current version as BusinessHoursVersion: a deploy after the document was
    edited changes the check's properties, so CloudFormation runs the check again (the value alone would not)."""
    name = answers.get("BusinessHoursParameterName", "")
    if not name:
        return {"BusinessHoursVersion": ""}
    ssm = session.client("ssm")
    try:
        version = ssm.get_parameter(Name=name)["Parameter"]["Version"]
    except ssm.exceptions.ParameterNotFound:
        raise DeployError(f"the business-hours parameter {name} does not exist in this account and region") from None
    except (ClientError, BotoCoreError) as error:
        raise DeployError(f"the business-hours parameter {name} could not be read ({error})") from None
    return {"BusinessHoursVersion": str(version)}


def ask(parameter: Parameter, prompt: str, read: Callable[[str], str], say: Callable[[str], None]) -> str:
    """Ask until the answer is one CloudFormation will take; an empty answer takes the default."""
    default = parameter.default
    suffix = f" [{default}]" if default not in (None, "") else ""
    while True:
        answer = read(f"{prompt}{suffix}: ").strip()
        if not answer and default is not None:
            answer = default
        reason = parameter.problem(answer)
        if reason is None:
            return answer
        say(f"  {parameter.name} {reason}. Try again.")


PROMPTS = {
    "EightByEightApi": "8x8 API (chat-gateway-v1 or chat-api-v2)",
    "EightByEightTenantId": "8x8 tenant id",
    "EightByEightCredentialsSecretArn": "ARN of the Secrets Manager secret holding the 8x8 API key",
    "EightByEightQueueId": "8x8 chat queue id (empty if you give an existing channel id next)",
    "EightByEightChannelId": "existing 8x8 channel id",
}


def gather(
    parameters: Mapping[str, Parameter],
    known: Mapping[str, str],
    read: Callable[[str], str] = input,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """The answers to deploy with: the known ones checked, the missing ones asked (and checked at the prompt)."""
    answers: dict[str, str] = {}
    for name, value in known.items():
        if name not in parameters:
            raise DeployError(f"{name} is not a parameter of template.yaml")
        reason = parameters[name].problem(value)
        if reason is not None:
            raise DeployError(f"{name}={value!r}: {name} {reason}")
        answers[name] = value
    for name in ASKED:
        if name not in answers:
            answers[name] = ask(parameters[name], PROMPTS[name], read, say)
    if not answers.get("EightByEightQueueId") and not answers.get("EightByEightChannelId"):
        answers["EightByEightChannelId"] = ask(
            Parameter("EightByEightChannelId", {**parameters["EightByEightChannelId"].spec, "MinLength": 1}),
            PROMPTS["EightByEightChannelId"],
            read,
            say,
        )
    return answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check credentials and answers only")
    parser.add_argument("--region", help="AWS region (default: the shell's, or the one saved in samconfig.toml)")
    parser.add_argument("overrides", nargs="*", metavar="Name=Value", help="template parameters to deploy with")
    args = parser.parse_args(argv)
    known, saved_region = saved_answers()
    known.update(dict(o.split("=", 1) for o in args.overrides if "=" in o))
    session = boto3.session.Session(region_name=args.region or saved_region)
    try:
        account = check_credentials(session)
        region = session.region_name or input("AWS region to deploy to (e.g. us-east-1): ").strip()
        if region not in session.get_available_regions("cloudformation"):
            raise DeployError(f"{region!r} is not an AWS region with CloudFormation")
        answers = gather(template_parameters(), known)
        answers.update(business_hours_version(session, answers))
    except DeployError as error:
        print(error, file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("\nstopped: nothing was deployed", file=sys.stderr)
        return 1
    print(f"deploying to account {account} in {region}")
    if args.check:
        return 0
    sam = str(Path(sys.executable).parent / "sam")
    build = subprocess.run(["make", "--no-print-directory", "build"], cwd=ROOT, check=False)
    if build.returncode:
        return build.returncode
    overrides = [f"{name}={value}" for name, value in answers.items()]
    command = [sam, "deploy", "--region", region, "--save-params", "--parameter-overrides", *overrides]
    return subprocess.run(command, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
