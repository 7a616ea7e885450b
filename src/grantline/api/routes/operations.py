"""Operator actions: run a reconciliation pass now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from grantline.api.auth import caller, runtime_of
from grantline.domain.models import Identity

router = APIRouter(prefix="/v1")
Caller = Annotated[Identity, Depends(caller)]


@router.post("/reconcile")
async def reconcile(request: Request, identity: Caller) -> dict[str, Any]:
    """One reconciliation pass; ``ran`` is false when another replica is running one."""
    built = runtime_of(request)
    built.broker.require_operator(identity, "run the reconciler")
    report = await built.reconciler.run_once()
    return report.as_dict()
