"""The checks a resource server makes on a Grantline JWT, without I/O.

:mod:`grantline.client.verifier` fetches the JWKS and asks for introspection around these:
the key ring decides when the JWKS is fetched again, :class:`GrantChecks` checks the token
and its proof of possession, the caches remember recent introspections and proofs.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping, MutableSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from grantline.client.errors import InvalidGrantError
from grantline.client.pop import ProofOfPossessionError, verify_proof_of_possession
from grantline.domain.clock import Clock
from grantline.domain.models import RequestId

MAX_TOKEN_CHARS = 16384
# The JWKS marks each key with its purpose; only token keys may verify a token, so that a
# log record's signature can never pass for a grant.
PURPOSE_MEMBER = "grantline_purpose"
TOKEN_PURPOSE = "token"  # noqa: S105 — a purpose name, not a secret
_REQUIRED = ("iss", "sub", "aud", "iat", "exp", "jti", "role", "request_id")
_PYJWT_CODES: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.DecodeError, "malformed_token"),
)


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """What a resource server accepts.

    - ``issuer``: the ``iss`` required; None means the broker URL the verifier was given.
    - ``algorithms``: the JWS algorithms allowed (Grantline signs with EdDSA).
    - ``leeway``: clock skew allowed on ``exp`` and ``nbf``.
    - ``introspect``: also ask the broker (``POST /v1/introspect``) whether the grant is still
      in force, so that a revoked token is refused; needs the verifier's own identity token.
      A positive answer is remembered for ``introspection_cache`` (0: ask every time), so a
      revocation takes at most that long to be seen. Failures fail closed.
    - ``require_proof``: refuse tokens that are not bound to a key (``cnf.jkt``). A bound
      token always needs a valid DPoP proof, whatever this says.
    - ``proof_max_age_seconds``: how far a DPoP proof's ``iat`` may lie from now.
    - ``jwks_max_age``: how long fetched keys are used before fetching them again;
      ``jwks_min_refetch``: how soon a token with an unknown ``kid`` may cause another fetch.
    """

    issuer: str | None = None
    algorithms: tuple[str, ...] = ("EdDSA",)
    leeway: timedelta = timedelta(seconds=5)
    introspect: bool = False
    introspection_cache: timedelta = timedelta(seconds=5)
    require_proof: bool = False
    proof_max_age_seconds: int = 60
    jwks_max_age: timedelta = timedelta(minutes=5)
    jwks_min_refetch: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if not self.algorithms or any(
            a.lower() == "none" or a.startswith("HS") for a in self.algorithms
        ):
            raise ValueError("algorithms must be asymmetric JWS algorithms, such as EdDSA")


@dataclass(frozen=True, slots=True)
class VerifiedGrant:
    """A Grantline JWT that passed every check. ``actor`` is the agent that acted for
    ``subject`` (``act.sub``); ``key_thumbprint`` the ``cnf.jkt`` whose proof was checked."""

    subject: str
    role: str
    request_id: RequestId
    audience: tuple[str, ...]
    issuer: str
    token_id: str
    issued_at: datetime
    expires_at: datetime
    actor: str | None = None
    key_thumbprint: str | None = None
    introspected: bool = False
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Header:
    kid: str
    alg: str


class KeyRing:
    """The broker's token keys from its JWKS, and when to fetch them again."""

    def __init__(self, policy: VerificationPolicy) -> None:
        self._policy = policy
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: datetime | None = None
        self._attempted_at: datetime | None = None

    def wants_fetch(self, kid: str, now: datetime) -> bool:
        """Whether to fetch the JWKS before looking ``kid`` up: never fetched, too old, or
        ``kid`` unknown and the last attempt long enough ago (a flood of made-up ``kid`` s
        causes at most one fetch per ``jwks_min_refetch``)."""
        if self._fetched_at is None or now - self._fetched_at >= self._policy.jwks_max_age:
            return self._attempted_at is None or self._retry_allowed(now)
        return kid not in self._keys and self._retry_allowed(now)

    def attempted(self, now: datetime) -> None:
        self._attempted_at = now

    def load(self, jwks: Mapping[str, Any], now: datetime) -> None:
        """Take the token keys of a JWKS; keys of other purposes or unusable ones are skipped."""
        keys: dict[str, jwt.PyJWK] = {}
        for raw in jwks.get("keys", []):
            if not isinstance(raw, dict) or raw.get(PURPOSE_MEMBER) != TOKEN_PURPOSE:
                continue
            try:
                key = jwt.PyJWK(raw)
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                continue
            if isinstance(key.key_id, str) and key.algorithm_name in self._policy.algorithms:
                keys[key.key_id] = key
        self._keys = keys
        self._fetched_at = now

    def key(self, header: Header) -> jwt.PyJWK:
        """Raises InvalidGrantError for an unknown ``kid`` or an ``alg`` the key does not use."""
        key = self._keys.get(header.kid)
        if key is None:
            raise InvalidGrantError(
                f"no token key {header.kid!r} in the broker's JWKS", code="unknown_key"
            )
        if key.algorithm_name != header.alg:
            raise InvalidGrantError(
                f"token alg {header.alg} is not the {key.algorithm_name} of its key",
                code="wrong_algorithm",
            )
        return key

    @property
    def loaded(self) -> bool:
        return self._fetched_at is not None

    def _retry_allowed(self, now: datetime) -> bool:
        last = self._attempted_at
        return last is None or now - last >= self._policy.jwks_min_refetch


