"""The log for auditors: pages of records, signed checkpoints, inclusion and consistency proofs."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from grantline.api import audit_responses as bodies
from grantline.api.auth import caller, runtime_of
from grantline.api.openapi import errors
from grantline.broker.selection import Selection
from grantline.domain.errors import InvalidRequestError
from grantline.domain.models import Identity, format_time, parse_time
from grantline.store.tree import RedisTree

router = APIRouter(prefix="/v1", tags=["audit"])
Caller = Annotated[Identity, Depends(caller)]
NDJSON = "application/x-ndjson"

_AUDITORS_ONLY = errors(401, 403, 422, 503)
_NEXT_AFTER = {
    "X-Next-After": {
        "description": "the last seq looked at: pass it as `after` to go on",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
# 1 to 500 record numbers, each without sign, zero or spaces, so that the list parses exactly.
_SEQS = r"^[1-9][0-9]{0,15}(,[1-9][0-9]{0,15}){0,499}$"
_RFC3339: dict[str, Any] = {"format": "date-time", "description": "RFC 3339, with a zone"}
_RECORD_LINES = "The exact signed lines, one record a line (with `Accept: application/x-ndjson`)."


@router.get(
    "/records",
    operation_id="listRecords",
    summary="Page through the log",
    response_model=None,
    responses={
        200: {
            "model": bodies.RecordsPage,
            "description": "Records, oldest first, as JSON or as the signed lines.",
            "headers": _NEXT_AFTER,
            "content": {
                NDJSON: {
                    "schema": {"type": "string", "description": _RECORD_LINES},
                    "example": '{"at":"2026-11-24T02:52:14.809Z",...,"sig":"AHDa..."}\n',
                }
            },
        },
        **_AUDITORS_ONLY,
    },
)
async def records(
    request: Request,
    identity: Caller,
    *,
    after: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    since: Annotated[str | None, Query(max_length=40, json_schema_extra=_RFC3339)] = None,
    until: Annotated[str | None, Query(max_length=40, json_schema_extra=_RFC3339)] = None,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    event: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[str | None, Query(max_length=512)] = None,
    role: Annotated[str | None, Query(max_length=128)] = None,
    target: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Records with seq > ``after``, oldest first, of the ``limit`` looked at those the filters
    keep (``X-Next-After`` says where to go on). ``Accept: application/x-ndjson`` gives the
    exact signed lines, one a line, as an export needs them."""
    selection = Selection(
        since=_time(since, "since"),
        until=_time(until, "until"),
        request_id=request_id,
        event=event,
        subject=subject,
        role=role,
        target=target,
    )
    rows, next_after = await runtime_of(request).broker.records(identity, after, limit, selection)
    if NDJSON in request.headers.get("accept", ""):
        body = b"".join(line + b"\n" for _, line in rows)
        return Response(body, media_type=NDJSON, headers={"X-Next-After": str(next_after)})
    return JSONResponse(
        {"records": [json.loads(line) for _, line in rows], "next_after": next_after},
        headers={"X-Next-After": str(next_after)},
    )


_NOTE = (
    "127.0.0.1:8080/grantline\n15\neE9TSaxbdsuDRBtqjrkygpNF13YFJyj3fKUgbKfxiaU=\n\n"
    "\u2014 127.0.0.1:8080/grantline 7g1ObkvcgzjQDCMR60/E+sfDDM1eNnzK0z4Rw2zkjem...\n"
)


@router.get(
    "/checkpoint",
    operation_id="getCheckpoint",
    summary="The log's newest signed checkpoint",
    response_model=None,
    responses={
        200: {
            "model": bodies.CheckpointLine,
            "description": "A C2SP checkpoint note (`text/plain`), or with `format=json` the "
            "JSON checkpoint line.",
            "content": {"text/plain": {"schema": {"type": "string"}, "example": _NOTE}},
        },
        **_AUDITORS_ONLY,
    },
)
async def checkpoint(
    request: Request,
    identity: Caller,
    format: Annotated[Literal["note", "json"], Query()] = "note",
) -> Response:
    """The log now, signed with the log key: a C2SP checkpoint note (``text/plain``), or with
    ``format=json`` the JSON checkpoint line an export ends with."""
    runtime = runtime_of(request)
    runtime.broker.require_auditor(identity, "read checkpoints")
    if format == "json":
        return Response(await runtime.checkpoints.line() + b"\n", media_type="application/json")
    return PlainTextResponse(await runtime.checkpoints.note())


