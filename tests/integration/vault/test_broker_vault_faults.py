"""No credential without a record, also with Vault: the broker on a real Valkey and OpenBao,
with the store failing (or the process dying) at the worst moment."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from tests.conftest import POLICIES, Bao

from grantline.broker import Broker
from grantline.broker.approvals import Approvals
from grantline.domain.clock import SystemClock
from grantline.domain.errors import DependencyUnavailableError
from grantline.domain.models import AccessRequest, CredentialType, Event, Identity, Ttl
from grantline.evidence.signer import LocalEd25519Signer
from grantline.issuers.base import CredentialIssuer
from grantline.issuers.jwt import JwtIssuer
from grantline.issuers.vault.client import META_REQUEST_ID, VaultClient, VaultSettings
from grantline.issuers.vault.pki import VaultPkiIssuer
from grantline.issuers.vault.secret import VaultSecretIssuer
from grantline.issuers.vault.token import VaultTokenIssuer
from grantline.policy.embedded import EmbeddedRegoEngine
from grantline.reconcile.alerts import Alerts
from grantline.reconcile.reconciler import Reconciler, ReconcileSettings
from grantline.store.connection import StoreSettings, connect
from grantline.store.grants import RedisGrants
from grantline.store.ledger import Draft, Ledger
from grantline.store.lock import RequestLocks, StoreLock
from grantline.store.log import RedisLog
from grantline.store.pickup import PickupBox, PickupStore

CI = Identity("spiffe://example.org/ci-runner", "https://dev.grantline.local", {})
REQUESTS = {
    CredentialType.VAULT_TOKEN: ("vault://secret", "vault-kv-read"),
    CredentialType.X509: ("mtls://payments", "mtls-workload"),
    CredentialType.VAULT_SECRET: ("valkey://cache", "cache-read"),
}


class FailingLedger:
    """The real ledger, except that the write of an ``issued`` record fails as told."""

    def __init__(self, real: Ledger, failure: BaseException) -> None:
        self._real = real
        self._failure = failure
        self.armed = True

    async def append(self, drafts: Sequence[Draft]) -> list[bytes]:
        if self.armed and any(d.event == Event.ISSUED for d in drafts):
            raise self._failure
        return await self._real.append(drafts)


class DiesWhileMinting(VaultTokenIssuer):
    """A Vault token issuer in a process that dies after recording its intent, before Vault."""

    async def mint(self, spec: Any) -> Any:
        raise asyncio.CancelledError


@dataclass
class World:
    broker: Broker
    reconciler: Reconciler
    vault: VaultClient
    grants: RedisGrants


async def build(
    redis_url: str, bao: Bao, failure: BaseException, *, dies_while_minting: bool = False
) -> AsyncIterator[World]:
    client = connect(StoreSettings(redis_url))
    vault = VaultClient(VaultSettings(addr=bao.addr, token=bao.broker_token))
    await vault.login()
    signer = LocalEd25519Signer.from_seed(b"\x01" * 32)
    ledger = Ledger(RedisLog(client), signer)
    grants = RedisGrants(client)
    issuers: dict[str, CredentialIssuer] = {
        "jwt": JwtIssuer(signer, "http://grantline.test"),
        "vault_token": (DiesWhileMinting if dies_while_minting else VaultTokenIssuer)(vault),
        "x509": VaultPkiIssuer(vault),
        "vault_secret": VaultSecretIssuer(vault),
    }
    jwt_issuer = JwtIssuer(signer, "http://grantline.test")
    broker = Broker(
        ledger=FailingLedger(ledger, failure),
        grants=grants,
        log=RedisLog(client),
        policy=EmbeddedRegoEngine(POLICIES),
        issuers=issuers,
        introspector=jwt_issuer,
        clock=SystemClock(),
    )
    approvals = Approvals(
        broker=broker,
        grants=grants,
        ledger=ledger,
        locks=RequestLocks(client),
        pickups=PickupStore(client),
        box=PickupBox(os.urandom(32)),
        clock=SystemClock(),
    )
    reconciler = Reconciler(
        broker=broker,
        approvals=approvals,
        grants=grants,
        ledger=ledger,
        issuers=issuers,
        inventory=vault,
        lock=StoreLock(client, "reconcile"),
        alerts=Alerts(),
        clock=SystemClock(),
        settings=ReconcileSettings(issue_delay_seconds=0, grace_seconds=0, lock_seconds=0.1),
    )
    try:
        yield World(broker, reconciler, vault, grants)
    finally:
        await vault.close()
        await client.aclose()


def request(kind: CredentialType) -> AccessRequest:
    target, role = REQUESTS[kind]
    return AccessRequest(target=target, role=role, ttl=Ttl(300), credential_type=kind)


async def tokens_for(vault: VaultClient) -> dict[str, Any]:
    return {t.meta[META_REQUEST_ID]: t for t in await vault.grant_tokens()}


@pytest.mark.parametrize("kind", list(REQUESTS))
async def test_a_failed_issued_write_revokes_what_was_minted_and_returns_nothing(
    redis_url: str, own_bao: Bao, kind: CredentialType
) -> None:
    failure = DependencyUnavailableError("the log store is unavailable", code="store_unavailable")
    async for world in build(redis_url, own_bao, failure):
        before = await tokens_for(world.vault)

        with pytest.raises(DependencyUnavailableError):
            await world.broker.request_access(CI, request(kind))

        # Whatever the mint created at Vault was revoked before the error reached the caller.
        assert await tokens_for(world.vault) == before


async def test_a_broker_dying_after_the_mint_leaves_a_token_the_reconciler_revokes(
    redis_url: str, own_bao: Bao
) -> None:
    async for world in build(redis_url, own_bao, asyncio.CancelledError()):
        with pytest.raises(asyncio.CancelledError):
            await world.broker.request_access(CI, request(CredentialType.VAULT_TOKEN))
        [orphan_id] = (await tokens_for(world.vault)).keys()
        assert (await world.grants.request(orphan_id) or {})["status"] == "approved"

        report = await world.reconciler.run_once()

        assert report.findings["issuance_without_record"] == 1
        assert report.findings["approval_without_issuance"] == 1
        assert await tokens_for(world.vault) == {}


async def test_a_broker_dying_before_the_mint_leaves_an_approval_the_reconciler_flags(
    redis_url: str, own_bao: Bao
) -> None:
    async for world in build(redis_url, own_bao, asyncio.CancelledError(), dies_while_minting=True):
        with pytest.raises(asyncio.CancelledError):
            await world.broker.request_access(CI, request(CredentialType.VAULT_TOKEN))

        report = await world.reconciler.run_once()

        assert dict(report.findings) == {"approval_without_issuance": 1}
        assert await tokens_for(world.vault) == {}
