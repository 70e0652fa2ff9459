"""The agents' install step: it says what is missing instead of failing, and keys on the lock."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.agents import install


def test_without_node_on_path_the_install_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(install.NodeMissing, match="node and npm not on PATH"):
        install.ensure_installed()
    # `make agents` (and so `make test`) goes on; the agent tests then skip with this reason.
    assert install.main() == 0
    assert "coding agents not installed: node and npm not on PATH" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not on PATH")
def test_an_install_puts_the_three_agents_in_place_and_stamps_the_lock() -> None:
    install.ensure_installed()

    assert install.is_installed()
    assert install.STAMP.read_text().strip() == install.lock_digest()
    assert (install.BIN / "codex").exists()
    assert (install.BIN / "claude").exists()
    assert (install.BIN / "opencode").exists()
