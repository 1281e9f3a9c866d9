"""template.yaml as data: a YAML loader that knows CloudFormation's short tags, and intrinsic functions.

Everything the local stack creates or routes is read from the template through this module, so a route, an
environment variable or a queue attribute added there shows up locally without restating it anywhere.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Short form → long form. !GetAtt's scalar form "A.B" becomes ["A", "B"].
_SHORT_TAGS = (
    "Ref",
    "Condition",
    "GetAtt",
    "Sub",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "Base64",
    "Cidr",
    "GetAZs",
    "ImportValue",
    "Transform",
    "ToJsonString",
    "Length",
)


class CfnLoader(yaml.SafeLoader):
    """yaml.SafeLoader plus !Ref, !GetAtt, !Sub... (each becomes its long form, e.g. {"Fn::Sub": ...})."""


def _construct(tag: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    key = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        elif isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        else:  # pragma: no cover - yaml has no other node kinds
            raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{tag}", node.start_mark)
        return {key: value}

    return construct


for _tag in _SHORT_TAGS:
    CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


class TemplateError(Exception):
    """The template asks for something the local stack cannot provide."""


class _NoValue:
    """!Ref AWS::NoValue: the property or list item it stands for is left out."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


@dataclass(frozen=True)
class ApiRoute:
    function_id: str
    event_id: str
    api_id: str | None
    path: str  # e.g. /cases/{caseId}/messages
    method: str  # upper case, or ANY
    api_key_required: bool

    def matches(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when this route serves `method path`, else None."""
        if self.method not in ("ANY", method.upper()):
            return None
        return match_path(self.path, path)


@dataclass(frozen=True)
class SqsSource:
    function_id: str
    event_id: str
    queue_arn: Any  # unresolved (!GetAtt Queue.Arn)
    batch_size: int
    report_batch_item_failures: bool
    enabled: bool


@dataclass(frozen=True)
class WebSocketRoute:
    """A route of an AWS::ApiGatewayV2::Api of ProtocolType WEBSOCKET and the function its integration invokes."""

    route_key: str  # $connect, $disconnect, $default, or an action
    function_id: str
    two_way: bool  # a route response sends the function's body back to the client


@dataclass(frozen=True)
class WebSocketApi:
    api_id: str
    stage: str
    selection_expression: str  # e.g. $request.body.action
    routes: dict[str, WebSocketRoute]


@dataclass(frozen=True)
class EventBridgeRuleSource:
    """A function's `Type: EventBridgeRule` event: the bus it listens on and its pattern."""

    function_id: str
    event_id: str
    bus_name: Any  # unresolved (!Ref CaseEventBus)
    pattern: dict[str, Any]


def match_path(template: str, path: str) -> dict[str, str] | None:
    """API Gateway path matching: {name} is one segment, {name+} the rest (greedy)."""
    t_parts = template.strip("/").split("/") if template.strip("/") else []
    p_parts = path.strip("/").split("/") if path.strip("/") else []
    params: dict[str, str] = {}
    for i, part in enumerate(t_parts):
        greedy = re.fullmatch(r"\{(\w+)\+\}", part)
        if greedy:
            rest = p_parts[i:]
            if not rest:
                return None
            params[greedy.group(1)] = "/".join(rest)
            return params
        if i >= len(p_parts):
            return None
        single = re.fullmatch(r"\{(\w+)\}", part)
        if single:
            if not p_parts[i]:
                return None
            params[single.group(1)] = p_parts[i]
        elif part != p_parts[i]:
            return None
    return params if len(t_parts) == len(p_parts) else None


@dataclass
class Template:
    path: Path
    body: dict[str, Any]
    stack_name: str = "casebridge-local"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    parameter_values: dict[str, str] = field(default_factory=dict)
    # Ref / GetAtt answers of the resources created locally: {logical id: {"Ref": ..., "Arn": ...}}
    physical: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, **kwargs: Any) -> Template:
        with path.open(encoding="utf-8") as stream:
            body = yaml.load(stream, Loader=CfnLoader)
        if not isinstance(body, dict) or "Resources" not in body:
            raise TemplateError(f"{path} is not a CloudFormation template")
        return cls(path=path, body=body, **kwargs)

    @property
    def root(self) -> Path:
        return self.path.parent

    # -- sections ------------------------------------------------------------------------------

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources CloudFormation would create: those whose `Condition` is false are left out (e.g. the
        8x8 provisioning, when the local stack gives the channel id itself)."""
        resources: dict[str, dict[str, Any]] = self.body.get("Resources", {})
        return {
            logical_id: resource
            for logical_id, resource in resources.items()
            if not isinstance(resource.get("Condition"), str) or self.condition(resource["Condition"])
        }

    def condition(self, name: str) -> bool:
        """A named condition of the Conditions section, evaluated with the current parameter values."""
        conditions = self.body.get("Conditions") or {}
        if name not in conditions:
            raise TemplateError(f"condition {name} is not defined")
        return self._truth(conditions[name], f"condition {name}")

    def _truth(self, value: Any, what: str) -> bool:
        result = self.resolve(value)
        if isinstance(result, bool):
            return result
        if isinstance(result, str) and result in ("true", "false"):
            return result == "true"
        raise TemplateError(f"{what} is not a boolean: {result!r}")

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        parameters: dict[str, dict[str, Any]] = self.body.get("Parameters", {}) or {}
        return parameters

    def resources_of(self, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources.items():
            if resource.get("Type") in types:
                yield logical_id, resource

    def properties(self, logical_id: str) -> dict[str, Any]:
        props: dict[str, Any] = self.resources[logical_id].get("Properties", {}) or {}
        return props

    def function_globals(self) -> dict[str, Any]:
        globals_: dict[str, Any] = (self.body.get("Globals") or {}).get("Function", {}) or {}
        return globals_

    def functions(self) -> list[str]:
        return [logical_id for logical_id, _ in self.resources_of("AWS::Serverless::Function")]

    def function_property(self, function_id: str, name: str, default: Any = None) -> Any:
        """A function property, falling back to Globals.Function (as SAM does)."""
        props = self.properties(function_id)
        if name in props:
            return props[name]
        return self.function_globals().get(name, default)

    def function_code_dir(self, function_id: str) -> Path:
        code_uri = self.function_property(function_id, "CodeUri")
        if not isinstance(code_uri, str):
            raise TemplateError(f"{function_id}: only a local CodeUri directory is supported")
        return (self.root / code_uri).resolve()

    def function_handler(self, function_id: str) -> tuple[str, str]:
        handler = str(self.function_property(function_id, "Handler"))
        module, _, attribute = handler.rpartition(".")
        if not module or not attribute:
            raise TemplateError(f"{function_id}: Handler {handler!r} is not module.function")
        return module, attribute

    def function_layer_dirs(self, function_id: str) -> list[Path]:
        """The ContentUri of each layer of the function that the template itself defines."""
        dirs = []
        for layer in self.function_property(function_id, "Layers", []) or []:
            if isinstance(layer, dict) and "Ref" in layer and layer["Ref"] in self.resources:
                content = self.properties(layer["Ref"]).get("ContentUri")
                if isinstance(content, str):
                    dirs.append((self.root / content).resolve())
        return dirs

    def function_environment(self, function_id: str) -> dict[str, str]:
        """Globals' variables overlaid with the function's own, every value resolved to a string."""
        merged: dict[str, Any] = {}
        for source in (self.function_globals(), self.properties(function_id)):
            variables = ((source.get("Environment") or {}).get("Variables")) or {}
            merged.update(variables)
        return {name: self.as_string(self.resolve(value)) for name, value in merged.items()}

    def function_events(self, event_type: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(function id, event id, event Properties) for each function event of `event_type`."""
        for function_id in self.functions():
            for event_id, event in (self.properties(function_id).get("Events") or {}).items():
                if event.get("Type") == event_type:
                    yield function_id, event_id, event.get("Properties", {})

    def api_routes(self) -> list[ApiRoute]:
        routes = []
        for function_id, event_id, props in self.function_events("Api"):
            api_ref = props.get("RestApiId")
            api_id = api_ref.get("Ref") if isinstance(api_ref, dict) else None
            auth = props.get("Auth") or {}
            if "ApiKeyRequired" in auth:
                key_required = bool(auth["ApiKeyRequired"])
            else:
                key_required = bool(self.api_auth(api_id).get("ApiKeyRequired", False))
            routes.append(
                ApiRoute(
                    function_id=function_id,
                    event_id=event_id,
                    api_id=api_id,
                    path=str(props["Path"]),
                    method=str(props["Method"]).upper(),
                    api_key_required=key_required,
                )
            )
        return routes

    def api_auth(self, api_id: str | None) -> dict[str, Any]:
        if api_id is None or api_id not in self.resources:
            auth: dict[str, Any] = ((self.body.get("Globals") or {}).get("Api") or {}).get("Auth") or {}
            return auth
        auth = self.properties(api_id).get("Auth") or {}
        return auth

    def api_stage(self, api_id: str | None) -> str:
        if api_id and api_id in self.resources:
            return str(self.resolve(self.properties(api_id).get("StageName", "Prod")))
        return "Prod"

    def gateway_responses(self, api_id: str | None) -> dict[str, Any]:
        if api_id and api_id in self.resources:
            responses: dict[str, Any] = self.properties(api_id).get("GatewayResponses") or {}
            return responses
        return {}

    def sqs_sources(self) -> list[SqsSource]:
        return [
            SqsSource(
                function_id=function_id,
                event_id=event_id,
                queue_arn=props["Queue"],
                batch_size=int(props.get("BatchSize", 10)),
                report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                enabled=bool(props.get("Enabled", True)),
            )
            for function_id, event_id, props in self.function_events("SQS")
        ]

    def websocket_apis(self) -> list[WebSocketApi]:
        """The WebSocket APIs: each route with the function its AWS_PROXY integration names (IntegrationUri
        `...functions/${Function.Arn}/invocations`), and whether a route response returns the answer."""
        apis = []
        for api_id, _ in self.resources_of("AWS::ApiGatewayV2::Api"):
            props = self.properties(api_id)
            if props.get("ProtocolType") != "WEBSOCKET":
                continue
            stages = [
                str(self.properties(sid).get("StageName"))
                for sid, _ in self.resources_of("AWS::ApiGatewayV2::Stage")
                if self.properties(sid).get("ApiId") == {"Ref": api_id}
            ]
            routes: dict[str, WebSocketRoute] = {}
            for route_id, _ in self.resources_of("AWS::ApiGatewayV2::Route"):
                route = self.properties(route_id)
                if route.get("ApiId") != {"Ref": api_id}:
                    continue
                target = str((route.get("Target") or {}).get("Fn::Sub", ""))
                found = re.fullmatch(r"integrations/\$\{(\w+)\}", target)
                if found is None:
                    raise TemplateError(f"{route_id}: Target must be !Sub integrations/${{Integration}}")
                uri = self.properties(found.group(1)).get("IntegrationUri") or {}
                function = re.search(r"\$\{(\w+)\.Arn\}", str(uri.get("Fn::Sub", "")) if isinstance(uri, dict) else "")
                if function is None:
                    raise TemplateError(f"{found.group(1)}: only AWS_PROXY integrations of the template's functions")
                key = str(route["RouteKey"])
                routes[key] = WebSocketRoute(key, function.group(1), "RouteResponseSelectionExpression" in route)
            apis.append(
                WebSocketApi(
                    api_id, stages[0] if stages else "$default", str(props["RouteSelectionExpression"]), routes
                )
            )
        return apis

    def eventbridge_rules(self) -> list[EventBridgeRuleSource]:
        return [
            EventBridgeRuleSource(function_id, event_id, props.get("EventBusName", "default"), props["Pattern"])
            for function_id, event_id, props in self.function_events("EventBridgeRule")
        ]

    # -- parameters ----------------------------------------------------------------------------

    def parameter_value(self, name: str) -> str:
        spec = self.parameters[name]
        if name in self.parameter_values:
            value = str(self.parameter_values[name])
        elif "Default" in spec:
            value = str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no value and no Default")
        self._check_parameter(name, spec, value)
        return value

    @staticmethod
    def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
        """The constraints CloudFormation checks at deploy time, so a bad local value fails the same way."""
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(v) for v in allowed]:
            raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(str(pattern), value):
            raise TemplateError(f"parameter {name}={value!r} does not match {pattern}")
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            raise TemplateError(f"parameter {name} is shorter than {spec['MinLength']}")
        if spec.get("Type") == "Number":
            number = float(value)
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise TemplateError(f"parameter {name}={value} is below {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise TemplateError(f"parameter {name}={value} is above {spec['MaxValue']}")

    # -- intrinsic functions -------------------------------------------------------------------

    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            # A stable id per stack name, shaped like CloudFormation's (names built from it stay unique).
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/"
            + str(uuid.uuid5(uuid.NAMESPACE_URL, f"casebridge-local/{self.stack_name}")),
        }.get(name)

    def ref(self, name: str) -> str:
        pseudo = self.pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.parameters:
            return self.parameter_value(name)
        if name in self.physical:
            return self.physical[name]["Ref"]
        raise TemplateError(f"!Ref {name}: not a parameter, and no local resource was created for it")

    def get_att(self, logical_id: str, attribute: str) -> str:
        values = self.physical.get(logical_id)
        if values is None or attribute not in values:
            raise TemplateError(f"!GetAtt {logical_id}.{attribute}: not available locally")
        return values[attribute]

    def resolve(self, value: Any) -> Any:
        """Evaluate Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, the condition functions (Fn::If,
        Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition) anywhere inside `value`; only the branch Fn::If takes is
        evaluated, and AWS::NoValue removes the property or item it stands for."""
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and arg == "AWS::NoValue":
                return NO_VALUE
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(str(name)) else when_false)
            if key == "Fn::Equals":
                left, right = arg
                return self.as_string(self.resolve(left)) == self.as_string(self.resolve(right))
            if key == "Fn::Not":
                (operand,) = arg
                return not self._truth(operand, "Fn::Not")
            if key == "Fn::And":
                return all(self._truth(operand, "Fn::And") for operand in arg)
            if key == "Fn::Or":
                return any(self._truth(operand, "Fn::Or") for operand in arg)
            if key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.get_att(str(parts[0]), str(self.resolve(parts[1])))
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                separator, items = arg
                return str(separator).join(self.as_string(v) for v in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = arg
                return self.as_string(self.resolve(text)).split(str(separator))
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported by the local stack")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
        values = {k: self.as_string(self.resolve(v)) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return values[name]
            if "." in name and name.split(".", 1)[0] in self.resources:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, str(text))

    @staticmethod
    def as_string(value: Any) -> str:
        """How CloudFormation turns a scalar into a string (booleans lower-case)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
