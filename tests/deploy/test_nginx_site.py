"""deploy/nginx/inference-gateway.conf under a real nginx, over HTTPS, in front of real gateways."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scripts import processes
from scripts.processes import free_port
from tests.servers import ROOT, GatewayServer
from tests.waiting import wait_until

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (scripts/system_packages.sh installs it)"
)
SITE = ROOT / "deploy" / "nginx" / "inference-gateway.conf"
_SITE_TEXT: list[str] = []  # the templated site of the module's nginx


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, written as PEM files."""
    import datetime
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _site(upstreams: list[int], https_port: int, http_port: int, cert: Path, key: Path) -> str:
    """The deploy/ site file with this test's ports, upstream hosts and certificate."""
    text = SITE.read_text()
    servers = "".join(
        f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n" for port in upstreams
    )
    text = re.sub(r"(    server \S+ max_fails=3 fail_timeout=10s;\n)+", servers, text)
    text = re.sub(r"\n\s*listen \[::\]:\d+[^\n]*", "", text)
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    text = text.replace("listen 443 ", f"listen 127.0.0.1:{https_port} ")
    text = text.replace("/etc/ssl/inference-gateway/fullchain.pem", str(cert))
    return text.replace("/etc/ssl/inference-gateway/privkey.pem", str(key))


def _answers(url: str) -> bool:
    try:
        httpx2.get(url, timeout=1)
    except httpx2.TransportError:
        return False
    return True


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, GatewayServer]]:
    """nginx on HTTPS in front of a dead host and a live gateway with two workers."""
    directory = tmp_path_factory.mktemp("nginx")
    gateway = GatewayServer(directory / "gateway", workers=2)
    (directory / "gateway").mkdir()
    gateway.start()
    cert, key = _certificate(directory)
    https_port, http_port = free_port(), free_port()
    _SITE_TEXT[:] = [_site([free_port(), gateway.port], https_port, http_port, cert, key)]
    (directory / "site.conf").write_text(_SITE_TEXT[0])
    (directory / "nginx.conf").write_text(
        f"pid {directory}/nginx.pid;\nerror_log {directory}/error.log;\ndaemon off;\n"
        f"events {{}}\nhttp {{\n access_log off;\n client_body_temp_path {directory};\n"
        f" proxy_temp_path {directory};\n include {directory}/site.conf;\n}}\n"
    )
    check = subprocess.run(
        [str(NGINX), "-t", "-p", str(directory), "-c", str(directory / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    nginx = processes.start(
        [str(NGINX), "-p", str(directory), "-c", str(directory / "nginx.conf")],
        directory / "nginx.log",
        cwd=directory,
    )
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{http_port}/") or nginx.poll() is not None)
        assert nginx.poll() is None, (directory / "error.log").read_text()
        yield f"https://127.0.0.1:{https_port}", cert, gateway
    finally:
        processes.stop(nginx)
        gateway.stop()


def test_health_over_https_skips_the_dead_host(
    proxied: tuple[str, Path, GatewayServer],
) -> None:
    url, cert, _ = proxied
    with httpx2.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
        for _ in range(4):  # round robin reaches the dead host too; nginx retries the live one
            answer = client.get(f"{url}/resource_server/health")
            assert answer.status_code == 200
            assert answer.json()


def test_plain_http_redirects_to_https(proxied: tuple[str, Path, GatewayServer]) -> None:
    url, _, _ = proxied
    http_url = url.replace("https://", "http://").rsplit(":", 1)[0]
    port = int(re.search(r"listen 127\.0\.0\.1:(\d+);", _SITE_TEXT[0]).group(1))  # type: ignore[union-attr]
    answer = httpx2.get(f"{http_url}:{port}/resource_server/health", timeout=5)
    assert answer.status_code == 301
    assert answer.headers["location"].startswith("https://")


def test_site_body_limit_matches_the_gateway_setting() -> None:
    from django.conf import settings

    limit = re.search(r"client_max_body_size (\d+)m;", SITE.read_text())
    assert limit is not None
    assert int(limit.group(1)) * 1024 * 1024 == settings.MAX_REQUEST_BODY_BYTES
