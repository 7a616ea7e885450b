"""Rendering the auditor pages: Jinja2 with autoescaping, the security headers on every
response, and failures as HTML pages (never JSON, a 500 or a stack trace).

Everything a page shows from records is attacker-influenced text; templates never mark record
data ``|safe``, and the Content-Security-Policy allows only this broker's own script and
style, so even a value that slipped through escaping could not run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined

from grantline.api.ui.display import spec_document
from grantline.api.ui.session import LoginRequiredError, forget, login_url
from grantline.domain.errors import GrantlineError

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
DISPLAY_MARKER = b"/*@display*/null"
STATIC = {
    "display.js": "text/javascript; charset=utf-8",
    "lineage.js": "text/javascript; charset=utf-8",
    "ui.css": "text/css; charset=utf-8",
}
_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    422: "Bad request",
    503: "Unavailable",
}

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("grantline.api", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Jinja's urlencode keeps "/" as is; a path segment must not.
    environment.filters["segment"] = lambda value: quote(str(value), safe="")
    return environment


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from ``templates/<template>``."""
    html = _environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code)


def error_page(status: int, message: str, who: str = "") -> HTMLResponse:
    """A failure as a page; 5xx becomes 503 (the broker could not answer just now)."""
    status = 503 if status >= 500 else status
    title = _TITLES.get(status, "Error")
    return render("error.html", status, title=title, message=message, who=who, status=status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def static(name: str) -> Response:
    """One of the page's own static files, or a 404 page."""
    media_type = STATIC.get(name)
    if media_type is None:
        return error_page(404, "no such file")
    return Response(static_bytes(name), media_type=media_type)


@cache
def static_bytes(name: str) -> bytes:
    """A static file as served; ``display.js`` with the display tables written in, so the
    browser recomputes what the page shows from the tables the server rendered it with."""
    raw = (resources.files("grantline.api") / "static" / name).read_bytes()
    if name != "display.js":
        return raw
    if raw.count(DISPLAY_MARKER) != 1:
        raise RuntimeError("display.js must hold the display marker exactly once")
    return raw.replace(DISPLAY_MARKER, json.dumps(spec_document()).encode("ascii"))


class UiRoute(APIRoute):
    """A route of the auditor pages: failures become pages, and every response carries the
    security headers."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequiredError as exc:
                response = redirect(login_url(exc.next_path))
                if exc.clear:
                    forget(response)
            except GrantlineError as exc:
                if exc.status >= 500:
                    log.warning("auditor page failed: %s: %s", exc.code, exc.message)
                response = error_page(exc.status, exc.message)
            except RequestValidationError:
                response = error_page(400, "the address has a malformed parameter")
            response.headers.update(SECURITY_HEADERS)
            return response

        return guarded
