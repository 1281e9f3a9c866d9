"""The business's channel in the simulation: per case, a seeded script of requests (open, messages with and without
a clientMessageId, messages with files, typing, leave, reads), each retried the way a careful channel retries, and
a reader that polls the case's timeline page by page with its cursor at seeded moments.

A message with files (Chat Gateway only) asks for an upload URL per file, PUTs the file to the S3 stand-in (now
and then it never does: the message is then refused with a 4xx, never accepted), and posts the message with the
attachment ids."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.simulation.world import fault_excused
from tests.support.events import api_gateway_event

if TYPE_CHECKING:
    from tests.simulation.storage import S3
    from tests.simulation.world import LambdaRuntime, Proc, World

RETRIES = 4
API_GATEWAY_TIMEOUT_S = 29.0


@dataclass
class LogicalMessage:
    case_id: str
    text: str
    client_message_id: str | None
    message_id: str | None = None
    accepted: bool = False
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (fileName, content), in the message's order
    attachment_ids: list[str] = field(default_factory=list)  # casebridge's ids of its uploaded files


@dataclass
class Answer:
    """One request's answer as the channel saw it (API Gateway in front of the Lambda)."""

    case_id: str
    route: str
    status: int
    faults: int  # faults injected into the invocation that answered
    body: Any = None


@dataclass
class Reader:
    case_id: str
    limit: int
    cursor: str | None = None
    seen: list[str] = field(default_factory=list)
    pages: int = 0
    busy: bool = False  # one page at a time: a reader waits for a page before asking for the next


