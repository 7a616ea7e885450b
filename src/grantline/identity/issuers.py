"""Trusted issuers and their keys, from JWKS files, URLs or in-process key sets."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

from grantline.domain.errors import ConfigError

log = logging.getLogger(__name__)

# Asymmetric algorithms only: an HMAC algorithm lets anyone holding the public key forge tokens.
SUPPORTED_ALGORITHMS = frozenset({"EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256"})
_JWKS_MAX_BYTES = 256 * 1024
_JWKS_REFRESH_SECONDS = 300.0
_JWKS_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    algorithm: str
    key: Any  # a cryptography public key object, as PyJWT loaded it


@dataclass
class TrustedIssuer:
    """One issuer we accept identity tokens from, with its pinned algorithms and key source."""

    issuer: str
    audience: str
    algorithms: frozenset[str] = frozenset({"EdDSA", "ES256", "RS256"})
    jwks: Mapping[str, Any] | None = None
    jwks_file: Path | None = None
    jwks_url: str | None = None
    _keys: dict[str, VerificationKey] = field(default_factory=dict, repr=False)
    _fetched_at: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        unsupported = set(self.algorithms) - SUPPORTED_ALGORITHMS
        if unsupported:
            raise ConfigError(
                f"issuer {self.issuer}: algorithms {sorted(unsupported)} are not allowed; "
                f"use asymmetric ones from {sorted(SUPPORTED_ALGORITHMS)}"
            )
        if sum(x is not None for x in (self.jwks, self.jwks_file, self.jwks_url)) != 1:
            raise ConfigError(
                f"issuer {self.issuer}: give exactly one of jwks, jwks_file, jwks_url"
            )

    def keys(self) -> Mapping[str, VerificationKey]:
        """The issuer's keys, loading them on first use and refreshing a JWKS URL now and then."""
        stale = time.monotonic() - self._fetched_at > _JWKS_REFRESH_SECONDS
        if self._keys and not (self.jwks_url and stale):
            return self._keys
        with self._lock:
            try:
                self._keys = parse_jwks(self._load_document(), self.algorithms, self.issuer)
            except ConfigError:
                if not self._keys:
                    raise
                log.warning("keeping the previous keys of %s: refresh failed", self.issuer)
            self._fetched_at = time.monotonic()
        return self._keys

    def _load_document(self) -> Mapping[str, Any]:
        if self.jwks is not None:
            return self.jwks
        if self.jwks_file is not None:
            try:
                return dict(json.loads(self.jwks_file.read_text()))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read the JWKS file {self.jwks_file}: {exc}") from exc
        return _fetch_jwks(str(self.jwks_url))


def _fetch_jwks(url: str) -> Mapping[str, Any]:
    try:
        response = httpx.get(url, timeout=_JWKS_TIMEOUT_SECONDS, follow_redirects=False)
        response.raise_for_status()
        if len(response.content) > _JWKS_MAX_BYTES:
            raise ConfigError(f"the JWKS at {url} is larger than {_JWKS_MAX_BYTES} bytes")
        return dict(response.json())
    except (httpx.HTTPError, ValueError) as exc:
        raise ConfigError(f"cannot fetch the JWKS at {url}: {exc}") from exc


def parse_jwks(
    document: Mapping[str, Any], allowed: frozenset[str], issuer: str
) -> dict[str, VerificationKey]:
    """Keys of a JWKS usable for signatures under ``allowed`` algorithms, by kid."""
    keys: dict[str, VerificationKey] = {}
    raw_keys = document.get("keys")
    if not isinstance(raw_keys, Sequence):
        raise ConfigError(f"issuer {issuer}: the JWKS has no 'keys' list")
    for raw in raw_keys:
        key = _parse_key(raw, allowed)
        if key is not None:
            keys[key.kid] = key
    if not keys:
        raise ConfigError(f"issuer {issuer}: the JWKS has no usable signing key")
    return keys


def _parse_key(raw: Any, allowed: frozenset[str]) -> VerificationKey | None:
    if not isinstance(raw, Mapping) or raw.get("use", "sig") != "sig":
        return None
    kid = raw.get("kid")
    try:
        jwk = jwt.PyJWK(dict(raw))
    except jwt.PyJWTError:
        return None
    algorithm = raw.get("alg") or jwk.algorithm_name
    if not isinstance(kid, str) or algorithm not in allowed:
        return None
    return VerificationKey(kid=kid, algorithm=algorithm, key=jwk.key)
