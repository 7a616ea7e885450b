"""The log for auditors: pages of records and a signed checkpoint over the head."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from grantline.api.auth import caller, runtime_of
from grantline.domain.models import Identity
from grantline.evidence.checkpoint import make_checkpoint

router = APIRouter(prefix="/v1")
Caller = Annotated[Identity, Depends(caller)]
NDJSON = "application/x-ndjson"


@router.get("/records")
async def records(
    request: Request,
    identity: Caller,
    after: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> Response:
    """Records with seq > ``after``, oldest first. ``Accept: application/x-ndjson`` gives the
    exact signed lines, one a line, as an export needs them."""
    rows = await runtime_of(request).broker.records(identity, after, limit)
    next_after = rows[-1][0] if rows else after
    if NDJSON in request.headers.get("accept", ""):
        body = b"".join(line + b"\n" for _, line in rows)
        return Response(body, media_type=NDJSON, headers={"X-Next-After": str(next_after)})
    return JSONResponse(
        {"records": [json.loads(line) for _, line in rows], "next_after": next_after}
    )


@router.get("/checkpoint")
async def checkpoint(request: Request, identity: Caller) -> Response:
    """A checkpoint over the current head, signed with the log key (one JSON line)."""
    runtime = runtime_of(request)
    runtime.broker.require_auditor(identity, "read checkpoints")
    head = await runtime.log.head()
    line = make_checkpoint(
        head,
        origin=runtime.settings.issuer_url,
        at=runtime.clock.now(),
        signer=runtime.log_signer,
    )
    return Response(line + b"\n", media_type="application/json")
