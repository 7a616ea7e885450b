"""Record and JWT signing with an Ed25519 key that never leaves Vault's Transit engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.exceptions import InvalidSignature
from tests.conftest import Bao

from grantline.domain.errors import ConfigError, DependencyUnavailableError
from grantline.evidence.signer import load_public_keys
from grantline.issuers.vault.client import VaultClient, VaultSettings
from grantline.issuers.vault.transit import TransitSigner


@pytest.fixture
async def vault(own_bao: Bao) -> AsyncIterator[VaultClient]:
    client = VaultClient(VaultSettings(addr=own_bao.addr, token=own_bao.broker_token))
    yield client
    await client.close()


async def test_a_transit_signature_verifies_with_the_published_key(vault: VaultClient) -> None:
    signer = TransitSigner(vault, "grantline-log")

    signature = signer.sign(b"grantline/record/v1\x00{}")

    keys = load_public_keys({"keys": signer.public_jwks()})
    keys[signer.kid].verify(signature, b"grantline/record/v1\x00{}")
    with pytest.raises(InvalidSignature):
        keys[signer.kid].verify(signature, b"another message")


async def test_after_a_rotation_new_signatures_use_the_new_key_and_old_ones_still_verify(
    own_bao: Bao, vault: VaultClient
) -> None:
    before = TransitSigner(vault, "grantline-log")
    old_signature = before.sign(b"old record")

    own_bao.root().write_data("transit/keys/grantline-log/rotate")
    after = TransitSigner(vault, "grantline-log")
    new_signature = after.sign(b"new record")

    assert after.kid != before.kid
    keys = load_public_keys({"keys": after.public_jwks()})
    keys[before.kid].verify(old_signature, b"old record")
    keys[after.kid].verify(new_signature, b"new record")


async def test_a_missing_or_non_ed25519_key_is_refused_at_start(
    own_bao: Bao, vault: VaultClient
) -> None:
    with pytest.raises(ConfigError, match="unusable"):
        TransitSigner(vault, "grantline-missing")
    own_bao.root().write_data("transit/keys/grantline-rsa", data={"type": "rsa-2048"})
    with pytest.raises(ConfigError, match="not ed25519"):
        TransitSigner(vault, "grantline-rsa")


async def test_vault_gone_makes_signing_fail_as_unavailable(
    own_bao: Bao, vault: VaultClient
) -> None:
    signer = TransitSigner(vault, "grantline-token")
    own_bao.server.stop()

    with pytest.raises(DependencyUnavailableError) as raised:
        signer.sign(b"anything")
    assert raised.value.code == "signer_unavailable"
