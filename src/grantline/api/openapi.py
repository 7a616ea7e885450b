"""The OpenAPI document: error answers by status, the bearer scheme on /v1, the metadata.

Routes declare what they answer with :func:`errors` beside their success bodies. FastAPI's own
422 schema (``HTTPValidationError``) never appears: api/errors.py answers validation failures
with the same error body as everything else, and every route with parameters documents its 422.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from grantline.api.schemas import ErrorBody

BEARER = "bearerAuth"
AUTHENTICATED_PREFIX = "/v1/"

DESCRIPTION = """\
Grantline hands out short-lived credentials (JWTs, Vault tokens, certificates, Vault secrets)
when its policy allows, after approvers agree when the role needs them, and records every step
in a signed, hash-chained log that auditors can verify offline.

Every `/v1` call carries `Authorization: Bearer <identity JWT>` from a trusted issuer.
Failures answer `{"error": {"code": "...", "message": "..."}}` with a fitting status; the
`code` is stable, the message is for people and never holds a secret.
"""

TAGS = [
    {"name": "access requests", "description": "ask, approve, collect, read, revoke"},
    {"name": "audit", "description": "auditors: the log, checkpoints and Merkle proofs"},
    {"name": "policy evidence", "description": "auditors: kept policy bundles and inputs"},
    {"name": "operations", "description": "operators: reconciliation"},
    {"name": "public", "description": "unauthenticated: keys, discovery, health, metrics"},
]

# An example message for every error code the API documents, as the broker words it.
MESSAGES: Mapping[str, str] = {
    "malformed_json": "the request body is not valid JSON",
    "unauthenticated": "an 'Authorization: Bearer <identity JWT>' header is required",
    "forbidden": "only auditors may read the whole log",
    "approval_refused": "user:bob is in none of the groups request 01a2... waits for (security)",
    "not_found": "no request 01a20b77-de59-7178-9330-c62ebdc11f1f",
    "conflict": "request 01a2... is expired: nothing to revoke",
    "already_approved": "user:sam already approved request 01a2...; one approver counts once",
    "not_pending": "request 01a2... is issued, no longer pending approval",
    "not_approved_yet": "request 01a2... is still waiting for approval",
    "gone": "the credential of request 01a2... was already collected",
    "payload_too_large": "request body exceeds 65536 bytes",
    "invalid_request": "ttl_seconds: Input should be less than or equal to 2592000",
    "credential_type_unavailable": "credential type x509 is not configured on this broker",
    "invalid_subject_token": "subject_token: identity token has expired",
    "integrity_error": "the kept policy bundle sha256:... is not UTF-8",
    "store_unavailable": "the store is unavailable: TimeoutError",
    "issuer_keys_unavailable": "keys of issuer https://idp.example.org are unavailable",
    "signer_unavailable": "the signing key in Vault is unavailable: Vault is sealed",
    "policy_unavailable": "the policy engine could not decide",
    "issuer_unavailable": "the credential issuer failed",
    "vault_unavailable": "Vault did not answer",
    "vault_sealed": "Vault is sealed",
    "vault_timeout": "Vault did not answer in time",
    "vault_forbidden": "Vault refused the broker's token",
    "vault_rejected": "Vault rejected the request",
    "issuer_misconfigured": "the role's vault block names no policies",
    "revocation_pending": "Vault did not answer. The grant stays in force and the revocation "
    "will be retried.",
}

_MEANING: Mapping[int, str] = {
    400: "The body is not valid JSON.",
    401: "No identity token, or one that does not verify.",
    403: "The caller may not do this.",
    404: "No such thing, or not the caller's to see (ids of others' requests are not disclosed).",
    409: "Not in a state that allows this.",
    410: "It was there once.",
    413: "The body is larger than the broker accepts (GRANTLINE_MAX_BODY_BYTES).",
    422: "A parameter or the body is invalid: unknown fields, wrong types, out of range.",
    500: "Stored evidence does not verify.",
    503: "A dependency is down; nothing was issued or changed.",
}

_DEFAULT_CODES: Mapping[int, tuple[str, ...]] = {
    400: ("malformed_json",),
    401: ("unauthenticated",),
    403: ("forbidden",),
    404: ("not_found",),
    409: ("conflict",),
    410: ("gone",),
    413: ("payload_too_large",),
    422: ("invalid_request",),
    500: ("integrity_error",),
    503: ("store_unavailable", "issuer_keys_unavailable"),
}

_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "`Bearer`: the scheme to authenticate with",
        "required": True,
        "schema": {"type": "string"},
    }
}

NO_STORE = {
    "Cache-Control": {
        "description": "`no-store`: the body holds a credential",
        "required": True,
        "schema": {"type": "string"},
    }
}


def errors(
    *statuses: int, codes: Mapping[int, Sequence[str]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """Error answers for ``responses=``: each status with the error body and one example per
    code (``codes`` adds to the usual codes of a status)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        named = dict.fromkeys([*_DEFAULT_CODES[status], *(codes or {}).get(status, ())])
        answer: dict[str, Any] = {
            "model": ErrorBody,
            "description": _MEANING[status] + " Codes: " + ", ".join(f"`{c}`" for c in named),
            "content": {"application/json": {"examples": _examples(named)}},
        }
        if status == 401:
            answer["headers"] = _WWW_AUTHENTICATE
        documented[status] = answer
    return documented


def _examples(codes: Iterable[str]) -> dict[str, Any]:
    return {
        code: {"summary": code, "value": {"error": {"code": code, "message": MESSAGES[code]}}}
        for code in codes
    }


def install(app: FastAPI) -> None:
    """Serve the document built here at ``/openapi.json``, built once, on first request."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def build(app: FastAPI) -> dict[str, Any]:
    """The document: FastAPI's, with the bearer scheme on every /v1 operation (each depends
    on api.auth.caller; tests/unit/api/test_openapi.py checks that the two agree)."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary="Just-in-time access broker with a verifiable audit log",
        description=DESCRIPTION,
        routes=app.routes,
        tags=TAGS,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
    )
    schema.setdefault("components", {})["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "an identity token from a trusted issuer (`grantline dev token` "
            "mints one in development)",
        }
    }
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            _own_errors_only(operation)
            if path.startswith(AUTHENTICATED_PREFIX):
                operation["security"] = [{BEARER: []}]
    for name in _FASTAPI_VALIDATION:
        schema["components"]["schemas"].pop(name, None)
    return schema


_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def _own_errors_only(operation: dict[str, Any]) -> None:
    """Drop the 422 FastAPI adds on its own to an operation with parameters that declares
    none: that operation has none to refuse (a path parameter that takes any string), and
    FastAPI's body for it is not ours. Then list the answers by status."""
    answers = operation["responses"]
    content = answers.get("422", {}).get("content", {}).get("application/json", {})
    if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        del answers["422"]
    operation["responses"] = dict(sorted(answers.items()))
