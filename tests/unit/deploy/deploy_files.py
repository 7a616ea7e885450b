"""Readers of the deployment files, shared by the tests that check them.

Compose and Kubernetes files are parsed as data (no Docker engine or cluster here); what
the broker would read in its container is rebuilt from them: its environment, with paths
inside the container mapped back to the files of this repository through the mounts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from grantline.config import ClientSettings, Settings

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DEV_ISSUER_OVERRIDE = DEPLOY / "compose.dev-issuer.yaml"
K8S = DEPLOY / "k8s"
DOCKERFILE = REPO / "Dockerfile"
# The broker image's user (Dockerfile), which the Kubernetes securityContext must match.
IMAGE_UID = 10001

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def settings_names() -> set[str]:
    """Every GRANTLINE_* variable a broker or client command reads."""
    fields = set(Settings.model_fields) | set(ClientSettings.model_fields)
    return {f"GRANTLINE_{name.upper()}" for name in fields}


def interpolate(value: str, environment: Mapping[str, str] | None = None) -> str:
    """Compose's ``${NAME:-default}`` with an empty environment (the quick-start values)."""
    environment = environment or {}

    def substitute(match: re.Match[str]) -> str:
        return environment.get(match["name"]) or match["default"] or ""

    return _INTERPOLATION.sub(substitute, value)


def compose(*, with_dev_issuer: bool = False) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    if with_dev_issuer:
        override = yaml.safe_load(DEV_ISSUER_OVERRIDE.read_text())
        for name, service in override["services"].items():
            document["services"][name]["environment"].update(service["environment"])
    return document


def service(name: str, *, with_dev_issuer: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = compose(with_dev_issuer=with_dev_issuer)["services"][name]
    return found


def compose_environment(name: str, *, with_dev_issuer: bool = False) -> dict[str, str]:
    raw = service(name, with_dev_issuer=with_dev_issuer).get("environment", {})
    return {key: interpolate(str(value)) for key, value in raw.items()}


@dataclass(frozen=True)
class BindMount:
    source: Path  # in this repository
    target: str  # in the container
    read_only: bool


def bind_mounts(name: str) -> list[BindMount]:
    """The service's mounts of files or folders of this repository (not named volumes)."""
    mounts = []
    for entry in service(name).get("volumes", []):
        parts = str(entry).split(":")
        if parts[0].startswith("."):
            source = (COMPOSE.parent / parts[0]).resolve()
            mounts.append(BindMount(source, parts[1], parts[2:] == ["ro"]))
    return mounts


def host_path(container_path: str, mounts: list[BindMount]) -> Path | None:
    """Where ``container_path`` comes from in this repository, through ``mounts``."""
    for mount in mounts:
        if container_path == mount.target:
            return mount.source
        if container_path.startswith(mount.target.rstrip("/") + "/"):
            return mount.source / container_path[len(mount.target.rstrip("/")) + 1 :]
    return None


def k8s_documents() -> Iterator[dict[str, Any]]:
    """Every resource the kustomization applies (generated ConfigMaps excluded)."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((K8S / resource).read_text()):
            if document:
                yield document


def k8s_resource(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in k8s_documents()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            pending = ""
    return instructions


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, in order (a stage starts at FROM)."""
    stages: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages
