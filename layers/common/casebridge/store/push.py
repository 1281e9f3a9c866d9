"""Pushes to the channel: the widget connections of a case and how far each push has gone on its timeline.

Keys (pk / sk):
  CASE#<caseId>              / CONNECTION#<connectionId>   a widget's WebSocket connection: `sentSeq` (TTL)
  CONNECTION#<connectionId>  / CONNECTION                  connection → case, for the socket's own routes (TTL)
  CASE#<caseId>              / PUSH#WEBHOOK                the signed webhook's cursor: `sentSeq`, and the
                                                           event being retried with its attempts

`sentSeq` is the sequence of the case's last timeline entry handed to that destination. It only moves by a
conditional update from the value read, so two pushes racing for one connection never send an entry twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from casebridge.clock import now_ms
from casebridge.store.cases import CaseItems
from casebridge.store.codec import case_pk, encode_cursor, from_item, key, sequence_sort_key, to_item
from casebridge.store.records import TimelineEntry

CONNECTION_PREFIX = "CONNECTION#"
CONNECTION_SK = "CONNECTION"
WEBHOOK_CURSOR_SK = "PUSH#WEBHOOK"


def connection_pk(connection_id: str) -> str:
    return f"CONNECTION#{connection_id}"


def after_sequence(sequence: int) -> str | None:
    """The timeline cursor that pages past the entry with this sequence (None: from the start)."""
    return encode_cursor(sequence_sort_key(sequence)) if sequence > 0 else None


@dataclass(frozen=True)
class ConnectionRecord:
    case_id: str
    connection_id: str
    sent_seq: int

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ConnectionRecord:
        p = from_item(item)
        return cls(case_id=str(p["caseId"]), connection_id=str(p["connectionId"]), sent_seq=int(p.get("sentSeq", 0)))


@dataclass(frozen=True)
class WebhookCursor:
    sent_seq: int = 0
    failing_seq: int = 0  # the entry being retried (0: none)
    attempts: int = 0  # attempts made on it so far


class PushItems(CaseItems):
    # ---- widget connections ------------------------------------------------------------------
    def put_connection(self, case_id: str, connection_id: str, sent_seq: int, ttl_seconds: int) -> None:
        """Both items of a new connection at once: the case's list of connections and connection → case."""
        expires = self._ttl(ttl_seconds)
        common = {"caseId": case_id, "connectionId": connection_id, "connectedAt": now_ms(), "expiresAt": expires}
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(
                            {"pk": case_pk(case_id), "sk": connection_pk(connection_id), "sentSeq": sent_seq, **common}
                        ),
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item({"pk": connection_pk(connection_id), "sk": CONNECTION_SK, **common}),
                    }
                },
            ]
        )

    def connection_case(self, connection_id: str) -> str | None:
        found = self.client.get_item(
            TableName=self.table, Key=key(connection_pk(connection_id), CONNECTION_SK), ConsistentRead=True
        ).get("Item")
        return str(from_item(found)["caseId"]) if found else None

    def get_connection(self, case_id: str, connection_id: str) -> ConnectionRecord | None:
        found = self.client.get_item(
            TableName=self.table, Key=key(case_pk(case_id), connection_pk(connection_id)), ConsistentRead=True
        ).get("Item")
        return ConnectionRecord.from_item(found) if found else None

    def case_connections(self, case_id: str) -> list[ConnectionRecord]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_item({":pk": case_pk(case_id), ":prefix": CONNECTION_PREFIX}),
            "ConsistentRead": True,
        }
        found: list[ConnectionRecord] = []
        while True:
            answer = self.client.query(**request)
            found.extend(ConnectionRecord.from_item(i) for i in answer.get("Items", []))
            if not answer.get("LastEvaluatedKey"):
                return found
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def drop_connection(self, case_id: str, connection_id: str) -> None:
        """Gone (disconnected, or API Gateway answered 410): both items deleted; deleting twice is harmless."""
        self.client.delete_item(TableName=self.table, Key=key(case_pk(case_id), connection_pk(connection_id)))
        self.client.delete_item(TableName=self.table, Key=key(connection_pk(connection_id), CONNECTION_SK))

    def claim_push(self, case_id: str, connection_id: str, sent_seq: int, to_seq: int) -> bool:
        """Take the entries after `sent_seq` up to `to_seq` for this connection. False: another push moved the
        connection's cursor first (or it is gone): read it again."""
        return self._conditional_update(
            Key=key(case_pk(case_id), connection_pk(connection_id)),
            UpdateExpression="SET sentSeq = :to",
            ConditionExpression="attribute_exists(pk) AND sentSeq = :from",
            ExpressionAttributeValues=to_item({":to": to_seq, ":from": sent_seq}),
        )

    def rewind_connection(self, case_id: str, connection_id: str, sent_seq: int) -> bool:
        """The widget said where it is (resume with a cursor): the next push starts after that. False: gone."""
        return self._conditional_update(
            Key=key(case_pk(case_id), connection_pk(connection_id)),
            UpdateExpression="SET sentSeq = :seq",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":seq": sent_seq}),
        )

    # ---- the signed webhook's cursor ----------------------------------------------------------
    def webhook_cursor(self, case_id: str) -> WebhookCursor:
        found = self.client.get_item(
            TableName=self.table, Key=key(case_pk(case_id), WEBHOOK_CURSOR_SK), ConsistentRead=True
        ).get("Item")
        if not found:
            return WebhookCursor()
        p = from_item(found)
        return WebhookCursor(int(p.get("sentSeq", 0)), int(p.get("failingSeq", 0)), int(p.get("attempts", 0)))

    def webhook_sent(self, case_id: str, sequence: int) -> None:
        """The entry reached the channel, or was given up (dead-lettered): the next delivery starts after it.
        Never moves back (a late duplicate cannot rewind it)."""
        self._conditional_update(
            Key=key(case_pk(case_id), WEBHOOK_CURSOR_SK),
            UpdateExpression="SET sentSeq = :seq, updatedAt = :now REMOVE failingSeq, attempts",
            ConditionExpression="attribute_not_exists(sentSeq) OR sentSeq < :seq",
            ExpressionAttributeValues=to_item({":seq": sequence, ":now": now_ms()}),
        )

    def webhook_failed(self, case_id: str, sequence: int, attempts: int) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=key(case_pk(case_id), WEBHOOK_CURSOR_SK),
            UpdateExpression="SET failingSeq = :seq, attempts = :attempts, updatedAt = :now",
            ExpressionAttributeValues=to_item({":seq": sequence, ":attempts": attempts, ":now": now_ms()}),
        )

    # ---- the timeline, by sequence -------------------------------------------------------------
    def timeline_after(self, case_id: str, sequence: int, limit: int) -> list[TimelineEntry]:
        """The case's timeline entries after the one with `sequence`, in order; entries written before
        timelines had sequences (sequence 0) are left out: nothing could say whether they were pushed."""
        entries, _ = self.list_timeline(case_id, after_sequence(sequence), limit)
        return [e for e in entries if e.sequence > sequence]
