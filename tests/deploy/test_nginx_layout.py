"""The production layout, started for real on loopback: nginx with deploy/'s site (TLS, HTTP/2)
in front of two gateway hosts of two workers each, on PostgreSQL and Redis; the openai client
calls through it over HTTPS. SIGTERM to one host during 50 open streams loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from deploy.render_site import render
from scripts import processes
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer, free_port
from tests.waiting import wait_until

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DRAIN_SECONDS = 1
OPEN_STREAMS = 50

pytestmark = [
    pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed (make test does)"),
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres")
        or not os.environ.get("REDIS_URL"),
        reason="the production layout runs on PostgreSQL and Redis (DATABASE_URL, REDIS_URL)",
    ),
]


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "site.crt", directory / "site.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _nginx_conf(directory: Path, site: str) -> Path:
    (directory / "site.conf").write_text(site)
    conf = directory / "nginx.conf"
    conf.write_text(
        f"daemon off;\nworker_processes 1;\npid {directory}/nginx.pid;\n"
        f"error_log {directory}/error.log warn;\nevents {{ worker_connections 512; }}\n"
        f"http {{\n access_log off;\n client_body_temp_path {directory}/body;\n"
        f" proxy_temp_path {directory}/proxy;\n fastcgi_temp_path {directory}/fcgi;\n"
        f" uwsgi_temp_path {directory}/uwsgi;\n scgi_temp_path {directory}/scgi;\n"
        f" include {directory}/site.conf;\n}}\n"
    )
    return conf


class Layout:
    def __init__(self, root: Path, backend: FakeBackend) -> None:
        self.root = root
        files = CatalogFiles()
        files.cluster("alpha")
        files.endpoint("alpha", "fake-model", backend.url)
        self.fixtures = files.write(root / "fixtures")
        options = ("--timeout-graceful-shutdown", str(DRAIN_SECONDS + 10))
        env = {"GATEWAY_DRAIN_SECONDS": str(DRAIN_SECONDS), "LOG_LEVEL": "INFO"}
        self.first = GatewayServer(
            root / "a", fixtures=self.fixtures, env=dict(env), workers=2, options=options
        )
        self.second = GatewayServer(
            root / "b", fixtures=self.fixtures, env=dict(env), workers=2, options=options
        )
        self.nginx: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for host in (self.root / "a", self.root / "b", self.root / "nginx"):
            host.mkdir(parents=True)
        self.first.start()
        # The second host shares the first's database, as hosts of one installation do.
        self.second.env["DATABASE_URL"] = self.first.env["DATABASE_URL"]
        self.second.start()
        cert, key = _certificate(self.root / "nginx")
        self.cert = cert
        self.port = free_port()
        site = render(
            [f"127.0.0.1:{self.first.port}", f"127.0.0.1:{self.second.port}"],
            f"127.0.0.1:{self.port}",
            "localhost",
            str(cert),
            str(key),
            20 * 1024 * 1024,
        )
        conf = _nginx_conf(self.root / "nginx", site)
        self.nginx = processes.start(
            [NGINX, "-c", str(conf), "-p", str(self.root / "nginx")], self.root / "nginx.log"
        )
        wait_until(lambda: not processes.port_is_free(self.port), 15)

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"https://127.0.0.1:{self.port}/resource_server/alpha/vllm/v1",
            api_key=self.first.api_key,
            max_retries=0,
            timeout=30,
            http_client=openai.DefaultHttpxClient(verify=str(self.cert)),
        )

    def stop(self) -> None:
        if self.nginx is not None:
            processes.stop(self.nginx)
        self.second.stop()
        self.first.stop()


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    with FakeBackend(models=("fake-model",)) as backend:
        site = Layout(tmp_path_factory.mktemp("layout"), backend)
        try:
            site.start()
            yield site
        finally:
            site.stop()


def _stream(client: openai.OpenAI, chunks: int, delay: float) -> dict[str, Any]:
    outcome: dict[str, Any] = {"arrivals": [], "text": ""}
    try:
        for chunk in client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
            extra_body={"fake": {"chunks": chunks, "chunk_delay": delay}},
        ):
            outcome["arrivals"].append(time.monotonic())
            if chunk.choices:
                outcome["text"] += chunk.choices[0].delta.content or ""
        outcome["result"] = "whole"
    except openai.APIError as exc:
        outcome["result"] = "error"
        outcome["error"] = str(exc)
    return outcome


def _records(server: GatewayServer) -> int:
    out = server.manage(
        "shell",
        "-c",
        "from resource_server_async.models import RequestRecord; "
        "print(RequestRecord.objects.count())",
    ).stdout
    return int(out.strip().splitlines()[-1])


def test_production_layout_chat_streams_and_a_drained_host(layout: Layout) -> None:
    client = layout.client()
    sent = 0

    answer = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hello there"}]
    )
    sent += 1
    assert answer.choices[0].message.content

    # Unbuffered: chunks sent 0.3 s apart reach the client spread over time, not at once.
    slow = _stream(client, 5, 0.3)
    sent += 1
    assert slow["result"] == "whole"
    assert slow["arrivals"][-1] - slow["arrivals"][0] > 0.9

    outcomes: list[dict[str, Any]] = [{} for _ in range(OPEN_STREAMS)]

    def run(i: int) -> None:
        outcomes[i].update(_stream(client, 40, 0.1))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(OPEN_STREAMS)]
    for thread in threads:
        thread.start()
    sent += OPEN_STREAMS
    wait_until(lambda: sum(1 for o in outcomes if o.get("arrivals")) == OPEN_STREAMS, 60)
    assert layout.first.process is not None
    layout.first.process.send_signal(signal.SIGTERM)

    # New requests go to the other host while the first drains and after it has gone.
    for _ in range(4):
        again = client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "still there"}]
        )
        sent += 1
        assert again.choices[0].message.content
    for thread in threads:
        thread.join(timeout=60)
    assert layout.first.process.wait(timeout=30) in (0, -signal.SIGTERM)

    results = [o["result"] for o in outcomes]
    assert set(results) <= {"whole", "error"}
    for outcome in outcomes:
        if outcome["result"] == "error":
            assert "shutting down" in outcome["error"], outcome["error"]
    assert "whole" in results  # the other host's streams ran to their end
    # Every request is recorded once, the drained host's included.
    wait_until(lambda: _records(layout.second) == sent, 30)
