"""What a role maps to in Vault: its ``vault`` block in ``data.grantline.roles`` or the decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grantline.domain.errors import IssuanceError


@dataclass(frozen=True, slots=True)
class VaultRole:
    """The Vault side of one role.

    ``policies`` go on the per-grant token (for ``vault_token`` they are the credential's
    powers; for the other types they must allow the read or issue below). ``secret_path`` is
    the leased path a ``vault_secret`` reads; ``pki_mount`` and ``pki_role`` name where an
    ``x509`` certificate is issued.
    """

    policies: tuple[str, ...] = ()
    secret_path: str | None = None
    pki_mount: str = "pki"
    pki_role: str | None = None

    @classmethod
    def of(cls, role: str, config: Mapping[str, Any]) -> VaultRole:
        """Parse a role's ``vault`` block. Raises :class:`IssuanceError` when it is unusable."""
        policies = config.get("policies", [])
        if not isinstance(policies, list) or not all(isinstance(p, str) and p for p in policies):
            raise _misconfigured(role, "vault.policies must be a list of Vault policy names")
        if "root" in policies:
            raise _misconfigured(role, "vault.policies must never include root")
        values = {k: config.get(k) for k in ("secret_path", "pki_mount", "pki_role")}
        for key, value in values.items():
            if value is not None and not (isinstance(value, str) and value.strip("/")):
                raise _misconfigured(role, f"vault.{key} must be a non-empty string")
        return cls(
            policies=tuple(policies),
            secret_path=values["secret_path"],
            pki_mount=values["pki_mount"] or "pki",
            pki_role=values["pki_role"],
        )

    def require_policies(self, role: str) -> tuple[str, ...]:
        if not self.policies:
            raise _misconfigured(role, "vault.policies must name at least one Vault policy")
        return self.policies


def _misconfigured(role: str, message: str) -> IssuanceError:
    return IssuanceError(
        f"role {role} is not usable with Vault: {message}", code="issuer_misconfigured"
    )
