"""Usage: resource servers report the uses of the credentials they accepted or refused."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from grantline.api import responses as bodies
from grantline.api.auth import caller, runtime_of
from grantline.api.openapi import errors
from grantline.api.schemas import UsageBody
from grantline.broker.usage import ReportedUse
from grantline.domain.models import Identity

router = APIRouter(prefix="/v1", tags=["usage"])
Caller = Annotated[Identity, Depends(caller)]


@router.post(
    "/usage",
    operation_id="reportUsage",
    summary="Report uses of issued tokens",
    status_code=202,
    response_model=None,
    responses={202: {"model": bodies.UsageAccepted}, **errors(400, 401, 403, 413, 422, 503)},
)
async def report_usage(request: Request, body: UsageBody, identity: Caller) -> JSONResponse:
    """Uses of Grantline JWTs, as a resource server (a member of the policy's
    ``resource-servers`` group) saw them. Counted per grant and window and recorded as
    ``used`` records once each window ends; a retried batch (same ``batch_id``) counts once."""
    uses = [
        ReportedUse(
            jti=use.jti,
            operation=use.operation,
            outcome=use.outcome,
            resource=use.resource,
            reason=use.reason,
        )
        for use in body.observations
    ]
    outcome = await runtime_of(request).usage.report(identity, body.batch_id, uses)
    return JSONResponse(
        {
            "accepted": outcome.accepted,
            "unknown": list(outcome.unknown),
            "duplicate": outcome.duplicate,
        },
        status_code=202,
    )
