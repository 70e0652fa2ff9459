"""A stand-in for Globus Auth and Groups over real HTTP, for end-to-end tests across processes.

It serves the three calls the gateway makes (token introspection, the dependent token grant,
my_groups) from tokens the test registers, checks the gateway's client credentials like Globus
does, and can be switched into an outage.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.auth import globus_data as gd
from tests.servers import free_port


@dataclass
class _Grant:
    introspection: dict[str, Any]
    identity: gd.Identity
    groups: list[str]


@dataclass
class GlobusStandIn:
    client_id: str = gd.GATEWAY_CLIENT_ID
    client_secret: str = gd.GATEWAY_CLIENT_SECRET
    port: int = 0
    # Answer 500 to everything (a Globus outage).
    down: bool = False
    calls: Counter[str] = field(default_factory=Counter)
    _tokens: dict[str, _Grant] = field(default_factory=dict)
    _groups_tokens: dict[str, str] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def add_token(
        self,
        token: str,
        introspection: dict[str, Any],
        groups: list[str] | None = None,
        identity: gd.Identity | None = None,
    ) -> None:
        self._tokens[token] = _Grant(introspection, identity or gd.argonne_user(), groups or [])

    # --- the three Globus calls ---------------------------------------------------------------

    def _client_ok(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    async def _introspect(self, request: web.Request) -> web.Response:
        self.calls["introspect"] += 1
        if self.down:
            return web.json_response({"errors": [{"code": "InternalError"}]}, status=500)
        if not self._client_ok(request):
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        grant = self._tokens.get(str(form.get("token", "")))
        return web.json_response(grant.introspection if grant else {"active": False})

    async def _token(self, request: web.Request) -> web.Response:
        self.calls["dependent_token"] += 1
        if self.down:
            return web.json_response({"errors": [{"code": "InternalError"}]}, status=500)
        if not self._client_ok(request):
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        token = str(form.get("token", ""))
        grant_type = form.get("grant_type")
        if grant_type != "urn:globus:auth:grant_type:dependent_token" or token not in self._tokens:
            return web.json_response({"error": "invalid_grant"}, status=400)
        groups_token = "groups-" + uuid.uuid4().hex
        self._groups_tokens[groups_token] = token
        return web.json_response(gd.dependent_tokens(groups_token))

    async def _my_groups(self, request: web.Request) -> web.Response:
        self.calls["my_groups"] += 1
        if self.down:
            return web.json_response({"errors": [{"code": "InternalError"}]}, status=500)
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        token = self._groups_tokens.get(bearer)
        if token is None:
            return web.json_response({"code": "AUTHENTICATION_ERROR"}, status=401)
        grant = self._tokens[token]
        return web.json_response(gd.my_groups(grant.identity, grant.groups))

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> GlobusStandIn:
        self.port = self.port or free_port()
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/v2/oauth2/token/introspect", self._introspect)
            app.router.add_post("/v2/oauth2/token", self._token)
            app.router.add_get("/v2/groups/my_groups", self._my_groups)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="globus-standin", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Globus stand-in did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> GlobusStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
