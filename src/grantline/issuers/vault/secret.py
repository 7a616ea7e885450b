"""``vault_secret``: a leased secret (for example ``database/creds/<role>``) read for one grant.

The secret is read with the grant's own token, so its lease belongs to that token: the lease
cannot outlive the grant, and revoking the token revokes it too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from grantline.domain.errors import IssuanceError
from grantline.domain.models import CredentialType, IssuedCredential, format_time
from grantline.issuers.base import GrantSpec, SourceState, fingerprint
from grantline.issuers.vault.client import VaultClient
from grantline.issuers.vault.grant_token import create_grant_token, revoked_on_failure
from grantline.issuers.vault.role import VaultRole


class VaultSecretIssuer:
    credential_type = CredentialType.VAULT_SECRET
    external = True

    def __init__(self, client: VaultClient) -> None:
        self._client = client

    async def mint(self, spec: GrantSpec) -> IssuedCredential:
        role = VaultRole.of(spec.role, spec.issuer_config)
        if role.secret_path is None:
            raise IssuanceError(
                f"role {spec.role} has no vault.secret_path to read", code="issuer_misconfigured"
            )
        token = await create_grant_token(self._client, spec, role.require_policies(spec.role))
        async with revoked_on_failure(self._client, token):
            response = await self._client.read_with(token.token, role.secret_path)
            lease_id = response.get("lease_id")
            if not isinstance(lease_id, str) or not lease_id:
                raise IssuanceError(
                    f"{role.secret_path} gave a secret without a lease, which cannot be revoked",
                    code="issuer_misconfigured",
                )
            lease = await self._client.lookup_lease(lease_id)
            if lease is None:
                raise IssuanceError("Vault lost a lease it had just granted", code="vault_error")
        data: dict[str, Any] = dict(response.get("data") or {})
        expires_at = min(lease.expires_at, token.info.expires_at or lease.expires_at)
        return IssuedCredential(
            type=self.credential_type,
            # Sorted JSON of the secret's fields (a float in a secret is written as Python does).
            fingerprint=fingerprint(
                json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
            ),
            issued_at=lease.issued_at,
            expires_at=expires_at,
            handle={"accessor": token.info.accessor, "lease_id": lease_id},
            secret={"data": data, "lease_id": lease_id, "expires_at": format_time(expires_at)},
        )

    async def revoke(self, handle: Mapping[str, str]) -> None:
        await self._client.revoke_lease(handle["lease_id"])
        await self._client.revoke_accessor(handle["accessor"])

    async def state_at_source(self, handle: Mapping[str, str]) -> SourceState:
        alive = await self._client.lookup_lease(handle["lease_id"]) is not None
        return SourceState.ALIVE if alive else SourceState.GONE
