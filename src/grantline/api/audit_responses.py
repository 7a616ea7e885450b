"""Response bodies of the log's operations (records, checkpoints, proofs, policy evidence,
reconciliation), as the OpenAPI document states them; see ``api/responses.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from grantline.api.responses import (
    DIGEST,
    HASH_B64,
    KID,
    REQUEST_ID,
    SIG,
    Closed,
    Maybe,
    examples,
)
from grantline.domain.models import Event

# -- the log -------------------------------------------------------------------------------------

_RECORD = {
    "v": 1,
    "seq": 3,
    "request_id": REQUEST_ID,
    "event": "approved",
    "at": "2026-11-24T02:52:14.809Z",
    "data": {"by": "policy", "policy_digest": DIGEST, "rule": "rbac"},
    "prev": "sha256:5450ac4d278306e6c04f24ca0e62f5a987f01a2c431a8f072a2488f946f380f7",
    "kid": KID,
    "sig": SIG,
}


_EVENTS = "what happened: " + ", ".join(f"`{e.value}`" for e in Event) + ", `policy_activated`"


class Record(Closed):
    """One signed record as it is in the log (docs/evidence-format.md)."""

    model_config = examples(_RECORD)

    v: int
    seq: int
    request_id: str = Field(description='"" for records of no request (policy activations)')
    event: str = Field(description=_EVENTS)
    at: datetime
    data: dict[str, Any]
    prev: str = Field(description="the chain hash of the record before (genesis: all zeros)")
    kid: str
    sig: str = Field(description="Ed25519 over the canonical body, base64url")


class Lineage(Closed):
    model_config = examples({"request_id": REQUEST_ID, "records": [_RECORD]})

    request_id: str
    records: list[Record]


class RecordsPage(Closed):
    """``next_after`` (also in ``X-Next-After``): the last seq looked at, selected or not."""

    model_config = examples({"records": [_RECORD], "next_after": 3})

    records: list[Record]
    next_after: int


class CheckpointLine(Closed):
    """The JSON checkpoint line an export ends with."""

    model_config = examples(
        {
            "v": 1,
            "event": "checkpoint",
            "origin": "grantline.example.org/grantline",
            "size": 15,
            "head": "sha256:09203e7530b5856dcaee141f5439ea382d69ca77f19ce67d7a466723bf8c2e85",
            "root": HASH_B64,
            "at": "2026-11-24T02:52:17.338Z",
            "kid": KID,
            "sig": SIG,
        }
    )

    v: int
    event: Literal["checkpoint"]
    origin: str
    size: int
    head: str
    root: Maybe[str] = None
    at: datetime
    kid: str
    sig: str


class InclusionProof(Closed):
    """RFC 6962: the audit path of leaf ``leaf_index`` (seq - 1) to ``root``."""

    model_config = examples(
        {"leaf_index": 1, "tree_size": 15, "hashes": [HASH_B64], "root": HASH_B64}
    )

    leaf_index: int
    tree_size: int
    hashes: list[str] = Field(description="base64 SHA-256 node hashes")
    root: str


class InclusionProofs(Closed):
    """Audit paths by seq, all in the tree of ``tree_size`` records."""

    model_config = examples({"tree_size": 5, "proofs": {"1": [HASH_B64], "2": [HASH_B64]}})

    tree_size: int
    proofs: dict[str, list[str]]


class ConsistencyProof(Closed):
    """RFC 6962: the first ``from`` records are a prefix of the first ``to``."""

    model_config = examples({"from": 2, "to": 5, "hashes": [HASH_B64]})

    from_: int = Field(alias="from")
    to: int
    hashes: list[str]


# -- policy evidence, operations ---------------------------------------------------------------


class PolicyBundle(Closed):
    model_config = examples(
        {"digest": DIGEST, "files": {"data.json": "{...}", "grantline.rego": "package grantline"}}
    )

    digest: str
    files: dict[str, str] = Field(description="path -> UTF-8 text, as the engine loaded it")


class PolicyInputs(Closed):
    model_config = examples(
        {
            "inputs": {DIGEST: '{"active_grants":[],"identity":{...}}'},
            "unreadable": [],
            "missing": ["sha256:" + "0" * 64],
        }
    )

    inputs: dict[str, str] = Field(description="digest -> the canonical input, as exact text")
    unreadable: list[str] = Field(description="kept in a form that does not unpack (altered)")
    missing: list[str] = Field(description="past the retention, or never kept")


class ReconcileReport(Closed):
    model_config = examples(
        {
            "ran": True,
            "findings": {"orphan_credential": 1},
            "expired": 2,
            "revoked": 0,
            "errors": [],
        }
    )

    ran: bool = Field(description="false when another replica was running a pass")
    findings: dict[str, int]
    expired: int
    revoked: int
    errors: list[str]
