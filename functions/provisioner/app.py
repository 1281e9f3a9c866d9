"""CloudFormation custom resource: the stack's 8x8 webhook and channel (the logic is casebridge.provisioning).

crhelper speaks CloudFormation's response protocol: it always answers (success, or failure with the reason the
logic raised), and answers FAILED by itself just before the function would time out.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from crhelper import CfnResource

from casebridge import provisioning
from casebridge.observability import logger

# No sleep before answering a Delete: the function's log group is the stack's own and outlives this call.
helper = CfnResource(json_logging=False, log_level="INFO", boto_level="CRITICAL", sleep_on_delete=0)
# 8x8 calls must end this long before the Lambda timeout, so the failure reason is ours, not "timed out".
RESERVE_SECONDS = 5.0


def _deadline(context: LambdaContext) -> float:
    return time.monotonic() + context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS


def _answer(physical_id: str, data: dict[str, str]) -> str:
    helper.Data.update(data)
    logger.info("8x8 provisioning done", extra=data)
    return physical_id


@helper.create
def create(event: dict[str, Any], context: LambdaContext) -> str:
    return _answer(*provisioning.on_create(event["ResourceProperties"], _deadline(context)))


@helper.update
def update(event: dict[str, Any], context: LambdaContext) -> str:
    return _answer(
        *provisioning.on_update(
            event["ResourceProperties"],
            event.get("OldResourceProperties") or {},
            event["PhysicalResourceId"],
            _deadline(context),
        )
    )


@helper.delete
def delete(event: dict[str, Any], context: LambdaContext) -> None:
    provisioning.on_delete(event["ResourceProperties"], event["PhysicalResourceId"], _deadline(context))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    logger.append_keys(requestType=event.get("RequestType"), logicalResourceId=event.get("LogicalResourceId"))
    helper(event, context)
