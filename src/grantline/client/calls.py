"""The HTTP API as data: each call the client makes, and how its answer is read.

No I/O here: :mod:`grantline.client.transport` sends a :class:`Call`; the readers turn the
answer into a value of :mod:`grantline.client.models` or raise the fitting error. The sync
and async clients share all of it.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypedDict
from urllib.parse import quote

import httpx

from grantline.client.errors import (
    AccessDeniedError,
    AuthenticationFailedError,
    BrokerUnavailableError,
    ConflictError,
    CredentialGoneError,
    GrantlineClientError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RequestClosedError,
    UnexpectedResponseError,
)
from grantline.client.models import (
    Grant,
    OutcomeReceipt,
    Pending,
    RequestStatus,
    Revocation,
    UsageReceipt,
    decision_from,
    grant_from,
    outcome_receipt_from,
    pending_from,
    revocation_from,
    status_from,
    usage_receipt_from,
)
from grantline.client.pop import DpopPrivateKey, DpopPublicKey, public_jwk_of
from grantline.client.retry import RETRYABLE_STATUSES, Safety, may_have_reached
from grantline.domain.models import CredentialType, Status

DEFAULT_POLL_SECONDS = 2.0
_BREAK_GLASS = frozenset({"break_glass", "justification"})

_BY_STATUS: Mapping[int, type[GrantlineClientError]] = {
    400: InvalidRequestError,
    401: AuthenticationFailedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    410: CredentialGoneError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: InvalidRequestError,
}


OutcomeResult = Literal["succeeded", "failed", "partial"]
"""How the action a grant served ended, as its holder reports it."""


class AgentBlock(TypedDict, total=False):
    """Who an agent acts for and why (``agent`` in the request body)."""

    on_behalf_of: str
    goal: str
    tool: str
    prompt_sha256: str


class CredentialOptions(TypedDict, total=False):
    """Optional members of an access request that :meth:`credential` may repeat.

    ``public_key`` binds the issued JWT to a key (``cnf.jkt``): a public JWK, or a
    ``cryptography`` key (private or public) whose public JWK is sent. ``subject_token`` is
    the principal's token when an agent asks on its behalf (with ``agent.on_behalf_of``).
    """

    purpose: str
    credential_type: CredentialType | str
    ticket: str
    agent: AgentBlock
    public_key: Mapping[str, Any] | DpopPrivateKey | DpopPublicKey
    subject_token: str


class RequestOptions(CredentialOptions, total=False):
    """Every optional member, break-glass included (never renewed automatically)."""

    break_glass: bool
    justification: str


@dataclass(frozen=True, slots=True)
class Call:
    """One request to the broker. ``path`` is relative to the broker's URL."""

    method: str
    path: str
    body: Mapping[str, Any] | None = None
    safety: Safety = Safety.IDEMPOTENT
    authenticated: bool = True


class Step(enum.Enum):
    """What waiting for an approval does next."""

    WAIT = "wait"
    COLLECT = "collect"


def access_request(
    target: str,
    role: str,
    ttl: int | timedelta,
    options: Mapping[str, object],
    *,
    renewable: bool = False,
) -> Call:
    """``POST /v1/access-requests``. Raises ValueError for a TTL that is not whole seconds
    or a break-glass request to be renewed, TypeError for a ``public_key`` that is neither a
    JWK nor a supported key."""
    if renewable and not _BREAK_GLASS.isdisjoint(options):
        raise ValueError("break-glass access is asked for once, never renewed: request_access()")
    body: dict[str, Any] = {"target": target, "role": role, "ttl_seconds": _seconds(ttl)}
    for name, value in options.items():
        if name == "public_key":
            body[name] = _jwk(value)
        elif name == "credential_type":
            body[name] = str(value)  # a CredentialType is a StrEnum: its value
        else:
            body[name] = dict(value) if isinstance(value, Mapping) else value
    return Call("POST", "/v1/access-requests", body, Safety.ONCE)


def status(request_id: str) -> Call:
    return Call("GET", f"/v1/access-requests/{_segment(request_id)}")


def collect(request_id: str) -> Call:
    # A GET, but the credential is handed out once: a lost answer cannot be asked for again.
    return Call("GET", f"/v1/access-requests/{_segment(request_id)}/credential", None, Safety.ONCE)


def revoke(request_id: str, reason: str) -> Call:
    # The API makes revoking twice harmless, so a revocation is retried like a read.
    return Call("POST", f"/v1/access-requests/{_segment(request_id)}/revoke", {"reason": reason})


def outcome(
    request_id: str,
    action: str,
    result: OutcomeResult,
    changed: Sequence[str] = (),
    summary: str | None = None,
) -> Call:
    """``POST .../outcome``. Each report is a new record on the lineage, so never sent twice."""
    if isinstance(changed, str):
        raise TypeError("changed is a list of what was changed, not one string")
    body: dict[str, Any] = {"action": action, "result": result, "changed": list(changed)}
    if summary is not None:
        body["summary"] = summary
    path = f"/v1/access-requests/{_segment(request_id)}/outcome"
    return Call("POST", path, body, Safety.ONCE)


def decide(request_id: str, verdict: str, reason: str) -> Call:
    """``approve`` or ``reject``: approving twice is refused (409), so never sent twice."""
    if verdict not in ("approve", "reject"):
        raise ValueError("verdict is 'approve' or 'reject'")
    path = f"/v1/access-requests/{_segment(request_id)}/{verdict}"
    return Call("POST", path, {"reason": reason}, Safety.ONCE)


def introspect(token: str) -> Call:
    return Call("POST", "/v1/introspect", {"token": token})


