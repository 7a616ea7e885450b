"""``grantline policy eval --input FILE [DIR]``: what the broker would decide on one input,
after its own fail-closed routing, with the reasons."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from grantline.broker.decisions import decision_evidence, route
from grantline.broker.replay import approval_again
from grantline.cli import exit_codes
from grantline.config import Settings, opa_engine
from grantline.domain.errors import ConfigError
from grantline.domain.models import Status
from grantline.policy.embedded import EmbeddedRegoEngine
from grantline.policy.engine import PolicyEngine


def register(policy_commands: Any) -> None:
    parser = policy_commands.add_parser(
        "eval",
        help="what the broker would decide on one policy input",
        description="Evaluates one policy input (docs/policy.md, sections 2 and 3) as the "
        "broker does, routing included, and prints the decision as the record would hold "
        "it, with the reasons. Exit 0 when allowed, 1 when denied.",
    )
    parser.add_argument("directory", nargs="?", type=Path, default=Path("policies"))
    parser.add_argument(
        "--input", required=True, type=Path, metavar="FILE", help="the input, JSON ('-': stdin)"
    )
    parser.add_argument(
        "--approval", action="store_true", help="ask the approval rule instead of the decision"
    )
    parser.add_argument(
        "--opa", action="store_true", help="ask the OPA server of GRANTLINE_OPA_URL instead"
    )
    parser.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    policy_input = _read(args.input)
    engine = _engine(args)
    answer = (
        approval_answer(engine, policy_input)
        if args.approval
        else access_answer(engine, policy_input)
    )
    print(json.dumps(answer, indent=2, sort_keys=True, ensure_ascii=True))
    return exit_codes.OK if answer["decision"]["allow"] is True else exit_codes.DENIED


def access_answer(engine: PolicyEngine, policy_input: Mapping[str, Any]) -> dict[str, Any]:
    """The access decision as the broker acts on it: the status the caller would get, the
    decision as the ``evaluated`` record holds it, and the approvers it would wait for."""
    request = policy_input.get("request")
    asked = request if isinstance(request, Mapping) else {}
    decision = engine.evaluate(policy_input)
    routed, requirement = route(
        decision, role=str(asked.get("role", "")), break_glass=asked.get("break_glass") is True
    )
    if not routed.allow:
        status = Status.DENIED
    else:
        status = Status.PENDING_APPROVAL if requirement is not None else Status.ISSUED
    answer: dict[str, Any] = {
        "entrypoint": "decision",
        "status": status.value,
        "decision": decision_evidence(routed),
        "input_digest": routed.input_digest,
    }
    if requirement is not None:
        answer["approval"] = requirement.as_dict()
    return answer


def approval_answer(engine: PolicyEngine, approval_input: Mapping[str, Any]) -> dict[str, Any]:
    """The approval answer as the broker acts on it and records it: refused unless it counts
    for a group the request requires; ``groups`` are those it counts for."""
    evidence = approval_again(engine, approval_input, counted=True)
    groups = evidence.pop("groups")
    return {"entrypoint": "approval", "decision": evidence, "groups": groups}


def _engine(args: argparse.Namespace) -> PolicyEngine:
    if not args.opa:
        return EmbeddedRegoEngine(args.directory)
    opa = opa_engine(Settings())
    if opa is None:
        raise ConfigError("--opa needs GRANTLINE_OPA_URL")
    return opa


def _read(path: Path) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the policy input {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"the policy input {path} must be a JSON object")
    return document
