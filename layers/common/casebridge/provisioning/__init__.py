"""The stack's 8x8 side: the webhook 8x8 posts events to, and the channel that binds it to a queue.

Used by the CloudFormation custom resource (functions/provisioner) and by the local stack. Every call is safe to
repeat: a webhook with the same name and URI, or a channel with the same name on that webhook, is adopted instead
of made twice, and deleting what is already gone succeeds. Every failure is a ProvisioningError whose message
says what to fix (CloudFormation shows it as the resource's status reason, at most 256 characters).

Both APIs:
  Chat Gateway v1  {base}/chat-gateway/v1/webhooks|channels, `x-api-key` + `X-8x8-Tenant`, HAL lists
                   (`_embedded.webhooks`, `page.totalPages`)
  Chat API v2      {base}/vcc/{region}/chat/v2/tenant/{tenant}/web-hooks|channels, OAuth bearer token from
                   POST /oauth/v2/token, lists `data` + `page.pageCount`
"""

from casebridge.provisioning.client import EVENT_VERSION, Place
from casebridge.provisioning.credentials import (
    APIS,
    GATEWAY,
    V2,
    Credentials,
    ProvisioningError,
    check_api,
    parse_credentials,
    read_credentials,
)
from casebridge.provisioning.operations import deprovision_contact_center, provision_contact_center
from casebridge.provisioning.resource import (
    PHYSICAL_ID_PREFIX,
    ResourceRequest,
    on_create,
    on_delete,
    on_update,
    parse_physical_id,
    physical_id,
)

__all__ = [
    "APIS",
    "EVENT_VERSION",
    "GATEWAY",
    "PHYSICAL_ID_PREFIX",
    "V2",
    "Credentials",
    "Place",
    "ProvisioningError",
    "ResourceRequest",
    "check_api",
    "deprovision_contact_center",
    "on_create",
    "on_delete",
    "on_update",
    "parse_credentials",
    "parse_physical_id",
    "physical_id",
    "provision_contact_center",
    "read_credentials",
]
