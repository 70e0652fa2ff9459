"""Model fields that accept what older deployments dumped (Python-literal configs, list strings)."""

from __future__ import annotations

import ast
import json
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models


def coerce_config(value: Any) -> Any:
    """Return a config as a dict; a JSON or Python-literal string (older dumps) is parsed.

    Anything that is not a mapping after parsing is returned unchanged so that validation can
    report it with the row's name rather than failing here without context.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
        try:
            # literal_eval only evaluates literals: no names, calls or attribute access.
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
    return value


def coerce_string_list(value: Any) -> Any:
    """Return a list of strings; a string is split on `,`, `;` or whitespace (empty = [])."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            parsed = coerce_config(text)
            if isinstance(parsed, list):
                return parsed
        return [part for part in text.replace(";", ",").replace(" ", ",").split(",") if part]
    if isinstance(value, tuple):
        return list(value)
    return value


class ConfigField(models.JSONField):
    """A JSON object; Python-literal strings from older database dumps are converted on load."""

    def to_python(self, value: Any) -> Any:
        return coerce_config(value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return coerce_config(super().from_db_value(value, expression, connection))

    def get_prep_value(self, value: Any) -> Any:
        return super().get_prep_value(coerce_config(value))

    def validate(self, value: Any, model_instance: Any) -> None:
        super().validate(value, model_instance)
        if not isinstance(value, dict):
            raise ValidationError("config must be a JSON object", code="invalid")


class StringListField(models.JSONField):
    """A JSON list of strings; a comma/space separated string is accepted and converted."""

    def to_python(self, value: Any) -> Any:
        return coerce_string_list(value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return coerce_string_list(super().from_db_value(value, expression, connection))

    def get_prep_value(self, value: Any) -> Any:
        return super().get_prep_value(coerce_string_list(value))

    def validate(self, value: Any, model_instance: Any) -> None:
        super().validate(value, model_instance)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValidationError("must be a list of strings", code="invalid")
