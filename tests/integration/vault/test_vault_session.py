"""The broker's own access to Vault: AppRole login, self-renewal, least privilege, alerts."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from tests.conftest import Bao

from grantline.domain.errors import ConfigError, IssuanceError
from grantline.domain.models import RequestId
from grantline.issuers.base import GrantSpec
from grantline.issuers.vault.client import VaultClient, VaultSettings
from grantline.issuers.vault.token import VaultTokenIssuer

KV = {"policies": ["grantline-kv-read"]}


def grant() -> GrantSpec:
    return GrantSpec(
        request_id=RequestId(f"req-{uuid.uuid4()}"),
        subject="spiffe://example.org/ci-runner",
        role="vault-kv-read",
        target="vault://secret",
        ttl_seconds=60,
        now=datetime.now(UTC),
        issuer_config=KV,
    )


async def test_approle_login_gets_a_token_that_mints(own_bao: Bao) -> None:
    root = own_bao.root()
    root.sys.enable_auth_method("approle")
    root.write_data(
        "auth/approle/role/grantline",
        data={"token_policies": ["grantline-broker"], "token_ttl": "1h", "token_max_ttl": "4h"},
    )
    role_id = root.read("auth/approle/role/grantline/role-id")["data"]["role_id"]
    secret_id = root.write_data("auth/approle/role/grantline/secret-id")["data"]["secret_id"]
    vault = VaultClient(VaultSettings(addr=own_bao.addr, role_id=role_id, secret_id=secret_id))

    await vault.login()
    credential = await VaultTokenIssuer(vault).mint(grant())

    assert credential.handle["accessor"]
    await vault.close()


async def test_the_brokers_token_is_renewed_once_half_its_ttl_is_gone(bao: Bao) -> None:
    short = bao.root().auth.token.create(
        policies=["grantline-broker"], no_default_policy=True, ttl="60s", renewable=True
    )["auth"]["client_token"]
    vault = VaultClient(VaultSettings(addr=bao.addr, token=short))
    await vault.login()
    now = datetime.now(UTC)

    assert await vault.renew_if_due(now + timedelta(seconds=10)) is False
    assert await vault.renew_if_due(now + timedelta(seconds=31)) is True

    await VaultTokenIssuer(vault).mint(grant())
    await vault.close()


async def test_the_shipped_broker_policy_cannot_read_secrets_or_mint_outside_its_role(
    bao: Bao,
) -> None:
    # The broker token of these tests holds only deploy/vault/grantline-broker.hcl.
    vault = VaultClient(VaultSettings(addr=bao.addr, token=bao.broker_token))
    with pytest.raises(IssuanceError) as raised:
        await vault.read_with(bao.broker_token, "secret/data/anything")
    assert raised.value.code == "vault_forbidden"
    # The token role refuses to hand out the broker's own policy, whatever a role says.
    escalating = dataclasses.replace(grant(), issuer_config={"policies": ["grantline-broker"]})
    with pytest.raises(IssuanceError) as refused:
        await VaultTokenIssuer(vault).mint(escalating)
    assert refused.value.code == "vault_rejected"
    await vault.close()


def test_vault_settings_without_credentials_are_refused() -> None:
    with pytest.raises(ConfigError, match="GRANTLINE_VAULT_TOKEN"):
        VaultClient(VaultSettings(addr="http://127.0.0.1:8200"))
