"""Cases: the claim to open a conversation, the case ↔ conversation binding, case events with their state change
and outbox mark, and the timeline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from casebridge.clock import now_ms
from casebridge.errors import StoreBusy
from casebridge.state import CaseState, LiveState
from casebridge.store.codec import (
    CASE_SK,
    CONVERSATION_SK,
    EVENT_PREFIX,
    OUTBOX_INDEX,
    OUTBOX_SHARD,
    case_pk,
    conversation_pk,
    decode_cursor,
    key,
    to_item,
)
from casebridge.store.records import CaseRecord, OpeningAttempt, TimelineEntry, WebhookReceipt

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef
from casebridge.store.table import (
    OUTBOX_HOLD_MS,
    TAKE_IN_HOLD_MS,
    ReceiptExists,
    TableAccess,
    entry_read_back,
    throttled,
)


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: taken or not, and the case as the conditional write found it (its old image when
    taken, the current item when not; None: there was no case item)."""

    taken: bool
    found: CaseRecord | None

    def __bool__(self) -> bool:
        return self.taken


class CaseItems(TableAccess):
    def claim_opening(self, case_id: str, lease_ms: int, attempt: OpeningAttempt | None = None) -> Claim:
        """Take the right to create the case's 8x8 conversation. One winner, enforced by DynamoDB. `attempt` (what
        the create will be asked with) is added to the case's opening attempts: it stays there unless the create
        ends clearly (conversation recorded, or a failure that proves 8x8 made nothing)."""
        now = now_ms()
        values: dict[str, Any] = {
            ":case": case_id,
            ":until": now + lease_ms,
            ":now": now,
            ":open": CaseState.OPEN.value,
            ":zero": 0,
        }
        # On the sweeper's index from the claim on: an opener that dies after 8x8 made the conversation leaves it
        # unrecorded, and nobody may open the case again (the sweeper looks it up once the lease ran out).
        values[":outbox"] = OUTBOX_SHARD
        expression = (
            "SET caseId = :case, openingUntil = :until, updatedAt = :now, createdAt = if_not_exists(createdAt, :now),"
            " #state = if_not_exists(#state, :open), version = if_not_exists(version, :zero),"
            " outboxShard = :outbox, outboxSince = if_not_exists(outboxSince, :now)"
        )
        if attempt is not None:
            expression += " ADD openingAttempts :attempt"
            values[":attempt"] = {attempt.encode()}
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=key(case_pk(case_id), CASE_SK),
                UpdateExpression=expression,
                ConditionExpression="attribute_not_exists(conversationId) AND "
                "(attribute_not_exists(openingUntil) OR openingUntil < :now)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_item(values),
                # Decide from the state the claim was taken on (or refused by), never from an earlier read.
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                if throttled(error):
                    raise StoreBusy("DynamoDB is throttling; retry shortly", retry_after=1) from error
                raise
            item: Any = error.response.get("Item")
            return Claim(False, CaseRecord.from_item(item) if isinstance(item, dict) else self.get_case(case_id))
        old = answer.get("Attributes")
        return Claim(True, CaseRecord.from_item(old) if old and "caseId" in old else None)

    def release_claim(
        self,
        case_id: str,
        *,
        ambiguous: bool = False,
        attempt: OpeningAttempt | None = None,
        settles_at: int = 0,
    ) -> None:
        """Give the claim back. `ambiguous`: 8x8 may have created the conversation, so whoever claims next
        looks it up (on the attempt's channel) before creating another; `settles_at`: until then 8x8 may still be
        making it, so an opener that finds nothing must not create one before. Else the attempt is forgotten."""
        expression = "REMOVE openingUntil"
        values: dict[str, Any] = {}
        if ambiguous:
            # On the sweeper's index too (from when the create has settled): 8x8's events for a conversation it did
            # make wait as early events, and a case nobody opens again would never take them in.
            expression += (
                " SET openingAmbiguous = :yes, outboxShard = :outbox, outboxSince = if_not_exists(outboxSince, :from)"
            )
            values[":yes"] = True
            values[":outbox"] = OUTBOX_SHARD
            values[":from"] = settles_at or now_ms()
            if settles_at:
                expression += ", openingSettlesAt = :settles"
                values[":settles"] = settles_at
        elif attempt is not None:
            expression += " DELETE openingAttempts :attempt"
            values[":attempt"] = {attempt.encode()}
        request: dict[str, Any] = {
            "Key": key(case_pk(case_id), CASE_SK),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(caseId)",
        }
        if values:
            request["ExpressionAttributeValues"] = to_item(values)
        self._conditional_update(**request)

    def record_conversation(
        self,
        case_id: str,
        conversation_id: str,
        channel_id: str,
        *,
        open_request_hashes: Iterable[str] = (),
        customer_hash: str | None = None,
        routing: dict[str, str] | None = None,
    ) -> None:
        """Bind the case to its conversation, and the conversation to its case, in one transaction. The opening
        attempts are settled: the conversation is the case's one."""
        now = now_ms()
        values: dict[str, Any] = {
            ":conv": conversation_id,
            ":channel": channel_id,
            ":now": now,
            ":untaken": True,
            ":outbox": OUTBOX_SHARD,
            ":held": now + TAKE_IN_HOLD_MS,
        }
        # Until its early events are taken in (early_events_taken), the case waits on the sweeper's index.
        sets = [
            "conversationId = :conv",
            "channelId = :channel",
            "updatedAt = :now",
            "earlyEventsUntaken = :untaken",
            "outboxShard = :outbox",
            "outboxSince = if_not_exists(outboxSince, :now)",
            "conversationOpenedAt = :now",
            # The opener takes in what follows (ConversationOpened, early events); others wait unless it lets go.
            "takeInHeldUntil = :held",
        ]
        hashes = set(open_request_hashes)
        for attribute, value in (
            ("openRequestHashes", hashes or None),
            ("customerHash", customer_hash),
            ("routing", routing),
        ):
            if value is not None:
                sets.append(f"{attribute} = :{attribute}")
                values[f":{attribute}"] = value
        self._transact(
            [
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": key(case_pk(case_id), CASE_SK),
                        "UpdateExpression": "SET "
                        + ", ".join(sets)
                        + " REMOVE openingUntil, openingAmbiguous, openingAttempts, openingSettlesAt",
                        "ConditionExpression": "attribute_not_exists(conversationId)",
                        "ExpressionAttributeValues": to_item(values),
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(
                            {
                                "pk": conversation_pk(conversation_id),
                                "sk": CONVERSATION_SK,
                                "caseId": case_id,
                                "createdAt": now,
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )

    def set_open_request_hash(self, case: CaseRecord, open_request_hash: str, customer_hash: str) -> bool:
        """After 8x8 took new customer data for the case. False: the case changed meanwhile."""
        return self._conditional_update(
            Key=key(case_pk(case.case_id), CASE_SK),
            UpdateExpression="SET openRequestHashes = :hashes, customerHash = :customer, updatedAt = :now"
            " REMOVE openRequestHash",
            ConditionExpression="version = :v",
            ExpressionAttributeValues=to_item(
                {":hashes": {open_request_hash}, ":customer": customer_hash, ":now": now_ms(), ":v": case.version}
            ),
        )

    def record_case_event(
        self,
        case: CaseRecord,
        entry: TimelineEntry,
        live: LiveState | None,
        receipt: WebhookReceipt | None = None,
        *,
        pending_publish: bool = False,
        taking_early: TimelineEntry | None = None,
    ) -> TimelineEntry | None:
        """Timeline entry + state change (+ webhook receipt) at once. Returns the entry as recorded, with its
        sequence on the case's timeline; None: the receipt existed (duplicate), or the early event `taking_early`
        (kept under its conversation, deleted by this write) was taken in already. StaleCase: the case changed.
        `pending_publish`: the entry is published after this write; until then the case lists it (outbox)."""
        items: list[TransactWriteItemTypeDef] = []
        if receipt:
            items.append(self._receipt_put(receipt))
        elif taking_early is not None:  # two adopters race: the one whose write deletes it records it
            items.append(
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": key(conversation_pk(taking_early.conversation_id), taking_early.sort_key),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
            )
        # The case is always updated: its version check guards the sequence (and the outbox mark) against a
        # concurrent write, so sequences follow commit order.
        recorded, timeline_items = self._on_timeline(case, entry, live, pending_publish=pending_publish)
        items.extend(timeline_items)
        try:
            self._transact(items, receipt_first=receipt is not None or taking_early is not None)
        except ReceiptExists:
            return None
        return recorded

    def mark_published(self, case_id: str, sort_keys: set[str]) -> None:
        """The entries reached the bus: take them off the case's outbox (and the case off the sweeper's index once
        nothing is pending)."""
        if not sort_keys:
            return
        answer = self.client.update_item(
            TableName=self.table,
            Key=key(case_pk(case_id), CASE_SK),
            UpdateExpression="DELETE pendingPublish :sks",
            ExpressionAttributeValues=to_item({":sks": sort_keys}),
            ReturnValues="UPDATED_NEW",
        )
        if "pendingPublish" not in answer.get("Attributes", {}):  # DynamoDB drops a set that becomes empty
            self.clear_outbox_mark(case_id)

    def clear_outbox_mark(self, case_id: str, *, opening_looked_up: bool = False) -> None:
        """Off the sweeper's index, if nothing was put on the outbox meanwhile (nor early events left to take in),
        and no create's outcome is unknown: the sweeper looks that up first (`opening_looked_up`: it did, and found
        nothing; still not while a claim is held)."""
        condition = "attribute_exists(caseId) AND attribute_not_exists(pendingPublish) AND "
        condition += "attribute_not_exists(earlyEventsUntaken) AND "
        if opening_looked_up:
            condition += "attribute_not_exists(openingUntil)"
        else:
            condition += "attribute_not_exists(openingAmbiguous) AND attribute_not_exists(openingAttempts)"
        self._conditional_update(
            Key=key(case_pk(case_id), CASE_SK),
            UpdateExpression="REMOVE outboxShard, outboxSince",
            ConditionExpression=condition,
        )

    def early_events_taken(self, case_id: str) -> None:
        """The conversation's early events are on the case's timeline: off the sweeper's index too, unless
        something is on the outbox."""
        if not self._conditional_update(
            Key=key(case_pk(case_id), CASE_SK),
            UpdateExpression="REMOVE earlyEventsUntaken, takeInHeldUntil, outboxShard, outboxSince",
            ConditionExpression="attribute_exists(caseId) AND attribute_not_exists(pendingPublish)",
        ):
            self._conditional_update(
                Key=key(case_pk(case_id), CASE_SK),
                UpdateExpression="REMOVE earlyEventsUntaken, takeInHeldUntil",
                ConditionExpression="attribute_exists(caseId)",
            )

    def let_go_of_take_in(self, case_id: str) -> None:
        """The opener could not take in what follows its conversation: any request for the case may, now."""
        self._conditional_update(
            Key=key(case_pk(case_id), CASE_SK),
            UpdateExpression="REMOVE takeInHeldUntil",
            ConditionExpression="attribute_exists(caseId)",
        )

    def pending_outboxes(self) -> list[tuple[str, int]]:
        """(caseId, since when) of every case with something on its outbox, oldest first (the sparse index)."""
        found: list[tuple[str, int]] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": OUTBOX_INDEX,
            "KeyConditionExpression": "outboxShard = :outbox",
            "ExpressionAttributeValues": to_item({":outbox": OUTBOX_SHARD}),
        }
        while True:
            answer = self.client.query(**request)
            for item in answer.get("Items", []):
                found.append((item["pk"]["S"].removeprefix("CASE#"), int(item["outboxSince"]["N"])))
            if "LastEvaluatedKey" not in answer:
                return found
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def claim_outbox_entries(self, case_id: str, sort_keys: set[str]) -> tuple[list[TimelineEntry], set[str]]:
        """Take the case's outbox entries no request holds (their recorder let go, or its hold ran out) for this
        request to publish, each with a conditional write: of two flushers (a read and the sweeper), one wins.
        Returns (the entries taken, in timeline order; the sort keys whose entry is gone, expired by TTL). An entry
        still held is neither: its recorder publishes it, or lets go, or its hold runs out."""
        now = now_ms()
        taken: list[TimelineEntry] = []
        gone: set[str] = set()
        for sort_key in sorted(sort_keys):
            try:
                answer = self.client.update_item(
                    TableName=self.table,
                    Key=key(case_pk(case_id), sort_key),
                    UpdateExpression="SET outboxHeldUntil = :until",
                    ConditionExpression="attribute_exists(pk) AND "
                    "(attribute_not_exists(outboxHeldUntil) OR outboxHeldUntil <= :now)",
                    ExpressionAttributeValues=to_item({":until": now + OUTBOX_HOLD_MS, ":now": now}),
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if (
                    error.response["Error"]["Code"] == "ConditionalCheckFailedException"
                    and "Item" not in error.response
                ):
                    gone.add(sort_key)
                continue  # held by another request, or not taken now (throttled): a later flush takes it
            except (BotoCoreError, OSError):
                continue  # maybe taken, answer lost: held by nobody alive until its hold runs out
            taken.append(entry_read_back(answer["Attributes"]))
        return taken, gone

    def let_go_of_outbox_entries(self, case_id: str, sort_keys: set[str]) -> None:
        """This request could not publish them: any request for the case (or the sweeper) may, now."""
        for sort_key in sorted(sort_keys):
            self._conditional_update(
                Key=key(case_pk(case_id), sort_key),
                UpdateExpression="REMOVE outboxHeldUntil",
                ConditionExpression="attribute_exists(pk)",
            )

    def request_reopen(self, case: CaseRecord, message_id: str) -> bool:
        """A message asks 8x8 for a new interaction: the next QUEUED reopens even a closed case.
        False: the case changed meanwhile."""
        return self._conditional_update(
            Key=key(case_pk(case.case_id), CASE_SK),
            # A reset point: the state derived so far becomes the base of 8x8's next events.
            UpdateExpression="SET reopenRequested = :yes, reopenBy = :by, updatedAt = :now, version = :next"
            " REMOVE stateEvents, stateBase",
            ConditionExpression="version = :v",
            ExpressionAttributeValues=to_item(
                {":yes": True, ":by": message_id, ":now": now_ms(), ":next": case.version + 1, ":v": case.version}
            ),
        )

    # ---- timeline ----------------------------------------------------------------------------
    def list_timeline(self, case_id: str, after: str | None, limit: int) -> tuple[list[TimelineEntry], str | None]:
        """The case's timeline in sequence order (commit order), after the cursor. An entry committed after a
        reader paged past the last one gets a higher sequence, so that reader still gets it."""
        values = {":pk": case_pk(case_id), ":prefix": EVENT_PREFIX}
        condition = "pk = :pk AND begins_with(sk, :prefix)"
        if after:
            condition = "pk = :pk AND sk > :after"
            values = {":pk": case_pk(case_id), ":after": decode_cursor(after)}
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=to_item(values),
            Limit=limit,
            ConsistentRead=True,
        )
        entries = [TimelineEntry.from_item(i) for i in answer.get("Items", []) if i["sk"]["S"].startswith(EVENT_PREFIX)]
        next_cursor = entries[-1].cursor if entries else after
        return entries, next_cursor
