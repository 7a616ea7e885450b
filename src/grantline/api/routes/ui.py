"""The auditor pages: log in, search requests, and the lineage page of one request."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request, Response

from grantline.api.auth import runtime_of
from grantline.api.ui import lineage, pages, search, session
from grantline.domain.errors import AuthenticationError, ForbiddenError

router = APIRouter(prefix="/ui", route_class=pages.UiRoute, include_in_schema=False)


@router.get("")
async def home() -> Response:
    return pages.redirect(session.HOME)


@router.get("/login")
async def login_form(next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    return pages.render("login.html", next=session.safe_next(next), error="", who="")


@router.post("/login")
async def login(request: Request) -> Response:
    """Verify the pasted token as the API would; an auditor gets the session cookie."""
    if not session.same_site(request):
        raise ForbiddenError("a login must come from this site's own form")
    token, next_path = session.login_fields(await request.body())
    runtime = runtime_of(request)
    try:
        identity = runtime.verifier.verify(token)
    except AuthenticationError as exc:
        next_path = session.safe_next(next_path)
        return pages.render("login.html", 401, next=next_path, error=exc.message, who="")
    runtime.broker.require_auditor(identity, "open the auditor pages")
    seconds = session.session_seconds(identity.claims, runtime.clock.now())
    if seconds <= 0 or len(token) > session.MAX_COOKIE_TOKEN:
        raise AuthenticationError("that token expires too soon or is too long to keep in a cookie")
    response = pages.redirect(session.safe_next(next_path))
    session.remember(response, token, seconds, secure=session.secure_cookie(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    if not session.same_site(request):
        raise ForbiddenError("a logout must come from this site's own pages")
    response = pages.redirect("/ui/login")
    session.forget(response)
    return response


@router.get("/static/{name}")
async def static(name: Annotated[str, Path(max_length=64)]) -> Response:
    return pages.static(name)


@router.get("/requests")
async def requests_search(
    request: Request,
    q: Annotated[str, Query(max_length=search.MAX_QUERY)] = "",
    status: Annotated[str, Query(max_length=32)] = "",
    before: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> Response:
    """Requests, newest first, matching ``q`` (request id prefix, subject, role, target)."""
    identity = await session.ui_caller(request)
    runtime = runtime_of(request)
    runtime.broker.require_auditor(identity, "open the auditor pages")
    if status and status not in search.STATUSES:
        return pages.error_page(400, f"unknown status {status!r}", identity.subject)
    results = await search.search(search.BrokerRequests(runtime, identity), q, status, before)
    older = (
        "/ui/requests?" + urlencode({"q": q, "status": status, "before": results.next_before})
        if results.next_before is not None
        else ""
    )
    return pages.render(
        "search.html",
        who=identity.subject,
        q=q,
        status=status,
        statuses=search.STATUSES,
        results=results,
        older=older,
        first_page=before is None,
    )


@router.get("/requests/{request_id}")
async def lineage_page(
    request: Request, request_id: Annotated[str, Path(min_length=1, max_length=128)]
) -> Response:
    """The lineage of one request, each record to be checked by the browser."""
    identity = await session.ui_caller(request)
    page = await lineage.load(runtime_of(request), identity, request_id)
    return pages.render("lineage.html", who=identity.subject, page=page)


@router.api_route("/{rest:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
async def not_found(rest: str) -> Response:
    return pages.error_page(404, "there is no such page")
