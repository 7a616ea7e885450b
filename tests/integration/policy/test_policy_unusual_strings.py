"""Subjects and roles with quotes, backslashes, control or non-ASCII characters match exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grantline.policy import EmbeddedRegoEngine
from grantline.policy import embedded as embedded_module

Inputs = Callable[..., dict[str, Any]]

UNUSUAL = ['user:o"brien', "user:back\\slash", "user:josé", "user:tab\there", "user:😀", "u:\u2028"]


@pytest.fixture(params=["escaped values", "json text"])
def engine(request: pytest.FixtureRequest, shipped_dir: Path, tmp_path: Path) -> EmbeddedRegoEngine:
    data = json.loads((shipped_dir / "data.json").read_text())
    config = data["grantline"]
    for name in UNUSUAL:
        config["roles"][f"role {name}"] = {"max_ttl_seconds": 60, "targets": [f"t:{name}"]}
        config["bindings"].append({"subject": name, "roles": [f"role {name}", "db-read"]})
    config["sod"].append(['role user:o"brien', "db-read"])
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "grantline.rego").write_bytes((shipped_dir / "grantline.rego").read_bytes())
    (directory / "data.json").write_text(json.dumps(data))
    if request.param == "json text":
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(embedded_module, "_input_setter", lambda: embedded_module._set_json_input)
            return EmbeddedRegoEngine(directory)
    return EmbeddedRegoEngine(directory)


@pytest.mark.parametrize("name", UNUSUAL)
def test_an_unusual_subject_gets_its_bound_roles(
    engine: EmbeddedRegoEngine, make_input: Inputs, name: str
) -> None:
    assert engine.evaluate(make_input(subject=name)).allow
    decision = engine.evaluate(
        make_input(subject=name, role=f"role {name}", target=f"t:{name}", ttl=60)
    )
    assert decision.allow, decision.reasons


@pytest.mark.parametrize("name", UNUSUAL)
def test_an_unusual_subject_is_quoted_faithfully_in_reasons(
    engine: EmbeddedRegoEngine, make_input: Inputs, name: str
) -> None:
    decision = engine.evaluate(make_input(subject=name, role="db-write"))

    assert decision.reasons == (f"subject {name} is not bound to role db-write",)


@pytest.mark.parametrize(
    "near", ["user:o'brien", 'user:o\\"brien', "user:backslash", "user:jose", "user:tab here"]
)
def test_a_near_miss_of_an_unusual_subject_is_not_bound(
    engine: EmbeddedRegoEngine, make_input: Inputs, near: str
) -> None:
    assert not engine.evaluate(make_input(subject=near)).allow


def test_sod_holds_for_a_role_with_a_quote_in_its_name(
    engine: EmbeddedRegoEngine, make_input: Inputs
) -> None:
    decision = engine.evaluate(make_input(subject='user:o"brien', grants=('role user:o"brien',)))

    assert not decision.allow
    assert any("separation of duties" in reason for reason in decision.reasons)
