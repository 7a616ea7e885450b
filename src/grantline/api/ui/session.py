"""How a browser authenticates to the auditor pages: the API's bearer token, or a cookie.

A browser cannot send ``Authorization`` on navigation, so ``POST /ui/login`` takes the identity
JWT an auditor pastes, verifies it exactly as the API does, and keeps it in an HttpOnly,
SameSite=Strict cookie scoped to ``/ui`` that lives no longer than the token. Every page
verifies the token again (the verifier's cache makes that cheap). Posts are refused when the
browser says they come from another site, on top of SameSite (defence in depth against CSRF).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import Request, Response

from grantline.api.auth import runtime_of
from grantline.domain.errors import AuthenticationError, InvalidRequestError
from grantline.domain.models import Identity

COOKIE = "grantline_ui"
COOKIE_PATH = "/ui"
HOME = "/ui/requests"
MAX_SESSION_SECONDS = 8 * 3600
MAX_COOKIE_TOKEN = 3800  # browsers keep cookies up to about 4 KiB, name and attributes included
_NEXT = re.compile(r"/ui(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?")


class LoginRequiredError(AuthenticationError):
    """No usable session: the browser goes to the login page, then back to ``next``."""

    code = "login_required"

    def __init__(self, message: str, next_path: str, *, clear: bool = False) -> None:
        super().__init__(message)
        self.next_path = next_path
        self.clear = clear  # the cookie held a token that no longer verifies


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path under ``/ui`` on this site, else the search.

    Refuses anything a browser could read as another site (``//host``, ``/\\host``, a scheme),
    ``..`` segments, which a browser would resolve out of ``/ui``, and any percent escape in the
    path: browsers resolve ``%2e%2e`` as ``..`` too, and no page under ``/ui`` needs one.
    """
    if not value or len(value) > 2000 or not _NEXT.fullmatch(value):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "%" in parts.path or "//" in parts.path:
        return HOME
    if ".." in parts.path.split("/"):
        return HOME
    return value


def login_url(next_path: str) -> str:
    return "/ui/login?" + urlencode({"next": safe_next(next_path)})


def presented(request: Request) -> tuple[str, bool] | None:
    """The token a request presents, and whether it came in the cookie; None if neither."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), False
    cookie = request.cookies.get(COOKIE, "").strip()
    return (cookie, True) if cookie else None


async def ui_caller(request: Request) -> Identity:
    """The verified caller of a page.

    Raises:
        LoginRequiredError: no token, or the cookie's token no longer verifies.
        AuthenticationError: a bearer token that does not verify (no cookie to fall back on).
    """
    token = presented(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if token is None:
        raise LoginRequiredError("log in to see the auditor pages", here)
    try:
        return runtime_of(request).verifier.verify(token[0])
    except AuthenticationError as exc:
        if token[1]:
            raise LoginRequiredError(exc.message, here, clear=True) from exc
        raise


def session_seconds(claims: Mapping[str, object], now: datetime) -> int:
    """How long the cookie may live: until the token expires, and no more than 8 hours."""
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return 0
    return max(0, min(int(exp - now.timestamp()), MAX_SESSION_SECONDS))


def same_site(request: Request) -> bool:
    """Whether a POST comes from this site, as far as the browser says.

    ``Sec-Fetch-Site`` when sent (every current browser); else ``Origin``, which must be this
    site's. A client that sends neither is no browser, and cross-site forgery needs one.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = {f"{request.url.scheme}://{request.url.netloc}"}
    public = urlsplit(runtime_of(request).settings.issuer_url)
    own.add(f"{public.scheme}://{public.netloc}")
    return origin in own


def login_fields(body: bytes) -> tuple[str, str]:
    """The token and the page to go back to, from the login form's urlencoded body.

    Raises:
        InvalidRequestError: not a form with exactly one non-empty token.
    """
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=4, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError("the login form could not be read") from exc
    tokens = fields.get("token", [])
    if len(tokens) != 1 or not tokens[0].strip():
        raise InvalidRequestError("paste your identity token (a JWT) to log in")
    nexts = fields.get("next", [])
    return tokens[0].strip(), nexts[0] if len(nexts) == 1 else HOME


def remember(response: Response, token: str, seconds: int, *, secure: bool) -> None:
    """Keep ``token`` in the session cookie for ``seconds``."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=seconds,
        path=COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def forget(response: Response) -> None:
    """Delete the session cookie."""
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def secure_cookie(request: Request) -> bool:
    """The cookie is ``Secure`` when the page is served over https, or when the broker's
    public URL is https: behind a proxy that ends TLS, the broker itself sees plain http
    unless the proxy is trusted to say otherwise (``X-Forwarded-Proto``)."""
    public = urlsplit(runtime_of(request).settings.issuer_url)
    return request.url.scheme == "https" or public.scheme.lower() == "https"
