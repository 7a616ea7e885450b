"""The policy input of CONTRACT.md, built by the broker: the policy never reads the clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from grantline.domain.models import AccessRequest, ActiveGrant, Identity, format_time


def build_policy_input(
    identity: Identity,
    request: AccessRequest,
    active_grants: Sequence[ActiveGrant],
    now: datetime,
    *,
    actor: Identity | None = None,
    chain: Sequence[str] = (),
) -> dict[str, Any]:
    """The exact document the policy decides on; its digest goes into the ``evaluated`` record.

    ``identity`` is who the credential is for; ``actor``, when an agent acts for it, the agent
    that called, and ``chain`` every agent of the delegation, the caller first.
    """
    document: dict[str, Any] = {
        "identity": identity_input(identity),
        "request": request.as_policy_request(),
        "active_grants": active_grants_input(active_grants),
        "now": format_time(now),
    }
    if actor is not None:
        document["actor"] = {**identity_input(actor), "chain": list(chain)}
    return document


def active_grants_input(grants: Sequence[ActiveGrant]) -> list[dict[str, str]]:
    """Active grants as policy inputs show them: one per role and target, soonest ending first."""
    kept = longest_per_role_and_target(grants)
    return [g.as_policy_input() for g in sorted(kept, key=lambda g: (g.expires_at, g.request_id))]


def identity_input(identity: Identity) -> dict[str, Any]:
    """An identity as policy inputs show it."""
    return {
        "subject": identity.subject,
        "issuer": identity.issuer,
        "claims": _json_claims(identity.claims),
    }


def longest_per_role_and_target(grants: Sequence[ActiveGrant]) -> list[ActiveGrant]:
    """One grant per (role, target): the one that lasts longest (ties: the latest request).

    A workload that asks for the same role again and again would otherwise carry every live
    grant into each decision, and the cost of a decision grows with its input. What a policy
    can ask of active grants — which roles on which targets are held, and until when — is
    the same with or without the shorter duplicates.
    """
    kept: dict[tuple[str, str], ActiveGrant] = {}
    for grant in grants:
        key = (grant.role, grant.target)
        held = kept.get(key)
        if held is None or (grant.expires_at, grant.request_id) > (
            held.expires_at,
            held.request_id,
        ):
            kept[key] = grant
    return list(kept.values())


def _json_claims(claims: Any) -> dict[str, Any]:
    # Floats would make digests depend on number formatting (records refuse them); JWT claims
    # rarely hold them, and a policy has no use for them, so they are kept as strings.
    return {str(k): json_safe(v) for k, v in dict(claims).items()}


_SAFE_INTEGER = 2**53 - 1


def json_safe(value: Any) -> Any:
    """``value`` with floats and other non-canonical values turned into strings: integers past
    ±(2**53 - 1) too, which records refuse (a caller's token may carry any JSON number)."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int):
        return value if -_SAFE_INTEGER <= value <= _SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)
