"""The policy port: what the broker asks of a policy engine, and a fail-closed reading of it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

import rfc8785

from grantline.domain.errors import IntegrityError, PolicyError
from grantline.domain.models import Decision
from grantline.evidence.canonical import canonicalize

NO_DECISION = "policy returned no decision"
MALFORMED = "policy decision is malformed"
SILENT_DENY = "policy denied the request without giving a reason"
# Stands in for the input digest when the input cannot be canonicalised, so cannot be hashed.
UNDIGESTIBLE_INPUT = "none"

_REASONS = "reasons must be a list of strings"
_APPROVAL = "require_approval must be a boolean"
_KNOWN_KEYS = frozenset({"allow", "reasons", "require_approval"})


class PolicyEngine(Protocol):
    """Decides access requests. A deny is a value; only a broken engine makes ``ready`` false."""

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the policy bundle that decides."""
        ...

    def evaluate(self, policy_input: Mapping[str, Any]) -> Decision:
        """The decision on ``policy_input``. Never raises: anything but a proven allow denies."""
        ...

    def ready(self) -> bool:
        """Whether the engine can decide right now."""
        ...

    def group_members(self, group: str) -> frozenset[str]:
        """Subjects of ``data.grantline.groups[group]`` in the policy data (empty if none)."""
        ...

    def role_config(self, role: str) -> Mapping[str, Any]:
        """``data.grantline.roles[role]`` in the policy data (empty if there is none)."""
        ...


def canonical_input(policy_input: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON of ``policy_input``.

    Raises :class:`PolicyError` when the input is not plain JSON data (dicts, lists, strings,
    booleans, None, integers within ±2**53 and finite floats).
    """
    try:
        # The evidence canonicaliser is the fast path; it refuses floats, which only
        # hand-written inputs (policy cases) carry, so those take the reference encoder.
        return canonicalize(dict(policy_input))
    except IntegrityError:
        pass
    try:
        canonical: bytes = rfc8785.dumps(dict(policy_input))
    except (TypeError, ValueError, RecursionError) as exc:
        raise PolicyError(f"policy input is not canonical JSON: {exc}") from exc
    return canonical


def input_digest(policy_input: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``policy_input``. Raises :class:`PolicyError`."""
    return digest_of(canonical_input(policy_input))


def digest_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def decision_problem(raw: Any) -> str | None:
    """Why ``raw`` is not a well-formed decision, or None when it is."""
    if raw is None:
        return NO_DECISION
    if not isinstance(raw, dict):
        return f"{MALFORMED}: expected an object, got {_json_type(raw)}"
    reasons = raw.get("reasons")
    for valid, requirement in (
        (isinstance(raw.get("allow"), bool), "allow must be a boolean"),
        (isinstance(reasons, list) and all(isinstance(r, str) for r in reasons), _REASONS),
        (isinstance(raw.get("require_approval", False), bool), _APPROVAL),
    ):
        if not valid:
            return f"{MALFORMED}: {requirement}"
    return None


def parse_decision(raw: Any, *, policy_digest: str, input_digest: str) -> Decision:
    """Read what a policy returned as a :class:`Decision`, failing closed.

    Only an object whose ``allow`` is exactly ``true``, with ``reasons`` a list of strings and
    an optional boolean ``require_approval``, can allow; anything else is a deny whose reason
    says what was wrong. Other keys are kept in ``Decision.extra``.
    """
    problem = decision_problem(raw)
    if problem is not None:
        return Decision.deny(problem, policy_digest=policy_digest, input_digest=input_digest)
    allow = raw["allow"] is True
    reasons = tuple(raw["reasons"])
    if not allow and not reasons:
        reasons = (SILENT_DENY,)
    return Decision(
        allow=allow,
        reasons=reasons,
        policy_digest=policy_digest,
        input_digest=input_digest,
        require_approval=raw.get("require_approval", False),
        extra={key: value for key, value in raw.items() if key not in _KNOWN_KEYS},
    )


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__
