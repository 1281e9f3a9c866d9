"""CloudFormation custom resource: the deploy fails, with the reason, when the business-hours document (the SSM
parameter named by BusinessHoursParameterName) is missing or invalid. Nothing is created; Delete does nothing.

crhelper answers CloudFormation: FAILED with the exception's message as the reason."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from crhelper import CfnResource

from casebridge.escalation.hours import parse_business_hours
from casebridge.observability import logger

helper = CfnResource(json_logging=False, log_level="INFO", boto_level="CRITICAL", sleep_on_delete=0)


def check(parameter_name: str) -> str:
    """Reads and checks the document; raises ValueError (ScheduleInvalid) or the read's error with its reason."""
    if not parameter_name:
        return "business-hours:none"
    ssm = boto3.client("ssm")
    try:
        document = ssm.get_parameter(Name=parameter_name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        raise ValueError(f"the business-hours parameter {parameter_name} does not exist") from None
    hours = parse_business_hours(document)  # ScheduleInvalid: its message says where the document is wrong
    logger.info("business-hours document valid", extra={"queues": len(hours.queues), "default": bool(hours.default)})
    return f"business-hours:{parameter_name}"


@helper.create
@helper.update
def create_or_update(event: dict[str, Any], _: LambdaContext) -> str:
    return check(str(event["ResourceProperties"].get("ParameterName") or ""))


@helper.delete
def delete(_: dict[str, Any], __: LambdaContext) -> None:
    return None


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    helper(event, context)