class GrantChecks:
    """Signature, ``iss``, ``aud``, ``exp``, ``nbf`` and proof of possession."""

    def __init__(
        self, audience: str | Iterable[str], issuer: str, policy: VerificationPolicy, clock: Clock
    ) -> None:
        self.audience = (audience,) if isinstance(audience, str) else tuple(audience)
        if not self.audience or not all(self.audience):
            raise ValueError("audience: the target(s) this resource server answers for")
        self.issuer = issuer
        self.policy = policy
        self.clock = clock

    def header(self, token: str) -> Header:
        """The token's ``kid`` and ``alg``, refused before any key is looked at when the
        algorithm is not allowed (``alg`` comes from the token, so it is checked first)."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidGrantError(
                "no token, or one over 16384 characters", code="malformed_token"
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidGrantError("the token is not a JWS", code="malformed_token") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.policy.algorithms:
            raise InvalidGrantError(f"token alg {alg!r} is not allowed", code="wrong_algorithm")
        if not isinstance(kid, str) or not kid:
            raise InvalidGrantError("the token header names no kid", code="unknown_key")
        return Header(kid, alg)

    def signed(self, token: str, key: jwt.PyJWK, header: Header) -> dict[str, Any]:
        """The claims of a token whose signature verified with ``key``, every required claim
        present and of its type (``iat`` is not compared: ``nbf`` says when a token starts),
        before any other check. A refusal after this point is about a token the broker
        issued, so its ``jti`` may be reported as used; before it, anyone could have made
        the ``jti`` up. Raises InvalidGrantError naming the failed check."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[header.alg],
                # iss, aud and the times are checked by hold(), the times against the
                # injected clock, with the leeway.
                options={
                    "require": list(_REQUIRED),
                    "verify_iss": False,
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            code = next((c for kind, c in _PYJWT_CODES if isinstance(exc, kind)), "invalid_token")
            raise InvalidGrantError(f"the token is refused: {exc}", code=code) from exc
        for name in ("sub", "jti", "role", "request_id"):
            if not isinstance(claims[name], str) or not claims[name]:
                raise InvalidGrantError(f"claim {name} is not a string", code="missing_claim")
        for name in ("iat", "exp", "nbf"):
            if name in claims:
                claim_time(claims, name)
        return claims

    def hold(self, claims: Mapping[str, Any]) -> None:
        """Check ``iss``, ``aud``, ``exp`` and ``nbf`` of :meth:`signed` claims.

        Raises InvalidGrantError: ``wrong_issuer``, ``wrong_audience``, ``expired``,
        ``not_yet_valid``.
        """
        if claims["iss"] != self.issuer:
            raise InvalidGrantError("the token is refused: wrong issuer", code="wrong_issuer")
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise InvalidGrantError("claim aud is not a string or list", code="wrong_audience")
        if not set(self.audience).intersection(audiences):
            raise InvalidGrantError(
                "the token is refused: its audience is not this server", code="wrong_audience"
            )
        self._check_times(claims)

    def binding(
        self,
        claims: Mapping[str, Any],
        token: str,
        proof: str | None,
        request: tuple[str, str] | None,
        seen: MutableSet[str],
    ) -> str | None:
        """The ``cnf.jkt`` a valid DPoP proof was made with, or None for an unbound token.

        ``request`` is the (method, URL) the proof must name. Raises InvalidGrantError:
        ``proof_required`` for a bound token without a proof, ``unbound_token`` when
        ``require_proof`` and the token is not bound, ``invalid_dpop_proof`` otherwise.
        """
        if "cnf" not in claims:
            if self.policy.require_proof:
                raise InvalidGrantError("the token is not bound to a key", code="unbound_token")
            return None
        if proof is None or request is None:
            raise InvalidGrantError(
                "the token is bound to a key: a DPoP proof of the request is required",
                code="proof_required",
            )
        method, url = request
        try:
            return verify_proof_of_possession(
                claims,
                proof,
                method=method,
                url=url,
                access_token=token,
                max_age_seconds=self.policy.proof_max_age_seconds,
                now=self.clock.now().timestamp(),
                seen_jtis=seen,
            )
        except ProofOfPossessionError as exc:
            raise InvalidGrantError(exc.message, code="invalid_dpop_proof") from exc

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self.clock.now()
        leeway = self.policy.leeway
        if now >= claim_time(claims, "exp") + leeway:
            raise InvalidGrantError("the token has expired", code="expired")
        if "nbf" in claims and now + leeway < claim_time(claims, "nbf"):
            raise InvalidGrantError("the token is not valid yet (nbf)", code="not_yet_valid")


def credentials_of(headers: Mapping[str, str]) -> tuple[str, str, str | None]:
    """The scheme (``bearer`` or ``dpop``), token and DPoP proof of a request's headers.

    Raises InvalidGrantError when there is no ``Authorization`` header of either scheme.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    scheme, _, token = lowered.get("authorization", "").partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "dpop") or not token.strip():
        raise InvalidGrantError(
            "no Authorization: Bearer or DPoP token in the request", code="missing_token"
        )
    return scheme, token.strip(), lowered.get("dpop")


def check_scheme(scheme: str, claims: Mapping[str, Any]) -> None:
    """A bound token goes with the DPoP scheme, an unbound one with Bearer (RFC 9449 §7.1):
    a bound token accepted as Bearer would make the binding pointless."""
    if scheme == "bearer" and "cnf" in claims:
        raise InvalidGrantError(
            "the token is bound to a key: present it with the DPoP scheme and a proof",
            code="proof_required",
        )
    if scheme == "dpop" and "cnf" not in claims:
        raise InvalidGrantError("a DPoP token must be bound to a key", code="unbound_token")


def verified(claims: Mapping[str, Any], jkt: str | None, introspected: bool) -> VerifiedGrant:
    audience = claims["aud"]
    act = claims.get("act")
    actor = act.get("sub") if isinstance(act, Mapping) else None
    return VerifiedGrant(
        subject=claims["sub"],
        role=claims["role"],
        request_id=RequestId(claims["request_id"]),
        audience=(audience,) if isinstance(audience, str) else tuple(audience),
        issuer=claims["iss"],
        token_id=claims["jti"],
        issued_at=claim_time(claims, "iat"),
        expires_at=claim_time(claims, "exp"),
        actor=actor if isinstance(actor, str) else None,
        key_thumbprint=jkt,
        introspected=introspected,
        claims=dict(claims),
    )


def check_introspection(answer: Mapping[str, Any], claims: Mapping[str, Any]) -> None:
    """Refuse a token the broker reports inactive, or an answer about another token."""
    if answer.get("active") is not True:
        raise InvalidGrantError(
            "the broker reports the token inactive: its grant was revoked or has ended",
            code="revoked",
        )
    if answer.get("jti", claims["jti"]) != claims["jti"]:
        raise InvalidGrantError("introspection answered for another token", code="revoked")


class ActiveTokens:
    """Tokens recently introspected as active, by SHA-256, each until a deadline."""

    def __init__(self, clock: Clock, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._until: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def known(self, token: str) -> bool:
        with self._lock:
            until = self._until.get(_digest(token))
        return until is not None and self._clock.now() < until

    def remember(self, token: str, lifetime: timedelta, expires_at: datetime) -> None:
        if lifetime <= timedelta(0):
            return
        until = min(self._clock.now() + lifetime, expires_at)
        with self._lock:
            if len(self._until) >= self._max:
                self._until.pop(next(iter(self._until)))
            self._until[_digest(token)] = until


class SeenProofs(MutableSet[str]):
    """The ``jti`` of DPoP proofs accepted recently, each kept for twice the proof max age
    (an ``iat`` may lie that far either way), at most ``max_entries`` (oldest forgotten)."""

    def __init__(self, clock: Clock, max_age_seconds: int, max_entries: int = 100_000) -> None:
        self._clock = clock
        self._keep = timedelta(seconds=2 * max_age_seconds)
        self._max = max_entries
        self._forget_at: dict[str, datetime] = {}

    def __contains__(self, item: object) -> bool:
        self._prune()
        return item in self._forget_at

    def __iter__(self) -> Iterator[str]:
        self._prune()
        return iter(list(self._forget_at))

    def __len__(self) -> int:
        self._prune()
        return len(self._forget_at)

    def add(self, value: str) -> None:
        self._prune()
        if len(self._forget_at) >= self._max:
            self._forget_at.pop(next(iter(self._forget_at)))
        self._forget_at[value] = self._clock.now() + self._keep

    def discard(self, value: str) -> None:
        self._forget_at.pop(value, None)

    def _prune(self) -> None:
        now = self._clock.now()
        for jti, when in list(self._forget_at.items()):
            if when > now:
                break  # kept in insertion order, so every later one is later still
            del self._forget_at[jti]


def claim_time(claims: Mapping[str, Any], name: str) -> datetime:
    """A NumericDate claim as a UTC time. Raises InvalidGrantError if it is not one."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidGrantError(f"claim {name} is not a NumericDate", code="missing_claim")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidGrantError(f"claim {name} is out of range", code="missing_claim") from exc


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
