"""Each Vault credential type minted, used, revoked and confirmed dead against a real OpenBao."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import hvac
import hvac.exceptions
import pytest
import redis
import redis.exceptions
import requests
from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from tests.conftest import Bao

from grantline.domain.errors import IssuanceError
from grantline.domain.models import RequestId
from grantline.issuers.base import GrantSpec, SourceState
from grantline.issuers.vault.client import META_REQUEST_ID, VaultClient, VaultSettings
from grantline.issuers.vault.pki import VaultPkiIssuer
from grantline.issuers.vault.secret import VaultSecretIssuer
from grantline.issuers.vault.token import VaultTokenIssuer

SUBJECT = "spiffe://example.org/ci-runner"


@pytest.fixture
async def client(bao: Bao) -> AsyncIterator[VaultClient]:
    vault = VaultClient(VaultSettings(addr=bao.addr, token=bao.broker_token))
    await vault.login()
    yield vault
    await vault.close()


def spec(role: str, vault: dict[str, Any], *, ttl: int = 300, subject: str = SUBJECT) -> GrantSpec:
    return GrantSpec(
        request_id=RequestId(f"req-{uuid.uuid4()}"),
        subject=subject,
        role=role,
        target="vault://secret",
        ttl_seconds=ttl,
        now=datetime.now(UTC),
        issuer_config=vault,
    )


def as_token(bao: Bao, token: str) -> hvac.Client:
    return hvac.Client(url=bao.addr, token=token, timeout=5)


async def test_a_vault_token_carries_the_role_policies_the_ttl_and_the_request_id(
    bao: Bao, client: VaultClient
) -> None:
    grant = spec("vault-kv-read", {"policies": ["grantline-kv-read"]}, ttl=120)
    credential = await VaultTokenIssuer(client).mint(grant)

    me = as_token(bao, credential.secret["token"]).auth.token.lookup_self()["data"]
    assert set(me["policies"]) == {"default", "grantline-kv-read"}
    assert me["meta"][META_REQUEST_ID] == grant.request_id
    assert me["orphan"] is True
    assert me["renewable"] is False
    assert 110 <= me["ttl"] <= 120
    assert me["explicit_max_ttl"] == 120
    # Vault's own clock decided the times the record keeps.
    lifetime = credential.expires_at - credential.issued_at
    assert abs(lifetime - timedelta(seconds=120)) < timedelta(seconds=1)
    assert credential.handle == {"accessor": me["accessor"]}
    assert credential.secret["token"] not in str(credential.evidence())


async def test_a_revoked_vault_token_no_longer_works_and_revoking_again_is_harmless(
    bao: Bao, client: VaultClient
) -> None:
    issuer = VaultTokenIssuer(client)
    credential = await issuer.mint(spec("vault-kv-read", {"policies": ["grantline-kv-read"]}))
    assert await issuer.state_at_source(credential.handle) == SourceState.ALIVE

    await issuer.revoke(credential.handle)
    await issuer.revoke(credential.handle)

    with pytest.raises(hvac.exceptions.Forbidden):
        as_token(bao, credential.secret["token"]).auth.token.lookup_self()
    assert await issuer.state_at_source(credential.handle) == SourceState.GONE


async def test_revoking_the_brokers_own_token_leaves_grant_tokens_alive(bao: Bao) -> None:
    # Grant tokens are orphans: losing the broker's token must not take them down with it.
    broker_token = bao.root().auth.token.create(
        policies=["grantline-broker"], no_default_policy=True, ttl="1h"
    )["auth"]["client_token"]
    vault = VaultClient(VaultSettings(addr=bao.addr, token=broker_token))
    credential = await VaultTokenIssuer(vault).mint(
        spec("vault-kv-read", {"policies": ["grantline-kv-read"]})
    )
    await vault.close()

    bao.root().auth.token.revoke(broker_token)

    me = as_token(bao, credential.secret["token"]).auth.token.lookup_self()["data"]
    assert me["meta"][META_REQUEST_ID]


async def test_a_certificate_names_the_spiffe_id_chains_to_the_ca_and_lands_on_the_crl(
    bao: Bao, client: VaultClient
) -> None:
    issuer = VaultPkiIssuer(client)
    vault = {"policies": ["grantline-pki-workload"], "pki_role": "workload"}
    credential = await issuer.mint(spec("mtls-workload", vault, ttl=600))

    certificate = x509.load_pem_x509_certificate(credential.secret["certificate"].encode())
    ca = x509.load_pem_x509_certificate(credential.secret["issuing_ca"].encode())
    certificate.verify_directly_issued_by(ca)
    sans = certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert sans.value.get_values_for_type(x509.UniformResourceIdentifier) == [SUBJECT]
    assert credential.handle["serial"] == credential.secret["serial_number"]
    # Compared as numbers: a serial's hex form may start with a zero its int form drops.
    assert int(credential.handle["serial"].replace(":", ""), 16) == certificate.serial_number
    assert abs((certificate.not_valid_after_utc - credential.expires_at).total_seconds()) < 1
    assert "PRIVATE KEY" in credential.secret["private_key"]
    assert "PRIVATE KEY" not in str(credential.evidence())

    await issuer.revoke(credential.handle)

    crl_pem = requests.get(f"{bao.addr}/v1/pki/crl/pem", timeout=5).text
    crl = x509.load_pem_x509_crl(crl_pem.encode())
    assert crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None
    assert await issuer.state_at_source(credential.handle) == SourceState.GONE


async def test_a_leased_secret_works_at_the_database_until_its_lease_is_revoked(
    bao: Bao, client: VaultClient
) -> None:
    issuer = VaultSecretIssuer(client)
    vault = {"policies": ["grantline-cache-read"], "secret_path": "database/creds/cache-read"}
    credential = await issuer.mint(spec("cache-read", vault, ttl=300))

    data = credential.secret["data"]
    port = bao.cache.port
    user = redis.Redis(port=port, username=data["username"], password=data["password"])
    assert user.ping() is True
    assert bao.root().sys.read_lease(credential.handle["lease_id"])["data"]["id"]
    assert credential.expires_at <= credential.issued_at + timedelta(seconds=301)
    assert data["password"] not in str(credential.evidence())

    await issuer.revoke(credential.handle)

    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=port, username=data["username"], password=data["password"]).ping()
    assert await issuer.state_at_source(credential.handle) == SourceState.GONE


async def test_a_role_without_a_vault_mapping_fails_with_a_clear_error(client: VaultClient) -> None:
    with pytest.raises(IssuanceError, match=r"vault\.policies") as raised:
        await VaultTokenIssuer(client).mint(spec("vault-kv-read", {}))
    assert raised.value.code == "issuer_misconfigured"
    with pytest.raises(IssuanceError, match="secret_path"):
        await VaultSecretIssuer(client).mint(spec("cache-read", {"policies": ["x"]}))


async def test_a_path_that_gives_no_lease_is_refused_and_its_grant_token_revoked(
    bao: Bao, client: VaultClient
) -> None:
    root = bao.root()
    root.sys.create_or_update_policy("kv-any", 'path "secret/data/*" { capabilities = ["read"] }')
    root.secrets.kv.v2.create_or_update_secret(path="plain", secret={"k": "v"})
    grant = spec("static", {"policies": ["kv-any"], "secret_path": "secret/data/plain"})

    with pytest.raises(IssuanceError, match="without a lease"):
        await VaultSecretIssuer(client).mint(grant)

    left = [t for t in await client.grant_tokens() if t.meta[META_REQUEST_ID] == grant.request_id]
    assert left == []


async def test_vault_unreachable_is_a_clear_503_code() -> None:
    vault = VaultClient(VaultSettings(addr="http://127.0.0.1:9", token="t", timeout_seconds=1))
    with pytest.raises(IssuanceError) as raised:
        await VaultTokenIssuer(vault).mint(spec("vault-kv-read", {"policies": ["p"]}))
    assert raised.value.code == "vault_unavailable"
    assert raised.value.status == 503
    await vault.close()


async def test_a_sealed_vault_is_reported_as_sealed(tmp_path: Any, cache_valkey: Any) -> None:
    from tests.conftest import start_bao  # noqa: PLC0415 — a Vault of its own, to seal

    own = start_bao(tmp_path, cache_valkey)
    try:
        vault = VaultClient(VaultSettings(addr=own.addr, token=own.broker_token))
        own.root().sys.seal()
        with pytest.raises(IssuanceError) as raised:
            await VaultTokenIssuer(vault).mint(spec("vault-kv-read", {"policies": ["p"]}))
        assert raised.value.code == "vault_sealed"
        await vault.close()
    finally:
        own.server.stop()


async def test_a_leased_secret_dies_with_its_grant_token_at_the_grant_ttl(
    bao: Bao, client: VaultClient
) -> None:
    # The database role would lease for an hour; the grant is two seconds long.
    issuer = VaultSecretIssuer(client)
    vault = {"policies": ["grantline-cache-read"], "secret_path": "database/creds/cache-read"}
    credential = await issuer.mint(spec("cache-read", vault, ttl=2))
    data = credential.secret["data"]
    port = bao.cache.port

    def works() -> bool:
        try:
            return bool(
                redis.Redis(port=port, username=data["username"], password=data["password"]).ping()
            )
        except redis.exceptions.AuthenticationError:
            return False

    assert works()
    deadline = time.monotonic() + 20
    while works() and time.monotonic() < deadline:
        time.sleep(0.5)

    assert not works()
    assert await issuer.state_at_source(credential.handle) == SourceState.GONE
