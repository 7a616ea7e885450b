"""One table from failures to HTTP statuses and the error body of CONTRACT.md.

No handler ever returns a stack trace or an exception's repr: only our own messages.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from grantline.domain.errors import AuthenticationError, GrantlineError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    extra = dict(headers or {})
    if status == 401:
        extra["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(code, message), status_code=status, headers=extra or None)


def install(app: FastAPI) -> None:
    app.add_exception_handler(GrantlineError, _grantline)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)


async def _grantline(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GrantlineError)  # noqa: S101 — registered for this type only
    if exc.status >= 500 and not isinstance(exc, AuthenticationError):
        log.warning("%s: %s", exc.code, exc.message)
    return error_response(exc.status, exc.code, exc.message)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 — registered for this type only
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    return error_response(422, "invalid_request", "; ".join(_describe(e) for e in errors[:10]))


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"{location}: unknown field"
    if kind == "missing":
        return f"{location}: field required"
    return f"{location}: {error.get('msg', 'invalid')}"


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 — registered for this type only
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    # Starlette's own headers carry protocol duties, such as the Allow of a 405 (RFC 9110).
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request)) or headers.get("Allow", "")
    return error_response(exc.status_code, code, str(exc.detail), headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path. Starlette's 405 names the methods
    of the first route whose path matched, but several routes may share a path (GET and POST
    /v1/access-requests)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc
    )
    return error_response(500, "internal_error", "internal error; the call did not complete")
