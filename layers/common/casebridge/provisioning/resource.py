"""The CloudFormation custom resource's view: its properties, its physical id, Create/Update/Delete."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from casebridge.observability import logger
from casebridge.provisioning.credentials import Credentials, ProvisioningError, check_api, read_credentials
from casebridge.provisioning.operations import deprovision_contact_center, provision_contact_center

PHYSICAL_ID_PREFIX = "8x8-webhook-channel:"


# ---- the custom resource's view ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResourceRequest:
    """The custom resource's properties (template.yaml `EightByEightProvisioning`)."""

    api: str
    base_url: str
    tenant_id: str
    region: str
    secret_arn: str
    webhook_url: str
    queue_id: str
    name: str

    REQUIRED = ("Api", "BaseUrl", "TenantId", "SecretArn", "WebhookUrl", "Name")

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> ResourceRequest:
        missing = [k for k in cls.REQUIRED if not str(props.get(k) or "").strip()]
        if missing:
            raise ProvisioningError(f"the custom resource lacks {', '.join(missing)} (a template error)")
        request = cls(
            api=str(props["Api"]),
            base_url=str(props["BaseUrl"]).rstrip("/"),
            tenant_id=str(props["TenantId"]),
            region=str(props.get("Region") or "us"),
            secret_arn=str(props["SecretArn"]),
            webhook_url=str(props["WebhookUrl"]),
            queue_id=str(props.get("QueueId") or ""),
            name=str(props["Name"]),
        )
        check_api(request.api)
        return request

    def same_place(self, other: ResourceRequest) -> bool:
        return (self.base_url, self.tenant_id, self.region) == (other.base_url, other.tenant_id, other.region)

    def same_target(self, other: ResourceRequest) -> bool:
        return self.same_place(other) and (self.api, self.webhook_url, self.queue_id, self.name) == (
            other.api,
            other.webhook_url,
            other.queue_id,
            other.name,
        )

    def args(self, credentials: Credentials) -> tuple[str, str, str, str, Credentials]:
        return self.api, self.base_url, self.tenant_id, self.region, credentials


def physical_id(webhook_id: str, channel_id: str) -> str:
    return f"{PHYSICAL_ID_PREFIX}{webhook_id}/{channel_id}"


def parse_physical_id(value: str | None) -> tuple[str, str] | None:
    if not value or not value.startswith(PHYSICAL_ID_PREFIX):
        return None  # crhelper's generated id after a failed create: nothing of ours is known by id
    webhook_id, sep, channel_id = value[len(PHYSICAL_ID_PREFIX) :].partition("/")
    return (webhook_id, channel_id) if sep and webhook_id and channel_id else None


def on_create(props: Mapping[str, Any], deadline: float | None = None) -> tuple[str, dict[str, str]]:
    return _provision(ResourceRequest.from_properties(props), None, deadline)


def on_update(
    props: Mapping[str, Any], old_props: Mapping[str, Any], current_id: str, deadline: float | None = None
) -> tuple[str, dict[str, str]]:
    request = ResourceRequest.from_properties(props)
    old = ResourceRequest.from_properties(old_props)
    known = parse_physical_id(current_id)
    if known is not None and request.same_target(old):
        return current_id, {"WebhookId": known[0], "ChannelId": known[1]}  # e.g. only the secret's ARN changed
    # Another tenant or 8x8 endpoint: make new ones there; CloudFormation then deletes the old (old properties).
    return _provision(request, known if request.same_place(old) else None, deadline)


def _provision(
    request: ResourceRequest, existing: tuple[str, str] | None, deadline: float | None
) -> tuple[str, dict[str, str]]:
    credentials = read_credentials(request.api, request.secret_arn)
    ids = provision_contact_center(
        *request.args(credentials),
        request.webhook_url,
        request.queue_id,
        request.name,
        existing=existing,
        deadline=deadline,
    )
    return physical_id(*ids), {"WebhookId": ids[0], "ChannelId": ids[1]}


def on_delete(props: Mapping[str, Any], current_id: str, deadline: float | None = None) -> None:
    known = parse_physical_id(current_id)
    try:
        request = ResourceRequest.from_properties(props)
        credentials = read_credentials(request.api, request.secret_arn)
        deprovision_contact_center(
            *request.args(credentials),
            *(known or (None, None)),
            name=request.name,
            webhook_url=request.webhook_url,
            deadline=deadline,
        )
    except ProvisioningError:
        if known is not None:
            raise
        # The create never succeeded (bad secret, bad properties...): failing here would leave the stack in
        # ROLLBACK_FAILED for a resource that may not exist. The cleanup by name was best effort.
        logger.warning("nothing provisioned was known by id; cleanup by name skipped or failed", exc_info=True)
