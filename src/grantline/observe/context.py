"""The ids of the HTTP request being handled, for every log line and span it produces.

``correlation_id`` is the caller's ``X-Request-Id`` (or one made up); ``request_id`` is
the access request it concerns, once known: from the path, or as the broker mints it.
One mutable holder per HTTP request sits in a context variable, so that an id learnt deep
inside the broker reaches lines logged later by the middleware and uvicorn.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass(slots=True)
class RequestIds:
    correlation_id: str
    request_id: str | None = None
    # While the broker handles a new access request, the first request id the ledger or an
    # issuer sees is that request's (the broker mints it inside ``request_access``).
    claimable: bool = False
    # False once the response is sent: a task started during the request (the ledger's
    # writer) keeps a copy of the context and must not go on speaking for it.
    active: bool = True


_current: ContextVar[RequestIds | None] = ContextVar("grantline_request_ids", default=None)


def enter(ids: RequestIds) -> Token[RequestIds | None]:
    return _current.set(ids)


def leave(token: Token[RequestIds | None]) -> None:
    ids = _current.get()
    if ids is not None:
        ids.active = False
    _current.reset(token)


def current() -> RequestIds | None:
    """The ids of the HTTP request in progress, or None outside one."""
    ids = _current.get()
    return ids if ids is not None and ids.active else None


def note_request_id(request_id: str) -> None:
    """The HTTP request in progress concerns access request ``request_id``."""
    ids = current()
    if ids is not None and ids.request_id is None:
        ids.request_id = request_id


def claim_request_id(request_id: str) -> None:
    """``request_id`` was just minted for the access request being handled, if one is."""
    ids = current()
    if ids is not None and ids.claimable and ids.request_id is None:
        ids.request_id = request_id