def usage(batch_id: str, observations: Sequence[Mapping[str, Any]]) -> Call:
    """``POST /v1/usage``. The broker ignores a ``batch_id`` it has seen, so a batch sent
    again with the same id never counts twice: it is retried like a read."""
    return Call("POST", "/v1/usage", {"batch_id": batch_id, "observations": list(observations)})


JWKS = Call("GET", "/.well-known/jwks.json", authenticated=False)


def cache_key(call: Call) -> str:
    """Which cached grant a request may reuse: one per distinct request body."""
    canonical = json.dumps(call.body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_access(response: httpx.Response, received_at: datetime) -> Grant | Pending:
    """A 201 is a :class:`Grant`, a 202 a :class:`Pending`. Raises AccessDeniedError on a
    policy denial and the fitting error for any other answer."""
    if response.status_code == 201:
        return grant_from(_json(response), received_at)
    if response.status_code == 202:
        return pending_from(_json(response))
    raise error_from(response, outcome_unknown=response.status_code >= 500)


def read_grant(response: httpx.Response, received_at: datetime) -> Grant:
    if response.status_code == 200:
        return grant_from(_json(response), received_at)
    raise error_from(response, outcome_unknown=response.status_code >= 500)


def read_status(response: httpx.Response) -> RequestStatus:
    return status_from(_ok(response))


def read_revocation(response: httpx.Response) -> Revocation:
    return revocation_from(_ok(response))


def read_outcome(response: httpx.Response) -> OutcomeReceipt:
    if response.status_code != 201:
        raise error_from(response)
    return outcome_receipt_from(_json(response))


def read_introspection(response: httpx.Response) -> dict[str, Any]:
    body = _ok(response)
    if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
        raise UnexpectedResponseError('introspection: expected {"active": true|false, ...}')
    return body


def read_usage(response: httpx.Response) -> UsageReceipt:
    if response.status_code != 202:
        raise error_from(response)
    return usage_receipt_from(_json(response))


def read_jwks(response: httpx.Response) -> dict[str, Any]:
    body = _ok(response)
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise UnexpectedResponseError('JWKS: expected {"keys": [...]}')
    return body


def next_step(current: RequestStatus) -> Step:
    """Whether a request waited on is still pending or ready to collect.

    Raises:
        CredentialGoneError: issued, but its credential was collected already.
        RequestClosedError: rejected, its approval window expired, or otherwise ended.
    """
    if current.pending:
        return Step.WAIT
    if current.status == Status.ISSUED:
        if current.credential_ready:
            return Step.COLLECT
        raise CredentialGoneError(
            f"request {current.request_id} is issued and its credential was handed out already "
            "(collected, or returned when it was issued)",
            request_id=current.request_id,
        )
    by = current.summary.get("rejected_by")
    detail = f" by {by}" if isinstance(by, str) else ""
    raise RequestClosedError(
        f"request {current.request_id} is {current.status}{detail}: there is nothing to collect",
        request_status=current.status,
        request_id=current.request_id,
    )


def error_from(response: httpx.Response, *, outcome_unknown: bool = False) -> GrantlineClientError:
    """The most specific client error for an error answer of the broker."""
    parsed = _body(response)
    body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    error: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    code = _text(error.get("code")) or f"http_{response.status_code}"
    message = _text(error.get("message")) or f"the broker answered {response.status_code}"
    request_id = _text(body.get("request_id")) or None
    status = response.status_code
    if status == 403 and body.get("status") == Status.DENIED:
        decision = decision_from(body.get("decision"))
        return AccessDeniedError(
            message,
            reasons=decision.reasons,
            decision=decision,
            code=code,
            status=status,
            request_id=request_id,
        )
    if status in RETRYABLE_STATUSES:
        return BrokerUnavailableError(
            message,
            code=code,
            status=status,
            request_id=request_id,
            retry_after=retry_after(response),
            outcome_unknown=outcome_unknown,
        )
    kind = _BY_STATUS.get(status, UnexpectedResponseError)
    return kind(message, code=code, status=status, request_id=request_id)


def unreachable(call: Call, error: httpx.TransportError) -> BrokerUnavailableError:
    """The error for a call that got no answer."""
    unknown = call.safety is Safety.ONCE and may_have_reached(error)
    detail = "; it may have reached the broker, so it was not sent again" if unknown else ""
    return BrokerUnavailableError(
        f"{call.method} {call.path}: no answer from the broker ({type(error).__name__}){detail}",
        outcome_unknown=unknown,
    )


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the delay form only; an HTTP date is ignored)."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if 0 <= seconds < 3600 else None


def _ok(response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise error_from(response)
    return _json(response)


def _json(response: httpx.Response) -> Any:
    body = _body(response)
    if body is None:
        raise UnexpectedResponseError(
            f"the broker answered {response.status_code} without a JSON body",
            status=response.status_code,
        )
    return body


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _segment(request_id: str) -> str:
    """A request id as one path segment: a ``/`` or ``..`` in it cannot reach another path."""
    if not request_id or request_id in (".", ".."):
        raise ValueError("a request id is a non-empty string")
    return quote(request_id, safe="")


def _seconds(ttl: int | timedelta) -> int:
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
        if seconds != int(seconds):
            raise ValueError(f"ttl must be whole seconds, got {seconds}")
        return int(seconds)
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise TypeError(f"ttl is an int of seconds or a timedelta, not {type(ttl).__name__}")
    return ttl


def _jwk(key: object) -> dict[str, Any]:
    if isinstance(key, Mapping):
        return dict(key)
    if isinstance(key, DpopPrivateKey | DpopPublicKey):
        return public_jwk_of(key)
    raise TypeError(f"public_key is a JWK or a cryptography key, not {type(key).__name__}")
