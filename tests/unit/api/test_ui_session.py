"""Browser sessions of the auditor pages: where a login may send the browser back to, how long
the cookie lives, and reading the login form."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from grantline.api.ui.session import (
    HOME,
    MAX_SESSION_SECONDS,
    login_fields,
    login_url,
    safe_next,
    secure_cookie,
    session_seconds,
)
from grantline.config import Settings
from grantline.domain.errors import InvalidRequestError

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "wanted",
    [
        "/ui",
        "/ui/requests",
        "/ui/requests/019ab0c4-2f5b?x=1",
        "/ui/requests?q=user%3Aalice&status=",
    ],
)
def test_a_path_under_ui_is_where_the_login_goes_back_to(wanted: str) -> None:
    assert safe_next(wanted) == wanted


@pytest.mark.parametrize(
    "hostile",
    [
        None,
        "",
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "https://evil.example/ui",
        "javascript:alert(1)",
        "/ui/../v1/records",
        "/ui/%2e%2e/v1/records",
        "/ui/%2E%2E/v1/records",
        "/ui/.%2e/v1/records",
        "/ui/requests/%2e%2e/%2e%2e/v1/records",
        "/ui%2f..%2fv1",
        "/ui/requests/..",
        "/ui//evil.example",
        "/uievil",
        "/v1/records",
        "ui/requests",
        "/ui/requests\r\nLocation: //evil",
        "/ui/requests#frag",
        "/ui/" + "a" * 2001,
    ],
)
def test_anything_else_goes_back_to_the_search(hostile: str | None) -> None:
    assert safe_next(hostile) == HOME


def test_a_percent_escape_in_the_query_is_kept() -> None:
    # Only the path is resolved by the browser; a query may escape what it likes.
    assert safe_next("/ui/requests?q=%2e%2e%2Fv1") == "/ui/requests?q=%2e%2e%2Fv1"


def test_the_login_url_carries_only_a_safe_next() -> None:
    assert login_url("/ui/requests/r?x=1") == "/ui/login?next=%2Fui%2Frequests%2Fr%3Fx%3D1"
    assert login_url("//evil") == "/ui/login?next=%2Fui%2Frequests"


def test_the_cookie_lives_until_the_token_expires_and_at_most_eight_hours() -> None:
    now = NOW.timestamp()
    assert session_seconds({"exp": now + 600}, NOW) == 600
    assert session_seconds({"exp": now + 10 * 86400}, NOW) == MAX_SESSION_SECONDS
    assert session_seconds({"exp": now - 5}, NOW) == 0
    assert session_seconds({"exp": "soon"}, NOW) == 0
    assert session_seconds({"exp": True}, NOW) == 0
    assert session_seconds({}, NOW) == 0


def test_the_login_form_gives_the_token_and_next() -> None:
    assert login_fields(b"token=a.b.c&next=%2Fui%2Frequests%3Fq%3Dx") == (
        "a.b.c",
        "/ui/requests?q=x",
    )
    assert login_fields(b"token=+a.b.c+") == ("a.b.c", HOME)


@pytest.mark.parametrize(
    "body",
    [b"", b"next=/ui", b"token=", b"token=a&token=b", b"token=\xff", b"a=1&b=2&c=3&d=4&token=x"],
)
def test_a_login_form_without_exactly_one_token_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        login_fields(body)


def login_request(scheme: str, public_url: str | None) -> Request:
    runtime = SimpleNamespace(settings=Settings(public_url=public_url))
    app = SimpleNamespace(state=SimpleNamespace(runtime=runtime))
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": scheme,
        "server": ("127.0.0.1", 8400),
        "path": "/ui/login",
        "query_string": b"",
        "headers": [],
        "app": app,
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("scheme", "public_url", "secure"),
    [
        ("http", "https://grantline.example", True),  # a proxy ends TLS in front of the broker
        ("http", "HTTPS://grantline.example", True),
        ("https", None, True),
        ("http", None, False),
        ("http", "http://grantline.example", False),
    ],
)
def test_the_cookie_is_secure_when_the_page_or_the_public_url_is_https(
    scheme: str, public_url: str | None, secure: bool
) -> None:
    assert secure_cookie(login_request(scheme, public_url)) is secure
