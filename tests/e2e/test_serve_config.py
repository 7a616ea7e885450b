"""``grantline serve`` with wrong settings: exit 4, the setting named, no traceback; and the
image's health check against a served broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import GRANTLINE, Served
from tests.unit.deploy.deploy_files import dockerfile_stages

pytestmark = pytest.mark.e2e


def serve_with(
    tmp_path: Path, settings: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLINE_")}
    env.update({"GRANTLINE_HOME": str(tmp_path / "home"), "GRANTLINE_VAULT_DEV": "false"})
    env.update(settings)
    return subprocess.run(
        [GRANTLINE, "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"GRANTLINE_PORT": "70000"}, "GRANTLINE_PORT must be a TCP port"),
        ({"GRANTLINE_REDIS_URL": "http://grantline:hunter2@store"}, "GRANTLINE_REDIS_URL"),
        ({"GRANTLINE_HOST": "0.0.0.0"}, "GRANTLINE_ALLOW_DEV_ISSUER_ON_NETWORK"),  # noqa: S104
        ({"GRANTLINE_EMBEDDED_STORE": "false"}, "GRANTLINE_REDIS_URL must be set"),
        ({"GRANTLINE_DEV_ISSUER": "false"}, "GRANTLINE_TRUSTED_ISSUERS must be set"),
        ({"GRANTLINE_TRUSTED_ISSUERS": "/nonexistent.json"}, "GRANTLINE_TRUSTED_ISSUERS"),
        ({"GRANTLINE_WEBHOOK_URL": "https://hooks.example/x"}, "GRANTLINE_WEBHOOK_SECRET"),
        ({"GRANTLINE_LOG_LEVEL": "loud"}, "GRANTLINE_LOG_LEVEL must be one of"),
    ],
)
def test_a_wrong_setting_stops_serve_with_exit_4_and_its_name(
    tmp_path: Path, settings: dict[str, str], named: str
) -> None:
    result = serve_with(tmp_path, settings)
    assert result.returncode == 4, result.stdout + result.stderr
    assert named in result.stderr
    assert result.stderr.startswith("grantline: ")
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr
    # Refused before anything started: no embedded store, no keys.
    assert not (tmp_path / "home" / "valkey").exists()


def test_a_wrong_port_on_the_command_line_is_named_too(tmp_path: Path) -> None:
    result = serve_with(tmp_path, {}, "--port", "0")
    assert result.returncode == 4
    assert "GRANTLINE_PORT must be a TCP port between 1 and 65535, not 0" in result.stderr


def test_the_image_health_check_passes_on_a_served_broker_and_fails_without_one(
    broker: Served,
) -> None:
    check = next(rest for keyword, rest in dockerfile_stages()[-1] if keyword == "HEALTHCHECK")
    argv = json.loads(check.partition("CMD ")[2])
    assert argv[0] == "python"
    port = broker.url.rsplit(":", 1)[1]

    def run_with(port: str) -> int:
        env = {**os.environ, "GRANTLINE_PORT": port}
        return subprocess.run(
            [sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30, check=False
        ).returncode

    assert run_with(port) == 0
    assert run_with("1") != 0
