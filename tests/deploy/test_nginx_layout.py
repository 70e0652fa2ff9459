"""The production layout, started for real on loopback: nginx with deploy/'s site (TLS, HTTP/2)
in front of two gateway hosts of two workers each, on PostgreSQL and Redis; the openai client
calls through it over HTTPS.

- chat, and streams whose chunks arrive as sent (not buffered by nginx);
- Globus Compute streams on the local executor, whose function posts the chunks to the side
  channel of the OTHER host (each host's STREAMING_SERVER_PORT is the other's port): the chunks
  reach the client through Redis, all of them;
- SIGTERM to one host during 50 open streams: the other host's finish whole, the drained
  host's end with the gateway_shutting_down error event, new requests go to the other host,
  the drained host exits 0, and every request has its record.

Which host did what is read from each host's logs: the request log line (one per request, with
the client's x-request-id) and uvicorn's access log (the side-channel POSTs).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from deploy.render_site import render
from resource_server_async.compute.functions import INFERENCE
from scripts import processes
from tests.accounting.records_db import fetch_records
from tests.compute.catalog import GLOBUS_CLUSTER, endpoint_row, local_executor_env
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer, free_port
from tests.waiting import wait_until

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DRAIN_SECONDS = 2  # long enough for the new requests below to be answered during the drain
OPEN_STREAMS = 50
# 6 s: the drained host's streams outlast the drain, so they are cut; the other host's run to
# their end.
OPEN_CHUNKS, OPEN_CHUNK_DELAY = 40, 0.15
COMPUTE_STREAMS = 4  # nginx's round robin gives each host two
COMPUTE_CHUNKS = 30
PROMPT: list[Any] = [{"role": "user", "content": "one two three"}]
CUT_CODE = "gateway_shutting_down"
SIDE_CHANNEL_DONE = '"POST /resource_server/api/streaming/done/ HTTP/1.1" 200'
SIDE_CHANNEL_DATA = '"POST /resource_server/api/streaming/data/ HTTP/1.1" 200'

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


def _fixtures(root: Path, backend: FakeBackend) -> list[Path]:
    """Cluster alpha (the backend, directly) and hpc (the same backend through the project's
    inference function on the local executor, as a Globus Compute endpoint)."""
    files = CatalogFiles()
    files.cluster("alpha")
    files.endpoint("alpha", "fake-model", backend.url)
    files.cluster(
        "hpc",
        adapter=GLOBUS_CLUSTER,
        operations=["chat/completions"],
        config={"jobs_from": "endpoints"},
    )
    config = {
        "api_port": backend.port,
        "endpoint_uuid": str(uuid.uuid4()),
        "function_uuid": INFERENCE.local_uuid,
    }
    files.endpoints.append(endpoint_row(100, "hpc", "fake-model", config))
    return files.write(root / "fixtures")


class Layout:
    def __init__(self, root: Path, backend: FakeBackend) -> None:
        self.root = root
        self.fixtures = _fixtures(root, backend)
        # --access-log after SERVING_OPTIONS' --no-access-log: the side-channel POSTs are read
        # from it (which host they reached).
        options = ("--timeout-graceful-shutdown", str(DRAIN_SECONDS + 10), "--access-log")
        ports = free_port(), free_port()
        self.first, self.second = (
            GatewayServer(
                root / name,
                fixtures=self.fixtures,
                env={
                    "GATEWAY_DRAIN_SECONDS": str(DRAIN_SECONDS),
                    "LOG_LEVEL": "INFO",
                    # This host's compute functions post their chunks to the other host.
                    **local_executor_env(other),
                    "INTERNAL_STREAMING_SECRET": "layout-streaming-secret-0123456789",
                },
                workers=2,
                options=options,
                port=own,
            )
            for name, own, other in (("a", ports[0], ports[1]), ("b", ports[1], ports[0]))
        )
        self.nginx: subprocess.Popen[bytes] | None = None
        self.sent = 0  # inference requests made, each of which must leave one record

    @property
    def hosts(self) -> tuple[GatewayServer, GatewayServer]:
        return self.first, self.second

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

    def client(self, cluster: str = "alpha") -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"https://127.0.0.1:{self.port}/resource_server/{cluster}/vllm/v1",
            api_key=self.first.api_key,
            max_retries=0,
            timeout=30,
            http_client=openai.DefaultHttpxClient(verify=str(self.cert)),
        )

    def served(self, host: GatewayServer, request_ids: list[str]) -> list[str]:
        """The request ids whose request-log line is in `host`'s log (the host that answered)."""
        log = host.log_text()
        return [rid for rid in request_ids if f" {rid} chat/completions " in log]

    def stop(self) -> None:
        if self.nginx is not None:
            processes.stop(self.nginx)
        self.second.stop()
        self.first.stop()


@pytest.fixture(scope="module")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=("fake-model",)) as server:
        yield server


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend) -> Iterator[Layout]:
    site = Layout(tmp_path_factory.mktemp("layout"), backend)
    try:
        site.start()
        yield site
    finally:
        site.stop()


