"""A :class:`~grantline.evidence.signer.Signer` whose Ed25519 key lives in Vault's Transit engine.

The private key never leaves Vault: each signature is one ``transit/sign`` call, pinned to
the key version this signer announced as its ``kid``. Every version's public key is
published, so records signed before a rotation keep verifying; a rotation takes effect when
the broker next starts (or :meth:`TransitSigner.refresh` is called).

Signing is a blocking HTTP call: ``blocking`` tells the ledger and the JWT issuer to sign
off the event loop.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from grantline.domain.errors import ConfigError, DependencyUnavailableError, IssuanceError
from grantline.evidence.signer import jwk_thumbprint, public_jwk
from grantline.issuers.vault.client import VaultClient

_PREFIX = "vault:v"


class TransitSigner:
    blocking = True

    def __init__(self, vault: VaultClient, key: str, *, mount: str = "transit") -> None:
        self._vault = vault
        self._key = key
        self._mount = mount
        self._versions: dict[int, Ed25519PublicKey] = {}
        self._version = 0
        self.refresh()

    def refresh(self) -> None:
        """Read the key's versions from Vault and sign with the newest from now on.

        Raises :class:`ConfigError` when the key is missing or not Ed25519.
        """
        try:
            key_type, latest, raw = self._vault.transit_public_keys(self._mount, self._key)
        except IssuanceError as exc:
            raise ConfigError(
                f"the Transit key {self._mount}/{self._key} is unusable: {exc.message}"
            ) from exc
        if key_type != "ed25519":
            raise ConfigError(f"the Transit key {self._key} is {key_type}, not ed25519")
        self._versions = {
            version: Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded))
            for version, encoded in raw.items()
        }
        self._version = latest

    @property
    def kid(self) -> str:
        return jwk_thumbprint(self._versions[self._version])

    def sign(self, message: bytes) -> bytes:
        try:
            signature = self._vault.transit_sign(self._mount, self._key, self._version, message)
        except IssuanceError as exc:
            raise DependencyUnavailableError(
                f"the signing key in Vault is unavailable: {exc.message}",
                code="signer_unavailable",
            ) from exc
        expected = f"{_PREFIX}{self._version}:"
        if not signature.startswith(expected):
            raise DependencyUnavailableError(
                "Vault signed with another key version than asked", code="signer_unavailable"
            )
        return base64.b64decode(signature.removeprefix(expected))

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self._versions[self._version])

    def public_jwks(self) -> list[dict[str, str]]:
        """Every version's key, newest first: older records and tokens still verify."""
        return [public_jwk(self._versions[v]) for v in sorted(self._versions, reverse=True)]
