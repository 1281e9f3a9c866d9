"""The Chat Gateway v1 wire: problem shapes, HAL lists (FIQL filter, paging, sorting), body parsing.

Shapes per chat-gateway-v1.openapi.yml and GATEWAY.md section 1; the surface in `http_gateway` uses them.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from .http_apis import JsonBody
from .http_base import BadRequest, Request, Response
from .model import MAX_CUSTOMER_PROPS, Validation, ValidationFailed

P = "/chat-gateway/v1"
HAL = "application/hal+json"
PROBLEM = "application/problem+json"
CARD_TYPES = (
    "application/vnd.microsoft.card.adaptive",
    "application/8x8.quick.replies",
    "Interactive",
    "Location",
    "Template",
    "Suggestions",
    "Buttons",
    "Carousel",
)
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024


def hal(status: int, body: Any) -> Response:
    return Response.json(status, body, HAL)


def _ref() -> str:
    return secrets.token_hex(8)


# -- error shapes (GATEWAY.md section 1) -------------------------------------------------------


def generic(status: int, message: str, errors: list[tuple[str, str]]) -> Response:
    """GenericExceptionPayload {message, errors: [{code, message}]}."""
    return Response.json(
        status, {"message": message, "errors": [{"code": c, "message": m} for c, m in errors]}, PROBLEM
    )


def unauthorized() -> Response:
    body = {
        "message": "Access Denied",
        "errors": [{"message": "Invalid or missing API key", "code": "access_denied"}],
        "referenceId": _ref(),
    }
    return Response.json(401, body, PROBLEM)


@dataclass(frozen=True)
class Errors:
    """Which problem shape an endpoint answers for 400, 403 and 404."""

    bad_request: str = "generic"  # generic | bad_request (POST messages) | invalid_parameter (typing...)
    not_found: str = "problem"  # problem | exception (typing...) | generic (lists without a declared 404)
    forbidden: str = "violation"  # violation | generic (channel create, attachment upload)

    def forbidden_response(self, message: str) -> Response:
        if self.forbidden == "generic":
            return generic(403, "Forbidden", [("forbidden", message)])
        return Response.json(403, {"message": "Forbidden", "errors": [message]}, PROBLEM)

    def not_found_response(self, message: str) -> Response:
        if self.not_found == "exception":
            return generic(404, "Resource not found", [("resource_not_found", message)])
        if self.not_found == "generic":
            return generic(404, "Resource not found", [("resource_not_found", message)])
        return Response.json(404, {"message": "Resource not found", "errors": [message]}, PROBLEM)

    def bad_request_response(self, problems: list[Validation]) -> Response:
        text = "; ".join(f"{v.field}: {v.message}" if v.field else v.message for v in problems)
        if self.bad_request == "bad_request":
            # BadRequestProblem: `errors` is one object, not an array (trap T24).
            body: dict[str, Any] = {
                "message": "Bad Request",
                "errors": {"code": "invalid_json_object", "message": text},
                "referenceId": _ref(),
            }
            return Response.json(400, body, PROBLEM)
        if self.bad_request == "invalid_parameter":
            body = {
                "message": "Invalid parameter",
                "errors": [{"code": "invalid_parameter", "message": f"{v.field}: {v.message}"} for v in problems],
                "referenceId": _ref(),
            }
            return Response.json(400, body, PROBLEM)
        return generic(400, "Validation failed", [(v.code, f"{v.field}: {v.message}") for v in problems])


DEFAULT = Errors()
SEND_MESSAGE = Errors(bad_request="bad_request")
INDICATOR = Errors(bad_request="invalid_parameter", not_found="exception")
LIST_NO_404 = Errors(not_found="generic")
GENERIC_403 = Errors(forbidden="generic")
# The operations whose problem shapes are not DEFAULT.
ERRORS_BY_OP = {
    "list_channels": LIST_NO_404,
    "create_channel": GENERIC_403,
    "get_participants": LIST_NO_404,
    "list_messages": LIST_NO_404,
    "post_message": SEND_MESSAGE,
    "list_cards": LIST_NO_404,
    "upload_attachment": GENERIC_403,
    "typing": INDICATOR,
    "thinking": INDICATOR,
    "read_receipt": INDICATOR,
    "post_agent_assignment": INDICATOR,
}


# -- FIQL filter, paging, sorting ---------------------------------------------------------------


def _split_top(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


_COMPARISON = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(==|!=)\s*(.*?)\s*$")


def _lookup(view: dict[str, Any], path: str) -> list[str]:
    """Values at a dotted path; `user.<key>` also finds additionalProperties entries."""
    node: Any = view
    parts = path.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict) and i == len(parts) - 1 and "additionalProperties" in node:
            return [str(p.get("value")) for p in node["additionalProperties"] if p.get("key") == part]
        else:
            return []
    return [str(node).lower() if isinstance(node, bool) else str(node)] if node is not None else []


def fiql(expr: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for FIQL `a==b;c!=d,(e==f)` (`;` and, `,` or, `*` wildcard); BadRequest if malformed."""
    expr = expr.strip()
    if not expr:
        raise BadRequest("empty filter")
    alternatives = _split_top(expr, ",")
    if len(alternatives) > 1:
        preds = [fiql(a) for a in alternatives]
        return lambda v: any(p(v) for p in preds)
    conjuncts = _split_top(expr, ";")
    if len(conjuncts) > 1:
        preds = [fiql(c) for c in conjuncts]
        return lambda v: all(p(v) for p in preds)
    if expr.startswith("(") and expr.endswith(")"):
        return fiql(expr[1:-1])
    m = _COMPARISON.match(expr)
    if not m:
        raise BadRequest(f"invalid FIQL filter {expr!r}")
    path, op, raw = m.groups()
    value = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"" else raw
    pattern = re.compile("^" + ".*".join(re.escape(p) for p in value.split("*")) + "$")

    def pred(view: dict[str, Any]) -> bool:
        hit = any(pattern.match(v) for v in _lookup(view, path))
        return hit if op == "==" else not hit

    return pred


