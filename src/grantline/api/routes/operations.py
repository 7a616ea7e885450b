"""Operator actions: run a reconciliation pass now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from grantline.api import audit_responses as bodies
from grantline.api.auth import caller, runtime_of
from grantline.api.openapi import errors
from grantline.domain.models import Identity

router = APIRouter(prefix="/v1", tags=["operations"])
Caller = Annotated[Identity, Depends(caller)]


@router.post(
    "/reconcile",
    operation_id="reconcile",
    summary="Run one reconciliation pass",
    response_model=None,
    responses={200: {"model": bodies.ReconcileReport}, **errors(401, 403, 503)},
)
async def reconcile(request: Request, identity: Caller) -> dict[str, Any]:
    """One reconciliation pass; ``ran`` is false when another replica is running one."""
    built = runtime_of(request)
    built.broker.require_operator(identity, "run the reconciler")
    report = await built.reconciler.run_once()
    return report.as_dict()
