"""Reloading: a changed policy decides from then on; a broken one is refused and never allows."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grantline.domain.errors import ConfigError
from grantline.policy import EmbeddedRegoEngine

Inputs = Callable[..., dict[str, Any]]


def set_cap(directory: Path, role: str, cap: int) -> None:
    path = directory / "data.json"
    data = json.loads(path.read_text())
    data["grantline"]["roles"][role]["max_ttl_seconds"] = cap
    path.write_text(json.dumps(data))


def break_rego(directory: Path, replacement: str) -> None:
    (directory / "grantline.rego").write_text(replacement)


def test_an_unchanged_directory_is_not_reloaded(policy_copy: Path) -> None:
    engine = EmbeddedRegoEngine(policy_copy)

    assert engine.reload_if_changed() is False


def test_a_changed_data_json_brings_a_new_digest_and_new_decisions(
    policy_copy: Path, make_input: Inputs
) -> None:
    engine = EmbeddedRegoEngine(policy_copy)
    before = engine.digest
    assert engine.evaluate(make_input(ttl=600)).allow

    set_cap(policy_copy, "db-read", 300)

    assert engine.reload_if_changed() is True
    assert engine.digest != before
    decision = engine.evaluate(make_input(ttl=600))
    assert not decision.allow
    assert "ttl_seconds 600 exceeds the cap of 300 for db-read" in decision.reasons
    assert decision.policy_digest == engine.digest


def test_touching_files_without_changing_them_keeps_the_bundle(policy_copy: Path) -> None:
    engine = EmbeddedRegoEngine(policy_copy)
    before = engine.bundle
    os.utime(policy_copy / "grantline.rego", ns=(10**18, 10**18))

    assert engine.reload_if_changed() is False
    assert engine.digest == before.digest
    assert engine.bundle.loaded_fingerprint != before.loaded_fingerprint


BROKEN = {
    "syntax error": "package grantline\n\ndecision := {\n",
    "unknown function": "package grantline\n\ndecision := no.such_function(1)\n",
    "allows everything": 'package grantline\n\ndecision := {"allow": true, "reasons": []}\n',
    "no decision rule": 'package grantline\n\nverdict := {"allow": false, "reasons": []}\n',
    "malformed decision": 'package grantline\n\ndecision := {"allow": "false", "reasons": []}\n',
    "reads config as a whole": (
        "package grantline\n\nconfig := data.grantline\n"
        'decision := {"allow": count(config) == 0, "reasons": []}\n'
    ),
}


@pytest.mark.parametrize("source", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_policy_is_refused_and_the_last_good_one_keeps_deciding(
    policy_copy: Path, make_input: Inputs, source: str
) -> None:
    engine = EmbeddedRegoEngine(policy_copy)
    good = engine.digest
    break_rego(policy_copy, source)

    with pytest.raises(ConfigError, match="refused") as caught:
        engine.reload_if_changed()

    assert good in caught.value.message
    assert engine.digest == good
    assert engine.reload_error is not None
    assert engine.evaluate(make_input()).allow
    assert not engine.evaluate(make_input(ttl=3601)).allow
    assert not engine.evaluate({}).allow


@pytest.mark.parametrize("source", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_policy_does_not_load_at_start(policy_copy: Path, source: str) -> None:
    break_rego(policy_copy, source)

    with pytest.raises(ConfigError):
        EmbeddedRegoEngine(policy_copy)


def test_broken_data_json_is_refused_on_reload(policy_copy: Path, make_input: Inputs) -> None:
    engine = EmbeddedRegoEngine(policy_copy)
    (policy_copy / "data.json").write_text('{"grantline": ')

    with pytest.raises(ConfigError, match=r"data\.json"):
        engine.reload_if_changed()
    assert engine.evaluate(make_input()).allow


def test_malformed_configuration_is_refused_on_reload(policy_copy: Path) -> None:
    engine = EmbeddedRegoEngine(policy_copy)
    set_cap(policy_copy, "db-read", 0)

    with pytest.raises(ConfigError, match="max_ttl_seconds"):
        engine.reload_if_changed()


def test_a_refused_state_is_reported_once(policy_copy: Path) -> None:
    engine = EmbeddedRegoEngine(policy_copy)
    break_rego(policy_copy, BROKEN["syntax error"])
    with pytest.raises(ConfigError):
        engine.reload_if_changed()

    assert engine.reload_if_changed() is False
    assert engine.reload_error is not None


def test_fixing_a_refused_policy_loads_it_and_clears_the_error(
    policy_copy: Path, make_input: Inputs
) -> None:
    engine = EmbeddedRegoEngine(policy_copy)
    good_source = (policy_copy / "grantline.rego").read_text()
    break_rego(policy_copy, BROKEN["unknown function"])
    with pytest.raises(ConfigError):
        engine.reload_if_changed()

    break_rego(policy_copy, good_source + "\n# fixed\n")
    set_cap(policy_copy, "db-read", 60)

    assert engine.reload_if_changed() is True
    assert engine.reload_error is None
    assert not engine.evaluate(make_input(ttl=600)).allow


def test_a_vanished_directory_is_refused_once_and_the_old_policy_decides(
    policy_copy: Path, make_input: Inputs
) -> None:
    engine = EmbeddedRegoEngine(policy_copy)
    shutil.rmtree(policy_copy)

    with pytest.raises(ConfigError, match="does not exist"):
        engine.reload_if_changed()
    assert engine.reload_if_changed() is False
    assert engine.evaluate(make_input()).allow


def test_an_allow_all_policy_loads_only_when_explicitly_accepted(
    write_policy: Callable[..., Path], make_input: Inputs
) -> None:
    directory = write_policy(BROKEN["allows everything"])

    engine = EmbeddedRegoEngine(directory, unsafe_accept_allow_all=True)

    assert engine.evaluate(make_input()).allow
