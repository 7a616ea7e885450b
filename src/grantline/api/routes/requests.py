"""Access requests: ask, approve, collect, read, lineage, revoke, review, and introspection."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from grantline.api.auth import caller, runtime_of
from grantline.api.errors import error_body
from grantline.api.schemas import AccessRequestBody, IntrospectBody, ReasonBody
from grantline.config import Runtime
from grantline.domain.errors import AuthenticationError, InvalidRequestError
from grantline.domain.jwk import public_jwk, thumbprint
from grantline.domain.models import AccessRequest, Identity, Status, Ttl

router = APIRouter(prefix="/v1")
Caller = Annotated[Identity, Depends(caller)]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post("/access-requests", status_code=201)
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


@router.get("/access-requests")
async def listing(request: Request, identity: Caller, status: str = "") -> dict[str, Any]:
    """The pending requests the caller may approve (``?status=pending_approval``)."""
    if status != Status.PENDING_APPROVAL.value:
        raise InvalidRequestError("status: only status=pending_approval can be listed")
    return {"requests": await runtime_of(request).approvals.pending_for(identity)}


@router.post("/access-requests/{request_id}/approve")
async def approve(
    request_id: str, body: ReasonBody, request: Request, identity: Caller
) -> dict[str, Any]:
    return await runtime_of(request).approvals.approve(identity, request_id, body.reason)


@router.post("/access-requests/{request_id}/reject")
async def reject(
    request_id: str, body: ReasonBody, request: Request, identity: Caller
) -> dict[str, Any]:
    return await runtime_of(request).approvals.reject(identity, request_id, body.reason)


@router.get("/access-requests/{request_id}/credential")
async def collect(request_id: str, request: Request, identity: Caller) -> JSONResponse:
    """The approved credential, once: 410 afterwards."""
    collected = await runtime_of(request).approvals.collect(identity, request_id)
    return JSONResponse(collected, headers=_NO_STORE)


@router.post("/access-requests/{request_id}/review")
async def review(
    request_id: str, body: ReasonBody, request: Request, identity: Caller
) -> dict[str, Any]:
    """The post-incident review of a break-glass grant."""
    return await runtime_of(request).approvals.review(identity, request_id, body.reason)


@router.get("/access-requests/{request_id}")
async def describe(request_id: str, request: Request, identity: Caller) -> dict[str, Any]:
    return await runtime_of(request).broker.describe(identity, request_id)


@router.get("/access-requests/{request_id}/lineage")
async def lineage(request_id: str, request: Request, identity: Caller) -> dict[str, Any]:
    lines = await runtime_of(request).broker.lineage(identity, request_id)
    return {"request_id": request_id, "records": [json.loads(line) for line in lines]}


@router.post("/access-requests/{request_id}/revoke")
async def revoke(
    request_id: str, body: ReasonBody, request: Request, identity: Caller
) -> dict[str, Any]:
    return await runtime_of(request).broker.revoke(identity, request_id, body.reason)


@router.post("/introspect")
async def introspect(request: Request, identity: Caller) -> JSONResponse:
    """RFC 7662. Takes JSON ``{"token": ...}`` or the RFC's form encoding."""
    token = await _token_from(request)
    result = await runtime_of(request).broker.introspect(token)
    return JSONResponse(result, headers=_NO_STORE)


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
