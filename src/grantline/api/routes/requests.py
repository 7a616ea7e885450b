"""Access requests: ask, approve, collect, read, lineage, revoke, review, and introspection."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from grantline.api import responses as bodies
from grantline.api.audit_responses import Lineage
from grantline.api.auth import caller, runtime_of
from grantline.api.errors import error_body
from grantline.api.openapi import NO_STORE, errors
from grantline.api.schemas import AccessRequestBody, IntrospectBody, OutcomeBody, ReasonBody
from grantline.config import Runtime
from grantline.domain.errors import AuthenticationError, InvalidRequestError
from grantline.domain.jwk import public_jwk, thumbprint
from grantline.domain.models import AccessRequest, Identity, Status, Ttl

router = APIRouter(prefix="/v1", tags=["access requests"])
Caller = Annotated[Identity, Depends(caller)]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# OpenAPI links: where a request id from an answer can be used next.
_BY_ID = {"request_id": "$response.body#/request_id"}
_ISSUED_LINKS = {
    "describe": {"operationId": "describeAccessRequest", "parameters": _BY_ID},
    "lineage": {"operationId": "accessRequestLineage", "parameters": _BY_ID},
    "revoke": {"operationId": "revokeAccessRequest", "parameters": _BY_ID},
}
_DENIED_LINKS = {
    "describe": {"operationId": "describeAccessRequest", "parameters": _BY_ID},
    "lineage": {"operationId": "accessRequestLineage", "parameters": _BY_ID},
}
_PENDING_LINKS = {
    "describe": {"operationId": "describeAccessRequest", "parameters": _BY_ID},
    "approve": {"operationId": "approveAccessRequest", "parameters": _BY_ID},
    "reject": {"operationId": "rejectAccessRequest", "parameters": _BY_ID},
    "collect": {"operationId": "collectCredential", "parameters": _BY_ID},
}
_WITH_BODY = (400, 401, 404, 413, 422, 503)
# What a call that issues a credential may answer 503 with, besides the store.
_ISSUING = (
    "signer_unavailable",
    "issuer_unavailable",
    "vault_unavailable",
    "vault_sealed",
    "vault_timeout",
    "vault_forbidden",
    "vault_rejected",
    "issuer_misconfigured",
)
# A request id is any string: nothing to refuse with 422 before the lookup.
_BY_ID_ONLY = (401, 404, 503)


@router.post(
    "/access-requests",
    status_code=201,
    operation_id="requestAccess",
    summary="Ask for access",
    response_model=None,
    responses={
        201: {
            "model": bodies.Issued,
            "description": "Issued: the credential is in the body, and only there.",
            "headers": NO_STORE,
            "links": _ISSUED_LINKS,
        },
        202: {
            "model": bodies.Pending,
            "description": "Pending approval: approvers are notified; collect the credential "
            "once they agree.",
            "links": _PENDING_LINKS,
        },
        403: {
            "model": bodies.Denied,
            "description": "Denied by policy, with its reasons. The denial is recorded.",
            "links": _DENIED_LINKS,
        },
        **errors(
            400,
            401,
            413,
            422,
            503,
            codes={
                422: ("credential_type_unavailable", "invalid_subject_token"),
                503: ("policy_unavailable", *_ISSUING),
            },
        ),
    },
)
async def create(body: AccessRequestBody, request: Request, identity: Caller) -> JSONResponse:
    """Ask for access: 201 issued, 202 pending approval, 403 denied (recorded too)."""
    built = runtime_of(request)
    access = AccessRequest(
        target=body.target,
        role=body.role,
        ttl=Ttl(body.ttl_seconds),
        credential_type=body.credential_type,
        purpose=body.purpose,
        ticket=body.ticket,
        agent=body.agent.model_dump() if body.agent else None,
        break_glass=body.break_glass,
        justification=body.justification,
        key_thumbprint=thumbprint(public_jwk(body.public_key))
        if body.public_key is not None
        else "",
    )
    principal = _principal(built, body)
    outcome = await built.broker.request_access(identity, access, principal)
    payload: dict[str, Any] = {
        "request_id": outcome.request_id,
        "status": outcome.status.value,
        "decision": outcome.decision.summary(),
    }
    if outcome.status is Status.DENIED:
        message = "; ".join(outcome.decision.reasons) or "denied by policy"
        payload.update(error_body("policy_denied", message))
        return JSONResponse(payload, status_code=403)
    if outcome.status is Status.PENDING_APPROVAL:
        payload["approval"] = await built.approvals.view_of(outcome)
        return JSONResponse(payload, status_code=202)
    payload["credential"] = {"type": access.credential_type.value, **dict(outcome.credential or {})}
    return JSONResponse(payload, status_code=201, headers=_NO_STORE)


def _principal(built: Runtime, body: AccessRequestBody) -> Identity | None:
    """Whom an agent acts for, proven by that principal's own token."""
    if body.subject_token is None:
        return None
    try:
        principal = built.verifier.verify(body.subject_token)
    except AuthenticationError as exc:
        raise InvalidRequestError(
            f"subject_token: {exc.message}", code="invalid_subject_token"
        ) from exc
    claimed = body.agent.on_behalf_of if body.agent else ""
    if claimed and claimed != principal.subject:
        raise InvalidRequestError(
            f"agent.on_behalf_of is {claimed}, but subject_token is for {principal.subject}"
        )
    return principal


