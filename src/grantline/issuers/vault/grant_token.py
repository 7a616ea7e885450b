"""The per-grant token every Vault credential is minted through.

Each grant gets its own orphan token, created through the broker's token role, whose
metadata names the request. For ``vault_token`` it is the credential; for leased secrets
and certificates it is the token that reads or issues them, so the lease belongs to it.
Either way a credential minted just before a crash can be traced to its request and
revoked by the reconciler, and revoking the token takes its leases with it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from grantline.domain.errors import GrantlineError
from grantline.issuers.base import GrantSpec
from grantline.issuers.vault.client import (
    META_REQUEST_ID,
    META_ROLE,
    META_SUBJECT,
    NewToken,
    VaultClient,
)

log = logging.getLogger(__name__)

# Vault keeps display names short; a long subject would be cut anyway.
_DISPLAY_NAME_LIMIT = 64


def grant_meta(spec: GrantSpec) -> dict[str, str]:
    return {META_REQUEST_ID: spec.request_id, META_SUBJECT: spec.subject, META_ROLE: spec.role}


async def create_grant_token(
    client: VaultClient, spec: GrantSpec, policies: Sequence[str]
) -> NewToken:
    return await client.create_token(
        policies=policies,
        ttl_seconds=spec.ttl_seconds,
        meta=grant_meta(spec),
        display_name=f"grantline-{spec.role}"[:_DISPLAY_NAME_LIMIT],
    )


@contextlib.asynccontextmanager
async def revoked_on_failure(client: VaultClient, token: NewToken) -> AsyncIterator[None]:
    """Revoke ``token`` if the block fails, so a half-minted credential does not stay alive."""
    try:
        yield
    except BaseException:
        try:
            await client.revoke_accessor(token.info.accessor)
        except GrantlineError:
            # The reconciler finds it by its request id and revokes it later.
            log.exception("could not revoke the grant token of a failed mint")
        raise