def _stream(
    client: openai.OpenAI,
    chunks: int,
    delay: float,
    request_id: str = "",
    outcome: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read one stream; `outcome` (filled as chunks arrive, so that another thread sees the
    stream open) gets the arrival times, the text, and how it ended."""
    outcome = {} if outcome is None else outcome
    outcome.update(arrivals=[], text="")
    try:
        for chunk in client.chat.completions.create(
            model="fake-model",
            messages=PROMPT,
            stream=True,
            extra_headers={"x-request-id": request_id} if request_id else None,
            extra_body={"fake": {"chunks": chunks, "chunk_delay": delay}},
        ):
            outcome["arrivals"].append(time.monotonic())
            if chunk.choices:
                outcome["text"] += chunk.choices[0].delta.content or ""
        outcome["result"] = "whole"
    except openai.APIError as exc:
        outcome["result"] = "error"
        outcome["error"] = exc
    return outcome


def _direct_text(backend: FakeBackend, chunks: int) -> str:
    """The whole answer, as the model server streams it to a direct call."""
    direct = openai.OpenAI(base_url=f"{backend.url}/v1", api_key="unused", max_retries=0)
    return "".join(
        chunk.choices[0].delta.content or ""
        for chunk in direct.chat.completions.create(
            model="fake-model",
            messages=PROMPT,
            stream=True,
            extra_body={"fake": {"chunks": chunks}},
        )
        if chunk.choices
    )


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _records(layout: Layout) -> list[dict[str, Any]]:
    return fetch_records(layout.first.env["DATABASE_URL"])


def test_chat_and_unbuffered_streams(layout: Layout) -> None:
    client = layout.client()
    answer = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hello there"}]
    )
    layout.sent += 1
    assert answer.choices[0].message.content

    # Unbuffered: chunks sent 0.3 s apart reach the client spread over time, not at once.
    slow = _stream(client, 5, 0.3)
    layout.sent += 1
    assert slow["result"] == "whole"
    assert slow["arrivals"][-1] - slow["arrivals"][0] > 0.9


def test_compute_streams_whose_side_channel_posts_land_on_the_other_host(
    layout: Layout, backend: FakeBackend
) -> None:
    client = layout.client("hpc")
    expected = _direct_text(backend, COMPUTE_CHUNKS)
    ids = [f"compute-{i}" for i in range(COMPUTE_STREAMS)]
    for request_id in ids:
        outcome = _stream(client, COMPUTE_CHUNKS, 0.01, request_id)
        layout.sent += 1
        assert outcome["result"] == "whole", outcome
        assert outcome["text"] == expected  # every chunk, in order

    first, second = layout.hosts
    wait_until(lambda: len(layout.served(first, ids) + layout.served(second, ids)) == len(ids))
    held = {host.port: layout.served(host, ids) for host in layout.hosts}
    assert held[first.port] and held[second.port]  # round robin: each host held streams
    # Each stream's function posted to the host that did NOT hold the stream, and its end
    # ("done") arrived there: the chunks crossed over Redis.
    for host, other in ((first, second), (second, first)):
        log = host.log_text()
        assert log.count(SIDE_CHANNEL_DONE) == len(held[other.port]), log[-2000:]
        assert (SIDE_CHANNEL_DATA in log) == bool(held[other.port])


def test_sigterm_to_one_host_during_50_open_streams(layout: Layout, backend: FakeBackend) -> None:
    client = layout.client()
    whole_text = _direct_text(backend, OPEN_CHUNKS)
    ids = [f"open-{i}" for i in range(OPEN_STREAMS)]
    outcomes: dict[str, dict[str, Any]] = {rid: {} for rid in ids}

    def run(request_id: str) -> None:
        _stream(client, OPEN_CHUNKS, OPEN_CHUNK_DELAY, request_id, outcomes[request_id])

    threads = [threading.Thread(target=run, args=(rid,)) for rid in ids]
    for thread in threads:
        thread.start()
    layout.sent += OPEN_STREAMS
    wait_until(lambda: all(o.get("arrivals") for o in outcomes.values()), 60)
    drained, other = layout.hosts
    assert drained.process is not None
    drained.process.send_signal(signal.SIGTERM)

    # Once its workers drain, the host refuses connections (inference_gateway/serve.py) ...
    wait_until(lambda: _refuses(drained.port), 10)
    # ... so new requests go to the other host at once, while the first is still draining.
    after = [f"after-{i}" for i in range(4)]
    for request_id in after:
        again = client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "still there"}],
            extra_headers={"x-request-id": request_id},
        )
        layout.sent += 1
        assert again.choices[0].message.content
    assert drained.process.poll() is None, "the new requests waited for the drained host's exit"
    for thread in threads:
        thread.join(timeout=60)
    # The drained host stops cleanly (its records flushed) with status 0.
    assert drained.process.wait(timeout=30) == 0

    # Which host held each stream, from the hosts' request logs (the drained one's is complete:
    # it flushes at exit).
    wait_until(lambda: len(layout.served(drained, ids) + layout.served(other, ids)) == len(ids))
    wait_until(lambda: layout.served(other, after) == after)
    cut = set(layout.served(drained, ids))
    assert layout.served(drained, after) == []
    assert cut and len(cut) < OPEN_STREAMS  # nginx spread the streams over both hosts
    for request_id, outcome in outcomes.items():
        if request_id in cut:
            # The drained host's streams: ended by the drain's error event, after a start.
            assert outcome["result"] == "error", outcome
            assert outcome["error"].code == CUT_CODE, outcome["error"]
            assert outcome["text"] and whole_text.startswith(outcome["text"])
        else:
            # The other host's streams ran to their end, every chunk.
            assert outcome["result"] == "whole", outcome
            assert outcome["text"] == whole_text

    # No record lost: one per request, the drained host's included; the cut ones say why.
    wait_until(lambda: len(_records(layout)) == layout.sent, 30)
    records = _records(layout)
    by_id = {r["request_id"]: r for r in records if r["request_id"].startswith("open-")}
    assert sorted(by_id) == sorted(ids)
    assert {rid for rid, r in by_id.items() if r["error_code"] == CUT_CODE} == cut
