"""What the two 8x8 API surfaces (`http_v2`, `http_gateway`) share: reading a JSON body with validations, the
operations both offer, the handlers and views they answer alike, and engine errors mapped to each API's shapes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

from .engine import EngineError, NotFound, Validation, ValidationFailed, iso
from .http_base import BadRequest, Handler, Request, Response, RouteSpec

if TYPE_CHECKING:
    from .engine import Channel, Conversation, Engine, Interaction, Webhook

T = TypeVar("T")


class JsonBody:
    """Collects validations while reading a JSON object body (shared by the API surfaces)."""

    # The gateway takes numeric ids as strings; Chat API v2 does not.
    numbers_as_strings = False

    def __init__(self, req: Request, allow_empty: bool = False) -> None:
        data = {} if allow_empty and not req.body else req.json()
        if not isinstance(data, dict):
            raise BadRequest("request body must be a JSON object")
        self.data: dict[str, Any] = data
        self.problems: list[Validation] = []

    def fail(self, field: str, value: Any, code: str, message: str) -> None:
        self.problems.append(Validation(field, "" if value is None else str(value)[:200], code, message))

    def optional_string(
        self,
        field: str,
        required: bool = True,
        max_len: int | None = None,
        src: dict[str, Any] | None = None,
        label: str | None = None,
    ) -> str | None:
        """The string at `field`, or None (with a validation recorded when it is required or malformed)."""
        src = self.data if src is None else src
        label = label or field
        value = src.get(field)
        if value is None:
            if required:
                self.fail(label, None, "not_null", "must not be null")
            return None
        if self.numbers_as_strings and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(label, value, "invalid_value", "must be a non-empty string")
            return None
        if max_len is not None and len(value) > max_len:
            self.fail(label, value, "max_length", f"must be at most {max_len} characters")
        return value

    def http_uri(self, field: str) -> str:
        """The absolute http(s) URI at `field`, or "" (with a validation recorded)."""
        uri = self.optional_string(field) or ""
        if uri:
            parts = urlsplit(uri)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self.fail(field, uri, "invalid_uri", "must be an absolute http(s) URI")
        return uri

    def history_messages(self, max_messages: int, too_many: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(label, item) for each object in `history.messages`, failing a bad list or a non-object item."""
        raw = self.data.get("history")
        if raw is None:
            return
        messages = raw.get("messages") if isinstance(raw, dict) else None
        if not isinstance(messages, list):
            self.fail("history.messages", None, "not_null", "must be an array")
            return
        if len(messages) > max_messages:
            self.fail("history.messages", len(messages), "max_size", too_many)
        for n, item in enumerate(messages):
            label = f"history.messages[{n}]"
            if isinstance(item, dict):
                yield label, item
            else:
                self.fail(label, item, "invalid_value", "must be an object")

    def check(self) -> None:
        if self.problems:
            raise ValidationFailed(self.problems)


@dataclass(frozen=True)
class Resource(Generic[T]):
    """A configuration resource both 8x8 APIs serve with the same five operations (webhooks, channels)."""

    name: str  # singular: the operations are list_<name>s, create_<name>, get_<name>, update_<name>, delete_<name>
    path: str  # the collection's path under the API's prefix
    get: Callable[[str], T]
    items: Callable[[], list[T]]
    create: Callable[..., T]
    update: Callable[..., T]
    delete: Callable[[str], None]
    view: Callable[[T], dict[str, Any]]  # the API's wire shape of one
    body: Callable[[Request], tuple[Any, ...]]  # the validated create/update arguments after the id


