"""What the broker answers, as typed values: grants, pending requests, statuses, decisions.

Each ``*_from`` function reads one JSON body of the HTTP API (CONTRACT.md) and raises
:class:`~grantline.client.errors.UnexpectedResponseError` when it does not have the
documented shape. Secrets (tokens, private keys, secret data) are left out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from grantline.client.errors import UnexpectedResponseError
from grantline.domain.approvals import Approval, Factor
from grantline.domain.models import RequestId, Status, parse_time


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer, as the broker reports it."""

    allow: bool
    reasons: tuple[str, ...]
    policy_digest: str


@dataclass(frozen=True, slots=True)
class Credential:
    """An issued credential. ``fields`` holds every member the broker sent for its type:
    ``token`` (jwt, vault_token), ``accessor``, ``certificate``, ``private_key``,
    ``ca_chain``, ``serial`` (x509), ``lease_id`` and ``data`` (vault_secret)."""

    type: str
    expires_at: datetime
    fields: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def token(self) -> str | None:
        """The token of a ``jwt`` or ``vault_token`` credential."""
        return _optional_str(self.fields, "token")

    @property
    def private_key(self) -> str | None:
        return _optional_str(self.fields, "private_key")

    @property
    def certificate(self) -> str | None:
        return _optional_str(self.fields, "certificate")

    @property
    def lease_id(self) -> str | None:
        return _optional_str(self.fields, "lease_id")


@dataclass(frozen=True, slots=True)
class Grant:
    """Access granted: the credential, when it ends, and the decision that allowed it.

    ``decision`` is None for a credential collected after approval (the collect answer
    carries none; :meth:`~grantline.client.GrantlineClient.status` has the request's).
    ``received_at`` is the client's clock when the answer arrived: renewal counts from it.
    """

    request_id: RequestId
    credential: Credential
    decision: Decision | None
    received_at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.credential.expires_at

    @property
    def token(self) -> str:
        """The credential's token. Raises ValueError for a credential type without one."""
        token = self.credential.token
        if token is None:
            raise ValueError(f"a {self.credential.type} credential has no token")
        return token

    @property
    def lifetime(self) -> timedelta:
        """How long the credential lives, from when it arrived."""
        return max(self.expires_at - self.received_at, timedelta(0))


@dataclass(frozen=True, slots=True)
class ApprovalState:
    """Who must still approve a request, who may, and who has."""

    required: tuple[Factor, ...]
    missing: tuple[Factor, ...]
    eligible: tuple[str, ...] = ()
    approvals: tuple[Approval, ...] = ()
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """A request held for approval (HTTP 202); nothing is issued yet."""

    request_id: RequestId
    decision: Decision
    approval: ApprovalState


@dataclass(frozen=True, slots=True)
class RequestStatus:
    """A request's status and summary (``GET /v1/access-requests/{id}``), never a secret."""

    request_id: RequestId
    status: str
    credential_ready: bool | None = None
    expires_at: datetime | None = None
    approval: ApprovalState | None = None
    summary: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def pending(self) -> bool:
        return self.status in (Status.PENDING_APPROVAL, Status.APPROVED)


@dataclass(frozen=True, slots=True)
class Revocation:
    request_id: RequestId
    status: str
    already: bool


@dataclass(frozen=True, slots=True)
class UsageReceipt:
    """The broker's answer to a usage report: how many observations it took, the indexes
    of those whose ``jti`` it never issued, and whether it had seen the batch before."""

    accepted: int
    unknown: tuple[int, ...]
    duplicate: bool


@dataclass(frozen=True, slots=True)
class OutcomeReceipt:
    """Where an ``outcome`` record landed: its request and its place in the log."""

    request_id: RequestId
    seq: int


def decision_from(raw: Any) -> Decision:
    body = _object(raw, "decision")
    reasons = body.get("reasons", [])
    if not isinstance(body.get("allow"), bool) or not _strings(reasons):
        raise UnexpectedResponseError("decision: allow must be a boolean, reasons strings")
    return Decision(body["allow"], tuple(reasons), _optional_str(body, "policy_digest") or "")


