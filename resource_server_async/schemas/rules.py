"""Declarative request-field rules: one table drives both the hot-path checks and JSON Schema.

Checks run over the already-parsed body, visiting only the keys the client sent, which costs a
few microseconds where re-validating with pydantic models would cost tens. Keys without a rule
are never looked at: they are forwarded to the model server untouched. How a refusal is worded
is the API family's (OpenAI names the expected type, Anthropic prefixes the field path), so a
table carries a `Wording`; the rules themselves are the same for every family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from resource_server_async.errors import GatewayError

JSONType = Literal["string", "integer", "number", "boolean", "array", "object"]

# A deeper check of one field's value (after its type passed); raises GatewayError.
DeepCheck = Callable[[Any, str], None]


def _is_integer(value: Any) -> bool:
    # pydantic-based servers (vLLM) accept 2.0 for an int; so does the gateway. bool is not one.
    if type(value) is int:
        return True
    return type(value) is float and value.is_integer()


_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}

_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
}


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages ('got a string')."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def invalid(param: str, message: str, code: str = "invalid_value") -> GatewayError:
    return GatewayError(400, code, message, param=param)


def wrong_type(param: str, expected: str, value: Any) -> GatewayError:
    return invalid(
        param,
        f"Invalid type for '{param}': expected {expected}, got {json_type_name(value)}.",
        "invalid_type",
    )


def describe_types(types: tuple[JSONType, ...]) -> str:
    names = [_NAMES[t] for t in types]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


class Wording:
    """How a refused field is worded: OpenAI's style ("Invalid type for 'n': expected an integer,
    got a number.", with a snake_case code). Another family subclasses it."""

    def missing(self, rule: FieldRule) -> GatewayError:
        name = rule.name
        return invalid(name, f"Missing required parameter: '{name}'.", "missing_required_parameter")

    def missing_one_of(self, names: tuple[str, ...]) -> GatewayError:
        listed = " or ".join(f"'{name}'" for name in names)
        return invalid(
            names[0], f"Missing required parameter: {listed}.", "missing_required_parameter"
        )

    def null(self, rule: FieldRule) -> GatewayError:
        return invalid(rule.name, f"'{rule.name}' must not be null.", "invalid_type")

    def wrong_type(self, rule: FieldRule, value: Any) -> GatewayError:
        return wrong_type(rule.name, describe_types(rule.types), value)

    def out_of_range(self, rule: FieldRule, value: float) -> GatewayError:
        return invalid(rule.name, f"Invalid '{rule.name}': must be {rule.bounds()}, got {value!r}.")

    def too_few(self, rule: FieldRule, value: list[Any]) -> GatewayError:
        name = rule.name
        return invalid(
            name,
            f"'{name}' must not be empty."
            if rule.min_items == 1
            else f"'{name}' must have at least {rule.min_items} items.",
            "empty_array",
        )

    def wrong_item(self, rule: FieldRule, index: int, item: Any) -> GatewayError:
        assert rule.item_types is not None
        return wrong_type(f"{rule.name}[{index}]", describe_types(rule.item_types), item)


OPENAI_WORDING = Wording()


@dataclass(frozen=True, slots=True)
class FieldRule:
    """What the API defines for one top-level field. Optional fields also accept null unless
    `nullable` is False: OpenAI-compatible servers treat null as "not set"."""

    name: str
    types: tuple[JSONType, ...]
    description: str = ""
    required: bool = False
    nullable: bool = True
    minimum: float | None = None
    maximum: float | None = None
    min_items: int | None = None
    item_types: tuple[JSONType, ...] | None = None
    deep_check: DeepCheck | None = None
    # JSON Schema of what deep_check enforces: `item_schema` for the items of an array (e.g.
    # `messages`), `schema_extra` for keywords of the field itself; both only feed the docs.
    item_schema: Mapping[str, Any] | None = None
    schema_extra: Mapping[str, Any] | None = None
    # This field's own words for a value it refuses, for wordings that phrase errors per field
    # (Anthropic: "must be an integer >= 1, not $value"); `$value` and `$kind` are filled in.
    problem: str | None = None
    empty_problem: str | None = None

    def check(self, value: Any, wording: Wording = OPENAI_WORDING) -> None:
        if value is None:
            if self.required or not self.nullable:
                raise wording.null(self)
            return
        for json_type in self.types:
            if _TYPE_TESTS[json_type](value):
                break
        else:
            raise wording.wrong_type(self, value)
        if (self.minimum is not None or self.maximum is not None) and type(value) in (int, float):
            low, high = self.minimum, self.maximum
            if (low is not None and value < low) or (high is not None and value > high):
                raise wording.out_of_range(self, value)
        if type(value) is list:
            if self.min_items is not None and len(value) < self.min_items:
                raise wording.too_few(self, value)
            if self.item_types is not None:
                tests = [_TYPE_TESTS[t] for t in self.item_types]
                for index, item in enumerate(value):
                    if not any(test(item) for test in tests):
                        raise wording.wrong_item(self, index, item)
        if self.deep_check is not None:
            self.deep_check(value, self.name)

    def bounds(self, at_least: str = "at least ", at_most: str = "at most ") -> str:
        """The range in words: "between 0 and 2", "at least 1" (or ">= 1" with other words)."""
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"between {low:g} and {high:g}"
        if low is not None:
            return f"{at_least}{low:g}"
        if high is not None:
            return f"{at_most}{high:g}"
        return ""

    def json_schema(self) -> dict[str, Any]:
        types: list[str] = list(self.types)
        if not self.required and self.nullable:
            types.append("null")
        schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
        if self.description:
            schema["description"] = self.description
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.min_items is not None:
            schema["minItems"] = self.min_items
        if self.item_schema is not None:
            schema["items"] = dict(self.item_schema)
        elif self.item_types is not None:
            item_types = list(self.item_types)
            schema["items"] = {"type": item_types[0] if len(item_types) == 1 else item_types}
        if self.schema_extra is not None:
            schema.update(self.schema_extra)
        return schema


@dataclass(frozen=True)
class RequestSchema:
    """The fields one operation defines. `one_of` names fields of which at least one is needed."""

    title: str
    operation: str
    summary: str
    fields: tuple[FieldRule, ...]
    one_of: tuple[str, ...] = ()
    streams: bool = False
    wording: Wording = OPENAI_WORDING
    _by_name: dict[str, FieldRule] = field(init=False, repr=False, compare=False)
    _required: tuple[FieldRule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {rule.name: rule for rule in self.fields})
        object.__setattr__(self, "_required", tuple(rule for rule in self.fields if rule.required))

    def validate(self, body: Mapping[str, Any]) -> None:
        """Raise a 400 GatewayError (with `param`) for the first field that breaks its rule."""
        wording = self.wording
        for required in self._required:
            if required.name not in body:
                raise wording.missing(required)
        if self.one_of and not any(body.get(name) is not None for name in self.one_of):
            raise wording.missing_one_of(self.one_of)
        rules = self._by_name
        for key, value in body.items():
            rule = rules.get(key)
            if rule is not None:
                rule.check(value, wording)

    def json_schema(self, forwarded_note: str = "") -> dict[str, Any]:
        description = self.summary
        if forwarded_note:
            description = f"{description} {forwarded_note}"
        schema: dict[str, Any] = {
            "title": self.title,
            "type": "object",
            "description": description,
            "properties": {rule.name: rule.json_schema() for rule in self.fields},
            "additionalProperties": True,
        }
        required = [rule.name for rule in self._required]
        if required:
            schema["required"] = required
        if self.one_of:
            schema["anyOf"] = [{"required": [name]} for name in self.one_of]
        return schema
