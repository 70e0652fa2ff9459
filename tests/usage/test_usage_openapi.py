"""The OpenAPI document describes GET /v1/usage with the fields the view answers."""

from __future__ import annotations

from resource_server_async.accounting.usage import FIELDS
from resource_server_async.api.openapi import openapi_document


def test_the_usage_route_is_documented_with_its_fields() -> None:
    get = openapi_document()["paths"]["/resource_server/v1/usage"]["get"]
    schema = get["responses"]["200"]["content"]["application/json"]["schema"]
    row = schema["properties"]["data"]["items"]
    assert row["required"] == ["day", "model", *FIELDS]
    assert set(schema["properties"]["total"]["properties"]) == set(FIELDS)
    assert [p["name"] for p in get["parameters"]] == [
        "start", "end", "principal", "group", "cluster", "model",
    ]  # fmt: skip
    assert set(get["responses"]) == {"200", "400", "401", "403", "503"}
