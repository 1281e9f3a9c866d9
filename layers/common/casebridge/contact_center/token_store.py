"""The shared Chat API v2 token, kept in the cases table (`TOKEN#<tenant>` / `TOKEN`): the table
implementation of tokens.TokenCache. Only the functions that call 8x8 may read these items (template.yaml
denies the webhook intake every `TOKEN#` key)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from casebridge import aws
from casebridge.clock import now_ms
from casebridge.store.codec import from_item, key, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def token_key(tenant_id: str) -> dict[str, Any]:
    return key(f"TOKEN#{tenant_id}", "TOKEN")


class TableTokenCache:
    client = aws.InjectableClient(aws.dynamodb_client)

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table = table_name
        self.client = client

    def get_token(self, tenant_id: str) -> dict[str, Any] | None:
        found = self.client.get_item(TableName=self.table, Key=token_key(tenant_id), ConsistentRead=True).get("Item")
        return from_item(found) if found else None

    def lease_token_refresh(self, tenant_id: str, lease_ms: int) -> bool:
        now = now_ms()
        try:
            self.client.update_item(
                TableName=self.table,
                Key=token_key(tenant_id),
                UpdateExpression="SET leaseUntil = :until",
                ConditionExpression="attribute_not_exists(leaseUntil) OR leaseUntil < :now",
                ExpressionAttributeValues=to_item({":until": now + lease_ms, ":now": now}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_token(
        self, tenant_id: str, access_token: str, expires_at_ms: int, refresh_at_ms: int | None = None
    ) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={
                **token_key(tenant_id),
                **to_item(
                    {
                        "accessToken": access_token,
                        "tokenExpiresAt": expires_at_ms,
                        "tokenRefreshAt": refresh_at_ms,
                        "expiresAt": expires_at_ms // 1000 + 3600,
                        "leaseUntil": 0,
                    }
                ),
            },
        )

    def drop_token(self, tenant_id: str, access_token: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=token_key(tenant_id),
                ConditionExpression="accessToken = :token",
                ExpressionAttributeValues=to_item({":token": access_token}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
