"""Resource-side verification of Grantline JWTs: :class:`GrantVerifier` and its async twin.

Checked, in order: the header (``alg`` on the allow-list, a ``kid``), the signature with
that token key of the broker's JWKS (fetched, cached, fetched again for an unknown ``kid``
at most once per ``jwks_min_refetch``), ``iss``, ``aud``, ``exp``/``nbf`` with a small
leeway, the DPoP proof when the token is bound (``cnf.jkt``), then, when the policy asks
for it, introspection at the broker so that a revoked grant is refused. Every refusal is an
:class:`~grantline.client.errors.InvalidGrantError` whose ``code`` names the check; a broker
that cannot be reached when it must be is a ``BrokerUnavailableError`` (fail closed: answer
503, not 200).

Given a usage reporter, a verifier records each use of a grant: ``allowed``, or ``denied``
when a check after the signature refuses the token (it is the broker's, so an attempt to use
it after revocation or expiry is worth reporting), or ``error`` when introspection could not
be done. A token whose signature does not verify is never reported: its ``jti`` is anyone's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import jwt

from grantline.client import calls
from grantline.client.errors import BrokerUnavailableError, GrantlineClientError, InvalidGrantError
from grantline.client.retry import RetryPolicy
from grantline.client.tokens import TokenInput, token_source
from grantline.client.transport import DEFAULT_TIMEOUT_SECONDS, AsyncSender, SyncSender
from grantline.client.usage import AsyncUsageReporter, UsageReporter
from grantline.client.verification import (
    ActiveTokens,
    GrantChecks,
    Header,
    KeyRing,
    SeenProofs,
    VerificationPolicy,
    VerifiedGrant,
    check_introspection,
    check_scheme,
    claim_time,
    credentials_of,
    verified,
)
from grantline.domain.clock import Clock, SystemClock

log = logging.getLogger(__name__)

# What a verification is recorded as: the operation and the resource.
Use = tuple[str, str | None]


class _Verifier:
    """What both verifiers hold: the checks, the key ring and the caches."""

    def __init__(
        self,
        base_url: str,
        audience: str | Iterable[str],
        policy: VerificationPolicy | None,
        token: TokenInput | None,
        clock: Clock | None,
        *,
        usage: UsageReporter | AsyncUsageReporter | None,
    ) -> None:
        self.policy = policy or VerificationPolicy()
        if self.policy.introspect and token is None:
            raise ValueError("introspection needs the resource server's own identity token")
        clock = clock or SystemClock()
        issuer = self.policy.issuer or base_url.rstrip("/")
        self.token = token_source(token) if token is not None else None
        self.checks = GrantChecks(audience, issuer, self.policy, clock)
        self.ring = KeyRing(self.policy)
        self.active = ActiveTokens(clock)
        self.seen = SeenProofs(clock, self.policy.proof_max_age_seconds)
        self.clock = clock
        self.usage = usage

    def fetch_failed(self, error: BrokerUnavailableError) -> None:
        """Keep the keys fetched before, if any; without them nothing can be verified."""
        if not self.ring.loaded:
            raise error
        log.warning("could not fetch the broker's JWKS (%s); using the keys fetched before", error)

    def introspected(self, token: str, claims: Mapping[str, Any], answer: dict[str, Any]) -> None:
        check_introspection(answer, claims)
        self.active.remember(token, self.policy.introspection_cache, claim_time(claims, "exp"))

    @contextmanager
    def reporting(self, claims: Mapping[str, Any], use: Use | None) -> Iterator[None]:
        """Around the checks made after the signature verified: record their outcome for
        the grant (``claims["jti"]``) when there is a reporter and a ``use`` to record."""
        if self.usage is None or use is None:
            yield
            return
        operation, resource = use
        try:
            yield
        except InvalidGrantError as exc:
            self.usage.record(claims["jti"], operation, resource, "denied", exc.code)
            raise
        except GrantlineClientError:
            self.usage.record(claims["jti"], operation, resource, "error")
            raise
        self.usage.record(claims["jti"], operation, resource, "allowed")


def _request(method: str | None, url: str | None) -> tuple[str, str] | None:
    if (method is None) != (url is None):
        raise ValueError("give both the method and the URL of the request, or neither")
    return None if method is None or url is None else (method, url)


def _use(operation: str | None, resource: str | None) -> Use | None:
    return (operation, resource) if operation else None


def _use_of(method: str, url: str) -> Use:
    return method, urlsplit(url).path or "/"


class GrantVerifier(_Verifier):
    """Verifies Grantline JWTs presented to a resource server. Thread-safe.

    ``url`` is the broker's; ``audience`` the target(s) this server answers for (the
    ``target`` the grant was asked for). ``token`` is this server's own identity, needed only
    for introspection (``policy.introspect``). ``usage``: a reporter the verifier records
    each use to (module docstring); it is the caller's to close.
    """

    def __init__(
        self,
        url: str,
        audience: str | Iterable[str],
        *,
        policy: VerificationPolicy | None = None,
        token: TokenInput | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        http_client: httpx.Client | None = None,
        clock: Clock | None = None,
        usage: UsageReporter | None = None,
    ) -> None:
        super().__init__(url, audience, policy, token, clock, usage=usage)
        self._sender = SyncSender(url, self.token, retry or RetryPolicy(), http_client, timeout)
        self._ring_lock = threading.Lock()
        self._proof_lock = threading.Lock()

    def verify(
        self,
        token: str,
        *,
        proof: str | None = None,
        method: str | None = None,
        url: str | None = None,
        operation: str | None = None,
        resource: str | None = None,
    ) -> VerifiedGrant:
        """Verify ``token``; a bound one with the DPoP ``proof`` of this request
        (``method`` and ``url`` as the client addressed them). With a usage reporter and an
        ``operation`` (``GET``, ``s3:GetObject``), the use is recorded, with ``resource``.

        Raises:
            InvalidGrantError: the token is refused (``code`` says why).
            BrokerUnavailableError: the JWKS or introspection was needed and unreachable.
        """
        return self._verify(token, proof, _request(method, url), None, _use(operation, resource))

    def verify_request(self, method: str, url: str, headers: Mapping[str, str]) -> VerifiedGrant:
        """Verify the ``Authorization`` (``Bearer`` or ``DPoP``) and ``DPoP`` headers of a
        request. A bound token presented as ``Bearer`` is refused. With a usage reporter, the
        use is recorded as ``method`` on the URL's path. Raises as :meth:`verify`."""
        scheme, token, proof = credentials_of(headers)
        return self._verify(token, proof, (method, url), scheme, _use_of(method, url))

    def close(self) -> None:
        self._sender.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _verify(
        self,
        token: str,
        proof: str | None,
        request: tuple[str, str] | None,
        scheme: str | None,
        use: Use | None,
    ) -> VerifiedGrant:
        header = self.checks.header(token)
        claims = self.checks.signed(token, self._key(header), header)
        with self.reporting(claims, use):
            self.checks.hold(claims)
            if scheme is not None:
                check_scheme(scheme, claims)
            with self._proof_lock:  # the replay check reads then adds: one proof at a time
                jkt = self.checks.binding(claims, token, proof, request, self.seen)
            if self.policy.introspect and not self.active.known(token):
                answer = calls.read_introspection(self._sender.send(calls.introspect(token)))
                self.introspected(token, claims, answer)
            return verified(claims, jkt, self.policy.introspect)

    def _key(self, header: Header) -> jwt.PyJWK:
        with self._ring_lock:
            if self.ring.wants_fetch(header.kid, self.clock.now()):
                self.ring.attempted(self.clock.now())
                try:
                    jwks = calls.read_jwks(self._sender.send(calls.JWKS))
                except BrokerUnavailableError as exc:
                    self.fetch_failed(exc)
                else:
                    self.ring.load(jwks, self.clock.now())
            if not self.ring.loaded:
                raise BrokerUnavailableError("the broker's JWKS could not be fetched yet")
            return self.ring.key(header)


