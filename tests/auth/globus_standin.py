"""A stand-in for Globus Auth and Groups over real HTTP, for end-to-end tests across processes.

It serves the three calls the gateway makes (token introspection, the dependent token grant,
my_groups) from tokens the test registers, checks the gateway's client credentials like Globus
does, and can be switched into an outage. For the dashboard's sign-in it also plays the
authorization-code flow: /v2/oauth2/authorize signs in the identity of `sign_in_as` at once (as
Globus does for a user with a session who consented before) and the token endpoint exchanges
the code for an Auth and a Groups token.
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
from yarl import URL

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
    # Who the authorize endpoint signs in; the codes it handed out (code -> redirect_uri, grant).
    _signing_in: _Grant | None = None
    _codes: dict[str, tuple[str, _Grant]] = field(default_factory=dict)
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

    def sign_in_as(self, identity: gd.Identity, groups: list[str]) -> None:
        """The user the next authorization-code sign-ins are made by."""
        self._signing_in = _Grant(gd.introspection(identity), identity, groups)

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
        if form.get("grant_type") == "authorization_code":
            return self._code_grant(str(form.get("code", "")), str(form.get("redirect_uri", "")))
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

    # --- the authorization-code flow (the dashboard's Globus sign-in) -------------------------

    async def _authorize(self, request: web.Request) -> web.Response:
        self.calls["authorize"] += 1
        query = request.query
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return web.Response(status=400, text="unknown client or response_type")
        if self._signing_in is None:
            return web.Response(status=400, text="nobody signs in (call sign_in_as first)")
        code = "code-" + uuid.uuid4().hex
        redirect_uri = query.get("redirect_uri", "")
        self._codes[code] = (redirect_uri, self._signing_in)
        back = URL(redirect_uri).update_query(code=code, state=query.get("state", ""))
        raise web.HTTPFound(str(back))

    def _code_grant(self, code: str, redirect_uri: str) -> web.Response:
        self.calls["code_grant"] += 1
        issued = self._codes.pop(code, None)  # a code is good once
        if issued is None or issued[0] != redirect_uri:
            return web.json_response({"error": "invalid_grant"}, status=400)
        grant = issued[1]
        auth_token = "auth-" + uuid.uuid4().hex
        groups_token = "groups-" + uuid.uuid4().hex
        self._tokens[auth_token] = grant
        self._groups_tokens[groups_token] = auth_token
        return web.json_response(
            {
                "access_token": auth_token,
                "scope": "openid profile email",
                "resource_server": "auth.globus.org",
                "expires_in": 172800,
                "token_type": "Bearer",
                "state": "_default",
                "other_tokens": gd.dependent_tokens(groups_token),
            }
        )

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
            app.router.add_get("/v2/oauth2/authorize", self._authorize)
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