@router.get(
    "/records/{seq}/proof",
    operation_id="inclusionProof",
    summary="Inclusion proof of one record",
    response_model=None,
    responses={200: {"model": bodies.InclusionProof}, **_AUDITORS_ONLY},
)
async def inclusion(
    request: Request,
    identity: Caller,
    seq: Annotated[int, Path(ge=1, le=2**53)],
    tree_size: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> dict[str, Any]:
    """The RFC 6962 inclusion proof of record ``seq`` in the tree of ``tree_size`` records."""
    runtime = runtime_of(request)
    runtime.broker.require_auditor(identity, "read proofs")
    size = await _size_at_most(runtime.tree, tree_size)
    if seq > size:
        raise InvalidRequestError(f"record {seq} is not in a tree of {size} records")
    hashes = await runtime.tree.inclusion(seq - 1, size)
    return {
        "leaf_index": seq - 1,
        "tree_size": size,
        "hashes": [_b64(h) for h in hashes],
        "root": _b64(await runtime.tree.root(size)),
    }


@router.get(
    "/checkpoints/consistency",
    operation_id="consistencyProof",
    summary="Consistency proof between two tree sizes",
    response_model=None,
    responses={200: {"model": bodies.ConsistencyProof}, **_AUDITORS_ONLY},
)
async def consistency(
    request: Request,
    identity: Caller,
    old: Annotated[int, Query(alias="from", ge=1, le=2**53)],
    new: Annotated[int, Query(alias="to", ge=1, le=2**53)],
) -> dict[str, Any]:
    """The RFC 6962 consistency proof that the first ``from`` records are a prefix of the
    first ``to``: nothing a kept checkpoint covered was rewritten."""
    runtime = runtime_of(request)
    runtime.broker.require_auditor(identity, "read proofs")
    if old > new:
        raise InvalidRequestError(f"from ({old}) must not exceed to ({new})")
    await _size_at_most(runtime.tree, new)
    hashes = await runtime.tree.consistency(old, new)
    return {"from": old, "to": new, "hashes": [_b64(h) for h in hashes]}


async def _size_at_most(tree: RedisTree, wanted: int | None) -> int:
    size = await tree.size()
    if wanted is None:
        return size
    if wanted > size:
        raise InvalidRequestError(f"the log has {size} records, fewer than {wanted}")
    return wanted


@router.get(
    "/records/proofs",
    operation_id="inclusionProofs",
    summary="Inclusion proofs of many records",
    response_model=None,
    responses={200: {"model": bodies.InclusionProofs}, **_AUDITORS_ONLY},
)
async def inclusions(
    request: Request,
    identity: Caller,
    tree_size: Annotated[int, Query(ge=1, le=2**53)],
    seqs: Annotated[
        str, Query(pattern=_SEQS, description="record numbers, comma-separated, at most 500")
    ],
) -> dict[str, Any]:
    """Inclusion proofs of many records in the tree of ``tree_size`` records, for bundles."""
    runtime = runtime_of(request)
    runtime.broker.require_auditor(identity, "read proofs")
    wanted = [int(part) for part in seqs.split(",")]
    if not all(1 <= seq <= tree_size for seq in wanted):
        raise InvalidRequestError(f"seqs: 1 to 500 record numbers, each within 1..{tree_size}")
    await _size_at_most(runtime.tree, tree_size)
    paths = await runtime.tree.inclusions([seq - 1 for seq in wanted], tree_size)
    proofs = {str(seq): [_b64(h) for h in path] for seq, path in zip(wanted, paths, strict=True)}
    return {"tree_size": tree_size, "proofs": proofs}


def _time(value: str | None, name: str) -> str | None:
    """An RFC 3339 time as records write it (UTC, milliseconds, ``Z``), for comparing as text."""
    if value is None:
        return None
    try:
        return format_time(parse_time(value))
    except (ValueError, OverflowError) as exc:
        raise InvalidRequestError(f"{name}: not an RFC 3339 time with a zone: {value!r}") from exc


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