class AsyncGrantVerifier(_Verifier):
    """:class:`GrantVerifier` for asyncio servers. Task-safe; one per event loop."""

    def __init__(
        self,
        url: str,
        audience: str | Iterable[str],
        *,
        policy: VerificationPolicy | None = None,
        token: TokenInput | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        usage: AsyncUsageReporter | None = None,
    ) -> None:
        super().__init__(url, audience, policy, token, clock, usage=usage)
        self._sender = AsyncSender(url, self.token, retry or RetryPolicy(), http_client, timeout)
        self._ring_lock = asyncio.Lock()

    async def verify(
        self,
        token: str,
        *,
        proof: str | None = None,
        method: str | None = None,
        url: str | None = None,
        operation: str | None = None,
        resource: str | None = None,
    ) -> VerifiedGrant:
        """As :meth:`GrantVerifier.verify`."""
        return await self._verify(
            token, proof, _request(method, url), None, _use(operation, resource)
        )

    async def verify_request(
        self, method: str, url: str, headers: Mapping[str, str]
    ) -> VerifiedGrant:
        """As :meth:`GrantVerifier.verify_request`."""
        scheme, token, proof = credentials_of(headers)
        return await self._verify(token, proof, (method, url), scheme, _use_of(method, url))

    async def aclose(self) -> None:
        await self._sender.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _verify(
        self,
        token: str,
        proof: str | None,
        request: tuple[str, str] | None,
        scheme: str | None,
        use: Use | None,
    ) -> VerifiedGrant:
        header = self.checks.header(token)
        claims = self.checks.signed(token, await self._key(header), header)
        with self.reporting(claims, use):
            self.checks.hold(claims)
            if scheme is not None:
                check_scheme(scheme, claims)
            # No await between the replay check and the add: no other task runs in between.
            jkt = self.checks.binding(claims, token, proof, request, self.seen)
            if self.policy.introspect and not self.active.known(token):
                answer = await self._sender.send(calls.introspect(token))
                self.introspected(token, claims, calls.read_introspection(answer))
            return verified(claims, jkt, self.policy.introspect)

    async def _key(self, header: Header) -> jwt.PyJWK:
        async with self._ring_lock:
            if self.ring.wants_fetch(header.kid, self.clock.now()):
                self.ring.attempted(self.clock.now())
                try:
                    jwks = calls.read_jwks(await self._sender.send(calls.JWKS))
                except BrokerUnavailableError as exc:
                    self.fetch_failed(exc)
                else:
                    self.ring.load(jwks, self.clock.now())
            if not self.ring.loaded:
                raise BrokerUnavailableError("the broker's JWKS could not be fetched yet")
            return self.ring.key(header)
