"""The records of a request's lineage as drafts, with the state each one changes.

Every record of a break-glass request carries ``"break_glass": true`` in its data, so that an
auditor reading any one record of it sees the emergency; the request's state remembers it
for records written later (revocation, expiry, review, reconciliation).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from grantline.broker.decisions import decision_evidence
from grantline.domain.approvals import Requirement
from grantline.domain.models import (
    ActiveGrant,
    Decision,
    Delegation,
    Event,
    Identity,
    IssuedCredential,
    RequestId,
    Status,
    format_time,
)
from grantline.domain.policy_input import json_safe
from grantline.evidence.canonical import canonicalize
from grantline.issuers.base import GrantSpec
from grantline.policy.engine import digest_of
from grantline.store.keys import Index
from grantline.store.ledger import Draft
from grantline.store.log import ActiveAdd, Effects, Pickup, to_millis
from grantline.store.policy_archive import KeptInput, pack

BREAK_GLASS = "break_glass"


def marks_of(state: Mapping[str, str]) -> dict[str, Any]:
    """What every record of this request carries besides its own data."""
    return {BREAK_GLASS: True} if state.get(BREAK_GLASS) == "1" else {}


def draft(
    request_id: str,
    event: Event,
    at: datetime,
    data: Mapping[str, Any],
    state: Mapping[str, str],
    *,
    effects: Effects | None = None,
) -> Draft:
    """A record of ``request_id`` marked as its state says (break-glass)."""
    return Draft(request_id, event, at, {**data, **marks_of(state)}, effects or Effects())


def identity_evidence(identity: Identity) -> dict[str, Any]:
    """Who, as records keep it: the claims only by digest (they may hold personal data)."""
    return {
        "subject": identity.subject,
        "issuer": identity.issuer,
        "claims_sha256": digest_of(canonicalize(json_safe(dict(identity.claims)))),
    }


def requested(
    request_id: RequestId,
    policy_input: Mapping[str, Any],
    now: datetime,
    *,
    caller: Identity,
    delegation: Delegation | None,
) -> Draft:
    """The ``requested`` record, built from the policy input so both describe the same request."""
    identity, request = policy_input["identity"], policy_input["request"]
    data: dict[str, Any] = {
        "identity": {
            "subject": identity["subject"],
            "issuer": identity["issuer"],
            "claims_sha256": digest_of(canonicalize(identity["claims"])),
        },
        "request": request,
    }
    state: dict[str, str | int] = {
        "subject": identity["subject"],
        "issuer": identity["issuer"],
        "requested_by": caller.subject,
        "role": request["role"],
        "target": request["target"],
        "credential_type": request["credential_type"],
        "ttl_seconds": request["ttl_seconds"],
        "created_at": format_time(now),
    }
    if delegation is not None:
        data["actor"] = {**identity_evidence(delegation.actor), "chain": list(delegation.chain)}
        state["actors"] = json.dumps(list(delegation.chain))
    if request.get("break_glass"):
        state[BREAK_GLASS] = "1"
        data[BREAK_GLASS] = True
    if request.get("public_key_thumbprint"):
        state["cnf_jkt"] = request["public_key_thumbprint"]
    return Draft(request_id, Event.REQUESTED, now, data, Effects(request=state))


def evaluated(
    request_id: RequestId,
    decision: Decision,
    now: datetime,
    state: Mapping[str, str],
    effects: Effects | None = None,
) -> Draft:
    data = {
        "decision": decision_evidence(decision),
        "policy_digest": decision.policy_digest,
        "input_digest": decision.input_digest,
    }
    base = effects or Effects()
    effects = replace(
        base,
        request={"policy_digest": decision.policy_digest, **base.request},
        keep_input=kept_input(decision),
    )
    return draft(request_id, Event.EVALUATED, now, data, state, effects=effects)


def kept_input(decision: Decision) -> KeptInput | None:
    """What the store keeps so that ``decision`` can be replayed (None: the engine saw no
    input it could digest, so there is nothing to replay)."""
    if not decision.input_json:
        return None
    return KeptInput(decision.input_digest, pack(decision.input_json), decision.policy_digest)


def pending(
    request_id: RequestId,
    decision: Decision,
    requirement: Requirement,
    now: datetime,
    *,
    deadline: datetime,
    state: Mapping[str, str],
    policy_input: Mapping[str, Any],
) -> Draft:
    """``evaluated`` for a request that now waits for approvers until ``deadline``.

    The policy input is kept in the request's state (not in the log, which has its digest),
    so the decision can be taken again on fresh active grants when the quorum is met.
    """
    fields: dict[str, str | int] = {
        "status": Status.PENDING_APPROVAL.value,
        "approval": json.dumps(requirement.as_dict()),
        "approvals": "[]",
        "approval_deadline": format_time(deadline),
        "policy_input": json.dumps(policy_input, sort_keys=True),
    }
    chosen = decision.extra.get("vault")
    if isinstance(chosen, Mapping):
        # The decision's Vault mapping, for the issuance that follows the quorum.
        fields["issuer_config"] = json.dumps(chosen)
    effects = Effects(
        request=fields,
        index_add={Index.PENDING_APPROVAL: to_millis(deadline)},
    )
    return evaluated(request_id, decision, now, state, effects)


def approved(
    request_id: str,
    now: datetime,
    data: Mapping[str, Any],
    state: Mapping[str, str],
    *,
    external: bool,
    review_due: datetime | None = None,
) -> Draft:
    """The request may be issued: by policy alone, by a quorum, or as break-glass.

    Minted outside the broker, the issuance comes in a later write: until it does, the
    reconciler watches for an approved request that never got its credential.
    """
    fields: dict[str, str | int] = {
        "status": Status.APPROVED.value,
        "approved_at": format_time(now),
    }
    index_add: dict[str, int] = {Index.AWAITING_ISSUE: to_millis(now)} if external else {}
    if review_due is not None:
        fields |= {"review_status": "review_pending", "review_due_at": format_time(review_due)}
        index_add[Index.REVIEW_DUE] = to_millis(review_due)
    effects = Effects(request=fields, index_add=index_add, index_remove=(Index.PENDING_APPROVAL,))
    return draft(request_id, Event.APPROVED, now, data, state, effects=effects)


def issued(
    spec: GrantSpec,
    credential: IssuedCredential,
    at: datetime,
    state: Mapping[str, str],
    pickup: Pickup | None = None,
) -> Draft:
    handle = dict(credential.handle)
    fields: dict[str, str | int] = {
        "status": Status.ISSUED.value,
        "issued_at": format_time(credential.issued_at),
        "expires_at": format_time(credential.expires_at),
        "fingerprint": credential.fingerprint,
        "handle": json.dumps(handle, sort_keys=True),
    }
    if pickup is not None:
        fields["pickup"] = "waiting"
    effects = Effects(
        request=fields,
        active_add=ActiveAdd(
            spec.subject,
            ActiveGrant(spec.request_id, spec.role, spec.target, credential.expires_at),
            spec.now,
        ),
        jti=handle.get("jti"),
        index_add={Index.LIVE: to_millis(credential.expires_at)},
        index_remove=(Index.AWAITING_ISSUE,),
        pickup=pickup,
    )
    data = credential.evidence()
    if spec.key_thumbprint:
        data["cnf"] = {"jkt": spec.key_thumbprint}
    if spec.actor:
        data["act"] = dict(spec.actor)
    return draft(spec.request_id, Event.ISSUED, at, data, state, effects=effects)


def ended(
    state: Mapping[str, str],
    now: datetime,
    event: Event = Event.REVOKED,
    extra: Mapping[str, str] | None = None,
) -> Effects:
    """A grant leaving force: out of the subject's active grants and the live work lists."""
    status = Status.EXPIRED if event == Event.EXPIRED else Status.REVOKED
    fields = {"status": status.value, f"{status.value}_at": format_time(now), **(extra or {})}
    return Effects(
        request=fields,
        active_remove=state.get("subject"),
        index_remove=(Index.LIVE, Index.REVOKING),
        drop_pickup=True,
    )
