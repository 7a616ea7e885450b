"""Fixtures for the embedded Rego engine: the shipped policy, and writable copies of it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SHIPPED = Path(__file__).resolve().parents[3] / "policies"


def request_input(
    subject: str = "spiffe://example.org/ci-runner",
    role: str = "db-read",
    target: str = "postgres://orders-db",
    ttl: Any = 600,
    grants: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A policy input shaped as in CONTRACT.md."""
    return {
        "identity": {"subject": subject, "issuer": "https://dev.grantline.local", "claims": {}},
        "request": {
            "target": target,
            "role": role,
            "ttl_seconds": ttl,
            "credential_type": "jwt",
            "purpose": "test",
            "ticket": "",
            "agent": {},
        },
        "active_grants": [
            {
                "request_id": f"r{i}",
                "role": r,
                "target": target,
                "expires_at": "2030-01-01T00:00:00Z",
            }
            for i, r in enumerate(grants)
        ],
        "now": "2026-11-23T10:00:00.000Z",
        **extra,
    }


@pytest.fixture
def make_input() -> Callable[..., dict[str, Any]]:
    return request_input


@pytest.fixture
def shipped_dir() -> Path:
    return SHIPPED


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped policy directory."""
    return Path(shutil.copytree(SHIPPED, tmp_path / "policies"))


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[str, dict[str, Any] | None], Path]:
    """Make a policy directory from one Rego module and optional data."""

    def write(rego: str, data: dict[str, Any] | None = None) -> Path:
        directory = tmp_path / f"policy{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        (directory / "policy.rego").write_text(rego)
        if data is not None:
            (directory / "data.json").write_text(json.dumps(data))
        return directory

    return write
