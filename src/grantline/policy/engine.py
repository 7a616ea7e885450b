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
NO_APPROVAL_RULE = "the policy has no approval rule"
# Stands in for the input digest when the input cannot be canonicalised, so cannot be hashed.
UNDIGESTIBLE_INPUT = "none"
# The member of a decision's extra holding an OPA server's provenance (bundles, decision id).
OPA_PROVENANCE = "opa"

_REASONS = "reasons must be a list of strings"
_APPROVAL = "require_approval must be a boolean"
_BREAK_GLASS = "break_glass must be a boolean"
_FACTORS = "approval must be an object whose all_of lists {group, count >= 1, members} factors"
_GROUPS = "groups must be a list of group names"
_GROUPLESS_ALLOW = "an allowed approval must name the groups the approver counts for"
_KNOWN_KEYS = frozenset({"allow", "reasons", "require_approval"})


class PolicyEngine(Protocol):
    """Decides access requests. A deny is a value; only a broken engine makes ``ready`` false."""

    @property
    def blocking(self) -> bool:
        """Whether evaluating waits on the network (an OPA server): callers on an event loop
        then evaluate in a worker thread."""
        ...

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the policy bundle that decides."""
        ...

    def evaluate(self, policy_input: Mapping[str, Any]) -> Decision:
        """The decision on ``policy_input``. Never raises: anything but a proven allow denies."""
        ...

    def evaluate_approval(self, approval_input: Mapping[str, Any]) -> Decision:
        """Whether one approver may approve one pending request (``data.grantline.approval``).

        ``extra["groups"]`` names the required groups the approver counts for. Never raises:
        anything but a proven allow, naming at least one group, denies.
        """
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

    def bundle_files(self, digest: str) -> Mapping[str, bytes] | None:
        """The files (relative path -> content) of the bundle ``digest``, while the engine
        still holds it; None for a bundle it no longer knows or never had."""
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


def digested_input(
    policy_input: Mapping[str, Any], policy_digest: str
) -> tuple[bytes, str] | Decision:
    """The canonical JSON of ``policy_input`` and its digest; or, when it has no canonical
    form, the deny every engine answers for it (there is nothing to evaluate or replay)."""
    try:
        canonical = canonical_input(policy_input)
    except PolicyError as exc:
        return Decision.deny(
            exc.message, policy_digest=policy_digest, input_digest=UNDIGESTIBLE_INPUT
        )
    return canonical, digest_of(canonical)


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
        (isinstance(raw.get("break_glass", False), bool), _BREAK_GLASS),
        ("approval" not in raw or _factors_listed(raw["approval"]), _FACTORS),
    ):
        if not valid:
            return f"{MALFORMED}: {requirement}"
    return None


def approval_problem(raw: Any) -> str | None:
    """Why ``raw`` is not a well-formed approval answer, or None when it is.

    An approval answer is a decision whose ``groups`` lists group names, and an allow must
    name at least one: the broker counts the approver towards one of them.
    """
    problem = decision_problem(raw)
    if problem is not None:
        return problem
    groups = raw.get("groups")
    if not (isinstance(groups, list) and all(isinstance(g, str) for g in groups)):
        return f"{MALFORMED}: {_GROUPS}"
    if raw["allow"] is True and not groups:
        return f"{MALFORMED}: {_GROUPLESS_ALLOW}"
    return None


def parse_decision(raw: Any, *, policy_digest: str, input_digest: str) -> Decision:
    """Read what a policy returned as a :class:`Decision`, failing closed.

    Only an object whose ``allow`` is exactly ``true``, with ``reasons`` a list of strings,
    an optional boolean ``require_approval`` and ``break_glass``, and an optional ``approval``
    block listing its factors, can allow; anything else is a deny whose reason says what was
    wrong. Other keys are kept in ``Decision.extra``.
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


def parse_approval(raw: Any, *, policy_digest: str, input_digest: str) -> Decision:
    """Read what a policy's approval rule returned as a :class:`Decision`, failing closed.

    As :func:`parse_decision`, and only an answer that :func:`approval_problem` accepts can
    allow; ``extra["groups"]`` holds the groups the approver counts for.
    """
    problem = approval_problem(raw)
    if problem is not None:
        return Decision.deny(problem, policy_digest=policy_digest, input_digest=input_digest)
    return parse_decision(raw, policy_digest=policy_digest, input_digest=input_digest)


def _factors_listed(approval: Any) -> bool:
    """Whether a decision's approval block is ``{"all_of": [{group, count, members}, ...]}``."""
    factors = approval.get("all_of") if isinstance(approval, dict) else None
    return (
        isinstance(factors, list)
        and len(factors) > 0
        and all(_factor_listed(factor) for factor in factors)
    )


def _factor_listed(factor: Any) -> bool:
    if not isinstance(factor, dict):
        return False
    count, members = factor.get("count"), factor.get("members")
    return (
        isinstance(factor.get("group"), str)
        and isinstance(count, int)
        and not isinstance(count, bool)
        and count >= 1
        and isinstance(members, list)
        and all(isinstance(m, str) for m in members)
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
