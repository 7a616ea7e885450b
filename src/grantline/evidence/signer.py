"""Signing keys of the log: the ``Signer`` protocol, a local Ed25519 key file, JWKS loading.

``cryptography`` is wrapped here and in :mod:`grantline.evidence.record`; its exceptions
never reach callers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from grantline.domain.errors import ConfigError, IntegrityError
from grantline.evidence.canonical import b64url_decode, b64url_encode, canonicalize

ED25519_SEED_BYTES = 32


class Signer(Protocol):
    """Signs messages for the log. ``kid`` names the public key a verifier should use.

    ``blocking`` is true when signing waits on the network (a key held in Vault): callers
    inside an event loop then sign on a worker thread.
    """

    @property
    def blocking(self) -> bool: ...

    @property
    def kid(self) -> str: ...

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message`` (64 bytes)."""
        ...

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK: kty, crv, x, kid, alg, use."""
        ...

    def public_jwks(self) -> list[dict[str, str]]:
        """Every public key this signer has signed with, the current one first."""
        ...


class LocalEd25519Signer:
    """An Ed25519 private key held in this process, usually loaded from a PEM file."""

    blocking = False

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._public = private_key.public_key()
        self._kid = jwk_thumbprint(self._public)

    @classmethod
    def from_seed(cls, seed: bytes) -> LocalEd25519Signer:
        """The key whose RFC 8032 private seed is ``seed`` (32 bytes); for tests and examples."""
        if len(seed) != ED25519_SEED_BYTES:
            raise ConfigError("an Ed25519 seed is exactly 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def load_or_create(cls, path: Path) -> LocalEd25519Signer:
        """Load the PEM (PKCS#8) key at ``path``, creating it with mode 0600 if absent.

        Raises :class:`ConfigError` when the file is readable or writable by group or others,
        or is not an unencrypted Ed25519 PKCS#8 key.
        """
        if not path.exists():
            _create_key_file(path)
        return cls(_read_key_file(path))

    @property
    def kid(self) -> str:
        return self._kid

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self._public)

    def public_jwks(self) -> list[dict[str, str]]:
        return [public_jwk(self._public)]


def _create_key_file(path: Path) -> None:
    """Write a fresh key so that ``path`` appears complete or not at all.

    The key goes to a private temporary file first and is published with ``os.link``, which
    fails if ``path`` exists: when two processes race, the loser keeps the winner's key and
    nobody ever reads a half-written file.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # exactly 0600, whatever the umask
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot create the signing key {path}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _read_key_file(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise ConfigError(
                f"signing key {path} is accessible to group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the signing key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM PKCS#8 private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def jwk_thumbprint(key: Ed25519PublicKey) -> str:
    """The RFC 7638 SHA-256 thumbprint of the key's JWK, base64url: the key's ``kid``."""
    required = {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(raw_public_bytes(key))}
    return b64url_encode(hashlib.sha256(canonicalize(required)).digest())


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """The JWK (RFC 8037) of an Ed25519 public key, with its thumbprint as ``kid``."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url_encode(raw_public_bytes(key)),
        "kid": jwk_thumbprint(key),
        "alg": "EdDSA",
        "use": "sig",
    }


# A private JWK member (RFC 7517 section 4: unknown members are ignored by other readers) that
# tells Grantline's verifier which published keys may sign records.
PURPOSE_MEMBER = "grantline_purpose"
LOG_PURPOSE = "log"
TOKEN_PURPOSE = "token"  # noqa: S105 — a purpose name, not a secret


def load_public_keys(jwks: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 signature keys of a JWKS document, by ``kid``.

    Keys of other types, or marked for another ``use`` or ``alg``, are skipped: a JWKS may
    also publish keys for other purposes. Keys whose ``grantline_purpose`` member is present
    and not ``"log"`` (the broker's token key) are skipped too: only a log key may vouch for
    records and checkpoints. A key without ``kid`` is named by its RFC 7638
    thumbprint. Raises :class:`ConfigError` for a document without a ``keys`` list, an
    Ed25519 key whose ``x`` is not 32 bytes of unpadded base64url, or two keys with one kid.
    """
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise ConfigError("a JWKS document is an object with a 'keys' list")
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in entries:
        if not _is_ed25519_signing_jwk(entry):
            continue
        key = _public_key_from_x(entry["x"])
        kid = entry.get("kid", jwk_thumbprint(key))
        if not isinstance(kid, str) or not kid:
            raise ConfigError("a JWK 'kid' must be a non-empty string")
        if kid in keys:
            raise ConfigError(f"the JWKS names two keys with kid {kid!r}")
        keys[kid] = key
    return keys


def _is_ed25519_signing_jwk(entry: object) -> bool:
    return (
        isinstance(entry, Mapping)
        and entry.get("kty") == "OKP"
        and entry.get("crv") == "Ed25519"
        and entry.get("use", "sig") == "sig"
        and entry.get("alg", "EdDSA") == "EdDSA"
        and entry.get(PURPOSE_MEMBER, LOG_PURPOSE) == LOG_PURPOSE
    )


def _public_key_from_x(x: object) -> Ed25519PublicKey:
    try:
        raw = b64url_decode(x) if isinstance(x, str) else b""
    except IntegrityError:
        raw = b""
    if len(raw) != ED25519_SEED_BYTES:
        raise ConfigError("an Ed25519 JWK needs 'x': 32 bytes in unpadded base64url")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ConfigError("the JWK 'x' is not an Ed25519 public key") from exc
