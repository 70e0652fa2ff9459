"""The nginx site template of deploy/: rendered whole, accepted by a real nginx, and its body
limit the gateway's own (nginx must not refuse what the gateway accepts, nor pass more)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.render_site import main as render_main
from deploy.render_site import render
from inference_gateway.config import GatewaySettings


def test_the_default_body_limit_is_the_gateways(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    default = GatewaySettings.model_fields["MAX_REQUEST_BODY_BYTES"].default
    monkeypatch.setattr(
        "sys.argv",
        ["render_site", "--upstream", "10.0.0.1:8000", "--server-name", "gw", "--cert", "c",
         "--key", "k"],
    )  # fmt: skip
    render_main()
    assert f"client_max_body_size {default};" in capsys.readouterr().out


def test_a_real_nginx_accepts_the_rendered_site(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed (scripts/system_packages.sh installs nginx-light)")
    from tests.deploy.test_nginx_layout import _certificate  # the layout test's certificate

    cert, key = _certificate(tmp_path)
    site = render(
        ["127.0.0.1:1", "127.0.0.1:2"], "127.0.0.1:8443", "gw.test", str(cert), str(key), 1024
    )
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp_path};\n"
        f" include {tmp_path}/site.conf;\n}}\n"
    )
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
