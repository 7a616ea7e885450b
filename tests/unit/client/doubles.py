"""Test doubles for the client's unit tests: a settable clock, a scripted broker behind
httpx.MockTransport, tokens signed like the broker signs them, and a usage endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from grantline.client import AsyncUsageReporter, RetryPolicy, UsageReporter
from grantline.client.pop import public_jwk_of
from grantline.domain.jwk import thumbprint

BROKER = "https://broker.test"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@dataclass
class ScriptedBroker:
    """Answers each request with the next scripted reply (the last one repeats); keeps the
    requests. A reply that is an exception is raised, as a transport failure would be."""

    replies: list[Reply]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            # A fresh copy each time: a client takes over the stream of the one it gets.
            return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)
        return reply(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def issued(
    request_id: str = "req-1",
    *,
    expires_at: datetime | None = None,
    token: str = "header.payload.signature",  # noqa: S107 — a placeholder, not a secret
) -> httpx.Response:
    expiry = expires_at or NOW + timedelta(seconds=600)
    return httpx.Response(
        201,
        json={
            "request_id": request_id,
            "status": "issued",
            "decision": {"allow": True, "reasons": [], "policy_digest": "sha256:" + "a" * 64},
            "credential": {
                "type": "jwt",
                "token": token,
                "expires_at": expiry.isoformat().replace("+00:00", "Z"),
            },
        },
    )


def pending(request_id: str = "req-p") -> httpx.Response:
    return httpx.Response(
        202,
        json={
            "request_id": request_id,
            "status": "pending_approval",
            "decision": {"allow": True, "reasons": [], "policy_digest": "sha256:" + "b" * 64},
            "approval": {
                "required": [{"group": "security", "count": 1, "members": ["user:sam"]}],
                "missing": [{"group": "security", "count": 1}],
                "eligible": ["user:sam"],
                "approvals": [],
                "expires_at": "2030-01-01T13:00:00.000Z",
            },
        },
    )


def denied(*reasons: str, request_id: str = "req-d") -> httpx.Response:
    return httpx.Response(
        403,
        json={
            "request_id": request_id,
            "status": "denied",
            "decision": {"allow": False, "reasons": list(reasons), "policy_digest": "sha256:c"},
            "error": {"code": "policy_denied", "message": "; ".join(reasons)},
        },
    )


def error(status: int, code: str, message: str = "it went wrong", **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, headers=headers
    )


@dataclass
class Signer:
    """An Ed25519 key with a kid, publishing itself as a Grantline JWKS entry."""

    purpose: str = "token"
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def jwk(self) -> dict[str, str]:
        jwk = public_jwk_of(self.key)
        return {
            **jwk,
            "kid": thumbprint(jwk),
            "alg": "EdDSA",
            "use": "sig",
            "grantline_purpose": self.purpose,
        }

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    def token(self, **overrides: Any) -> str:
        claims: dict[str, Any] = {
            "iss": BROKER,
            "sub": "spiffe://example.org/ci-runner",
            "aud": "postgres://orders-db",
            "iat": int(NOW.timestamp()),
            "nbf": int(NOW.timestamp()),
            "exp": int(NOW.timestamp()) + 600,
            "jti": "jti-1",
            "role": "db-read",
            "request_id": "req-1",
        }
        headers = {"kid": overrides.pop("kid", self.kid)}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers=headers)


def jwks(*signers: Signer) -> dict[str, Any]:
    return {"keys": [signer.jwk for signer in signers]}


IDENTITY = "resource.server.identity"
NO_WAIT = RetryPolicy(attempts=3, backoff_seconds=0)


def accepted(request: httpx.Request) -> httpx.Response:
    count = len(json.loads(request.content)["observations"])
    return httpx.Response(202, json={"accepted": count, "unknown": [], "duplicate": False})


class UsageBroker:
    """``POST /v1/usage`` answering each report with the next reply (the last one repeats);
    keeps the bodies it was sent. Thread-safe: the reporter's thread posts to it."""

    def __init__(self, *replies: httpx.Response | Exception | Callable[..., httpx.Response]):
        self.replies = list(replies) or [accepted]
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/v1/usage")
        with self._lock:
            self.bodies.append(json.loads(request.content))
            self.headers.append(request.headers)
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)
        return reply(request)

    def reporter(self, **options: Any) -> UsageReporter:
        transport = httpx.MockTransport(self)
        return UsageReporter(
            BROKER,
            IDENTITY,
            http_client=httpx.Client(transport=transport),
            **{"flush_seconds": 60, "retry": NO_WAIT, "clock": FakeClock(), **options},
        )

    def async_reporter(self, **options: Any) -> AsyncUsageReporter:
        transport = httpx.MockTransport(self)
        client = httpx.AsyncClient(transport=transport)
        return AsyncUsageReporter(
            BROKER,
            IDENTITY,
            http_client=client,
            **{"flush_seconds": 60, "retry": NO_WAIT, "clock": FakeClock(), **options},
        )

    def jtis(self) -> list[list[str]]:
        return [[o["jti"] for o in body["observations"]] for body in self.bodies]
