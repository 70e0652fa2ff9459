"""Settings come from the environment; production refuses to start without a secret key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_settings(env: dict[str, str], code: str = "") -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "GATEWAY_DEV_MODE", "DATABASE_URL", "REDIS_URL"}
    }
    clean.update(env)
    script = "import inference_gateway.settings as s\n" + code
    return subprocess.run(
        [sys.executable, "-c", script],
        env=clean,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_secret_key_is_required_outside_dev_mode(tmp_path: Path) -> None:
    result = run_settings({"GATEWAY_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert "GATEWAY_DEV_MODE=true" in result.stderr


def test_defaults_and_overrides(tmp_path: Path) -> None:
    code = (
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME']);"
        "print(s.CACHES['default']['BACKEND']); print(s.ALLOWED_HOSTS); print(s.GLOBUS_GROUPS)"
    )
    result = run_settings(
        {
            "SECRET_KEY": "x" * 50,
            "GATEWAY_DATA_DIR": str(tmp_path),
            "ALLOWED_HOSTS": "gw.example.org;localhost",
            "GLOBUS_GROUPS": "g1 g2;g3",
        },
        code,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"django.db.backends.sqlite3 {tmp_path / 'gateway.sqlite3'}"
    assert lines[1] == "django.core.cache.backends.locmem.LocMemCache"
    assert lines[2] == "['gw.example.org', 'localhost']"
    assert lines[3] == "['g1', 'g2', 'g3']"


def test_postgres_and_redis_from_urls(tmp_path: Path) -> None:
    code = (
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME']);"
        "print(s.CACHES['default']['BACKEND'])"
    )
    result = run_settings(
        {
            "SECRET_KEY": "x" * 50,
            "DATABASE_URL": "postgres://u@db:5432/gw",
            "REDIS_URL": "redis://cache:6379/1",
        },
        code,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "django.db.backends.postgresql gw",
        "django.core.cache.backends.redis.RedisCache",
    ]


def test_malformed_setting_names_the_variable(tmp_path: Path) -> None:
    result = run_settings(
        {
            "SECRET_KEY": "x" * 50,
            "GATEWAY_DATA_DIR": str(tmp_path),
            "MAINTENANCE_ERROR_NOTICES": "{not json",
        }
    )
    assert result.returncode != 0
    assert "MAINTENANCE_ERROR_NOTICES is not valid JSON" in result.stderr
