"""``vault_token``: an orphan Vault token with the role's policies, dead at the grant's TTL."""

from __future__ import annotations

from collections.abc import Mapping

from grantline.domain.models import CredentialType, IssuedCredential, format_time
from grantline.issuers.base import GrantSpec, SourceState, fingerprint
from grantline.issuers.vault.client import VaultClient
from grantline.issuers.vault.grant_token import create_grant_token
from grantline.issuers.vault.role import VaultRole


class VaultTokenIssuer:
    credential_type = CredentialType.VAULT_TOKEN
    external = True

    def __init__(self, client: VaultClient) -> None:
        self._client = client

    async def mint(self, spec: GrantSpec) -> IssuedCredential:
        role = VaultRole.of(spec.role, spec.issuer_config)
        new = await create_grant_token(self._client, spec, role.require_policies(spec.role))
        info = new.info
        expires_at = info.expires_at or spec.now
        return IssuedCredential(
            type=self.credential_type,
            fingerprint=fingerprint(new.token),
            issued_at=info.issued_at,
            expires_at=expires_at,
            handle={"accessor": info.accessor},
            secret={
                "token": new.token,
                "accessor": info.accessor,
                "policies": list(info.policies),
                "expires_at": format_time(expires_at),
            },
        )

    async def revoke(self, handle: Mapping[str, str]) -> None:
        await self._client.revoke_accessor(handle["accessor"])

    async def state_at_source(self, handle: Mapping[str, str]) -> SourceState:
        alive = await self._client.lookup_accessor(handle["accessor"]) is not None
        return SourceState.ALIVE if alive else SourceState.GONE
