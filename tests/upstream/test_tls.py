"""Backend TLS for direct servers: a private CA, mutual TLS (a client certificate shown to a
login-node proxy that requires one) and check_hostname, against real HTTPS servers."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from openai.types.chat import ChatCompletionMessageParam

from resource_server_async.catalog.validation import validate_endpoint
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import DIRECT_ENDPOINT, CatalogFiles
from tests.servers import GatewayServer
from tests.upstream.certificates import CertificateAuthority, Issued

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def client_cert(authority: CertificateAuthority) -> Issued:
    return authority.issue("gateway-client")


@contextlib.contextmanager
def https_backend(
    authority: CertificateAuthority, name: str, *, mutual: bool, model: str
) -> Iterator[FakeBackend]:
    """A fake model server on HTTPS, its certificate (signed by `authority`) naming `name`;
    with `mutual`, it requires a client certificate signed by the same authority."""
    issued = authority.issue(name.replace(".", "-"), server_names=[name])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(authority.cert))
    context.load_cert_chain(issued.cert, issued.key)
    context.verify_mode = ssl.CERT_REQUIRED if mutual else ssl.CERT_NONE
    with FakeBackend(models=(model,), ssl_context=context) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(authority: CertificateAuthority) -> Iterator[FakeBackend]:
    """A login-node proxy: HTTPS for 127.0.0.1, and it requires a client certificate."""
    with https_backend(authority, "127.0.0.1", mutual=True, model="mtls-model") as server:
        yield server


@pytest.fixture(scope="module")
def misnamed(authority: CertificateAuthority) -> Iterator[FakeBackend]:
    """An HTTPS server whose certificate names another host."""
    with https_backend(authority, "other.example", mutual=False, model="any-name-model") as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    authority: CertificateAuthority,
    client_cert: Issued,
    proxy: FakeBackend,
    misnamed: FakeBackend,
) -> Iterator[GatewayServer]:
    ca = str(authority.cert)
    cert, key = str(client_cert.cert), str(client_cert.key)
    files = CatalogFiles()
    files.cluster("secure")
    files.endpoint(
        "secure",
        "mtls-model",
        proxy.url,
        ca_cert_path=ca,
        client_cert_path=cert,
        client_key_path=key,
    )
    files.endpoint("secure", "no-client-cert-model", proxy.url, ca_cert_path=ca)
    files.endpoint(
        "secure", "untrusted-model", proxy.url, client_cert_path=cert, client_key_path=key
    )
    files.endpoint("secure", "any-name-model", misnamed.url, ca_cert_path=ca, check_hostname=False)
    files.endpoint("secure", "strict-name-model", misnamed.url, ca_cert_path=ca)
    tmp = tmp_path_factory.mktemp("tls-gateway")
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures")) as server:
        yield server


def chat(gateway: GatewayServer, model: str) -> httpx2.Response:
    return httpx2.post(
        f"{gateway.url}/resource_server/secure/vllm/v1/chat/completions",
        json={"model": model, "messages": HELLO},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=20,
    )


@pytest.mark.e2e
def test_mutual_tls_to_a_proxy_that_requires_a_client_certificate(
    gateway: GatewayServer, proxy: FakeBackend
) -> None:
    client = gateway.openai_client("/resource_server/secure/vllm/v1")
    reply = client.chat.completions.create(model="mtls-model", messages=HELLO)

    assert reply.choices[0].message.content
    assert proxy.last.json["model"] == "mtls-model"
    stream = client.chat.completions.create(model="mtls-model", messages=HELLO, stream=True)
    text = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(text)


@pytest.mark.e2e
def test_without_the_client_certificate_the_proxy_refuses(gateway: GatewayServer) -> None:
    answer = chat(gateway, "no-client-cert-model")

    assert answer.status_code in (502, 503), answer.text
    assert answer.json()["error"]["code"].startswith("upstream_")


@pytest.mark.e2e
def test_a_server_signed_by_an_unknown_ca_is_not_trusted(gateway: GatewayServer) -> None:
    answer = chat(gateway, "untrusted-model")

    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "upstream_unreachable"


@pytest.mark.e2e
def test_check_hostname_false_accepts_a_certificate_for_another_name(
    gateway: GatewayServer, misnamed: FakeBackend
) -> None:
    assert chat(gateway, "any-name-model").status_code == 200
    assert misnamed.last.json["model"] == "any-name-model"
    strict = chat(gateway, "strict-name-model")
    assert strict.status_code == 503
    assert strict.json()["error"]["code"] == "upstream_unreachable"


def test_a_key_without_its_certificate_is_refused_and_missing_files_are_named(
    tmp_path: Path,
) -> None:
    fields = {
        "endpoint_slug": "secure-vllm-m",
        "cluster": "secure",
        "framework": "vllm",
        "model": "m",
        "endpoint_adapter": DIRECT_ENDPOINT,
        "config": {"api_url": "https://127.0.0.1:1", "client_key_path": str(tmp_path / "k")},
    }
    problems = validate_endpoint(fields, "endpoint 'secure-vllm-m'")

    errors = [str(p) for p in problems if p.level == "error"]
    warnings = [str(p) for p in problems if p.level == "warning"]
    assert any("client_key_path needs client_cert_path" in e for e in errors), errors
    assert warnings == [], "an invalid config is not checked against this machine"
    fields["config"] = {"api_url": "https://127.0.0.1:1", "ca_cert_path": str(tmp_path / "ca")}
    (warning,) = validate_endpoint(fields, "endpoint 'secure-vllm-m'")
    assert warning.level == "warning"
    assert f"config.ca_cert_path {str(tmp_path / 'ca')!r} is not a file on this machine" in str(
        warning
    )
