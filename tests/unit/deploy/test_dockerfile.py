"""The broker image's Dockerfile, read as text: multi-stage, non-root, healthy, no build tools."""

from __future__ import annotations

import ast
import json
import shlex

from tests.unit.deploy.deploy_files import (
    IMAGE_UID,
    REPO,
    dockerfile_instructions,
    dockerfile_stages,
    settings_names,
)

BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "clang", "cargo", "git ")


def runtime_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[-1]


def runtime_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, rest in runtime_stage():
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                values[name] = value
    return values


def test_the_image_is_built_in_a_builder_stage_and_runs_from_a_slim_python() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    froms = [rest for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
    assert froms[0].endswith("AS builder")
    assert "${PYTHON_IMAGE}" in froms[-1]
    arg = next(rest for keyword, rest in dockerfile_instructions() if keyword == "ARG")
    assert arg.startswith("PYTHON_IMAGE=python:3.11-slim")
    builder = " ".join(rest for keyword, rest in stages[0] if keyword == "RUN")
    assert "pip wheel" in builder, "the builder makes Grantline's wheel"
    assert "--constraint constraints.txt" in builder, "dependencies pinned as in CI"
    copies = [rest for keyword, rest in runtime_stage() if keyword == "COPY"]
    assert any(c.startswith("--from=builder ") for c in copies)


def test_the_runtime_stage_has_no_build_tools_pip_or_source_tree() -> None:
    runtime = runtime_stage()
    commands = " ".join(rest for keyword, rest in runtime if keyword == "RUN")
    assert "apt-get install" not in commands
    assert not any(tool in commands for tool in BUILD_TOOLS)
    copied = [shlex.split(rest) for keyword, rest in runtime if keyword == "COPY"]
    sources = {part for words in copied for part in words[:-1] if not part.startswith("--")}
    assert sources == {"/opt/grantline", "policies"}, "only the venv and the policy"
    builder = " ".join(rest for keyword, rest in dockerfile_stages()[0] if keyword == "RUN")
    assert "pip uninstall --yes pip" in builder


def test_the_broker_runs_as_a_fixed_non_root_user() -> None:
    users = [rest for keyword, rest in runtime_stage() if keyword == "USER"]
    assert users == [f"{IMAGE_UID}:{IMAGE_UID}"]
    # USER comes after every RUN: nothing runs as root at the end.
    last_user = max(i for i, (k, _) in enumerate(runtime_stage()) if k == "USER")
    assert all(k != "RUN" for k, _ in runtime_stage()[last_user:])
    setup = " ".join(rest for keyword, rest in runtime_stage() if keyword == "RUN")
    assert f"--uid {IMAGE_UID}" in setup


def test_the_health_check_asks_healthz_with_python_on_the_configured_port() -> None:
    checks = [rest for keyword, rest in runtime_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD ")
    assert "--interval=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    ast.parse(argv[2])  # it is Python, and it parses
    assert "/healthz" in argv[2]
    assert "GRANTLINE_PORT" in argv[2]


def test_the_image_exposes_8400_and_serves_by_default() -> None:
    runtime = dict(runtime_stage())
    assert runtime["EXPOSE"] == "8400"
    assert json.loads(runtime["ENTRYPOINT"]) == ["grantline"]
    assert json.loads(runtime["CMD"]) == ["serve"]


def test_container_defaults_listen_on_all_interfaces_and_embed_nothing() -> None:
    env = runtime_env()
    assert env["GRANTLINE_HOST"] == "0.0.0.0"  # noqa: S104 — the image listens in its container
    assert env["GRANTLINE_PORT"] == "8400"
    assert env["GRANTLINE_DEV_ISSUER"] == "false"
    assert env["GRANTLINE_EMBEDDED_STORE"] == "false"
    assert env["GRANTLINE_VAULT_DEV"] == "false"
    assert env["GRANTLINE_HOME"] == "/var/lib/grantline"


def test_every_grantline_variable_of_the_image_is_a_setting() -> None:
    names = {name for name in runtime_env() if name.startswith("GRANTLINE_")}
    assert names
    assert names <= settings_names()


def test_the_policy_is_copied_where_grantline_policies_points() -> None:
    copied = [shlex.split(rest) for keyword, rest in runtime_stage() if keyword == "COPY"]
    destination = next(words[-1] for words in copied if "policies" in words)
    assert runtime_env()["GRANTLINE_POLICIES"] == destination


def test_the_build_context_holds_only_what_the_image_needs() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "everything is left out unless named"
    allowed = {line.removeprefix("!").rstrip("/") for line in lines if line.startswith("!")}
    needed = {"pyproject.toml", "constraints.txt", "README.md", "src", "policies"}
    assert allowed == needed
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in rest:
            for source in shlex.split(rest)[:-1]:
                if not source.startswith("--"):
                    assert source.rstrip("/") in needed, source
