"""A stand-in for Globus Auth and Groups over real HTTP, for end-to-end tests across processes.

It serves the three calls the gateway makes (token introspection, the dependent token grant,
my_groups) from tokens the test registers, checks the gateway's client credentials like Globus
does, and can be switched into an outage. For `igw` it also serves a native app's login: the
authorize page (it signs in the identity the test chose with `expect_login`, and shows the code
as Globus's auth-code page does), the code exchange with PKCE, refresh tokens (the CLI's, and the
gateway's offline Groups grant) and revocation.
For the dashboard's sign-in it also plays the web authorization-code flow: the authorize
endpoint, asked without PKCE, signs in the identity of `sign_in_as` at once (as Globus does for a
user with a session who consented before) and the token endpoint exchanges that code, with the
gateway's client credentials, for an Auth and a Groups token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
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
class _Login:
    """A login the next authorize page completes: who signs in and their groups."""

    identity: gd.Identity
    groups: list[str]


@dataclass
class _Code:
    client_id: str
    challenge: str
    redirect_uri: str
    login: _Login


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _new(prefix: str) -> str:
    return prefix + uuid.uuid4().hex + uuid.uuid4().hex


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
    # Native-app login (igw): the identity the next authorize page signs in, issued codes,
    # the CLI's refresh tokens and the gateway's offline Groups refresh tokens (-> user token).
    access_token_lifetime: float = 3600
    _next_login: _Login | None = None
    _codes: dict[str, _Code] = field(default_factory=dict)
    _cli_refresh: dict[str, _Login] = field(default_factory=dict)
    _groups_refresh: dict[str, str] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    # Who the authorize endpoint signs in; the codes it handed out (code -> redirect_uri, grant).
    _signing_in: _Grant | None = None
    _web_codes: dict[str, tuple[str, _Grant]] = field(default_factory=dict)
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

    def expect_login(self, identity: gd.Identity, groups: list[str]) -> None:
        """The next authorize page signs in `identity`, a member of `groups`."""
        self._next_login = _Login(identity, list(groups))

    def set_groups(self, identity_id: str, groups: list[str]) -> None:
        """Change an identity's memberships everywhere (it left or joined groups)."""
        for grant in self._tokens.values():
            if grant.identity.id == identity_id:
                grant.groups[:] = groups
        for login in self._cli_refresh.values():
            if login.identity.id == identity_id:
                login.groups[:] = groups

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
        if self.down:
            return web.json_response({"errors": [{"code": "InternalError"}]}, status=500)
        form = await request.post()
        grant_type = form.get("grant_type")
        # A native app (igw) sends its client id in the form, with no client secret.
        if grant_type == "authorization_code" and "Authorization" not in request.headers:
            return self._exchange_code(form)
        if grant_type == "refresh_token" and "Authorization" not in request.headers:
            return self._refresh_cli(form)
        self.calls["dependent_token"] += 1
        if not self._client_ok(request):
            return web.json_response({"error": "invalid_client"}, status=401)
        if grant_type == "authorization_code":  # the dashboard (a confidential client)
            return self._code_grant(str(form.get("code", "")), str(form.get("redirect_uri", "")))
        if grant_type == "refresh_token":
            return self._refresh_groups(form)
        token = str(form.get("token", ""))
        if grant_type != "urn:globus:auth:grant_type:dependent_token" or token not in self._tokens:
            return web.json_response({"error": "invalid_grant"}, status=400)
        groups_token = "groups-" + uuid.uuid4().hex
        self._groups_tokens[groups_token] = token
        answer = gd.dependent_tokens(groups_token)
        if form.get("access_type") == "offline":
            refresh = _new("groupsrefresh-")
            self._groups_refresh[refresh] = token
            answer[0]["refresh_token"] = refresh
        return web.json_response(answer)

    # --- native-app login, refresh and revocation (igw) ---------------------------------------

    async def _authorize_native(self, request: web.Request) -> web.Response:
        """The browser's page: signs in the expected identity, shows the code to paste."""
        self.calls["authorize"] += 1
        query = request.query
        login = self._next_login
        if login is None or query.get("code_challenge_method") != "S256":
            return web.Response(status=400, text="no login expected, or no PKCE challenge")
        code = _new("code-")
        self._codes[code] = _Code(
            query.get("client_id", ""),
            query.get("code_challenge", ""),
            query.get("redirect_uri", ""),
            login,
        )
        return web.Response(text=f"Native App Authorization Code\n{code}\n")

    def _issue(self, login: _Login, refresh: str) -> dict[str, Any]:
        access = _new("Ag")
        body = gd.introspection(login.identity, expires_in=self.access_token_lifetime)
        self._tokens[access] = _Grant(body, login.identity, login.groups)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(self.access_token_lifetime),
            "resource_server": self.client_id,
            "scope": gd.GATEWAY_SCOPE,
            "token_type": "Bearer",
            "state": "_default",
            "other_tokens": [],
        }

    def _exchange_code(self, form: Any) -> web.Response:
        self.calls["code_exchange"] += 1
        issued = self._codes.pop(str(form.get("code", "")), None)
        verifier = str(form.get("code_verifier", ""))
        if (
            issued is None
            or issued.client_id != form.get("client_id")
            or issued.redirect_uri != form.get("redirect_uri")
            or issued.challenge != _s256(verifier)
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        refresh = _new("clirefresh-")
        self._cli_refresh[refresh] = issued.login
        return web.json_response(self._issue(issued.login, refresh))

    def _refresh_cli(self, form: Any) -> web.Response:
        self.calls["cli_refresh"] += 1
        refresh = str(form.get("refresh_token", ""))
        login = self._cli_refresh.get(refresh)
        if login is None or refresh in self.revoked:
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response(self._issue(login, refresh))

    def _refresh_groups(self, form: Any) -> web.Response:
        self.calls["groups_refresh"] += 1
        refresh = str(form.get("refresh_token", ""))
        token = self._groups_refresh.get(refresh)
        if token is None or refresh in self.revoked:
            return web.json_response({"error": "invalid_grant"}, status=400)
        groups_token = "groups-" + uuid.uuid4().hex
        self._groups_tokens[groups_token] = token
        entry = gd.dependent_tokens(groups_token)[0]
        return web.json_response({**entry, "refresh_token": refresh, "other_tokens": []})

    async def _revoke(self, request: web.Request) -> web.Response:
        self.calls["revoke"] += 1
        form = await request.post()
        token = str(form.get("token", ""))
        self.revoked.add(token)
        grant = self._tokens.get(token)
        if grant is not None:
            grant.introspection = {"active": False}
        return web.json_response({"active": False})

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
        """A native app (igw) asks with a PKCE challenge; the dashboard, a web app, without."""
        if "code_challenge" in request.query:
            return await self._authorize_native(request)
        return await self._authorize_web(request)

    async def _authorize_web(self, request: web.Request) -> web.Response:
        self.calls["authorize"] += 1
        query = request.query
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return web.Response(status=400, text="unknown client or response_type")
        if self._signing_in is None:
            return web.Response(status=400, text="nobody signs in (call sign_in_as first)")
        code = "code-" + uuid.uuid4().hex
        redirect_uri = query.get("redirect_uri", "")
        self._web_codes[code] = (redirect_uri, self._signing_in)
        back = URL(redirect_uri).update_query(code=code, state=query.get("state", ""))
        raise web.HTTPFound(str(back))

    def _code_grant(self, code: str, redirect_uri: str) -> web.Response:
        self.calls["code_grant"] += 1
        issued = self._web_codes.pop(code, None)  # a code is good once
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
            app.router.add_post("/v2/oauth2/token/revoke", self._revoke)
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