def grant_from(raw: Any, received_at: datetime) -> Grant:
    """An issued answer (201) or a collected credential (200)."""
    body = _object(raw, "response")
    credential = _object(body.get("credential"), "credential")
    decision = decision_from(body["decision"]) if "decision" in body else None
    return Grant(
        request_id=_request_id(body),
        credential=Credential(
            type=_str(credential, "type"),
            expires_at=_time(credential, "expires_at"),
            fields=dict(credential),
        ),
        decision=decision,
        received_at=received_at,
    )


def pending_from(raw: Any) -> Pending:
    body = _object(raw, "response")
    return Pending(
        request_id=_request_id(body),
        decision=decision_from(body.get("decision")),
        approval=approval_from(body.get("approval")),
    )


def approval_from(raw: Any) -> ApprovalState:
    body = _object(raw, "approval")
    eligible = body.get("eligible", [])
    if not _strings(eligible):
        raise UnexpectedResponseError("approval.eligible: expected a list of subjects")
    deadline = body.get("expires_at")
    return ApprovalState(
        required=tuple(_factor(item) for item in _list(body.get("required", []), "required")),
        missing=tuple(_factor(item) for item in _list(body.get("missing", []), "missing")),
        eligible=tuple(eligible),
        approvals=tuple(_approval(item) for item in _list(body.get("approvals", []), "approvals")),
        expires_at=_time(body, "expires_at") if deadline is not None else None,
    )


def status_from(raw: Any) -> RequestStatus:
    body = _object(raw, "response")
    ready = body.get("credential_ready")
    return RequestStatus(
        request_id=_request_id(body),
        status=_str(body, "status"),
        credential_ready=ready if isinstance(ready, bool) else None,
        expires_at=_time(body, "expires_at") if "expires_at" in body else None,
        approval=approval_from(body["approval"]) if "approval" in body else None,
        summary=dict(body),
    )


def revocation_from(raw: Any) -> Revocation:
    body = _object(raw, "response")
    return Revocation(_request_id(body), _str(body, "status"), body.get("already") is True)


def usage_receipt_from(raw: Any) -> UsageReceipt:
    body = _object(raw, "usage receipt")
    accepted, unknown = body.get("accepted"), _list(body.get("unknown", []), "unknown")
    if isinstance(accepted, bool) or not isinstance(accepted, int):
        raise UnexpectedResponseError("accepted: expected a count")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in unknown):
        raise UnexpectedResponseError("unknown: expected observation indexes")
    return UsageReceipt(accepted, tuple(unknown), body.get("duplicate") is True)


def outcome_receipt_from(raw: Any) -> OutcomeReceipt:
    body = _object(raw, "outcome receipt")
    seq = body.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise UnexpectedResponseError("seq: expected the record's place in the log")
    return OutcomeReceipt(_request_id(body), seq)


def _factor(raw: Any) -> Factor:
    item = _object(raw, "approval factor")
    count, members = item.get("count"), item.get("members", [])
    if not isinstance(count, int) or isinstance(count, bool) or not _strings(members):
        raise UnexpectedResponseError("approval factor: count must be a number, members strings")
    return Factor(_str(item, "group"), count, tuple(members))


def _approval(raw: Any) -> Approval:
    item = _object(raw, "approval")
    groups = item.get("groups", [])
    if not _strings(groups):
        raise UnexpectedResponseError("approval.groups: expected a list of groups")
    return Approval(_str(item, "approver"), tuple(groups))


def _request_id(body: Mapping[str, Any]) -> RequestId:
    return RequestId(_str(body, "request_id"))


def _object(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise UnexpectedResponseError(f"{what}: expected a JSON object")
    return raw


def _list(raw: Any, what: str) -> list[Any]:
    if not isinstance(raw, list):
        raise UnexpectedResponseError(f"{what}: expected a JSON array")
    return raw


def _str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise UnexpectedResponseError(f"{key}: expected a non-empty string")
    return value


def _optional_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _time(body: Mapping[str, Any], key: str) -> datetime:
    try:
        return parse_time(_str(body, key))
    except ValueError as exc:
        raise UnexpectedResponseError(f"{key}: expected an RFC 3339 time") from exc