@router.get(
    "/access-requests",
    operation_id="listPendingRequests",
    summary="List the requests the caller may approve",
    response_model=None,
    responses={200: {"model": bodies.PendingList}, **errors(401, 422, 503)},
)
async def listing(
    request: Request,
    identity: Caller,
    status: Annotated[
        Literal["pending_approval"], Query(description="only pending requests can be listed")
    ],
) -> dict[str, Any]:
    """The pending requests the caller may approve now."""
    return {"requests": await runtime_of(request).approvals.pending_for(identity)}


_DECIDED = {
    "model": bodies.RequestSummary,
    "description": "The request as it now stands; `approval` while it still waits.",
}
_APPROVAL_CODES = {403: ("approval_refused",), 409: ("already_approved", "not_pending")}
_APPROVAL_ANSWERS = {200: _DECIDED, **errors(403, 409, *_WITH_BODY, codes=_APPROVAL_CODES)}
# The approval that completes the quorum issues the credential.
_APPROVE_ANSWERS = {
    200: _DECIDED,
    **errors(403, 409, *_WITH_BODY, codes={**_APPROVAL_CODES, 503: _ISSUING}),
}


@router.post(
    "/access-requests/{request_id}/approve",
    operation_id="approveAccessRequest",
    summary="Approve a pending request",
    response_model=None,
    responses=_APPROVE_ANSWERS,
)
async def approve(
    request_id: str, body: ReasonBody, request: Request, identity: Caller
) -> dict[str, Any]:
    """Approve: when the quorum is met, the policy decides again and the credential is issued
    for the requester to collect."""
    return await runtime_of(request).approvals.approve(identity, request_id, body.reason)


@router.post(
    "/access-requests/{request_id}/reject",
    operation_id="rejectAccessRequest",
    summary="Reject a pending request",
    response_model=None,
    responses=_APPROVAL_ANSWERS,
)
async def reject(
    request_id: str, body: ReasonBody, request: Request, identity: Caller
) -> dict[str, Any]:
    """Reject: the request ends."""
    return await runtime_of(request).approvals.reject(identity, request_id, body.reason)


@router.get(
    "/access-requests/{request_id}/credential",
    operation_id="collectCredential",
    summary="Collect an approved credential (once)",
    response_model=None,
    responses={
        200: {"model": bodies.Collected, "headers": NO_STORE},
        **errors(409, 410, 500, *_BY_ID_ONLY, codes={409: ("not_approved_yet",)}),
    },
)
async def collect(request_id: str, request: Request, identity: Caller) -> JSONResponse:
    """The requester collects an approved credential, once: 410 afterwards."""
    collected = await runtime_of(request).approvals.collect(identity, request_id)
    return JSONResponse(collected, headers=_NO_STORE)


@router.post(
    "/access-requests/{request_id}/review",
    operation_id="reviewBreakGlass",
    summary="Review a break-glass grant",
    response_model=None,
    responses={200: _DECIDED, **errors(403, 409, *_WITH_BODY)},
)
async def review(
    request_id: str, body: ReasonBody, request: Request, identity: Caller
) -> dict[str, Any]:
    """The post-incident review of a break-glass grant (group `reviewers`)."""
    return await runtime_of(request).approvals.review(identity, request_id, body.reason)


