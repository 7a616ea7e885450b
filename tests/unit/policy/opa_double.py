"""An OPA server's Data API as OPA documents it, answering with the embedded engine over a
policy directory: respx routes for one OPA host, and nothing else.

Shapes (OPA REST API reference, "Get a Document (with Input)" and "Provenance"):
``POST /v1/data/{path}?provenance=true`` with ``{"input": ...}`` answers 200 with
``{"result": ..., "decision_id": "...", "provenance": {"version", "build_commit",
"build_timestamp", "build_host", "bundles": {name: {"revision": ...}}}}``; an undefined
document answers 200 without ``result``. ``GET /v1/data/{path}`` answers ``{"result": ...}``.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import respx

from grantline.domain.models import Decision
from grantline.policy import EmbeddedRegoEngine

OPA_URL = "http://opa.test:8181"


class OpaDouble:
    """Answers decisions and approvals as OPA would when serving ``policies`` as one bundle
    named ``grantline`` at ``revision`` (default: the Grantline bundle digest)."""

    def __init__(self, policies: Path, revision: str | None = None) -> None:
        self.engine = EmbeddedRegoEngine(policies)
        self.revision = revision if revision is not None else self.engine.digest
        self.inputs: list[Any] = []
        self.threads: list[str] = []
        self._ids = itertools.count(1)
        # Replaces the answer of a path: (path, input) -> the response to send instead.
        self.override: Callable[[str, Any], httpx.Response | None] = lambda path, data: None

    def install(self, router: respx.MockRouter, url: str = OPA_URL) -> None:
        router.post(url=f"{url}/v1/data/grantline/decision").mock(side_effect=self._decision)
        router.post(url=f"{url}/v1/data/grantline/approval").mock(side_effect=self._approval)
        router.get(url=f"{url}/v1/data/grantline/groups").mock(side_effect=self._groups)
        router.get(url=f"{url}/v1/data/grantline/roles").mock(side_effect=self._roles)

    def provenance(self) -> dict[str, Any]:
        return {
            "version": "1.4.2",
            "build_commit": "1955fc4d",
            "build_timestamp": "2025-04-29T23:42:04Z",
            "build_host": "opa.test",
            "bundles": {"grantline": {"revision": self.revision}},
        }

    def _decision(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request, "decision", self.engine.evaluate)

    def _approval(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request, "approval", self.engine.evaluate_approval)

    def _answer(
        self, request: httpx.Request, path: str, evaluate: Callable[[Any], Decision]
    ) -> httpx.Response:
        self.threads.append(threading.current_thread().name)
        assert request.url.params.get("provenance") == "true"
        policy_input = json.loads(request.content)["input"]
        self.inputs.append(policy_input)
        replaced = self.override(path, policy_input)
        if replaced is not None:
            return replaced
        body: dict[str, Any] = {
            "decision_id": f"d-{next(self._ids)}",
            "provenance": self.provenance(),
        }
        result = raw(evaluate(policy_input))
        if result is not None:
            body["result"] = result
        return httpx.Response(200, json=body)

    def _groups(self, request: httpx.Request) -> httpx.Response:
        return self._document("groups")

    def _roles(self, request: httpx.Request) -> httpx.Response:
        return self._document("roles")

    def _document(self, key: str) -> httpx.Response:
        config = self.engine.bundle.data.get("grantline", {})
        return httpx.Response(200, json={"result": config[key]} if key in config else {})


def raw(decision: Decision) -> dict[str, Any] | None:
    """What the policy returned, rebuilt from the embedded engine's reading of it."""
    if decision.reasons == ("policy returned no decision",):
        return None
    return {
        "allow": decision.allow,
        "reasons": list(decision.reasons),
        "require_approval": decision.require_approval,
        **decision.extra,
    }


def opa_body(result: Any = None, *, revision: str = "rev-1", **extra: Any) -> dict[str, Any]:
    """A Data API answer with provenance naming one bundle at ``revision``."""
    body: dict[str, Any] = {
        "decision_id": "d-1",
        "provenance": {"version": "1.4.2", "bundles": {"grantline": {"revision": revision}}},
        **extra,
    }
    if result is not None:
        body["result"] = result
    return body


def undefined(answer: Mapping[str, Any]) -> dict[str, Any]:
    """``answer`` without its result: an undefined document, under the same provenance."""
    return {key: value for key, value in answer.items() if key != "result"}


def denies_empty_input(answer: Mapping[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    """A decision route answering ``answer`` to every input but the empty one, which it
    denies as a well-formed policy does, under the same provenance."""
    deny = {"allow": False, "reasons": ["no rule proved the request allowed"]}

    def respond(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["input"]:
            return httpx.Response(200, json=dict(answer))
        return httpx.Response(200, json={**undefined(answer), "result": deny})

    return respond
