"""Item 19 and 20: allowed hosts, relative slash redirects, nosniff, the docs page's policy."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from openai import OpenAI

from tests.edge.conftest import request
from tests.servers import GatewayServer


def test_unknown_host_is_refused_in_json(gateway: GatewayServer) -> None:
    status, body, headers = request(gateway, "/resource_server/health", {"Host": "evil.example"})
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_host"
    assert headers["content-type"] == "application/json"
    status, _, _ = request(gateway, "/resource_server/health", {"Host": "localhost:8000"})
    assert status == 200


def test_unknown_host_is_refused_in_anthropic_dialect(gateway: GatewayServer) -> None:
    status, body, _ = request(
        gateway, "/resource_server/v1/messages", {"Host": "evil.example"}, method="POST"
    )
    assert status == 400
    assert json.loads(body)["type"] == "error"


def test_slash_redirect_is_relative(gateway: GatewayServer) -> None:
    status, _, headers = request(gateway, "/resource_server/health/?x=1")
    assert status == 307
    assert headers["location"] == "/resource_server/health?x=1"
    # Before this check, the Host header came back in the redirect's Location.
    status, _, headers = request(gateway, "/resource_server/health/", {"Host": "evil.example"})
    assert status == 400 and "location" not in headers


def test_nosniff_on_api_answers(gateway: GatewayServer, client: OpenAI) -> None:
    for path in ("/resource_server/health", "/resource_server/nowhere", "/resource_server/docs"):
        status, _, headers = request(gateway, path)
        assert headers["x-content-type-options"] == "nosniff", (path, status)
    raw = client.chat.completions.with_raw_response.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-content-type-options"] == "nosniff"


def test_docs_page_has_a_policy_that_allows_only_its_own_style(gateway: GatewayServer) -> None:
    status, body, headers = request(gateway, "/resource_server/docs")
    assert status == 200
    policy = {
        part.split(" ", 1)[0]: part.split(" ", 1)[1]
        for part in headers["content-security-policy"].split("; ")
    }
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert headers["x-frame-options"] == "DENY"
    # The page's one inline style is the one the policy's hash allows; it has no scripts.
    page = body.decode()
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None and "<script" not in page
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert policy["style-src"] == f"'sha256-{digest}'"