def _int_param(req: Request, name: str, default: int) -> int:
    raw = req.q(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValidationFailed([Validation(name, raw, "invalid_parameter", "must be an integer")]) from exc


def hal_list(
    req: Request,
    key: str,
    views: Sequence[dict[str, Any]],
    default_sort: str = "id:asc",
    sort_keys: dict[str, Callable[[dict[str, Any]], Any]] | None = None,
    filterable: bool = True,
) -> Response:
    """Filter, sort and page rendered views into a HAL list `{_embedded, _links, page}`."""
    items = list(views)
    flt = req.q("filter") if filterable else None
    if flt:
        pred = fiql(flt)
        items = [v for v in items if pred(v)]
    field_name, _, direction = (req.q("sort") or default_sort).partition(":")
    keys = sort_keys or {}
    if field_name in keys:
        items.sort(key=keys[field_name], reverse=direction.lower() == "desc")
    elif direction.lower() == "desc":
        items.reverse()
    size = max(1, _int_param(req, "size", 20))
    number = max(0, _int_param(req, "page", 0))
    chunk = items[number * size : (number + 1) * size]
    query = f"?page={number}&size={size}"
    return hal(
        200,
        {
            "_embedded": {key: chunk},
            "_links": {"self": {"href": req.path + query}},
            "page": {
                "size": size,
                "number": number,
                "totalElements": len(items),
                "totalPages": math.ceil(len(items) / size) if items else 0,
            },
        },
    )


# -- body reading -------------------------------------------------------------------------------


class GatewayBody(JsonBody):
    numbers_as_strings = True  # ids are strings; be lenient with numbers

    string = JsonBody.optional_string


def parse_user(body: GatewayBody, raw: Any, label: str = "user") -> tuple[dict[str, str], list[dict[str, str]]]:
    """(flat string fields, additionalProperties) from a Gateway `user` object."""
    if not isinstance(raw, dict):
        body.fail(label, raw, "invalid_value", "must be an object")
        return {}, []
    customer: dict[str, str] = {}
    props: list[dict[str, str]] = []
    for key, value in raw.items():
        if key == "additionalProperties":
            if not isinstance(value, list):
                body.fail(f"{label}.additionalProperties", value, "invalid_value", "must be an array of {key, value}")
                continue
            if len(value) > MAX_CUSTOMER_PROPS:
                body.fail(
                    f"{label}.additionalProperties",
                    len(value),
                    "max_properties",
                    f"must have at most {MAX_CUSTOMER_PROPS} items",
                )
            for n, item in enumerate(value):
                if (
                    not isinstance(item, dict)
                    or not isinstance(item.get("key"), str)
                    or not isinstance(item.get("value"), str)
                ):
                    body.fail(
                        f"{label}.additionalProperties[{n}]", item, "invalid_value", "must be {key, value} strings"
                    )
                else:
                    props.append({"key": item["key"], "value": item["value"]})
        elif not isinstance(value, str):
            body.fail(f"{label}.{key}", value, "invalid_value", "must be a string")
        else:
            customer[key] = value
    email = customer.get("email")
    if email is not None and "@" not in email:
        body.fail(f"{label}.email", email, "invalid_email", "must be an email address")
    return customer, props


def parse_assignment(body: GatewayBody, raw: Any) -> tuple[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        body.fail("assignment", raw, "invalid_value", "must be an object {type, id}")
        return None
    kind = raw.get("type", "queue")
    if kind not in ("queue", "script"):
        body.fail("assignment.type", kind, "invalid_value", "must be one of [queue, script]")
    target = body.string("id", src=raw)
    if target is None or kind not in ("queue", "script"):
        return None
    return str(kind), target


def parse_cards(body: GatewayBody, raw: Any, label: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        body.fail(label, raw, "invalid_value", "must be an array")
        return []
    cards = []
    for n, card in enumerate(raw):
        if not isinstance(card, dict) or card.get("contentType") not in CARD_TYPES:
            body.fail(f"{label}[{n}].contentType", card, "invalid_value", f"must be one of {list(CARD_TYPES)}")
            continue
        cards.append({"id": str(card.get("id") or secrets.token_hex(8)), **card})
    return cards


def attachment_refs(body: GatewayBody, raw: Any, label: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(a, dict) and isinstance(a.get("id"), str) for a in raw):
        body.fail(label, raw, "invalid_value", "must be an array of {id}")
        return []
    return [str(a["id"]) for a in raw]


def parse_multipart(req: Request) -> dict[str, tuple[str | None, str, bytes]]:
    """Form parts by name: (filename, content type, bytes)."""
    content_type = req.headers.get("Content-Type") or ""
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest("Content-Type must be multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = BytesParser(policy=HTTP).parsebytes(head + req.body)
    if not msg.is_multipart():
        raise BadRequest("malformed multipart body")
    parts: dict[str, tuple[str | None, str, bytes]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        parts[name] = (part.get_filename(), part.get_content_type(), data)
    return parts
