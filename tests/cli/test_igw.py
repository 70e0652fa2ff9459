"""`igw` end to end: a subprocess against a started gateway, a fake model server and the Globus
stand-in (login with the no-browser flow, refresh, revocation, groups), and personal keys used
with the official openai client.

One gateway for the module; each test signs in a new researcher in a HOME of its own.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests

from scripts import processes
from tests.auth import globus_data as gd
from tests.auth.globus_standin import GlobusStandIn
from tests.cli.igw_runner import ROOT, Igw
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

MODEL = "igw-model"
SCOPED_MODEL = "other-model"
CONTEXT = 8192
MAX_OUTPUT = 512
KEYS_PER_OWNER = 3


@pytest.fixture(scope="module")
def standin() -> Iterator[GlobusStandIn]:
    with GlobusStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=(MODEL, SCOPED_MODEL)) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, standin: GlobusStandIn, backend: FakeBackend
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("cli-gateway")
    files = CatalogFiles()
    files.cluster("alpha")
    capabilities = {"context_window_tokens": CONTEXT, "max_output_tokens": MAX_OUTPUT}
    files.endpoint("alpha", MODEL, backend.url, capabilities=capabilities)
    files.endpoint("alpha", SCOPED_MODEL, backend.url)
    env = {
        "GLOBUS_APPLICATION_ID": gd.GATEWAY_CLIENT_ID,
        "GLOBUS_APPLICATION_SECRET": gd.GATEWAY_CLIENT_SECRET,
        "GLOBUS_CLI_CLIENT_ID": gd.NATIVE_APP_CLIENT_ID,
        "GLOBUS_SDK_SERVICE_URL_AUTH": standin.url,
        "GLOBUS_SDK_SERVICE_URL_GROUPS": standin.url,
        "AUTHORIZED_IDP_DOMAINS": "anl.gov",
        "GLOBUS_GROUPS": gd.GATEWAY_GROUP,
        "GLOBUS_INTROSPECT_TIMEOUT": "5",
        # Every key check reads the database; the owner re-check is kept a second.
        "API_KEY_CACHE_SECONDS": "0",
        "PERSONAL_KEY_RECHECK_SECONDS": "1",
        "PERSONAL_KEYS_PER_OWNER": str(KEYS_PER_OWNER),
        "PERSONAL_KEY_MAX_DAYS": "60",
    }
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server


@pytest.fixture
def researcher() -> gd.Identity:
    return gd.argonne_user()  # a new identity id each time


@pytest.fixture
def igw(
    tmp_path: Path, gateway: GatewayServer, standin: GlobusStandIn, researcher: gd.Identity
) -> Igw:
    """A researcher who has logged in with `igw login --no-browser`."""
    runner = Igw(tmp_path / "home", gateway.url, standin)
    runner.home.mkdir()
    standin.expect_login(researcher, [gd.GATEWAY_GROUP])
    done = runner.login()
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "Logged in to" in done.stderr and researcher.username in done.stderr
    return runner


def openai_client(gateway: GatewayServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway.url}/resource_server/v1", api_key=key, max_retries=0, timeout=20
    )


def chat(client: openai.OpenAI, model: str = MODEL) -> str:
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "ping pong"}], max_tokens=8
    )
    return answer.choices[0].message.content or ""


# --- login, token, whoami ---------------------------------------------------------------------


def test_login_stores_tokens_privately_and_whoami(igw: Igw, researcher: gd.Identity) -> None:
    mode = stat.S_IMODE(igw.state_file.stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(igw.state_file.parent.stat().st_mode) == 0o700
    saved = igw.state()
    assert saved["gateway"] == igw.gateway_url
    assert saved["logins"][igw.gateway_url]["refresh_token"].startswith("clirefresh-")

    me = igw.json("whoami")

    assert me["id"] == researcher.id
    assert me["username"] == researcher.username
    assert me["groups"] == [gd.GATEWAY_GROUP]
    assert "jdoe@anl.gov" in igw.ok("whoami")


def test_token_is_reused_then_refreshed_after_expiry(igw: Igw, standin: GlobusStandIn) -> None:
    first = igw.ok("token").strip()
    assert igw.ok("token").strip() == first  # still valid: no refresh
    refreshes = standin.calls["cli_refresh"]
    # The access token expires (as an hour later).
    saved = igw.state()
    saved["logins"][igw.gateway_url]["expires_at"] = int(time.time()) - 1
    igw.state_file.write_text(json.dumps(saved))

    fresh = igw.ok("token").strip()

    assert fresh != first
    assert standin.calls["cli_refresh"] == refreshes + 1
    assert igw.state()["logins"][igw.gateway_url]["access_token"] == fresh
    answer = requests.get(
        f"{igw.gateway_url}/resource_server/whoami",
        headers={"Authorization": f"Bearer {fresh}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def test_logout_revokes_and_then_a_login_is_needed(igw: Igw, standin: GlobusStandIn) -> None:
    refresh = igw.state()["logins"][igw.gateway_url]["refresh_token"]

    done = igw.run("logout")

    assert done.returncode == 0 and "revoked" in done.stderr
    assert refresh in standin.revoked
    after = igw.run("token")
    assert after.returncode == 3  # LOGIN_NEEDED
    assert "igw login" in after.stderr


def test_a_session_the_gateway_refuses_says_what_login_to_do(
    tmp_path: Path, gateway: GatewayServer, standin: GlobusStandIn
) -> None:
    runner = Igw(tmp_path / "home", gateway.url, standin)
    runner.home.mkdir()
    standin.expect_login(gd.gmail_identity(), [gd.GATEWAY_GROUP])

    done = runner.login()

    # The gateway's 401 is a GARE naming the identity provider the session needs.
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "session_idp_not_allowed" in done.stderr
    assert "an identity from anl.gov" in done.stderr and "igw login" in done.stderr
    assert runner.state()["requirements"][gateway.url]["session_required_single_domain"] == [
        "anl.gov"
    ]

    # The next login asks Globus for that session (and a fresh sign-in), then forgets it.
    standin.expect_login(gd.argonne_user(), [gd.GATEWAY_GROUP])
    again = runner.login()

    assert again.returncode == 0, again.stderr
    assert "session_required_single_domain=anl.gov" in runner.last_authorize_url
    assert "prompt=login" in runner.last_authorize_url
    assert "requirements" not in runner.state() or not runner.state()["requirements"]


def test_without_a_login_commands_exit_3(tmp_path: Path, igw: Igw) -> None:
    stranger = Igw(tmp_path / "stranger", igw.gateway_url, igw.standin)
    stranger.home.mkdir()
    done = stranger.run("whoami", "--gateway", igw.gateway_url)
    assert done.returncode == 3 and "igw login --gateway" in done.stderr
    assert stranger.run("whoami").returncode == 2  # no gateway named anywhere


# --- models, chat, usage ----------------------------------------------------------------------


def test_models_show_state_and_capabilities(igw: Igw) -> None:
    listed = {m["id"]: m for m in igw.json("models")}
    assert set(listed) == {MODEL, SCOPED_MODEL}
    assert listed[MODEL]["capabilities"]["context_window_tokens"] == CONTEXT
    table = igw.ok("models")
    header, *rows = table.splitlines()
    assert header.split()[:3] == ["MODEL", "STATE", "CONTEXT"]
    row = next(r for r in rows if r.startswith(MODEL + " "))
    assert str(CONTEXT) in row and "alpha/vllm" in row


def test_chat_streams_the_answer(igw: Igw, backend: FakeBackend) -> None:
    out = igw.ok("chat", "-m", MODEL, "tell me about gateways")

    assert "tell me about gateways" in out  # the fake server echoes the prompt
    sent = backend.requests_to("/v1/chat/completions")[-1].json
    assert sent["stream"] is True and sent["model"] == MODEL


def test_usage_counts_the_researchers_requests(igw: Igw) -> None:
    igw.ok("chat", "-m", MODEL, "--no-stream", "count me")

    def counted() -> bool:
        return igw.json("usage")["total"]["requests"] >= 1

    wait_until(counted)
    assert "requests" in igw.ok("usage")


def test_batch_submit_status_and_download(igw: Igw, gateway: GatewayServer, tmp_path: Path) -> None:
    lines = [
        {
            "custom_id": f"line-{n}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": f"batch {n}"}]},
        }
        for n in range(3)
    ]
    source = tmp_path / "requests.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    worker = processes.start(
        [sys.executable, str(ROOT / "manage.py"), "batch_worker"],
        tmp_path / "worker.log",
        env=gateway.environment(),
        cwd=ROOT,
    )
    try:
        batch_id = igw.ok("batch", "submit", str(source)).strip()

        def finished() -> bool:
            return bool(json.loads(igw.ok("batch", "status", batch_id))["status"] == "completed")

        wait_until(finished, timeout=30)
    finally:
        processes.stop(worker)
    assert batch_id in igw.ok("batch", "status")
    target = tmp_path / "out.jsonl"
    igw.ok("batch", "download", batch_id, "-o", str(target))
    answers = {row["custom_id"]: row for row in map(json.loads, target.read_text().splitlines())}
    assert set(answers) == {"line-0", "line-1", "line-2"}
    body = answers["line-1"]["response"]["body"]
    assert "batch 1" in body["choices"][0]["message"]["content"]


# --- personal keys ----------------------------------------------------------------------------


def test_keys_create_list_use_and_revoke(
    igw: Igw, gateway: GatewayServer, researcher: gd.Identity
) -> None:
    created = igw.json("keys", "create", "--name", "notebook", "--expires", "7d")
    key = created["key"]
    assert key.startswith("igw_") and created["name"] == "notebook"

    listed = igw.json("keys", "list")
    assert [(k["id"], k["status"]) for k in listed] == [(created["id"], "active")]
    assert key not in igw.ok("keys", "list")
    # The key acts as its owner: same identity, so the owner's limits and allocations apply.
    me = requests.get(
        f"{gateway.url}/resource_server/whoami",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ).json()
    assert me["id"] == researcher.id and me["personal_key"]["id"] == created["id"]
    assert "ping pong" in chat(openai_client(gateway, key))

    igw.ok("keys", "revoke", str(created["id"]))

    with pytest.raises(openai.AuthenticationError):
        chat(openai_client(gateway, key))
    assert igw.json("keys", "list")[0]["status"] == "revoked"


def test_a_key_is_refused_once_its_owner_leaves_the_required_group(
    igw: Igw, gateway: GatewayServer, standin: GlobusStandIn, researcher: gd.Identity
) -> None:
    key = igw.json("keys", "create")["key"]
    client = openai_client(gateway, key)
    assert chat(client)

    standin.set_groups(researcher.id, [])

    def refused() -> bool:
        try:
            chat(client)
        except openai.PermissionDeniedError as exc:
            return exc.code == "not_in_required_group"
        return False

    wait_until(refused)  # within PERSONAL_KEY_RECHECK_SECONDS
    standin.set_groups(researcher.id, [gd.GATEWAY_GROUP])


def test_key_scope_bounds_and_no_keys_from_keys(igw: Igw, gateway: GatewayServer) -> None:
    scoped = igw.json("keys", "create", "--models", MODEL)["key"]
    client = openai_client(gateway, scoped)
    assert chat(client, MODEL)
    # Federated: the other model is not among the key's; on its cluster's route: refused.
    with pytest.raises(openai.NotFoundError, match=f"you may use .*'{MODEL}'"):
        chat(client, SCOPED_MODEL)
    on_cluster = openai.OpenAI(
        base_url=f"{gateway.url}/resource_server/alpha/vllm/v1", api_key=scoped, max_retries=0
    )
    with pytest.raises(openai.PermissionDeniedError, match="limited to other models"):
        chat(on_cluster, SCOPED_MODEL)
    models = requests.get(
        f"{gateway.url}/resource_server/v1/models",
        headers={"Authorization": f"Bearer {scoped}"},
        timeout=10,
    ).json()
    assert [m["id"] for m in models["data"]] == [MODEL]

    too_long = igw.run("keys", "create", "--expires", "61d")
    assert too_long.returncode == 1 and "PERSONAL_KEY_MAX_DAYS" in too_long.stderr

    for _ in range(KEYS_PER_OWNER - 1):
        igw.ok("keys", "create")
    over = igw.run("keys", "create")
    assert over.returncode == 1 and "PERSONAL_KEYS_PER_OWNER" in over.stderr

    # A personal key cannot manage keys, even with IGW_API_KEY set (keys use the login).
    answer = requests.post(
        f"{gateway.url}/resource_server/v1/keys",
        json={"name": "from a key"},
        headers={"Authorization": f"Bearer {scoped}"},
        timeout=10,
    )
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "globus_login_required"


# --- coding agents ----------------------------------------------------------------------------


def test_agent_configure_writes_each_agent_and_keeps_other_settings(
    igw: Igw, gateway: GatewayServer
) -> None:
    home = igw.home
    opencode = home / ".config" / "opencode" / "opencode.json"
    opencode.parent.mkdir(parents=True)
    opencode.write_text(json.dumps({"theme": "dark", "provider": {"mine": {"name": "Mine"}}}))
    codex = home / ".codex" / "config.toml"
    codex.parent.mkdir()
    codex.write_text(
        '# my settings\napproval_policy = "never"\n\n[mcp_servers.docs]\ncommand = "x"\n'
    )
    claude = home / ".claude" / "settings.json"
    claude.parent.mkdir()
    claude.write_text(json.dumps({"permissions": {"allow": ["Bash(ls)"]}, "env": {"FOO": "1"}}))

    for agent in ("opencode", "codex", "claude"):
        igw.ok("agent", "configure", agent, "-m", MODEL)

    written = json.loads(opencode.read_text())
    assert written["theme"] == "dark" and written["provider"]["mine"] == {"name": "Mine"}
    ours = written["provider"]["igw"]
    assert ours["options"]["baseURL"] == f"{gateway.url}/resource_server/v1"
    assert ours["models"][MODEL]["limit"] == {"context": CONTEXT, "output": MAX_OUTPUT}
    assert written["model"] == f"igw/{MODEL}"

    text = codex.read_text()
    parsed = tomllib.loads(text)
    assert "# my settings" in text and parsed["approval_policy"] == "never"
    assert parsed["mcp_servers"]["docs"]["command"] == "x"
    assert parsed["model_provider"] == "igw" and parsed["model"] == MODEL
    assert parsed["model_context_window"] == CONTEXT
    provider = parsed["model_providers"]["igw"]
    assert provider["wire_api"] == "responses"
    assert provider["base_url"] == f"{gateway.url}/resource_server/v1"

    settings = json.loads(claude.read_text())
    assert settings["permissions"] == {"allow": ["Bash(ls)"]} and settings["env"]["FOO"] == "1"
    env = settings["env"]
    assert env["ANTHROPIC_BASE_URL"] == f"{gateway.url}/resource_server"
    assert env["ANTHROPIC_MODEL"] == MODEL

    keys = [ours["options"]["apiKey"], provider["experimental_bearer_token"]]
    keys.append(env["ANTHROPIC_AUTH_TOKEN"])
    for path in (opencode, codex, claude):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # each now holds a key
    for key in keys:
        assert chat(openai_client(gateway, key))
    assert len(igw.json("keys", "list")) == 3


# --- the command is a client only ---------------------------------------------------------------


def test_igw_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, igw.cli, igw.commands, igw.login, igw.agents, igw.gateway\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('django', 'resource_server_async', 'inference_gateway', 'starlette')]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_the_keys_route_refuses_bad_input_clearly(
    igw: Igw, gateway: GatewayServer, standin: GlobusStandIn
) -> None:
    token = igw.ok("token").strip()
    url = f"{gateway.url}/resource_server/v1/keys"
    auth = {"Authorization": f"Bearer {token}"}
    for body, param in (
        ({"expires": "soon"}, "expires"),
        ({"expires": 30}, "expires"),
        ({"name": "x" * 151}, "name"),
        ({"models": "m"}, "models"),
        ({"colour": "red"}, "colour"),
    ):
        answer = requests.post(url, json=body, headers=auth, timeout=10)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["param"] == param
    not_json = requests.post(url, data=b"{", headers=auth, timeout=10)
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"

    # Another researcher's key: not found for this one.
    other = gd.argonne_user()
    other_token = "Ag" + uuid.uuid4().hex
    standin.add_token(other_token, gd.introspection(other), [gd.GATEWAY_GROUP], other)
    theirs = requests.post(
        url, json={}, headers={"Authorization": f"Bearer {other_token}"}, timeout=10
    ).json()
    gone = requests.delete(f"{url}/{theirs['id']}", headers=auth, timeout=10)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "key_not_found"
    assert requests.delete(f"{url}/abc", headers=auth, timeout=10).status_code == 400
    assert igw.json("keys", "list") == []