@router.get(
    "/access-requests/{request_id}",
    operation_id="describeAccessRequest",
    summary="Read a request's status and summary",
    response_model=None,
    responses={200: {"model": bodies.RequestSummary}, **errors(*_BY_ID_ONLY)},
)
async def describe(request_id: str, request: Request, identity: Caller) -> dict[str, Any]:
    """Status and summary, never the credential: for whom it is for, the agent that asked,
    approvers while it is pending, and auditors."""
    return await runtime_of(request).broker.describe(identity, request_id)


@router.get(
    "/access-requests/{request_id}/lineage",
    operation_id="accessRequestLineage",
    summary="Read every record of a request",
    response_model=None,
    responses={200: {"model": Lineage}, **errors(*_BY_ID_ONLY)},
)
async def lineage(request_id: str, request: Request, identity: Caller) -> dict[str, Any]:
    """Every record of the request, in log order, each as signed."""
    lines = await runtime_of(request).broker.lineage(identity, request_id)
    return {"request_id": request_id, "records": [json.loads(line) for line in lines]}


@router.post(
    "/access-requests/{request_id}/revoke",
    operation_id="revokeAccessRequest",
    summary="Revoke a grant",
    response_model=None,
    responses={
        200: {"model": bodies.Revocation},
        **errors(409, *_WITH_BODY, codes={503: ("revocation_pending",)}),
    },
)
async def revoke(
    request_id: str, body: ReasonBody, request: Request, identity: Caller
) -> dict[str, Any]:
    """Revoke at the source, and record who did it and why. When the issuer fails (503
    `revocation_pending`) the grant stays in force and the reconciler retries."""
    return await runtime_of(request).broker.revoke(identity, request_id, body.reason)


@router.post(
    "/access-requests/{request_id}/outcome",
    operation_id="reportOutcome",
    summary="Report what the action a grant served did",
    response_model=None,
    status_code=201,
    responses={201: {"model": bodies.OutcomeRecorded}, **errors(404, 409, *_WITH_BODY)},
)
async def outcome(
    request_id: str, body: OutcomeBody, request: Request, identity: Caller
) -> JSONResponse:
    """Recorded as an ``outcome`` record on the request's lineage, after its credential: by
    the requester (an agent, or the workload itself) or the principal an agent acted for."""
    report = {"action": body.action, "result": body.result, "changed": body.changed}
    if body.summary is not None:
        report["summary"] = body.summary
    seq = await runtime_of(request).broker.record_outcome(identity, request_id, report)
    return JSONResponse({"request_id": request_id, "event": "outcome", "seq": seq}, status_code=201)


_TOKEN_FORM = {
    "type": "object",
    "properties": {"token": {"type": "string", "minLength": 1}},
    "required": ["token"],
}


@router.post(
    "/introspect",
    operation_id="introspectToken",
    summary="Introspect an issued token (RFC 7662)",
    response_model=None,
    responses={
        200: {"model": bodies.Introspection, "headers": NO_STORE},
        **errors(400, 401, 413, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": IntrospectBody.model_json_schema()},
                "application/x-www-form-urlencoded": {"schema": _TOKEN_FORM},
            },
        }
    },
)
async def introspect(request: Request, identity: Caller) -> JSONResponse:
    """RFC 7662. Takes JSON ``{"token": ...}`` or the RFC's form encoding."""
    token = await _token_from(request)
    built = runtime_of(request)
    result = await built.broker.introspection(token)
    # Asking about a token is using it: the caller is a resource server holding it.
    await built.usage.introspected(identity, result)
    return JSONResponse(result.answer, headers=_NO_STORE)


async def _token_from(request: Request) -> str:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        body = (await request.body()).decode("utf-8", errors="replace")
        tokens = parse_qs(body).get("token", [])
        if len(tokens) != 1 or not tokens[0]:
            raise InvalidRequestError("token: exactly one non-empty token field required")
        return tokens[0]
    try:
        raw = await request.json()
    except ValueError as exc:
        raise InvalidRequestError(
            "the request body is not valid JSON", code="malformed_json"
        ) from exc
    try:
        return IntrospectBody.model_validate(raw).token
    except ValueError as exc:
        raise InvalidRequestError('body must be {"token": "<JWT>"}') from exc
