"""Settings come from the environment; production refuses to start without a secret key."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = secrets.token_urlsafe(50)


def run_settings(env: dict[str, str], code: str = "") -> subprocess.CompletedProcess[str]:
    # Only what the test names: no gateway setting of the test process (a suite run sets some,
    # e.g. INTERNAL_STREAMING_SECRET or REDIS_URL) reaches the process that is checked.
    from inference_gateway.config import GatewaySettings

    declared = set(GatewaySettings.model_fields) | {"GATEWAY_DEV_MODE", "DATABASE_URL", "REDIS_URL"}
    clean = {k: v for k, v in os.environ.items() if k not in declared}
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
            "SECRET_KEY": STRONG_KEY,
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
            "SECRET_KEY": STRONG_KEY,
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
            "SECRET_KEY": STRONG_KEY,
            "GATEWAY_DATA_DIR": str(tmp_path),
            "MAINTENANCE_ERROR_NOTICES": "{not json",
        }
    )
    assert result.returncode != 0
    assert "MAINTENANCE_ERROR_NOTICES='{not json': is not valid JSON" in result.stderr


def test_debug_is_refused_outside_development_mode(tmp_path: Path) -> None:
    env = {"SECRET_KEY": STRONG_KEY, "GATEWAY_DATA_DIR": str(tmp_path), "DEBUG": "true"}
    result = run_settings(env)
    assert result.returncode != 0
    assert "DEBUG=true is refused outside development mode" in result.stderr
    result = run_settings({**env, "GATEWAY_DEV_MODE": "true"}, "print(s.DEBUG)")
    assert (result.returncode, result.stdout.strip()) == (0, "True"), result.stderr


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("x", "it has 1 characters"),
        ("x" * 50, "bits of entropy"),
        ("ab" * 25, "bits of entropy"),
        ("correct horse battery", "it has 21 characters"),
    ],
)
def test_weak_secret_key_is_refused_outside_development_mode(
    tmp_path: Path, key: str, reason: str
) -> None:
    env = {"SECRET_KEY": key, "GATEWAY_DATA_DIR": str(tmp_path)}
    result = run_settings(env)
    assert result.returncode != 0
    assert "SECRET_KEY is too weak" in result.stderr and reason in result.stderr
    assert run_settings({**env, "GATEWAY_DEV_MODE": "true"}).returncode == 0


def test_random_hex_secret_key_is_strong_enough(tmp_path: Path) -> None:
    result = run_settings({"SECRET_KEY": secrets.token_hex(16), "GATEWAY_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAINTENANCE_ERROR_NOTICES", '["sophia"]', "it must be a JSON object"),
        ("MAINTENANCE_ERROR_NOTICES", '{"sophia": 1}', "MAINTENANCE_ERROR_NOTICES['sophia']"),
        ("LOCAL_COMPUTE_FUNCTIONS", '{"uuid": ["a.b"]}', "must be a JSON object"),
        ("AUTHORIZED_GROUPS_PER_IDP", '{"anl.gov": 5}', "groups as a string or a list"),
        ("AUTHORIZED_GLOBUS_SERVICE_USERNAMES", '{"a": "b"}', "must be a JSON list of strings"),
        ("GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES", '{"e": {"client_id": "c"}}', "client_secret"),
    ],
)
def test_json_settings_of_the_wrong_shape_are_refused_at_start(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    result = run_settings(
        {"SECRET_KEY": STRONG_KEY, "GATEWAY_DATA_DIR": str(tmp_path), name: value}
    )
    assert result.returncode != 0
    assert name in result.stderr and message in result.stderr


def test_json_settings_of_the_right_shape_are_read(tmp_path: Path) -> None:
    code = "print(s.MAINTENANCE_ERROR_NOTICES, s.AUTHORIZED_GROUPS_PER_IDP)"
    result = run_settings(
        {
            "SECRET_KEY": STRONG_KEY,
            "GATEWAY_DATA_DIR": str(tmp_path),
            "MAINTENANCE_ERROR_NOTICES": '{"sophia": "down until 18:00"}',
            "AUTHORIZED_GROUPS_PER_IDP": '{"anl.gov": ["g1", "g2"]}',
        },
        code,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'sophia': 'down until 18:00'} {'anl.gov': ['g1', 'g2']}"