class SharedHandlers:
    """What Chat API v2 and Chat Gateway v1 have in common: the operations both offer at the same paths under the
    same names (faults target these names on either API), and those both answer alike (webhook verification,
    webhook and channel CRUD, reading one conversation)."""

    # -- what each API does its own way -------------------------------------------------------------

    body_type: type[JsonBody]
    verify_failure: str  # the start of the 400's message when verification fails
    webhooks_path: str
    # One resource's view as this API sends it, and a page of views as it sends a list (`key`: the list's name).
    one: Callable[[int, dict[str, Any]], Response]
    many: Callable[[Request, str, list[dict[str, Any]]], Response]
    # The validated create/update arguments of a webhook and a channel, after the id.
    _webhook_body: Callable[[Request], tuple[Any, ...]]
    _channel_body: Callable[[Request], tuple[Any, ...]]
    # The `version` of a verify request, as this API validates it.
    webhook_version: Callable[[JsonBody], str]
    # Conversations: their view, and the handlers of the shared operations.
    _conversation: Callable[[Conversation], dict[str, Any]]
    list_conversations: Handler
    create_conversation: Handler
    get_participants: Handler
    list_messages: Handler
    post_message: Handler

    # -- resources ----------------------------------------------------------------------------

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.webhooks = Resource(
            "webhook",
            self.webhooks_path,
            engine.get_webhook,
            engine.list_webhooks,
            engine.create_webhook,
            engine.update_webhook,
            engine.delete_webhook,
            self._webhook,
            self._webhook_body,
        )
        self.channels = Resource(
            "channel",
            "/channels",
            engine.get_channel,
            engine.list_channels,
            engine.create_channel,
            engine.update_channel,
            engine.delete_channel,
            self._channel,
            self._channel_body,
        )

    # -- views both APIs share ------------------------------------------------------------------

    def _webhook(self, h: Webhook) -> dict[str, Any]:
        return {"id": h.id, "name": h.name, "uri": h.uri, "version": h.version}

    def _channel(self, c: Channel) -> dict[str, Any]:
        return {
            "id": c.id,
            "name": c.name,
            "webHookId": c.webhook_id,
            "routingOptions": {"type": "queue", "id": c.queue_id},
        }

    @staticmethod
    def _interaction(i: Interaction) -> dict[str, Any]:
        """Both APIs show an interaction as its id and times (`endTime` once it has ended)."""
        view = {"id": i.id, "startTime": iso(i.start)}
        if i.end is not None:
            view["endTime"] = iso(i.end)
        return view

    # -- the shared handlers --------------------------------------------------------------------

    def shared_routes(self) -> list[RouteSpec]:
        c = "/conversations/{id}"
        return [
            ("POST", self.webhooks_path + "/verify", "verify_webhook", self.verify_webhook),
            *self.crud(self.webhooks),
            *self.crud(self.channels),
            ("GET", "/conversations", "list_conversations", self.list_conversations),
            ("POST", "/conversations", "create_conversation", self.create_conversation),
            ("GET", c, "get_conversation", self.get_conversation),
            ("GET", c + "/participants", "get_participants", self.get_participants),
            ("GET", c + "/messages", "list_messages", self.list_messages),
            ("POST", c + "/messages", "post_message", self.post_message),
        ]

    def crud(self, res: Resource[Any]) -> list[RouteSpec]:
        """List, create, get, update and delete of `res`."""

        def list_all(req: Request) -> Response:
            return self.many(req, f"{res.name}s", [res.view(item) for item in res.items()])

        def create(req: Request) -> Response:
            return self.one(200, res.view(res.create(*res.body(req))))

        def get(req: Request) -> Response:
            return self.one(200, res.view(res.get(req.params["id"])))

        def update(req: Request) -> Response:
            res.get(req.params["id"])  # an unknown id is a 404 before the body's 400
            return self.one(200, res.view(res.update(req.params["id"], *res.body(req))))

        def delete(req: Request) -> Response:
            res.delete(req.params["id"])
            return Response.empty(204)

        item = res.path + "/{id}"
        return [
            ("GET", res.path, f"list_{res.name}s", list_all),
            ("POST", res.path, f"create_{res.name}", create),
            ("GET", item, f"get_{res.name}", get),
            ("PUT", item, f"update_{res.name}", update),
            ("DELETE", item, f"delete_{res.name}", delete),
        ]

    def get_conversation(self, req: Request) -> Response:
        return self.one(200, self._conversation(self.engine.get_conversation(req.params["id"])))

    def verify_webhook(self, req: Request) -> Response:
        """Sends WEB_HOOK_VERIFY to `uri`: 204 on a 2xx, else a 400 naming the outcome."""
        body = self.body_type(req)
        version = self.webhook_version(body)
        uri = body.http_uri("uri")
        body.check()
        record = self.engine.verify_webhook_uri(uri, version)
        if not record.ok:
            outcome = record.error or f"HTTP {record.status}"
            failure = f"{self.verify_failure} ({outcome})"
            raise ValidationFailed([Validation("uri", uri, "webhook_verification_failed", failure)])
        return Response.empty(204)


def engine_errors(
    handler: Handler,
    bad_request: Callable[[list[Validation]], Response],
    not_found: Callable[[NotFound], Response],
    body_field: str = "",
) -> Handler:
    """Wraps an 8x8 API handler: the engine's and the body reader's errors in that API's shapes (a body that is
    not JSON counts as a validation of `body_field`, a state the engine refuses as one of no field)."""

    def wrapped(req: Request) -> Response:
        try:
            return handler(req)
        except ValidationFailed as exc:
            return bad_request(exc.validations)
        except BadRequest as exc:
            return bad_request([Validation(body_field, "", "invalid_body", str(exc))])
        except NotFound as exc:
            return not_found(exc)
        except EngineError as exc:
            return bad_request([Validation("", "", "invalid_state", str(exc))])

    return wrapped
