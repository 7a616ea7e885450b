"""What a replay needs (auditors only): policy bundles and decision inputs, kept by digest."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from grantline.api import audit_responses as bodies
from grantline.api.auth import caller, runtime_of
from grantline.api.openapi import errors
from grantline.api.schemas import DIGEST_PATTERN, PolicyInputsBody
from grantline.domain.errors import IntegrityError, NotFoundError
from grantline.domain.models import Identity

router = APIRouter(prefix="/v1/policy", tags=["policy evidence"])
Caller = Annotated[Identity, Depends(caller)]


@router.get(
    "/bundles/{digest}",
    operation_id="policyBundle",
    summary="A kept policy bundle",
    response_model=None,
    responses={200: {"model": bodies.PolicyBundle}, **errors(401, 403, 404, 422, 500, 503)},
)
async def bundle(
    request: Request,
    identity: Caller,
    digest: Annotated[str, Path(pattern=DIGEST_PATTERN)],
) -> dict[str, Any]:
    """The files of the policy bundle ``digest`` as the broker kept them when it decided."""
    built = runtime_of(request)
    built.broker.require_auditor(identity, "read kept policy bundles")
    files = await built.policy_archive.bundle(digest)
    if files is None:
        raise NotFoundError(f"no policy bundle {digest} is kept")
    try:
        text = {path: content.decode("utf-8") for path, content in sorted(files.items())}
    except UnicodeDecodeError as exc:
        # The engine loads only UTF-8 files, so what was kept was not what it loaded.
        raise IntegrityError(f"the kept policy bundle {digest} is not UTF-8") from exc
    return {"digest": digest, "files": text}


@router.post(
    "/inputs",
    operation_id="policyInputs",
    summary="Kept decision inputs, by digest",
    response_model=None,
    responses={200: {"model": bodies.PolicyInputs}, **errors(400, 401, 403, 413, 422, 503)},
)
async def inputs(request: Request, identity: Caller, body: PolicyInputsBody) -> dict[str, Any]:
    """The canonical inputs of recorded decisions, by input digest, as exact JSON text;
    ``missing`` lists those no longer kept (past the retention) or never kept, ``unreadable``
    those the store holds in a form that does not unpack (it was altered)."""
    built = runtime_of(request)
    built.broker.require_auditor(identity, "read kept policy inputs")
    wanted = list(dict.fromkeys(body.digests))
    found, unreadable = await built.policy_archive.inputs(wanted)
    return {
        # Sent as kept, even if not UTF-8: the replayer checks each against its digest.
        "inputs": {d: found[d].decode("utf-8", "replace") for d in wanted if d in found},
        "unreadable": unreadable,
        "missing": [d for d in wanted if d not in found and d not in unreadable],
    }