class Channel:
    def __init__(self, world: World, runtime: LambdaRuntime, gateway: bool) -> None:
        self.world = world
        self.runtime = runtime
        self.gateway = gateway
        self.messages: list[LogicalMessage] = []
        self.answers: list[Answer] = []
        self.readers: dict[str, Reader] = {}
        self.left: set[str] = set()  # cases the customer left through the API at least once
        self.s3: S3 | None = None  # where the channel PUTs its files (their pre-signed URLs)
        self._texts = 0

    # ---- the scripts ----------------------------------------------------------------------------------
    def plan(self, case_ids: list[str], *, window_s: float = 5.0, polls: bool = True) -> None:
        """Each case's requests from a moment within `window_s`; `polls`: its reader also polls at random."""
        draw = self.world.draw
        for case_id in case_ids:
            self.readers[case_id] = Reader(case_id, limit=1 + draw(4, "page size"))
            at = float(draw(int(window_s), "first request"))
            operations = ["message"] + [
                ("message", "open", "read", "events", "leave", "typing", "open", "file")[draw(8, "op")]
                for _ in range(draw(6, "requests"))
            ]
            for _ in range(draw(8, "timeline polls") if polls else 0):  # the reader polls while the case is busy
                self.world.at(float(draw(90, "poll moment")), functools.partial(self.request, case_id, "events"))
            if draw(3, "opens first") == 1:
                operations.insert(0, "open")
            for operation in operations:
                self.world.at(at, functools.partial(self.request, case_id, operation))
                at += draw(4, "think time") * draw(8, "think time") * 1.5

    def nudge(self, case_id: str) -> None:
        """The bus told the channel something happened on the case: its reader may look at the timeline soon."""
        if case_id in self.readers and self.world.draw(2, "read on a bus event"):
            self.world.at(self.world.draw(4, "read delay") * 0.2, lambda: self.request(case_id, "events"))

    def request(self, case_id: str, operation: str) -> None:
        if operation == "message":
            self._texts += 1
            with_id = self.world.draw(3, "clientMessageId") != 1
            message = LogicalMessage(case_id, f"m{self._texts}-{case_id}", f"c{self._texts}" if with_id else None)
            self.messages.append(message)
            self._post_message(message, 0)
        elif operation == "file" and self.gateway and self.s3 is not None:
            self._texts += 1
            count = 1 + self.world.draw(2, "files")
            with_id = self.world.draw(3, "clientMessageId") != 1
            text = f"m{self._texts}-{case_id} +{count} file(s)"
            files = [(f"f{self._texts}-{i}.png", f"file {i} of {text}".encode()) for i in range(count)]
            message = LogicalMessage(case_id, text, f"c{self._texts}" if with_id else None, files=files)
            self.messages.append(message)
            self._upload(message, 0)
        elif operation == "open":
            body = {"customer": {"name": "Jane Doe", "email": "jane@example.com"}} if self.world.draw(2, "body") else {}
            self._call("conversation_lifecycle", "POST", "/cases/{caseId}/conversation", case_id, body, retry=True)
        elif operation == "leave":
            self.left.add(case_id)
            self._call("conversation_lifecycle", "DELETE", "/cases/{caseId}/conversation", case_id, None, retry=True)
        elif operation == "read":
            self._call("conversation_lifecycle", "GET", "/cases/{caseId}", case_id, None)
        elif operation == "typing" and self.gateway:
            self._call("outbound_sender", "POST", "/cases/{caseId}/typing", case_id, {"authorType": "user"})
        elif operation == "events" and not self.readers[case_id].busy:
            self.read_page(self.readers[case_id], faultless=False)

    def _upload(self, message: LogicalMessage, attempt: int) -> None:
        """The next file of the message: its upload URL, then the PUT; the message once every file is up."""
        index = len(message.attachment_ids)
        if index == len(message.files):
            self._post_message(message, 0)
            return
        file_name, content = message.files[index]
        body = {"fileName": file_name, "contentType": "image/png", "size": len(content)}

        def answered(answer: Answer) -> None:
            if answer.status == 201:
                assert self.s3 is not None
                if self.world.draw(25, "file never uploaded") != 0:
                    self.s3.put(self.s3.key_of(answer.body["uploadUrl"]), content, "image/png")
                message.attachment_ids.append(answer.body["attachmentId"])
                self._upload(message, 0)
            elif (answer.status >= 500 or answer.status == 429) and attempt < RETRIES:
                self.world.at(1.0 + self.world.draw(3, "retry delay"), lambda: self._upload(message, attempt + 1))

        self._call("outbound_sender", "POST", "/cases/{caseId}/attachments", message.case_id, body, then=answered)

    def _post_message(self, message: LogicalMessage, attempt: int) -> None:
        body: dict[str, Any] = {"text": message.text, "authorType": "user"}
        if message.client_message_id:
            body["clientMessageId"] = message.client_message_id
        if message.attachment_ids:
            body["attachments"] = message.attachment_ids

        def answered(answer: Answer) -> None:
            if answer.status == 202:
                message.accepted = True
                message.message_id = answer.body["messageId"]
                return
            retryable = answer.status >= 500 or answer.status in (409, 429)
            if retryable and message.client_message_id and attempt < RETRIES:  # safe only with an idempotency key
                self.world.at(1.0 + self.world.draw(3, "retry delay"), lambda: self._post_message(message, attempt + 1))

        self._call("outbound_sender", "POST", "/cases/{caseId}/messages", message.case_id, body, then=answered)

    def read_page(self, reader: Reader, *, faultless: bool, until_empty: bool = False) -> None:
        query = {"limit": str(reader.limit)} | ({"after": reader.cursor} if reader.cursor else {})

        reader.busy = True

        def answered(answer: Answer) -> None:
            reader.busy = False
            if answer.status != 200:
                if until_empty and answer.status >= 500:
                    self.world.at(1.0, lambda: self.read_page(reader, faultless=faultless, until_empty=True))
                return
            reader.pages += 1
            events = answer.body["events"]
            reader.seen.extend(e["eventId"] for e in events)
            reader.cursor = answer.body.get("next") or reader.cursor
            if len(events) == reader.limit or (until_empty and events):
                self.read_page(reader, faultless=faultless, until_empty=until_empty)

        self._call(
            "conversation_lifecycle",
            "GET",
            "/cases/{caseId}/events",
            reader.case_id,
            None,
            query=query,
            then=answered,
            faultless=faultless,
        )

    # ---- the API Gateway in front of the functions ---------------------------------------------------
    def _call(
        self,
        function: str,
        method: str,
        resource: str,
        case_id: str,
        body: Any,
        *,
        query: dict[str, str] | None = None,
        retry: bool = False,
        attempt: int = 0,
        then: Any = None,
        faultless: bool = False,
    ) -> None:
        event = api_gateway_event(
            method,
            resource,
            path_parameters={"caseId": case_id},
            body=None if body is None else json.dumps(body),
            headers={"Content-Type": "application/json"} if body is not None else {},
            query=query,
        )
        event["requestContext"]["requestTimeEpoch"] = int(self.world.now * 1000)
        started = self.world.now
        route = f"{method} {resource}"

        def done(proc: Proc) -> None:
            status, answer_body = 502, None
            if proc.outcome == "throttled":
                status = 429
            elif proc.outcome == "ok" and isinstance(proc.result, dict):
                status = int(proc.result.get("statusCode", 502))
                try:
                    answer_body = json.loads(proc.result.get("body") or "null")
                except ValueError:
                    answer_body = proc.result.get("body")
            if self.world.now - started > API_GATEWAY_TIMEOUT_S:
                status = 504
            answer = Answer(case_id, route, status, int(fault_excused(proc, self.world.now)), answer_body)
            self.answers.append(answer)
            self.world.log(f"   channel: {route} {case_id} -> {status}")
            if then is not None:
                then(answer)
            elif retry and attempt < RETRIES and (status >= 500 or status in (409, 429)):
                self.world.at(
                    1.0 + self.world.draw(3, "retry delay"),
                    lambda: self._call(
                        function, method, resource, case_id, body, query=query, retry=True, attempt=attempt + 1
                    ),
                )

        proc = self.runtime.invoke(function, event, done, name=f"{route} {case_id}")
        proc.faultless = faultless
