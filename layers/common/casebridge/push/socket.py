"""The channel WebSocket's routes: $connect checks the channel token, $disconnect forgets the connection, and
the widget's actions (`message`, `typing`, `resume`) run the same validation and logic as the REST routes.

An action's answer goes back on the socket as `{"action", "requestId", "status", "body"}`, with the status and
body the REST route would have answered (errors as `{"error": {"code", "message", "details"?}}`).
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

from casebridge import messages, typing_indicator
from casebridge.business_api.http import MAX_BODY_BYTES, Model, lone_surrogate_at, validate_body
from casebridge.business_api.models import PostMessageRequest, TypingRequest
from casebridge.errors import CasebridgeError, InvalidRequest, PayloadTooLarge, Unauthorized
from casebridge.observability import logger
from casebridge.push import tokens
from casebridge.push.connections import ConnectionGone, Connections
from casebridge.push.fanout import push_timeline
from casebridge.push.frames import sequence_of_cursor
from casebridge.services import Services

# API Gateway closes a WebSocket after two hours; the items outlive it a little, then TTL removes them.
CONNECTION_TTL_SECONDS = 2 * 3600 + 600
WIDGET_AUTHOR = "user"  # a widget speaks for the customer; bots use the REST API
ACTIONS = ("message", "typing", "resume")


class ActionAnswer(TypedDict):
    action: str
    requestId: str | None
    status: int
    body: Any


class Gone(CasebridgeError):
    """The connection is not (or no longer) known: the widget must connect again with a new token."""

    status_code = 410
    code = "ConnectionGone"


def connect(services: Services, connection_id: str, token: str | None, after: str | None) -> str:
    """$connect: the token's case, with the connection stored. `after`: the widget's cursor; what follows it on
    the timeline is pushed before anything newer. None: the whole timeline."""
    if not token:
        raise Unauthorized("a channel token is required (?token=, from POST /cases/{caseId}/channel-tokens)")
    case_id = tokens.verify(services.settings, token)
    sent = sequence_of_cursor(after) if after else 0
    services.store.put_connection(case_id, connection_id, sent, CONNECTION_TTL_SECONDS)
    logger.info("widget connected", extra={"caseId": case_id, "connectionId": connection_id})
    return case_id


def disconnect(services: Services, connection_id: str) -> None:
    case_id = services.store.connection_case(connection_id)
    if case_id is not None:
        services.store.drop_connection(case_id, connection_id)
        logger.info("widget disconnected", extra={"caseId": case_id, "connectionId": connection_id})


def parse_frame(body: str | None) -> dict[str, Any]:
    try:
        raw = (body or "").encode()
    except UnicodeEncodeError:  # a lone surrogate in the text itself: not UTF-8, so no frame a widget could send
        raise InvalidRequest("a frame must be UTF-8 text (it holds a lone surrogate)") from None
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"a frame is limited to {MAX_BODY_BYTES} bytes")
    try:
        frame = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("a frame must be a JSON object") from None
    except RecursionError:
        raise InvalidRequest("a frame is nested too deeply to be a request") from None
    if not isinstance(frame, dict):
        raise InvalidRequest("a frame must be a JSON object")
    return frame


def _request(frame: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """The frame's action (one of ACTIONS, else ""), its requestId (echoed in the answer) and its other fields."""
    action = frame.get("action")
    request_id = frame.get("requestId")
    if request_id is not None and (
        not isinstance(request_id, str) or len(request_id) > 128 or lone_surrogate_at(request_id) is not None
    ):
        raise InvalidRequest("'requestId' must be a string of at most 128 characters (Unicode, no lone surrogate)")
    fields = {k: v for k, v in frame.items() if k not in ("action", "requestId")}
    return (action if action in ACTIONS else ""), request_id, fields


def _validated(model: type[Model], fields: dict[str, Any]) -> Model:
    if fields.get("authorType", WIDGET_AUTHOR) != WIDGET_AUTHOR:
        details = [{"field": "authorType", "message": "a widget sends the customer's messages: 'user' only"}]
        raise InvalidRequest("authorType must be 'user' on the channel WebSocket", details=details)
    return validate_body(model, fields)


def _case_of(services: Services, connection_id: str) -> str:
    case_id = services.store.connection_case(connection_id)
    if case_id is None:
        raise Gone("this connection is not known (any more); connect again with a new channel token")
    logger.append_keys(caseId=case_id)
    return case_id


def handle_action(services: Services, connections: Connections, connection_id: str, body: str | None) -> ActionAnswer:
    """A widget's frame: its answer, never an exception (every error is an answer with its status)."""
    action, request_id = "", None
    try:
        frame = parse_frame(body)
        action, request_id, fields = _request(frame)
        if action == "message":
            case_id = _case_of(services, connection_id)
            request = _validated(PostMessageRequest, fields)
            return _answer(action, request_id, 202, messages.accept_message(services, case_id, request))
        if action == "typing":
            case_id = _case_of(services, connection_id)
            not_delivered = typing_indicator.send_typing(services, case_id, _validated(TypingRequest, fields))
            return _answer(action, request_id, 204 if not_delivered is None else 202, not_delivered)
        if action == "resume":
            return _answer(action, request_id, 200, resume(services, connections, connection_id, fields))
        raise InvalidRequest(f"'action' must be one of: {', '.join(ACTIONS)}")
    except CasebridgeError as error:
        log = logger.warning if error.status_code < 500 else logger.error
        log("widget action refused", extra={"action": action, "errorCode": error.code, "status": error.status_code})
        return _answer(action, request_id, error.status_code, error.body())
    except Exception:
        logger.exception("widget action failed unexpectedly", extra={"action": action})
        error_body = {"error": {"code": "InternalError", "message": "internal error; it was logged"}}
        return _answer(action, request_id, 500, error_body)


def resume(services: Services, connections: Connections, connection_id: str, fields: dict[str, Any]) -> dict[str, int]:
    """Push what the connection has not had (after `after` when the widget gives its cursor), then live ones."""
    unknown = set(fields) - {"after"}
    if unknown:
        raise InvalidRequest(f"resume takes only 'after'; not {sorted(unknown)}")
    case_id = _case_of(services, connection_id)
    after = fields.get("after")
    if after is not None:
        if not isinstance(after, str):
            raise InvalidRequest("'after' must be a cursor string")
        if not services.store.rewind_connection(case_id, connection_id, sequence_of_cursor(after)):
            raise Gone("this connection is not known (any more); connect again with a new channel token")
    connection = services.store.get_connection(case_id, connection_id)
    if connection is None:
        raise Gone("this connection is not known (any more); connect again with a new channel token")
    try:
        sent = push_timeline(services, connections, connection)
    except ConnectionGone:
        services.store.drop_connection(case_id, connection_id)
        raise Gone("the connection closed while its events were being sent") from None
    return {"sent": sent}


def _answer(action: str, request_id: str | None, status: int, body: Any) -> ActionAnswer:
    return {"action": action, "requestId": request_id, "status": status, "body": body}
