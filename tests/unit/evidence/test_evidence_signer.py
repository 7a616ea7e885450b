"""Signing keys: RFC 8032/8037/7638 vectors, the key file's permissions and races, JWKS loading."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from evidence_support import OTHER_SIGNER, SIGNER

from grantline.domain.errors import ConfigError
from grantline.evidence.signer import LocalEd25519Signer, jwk_thumbprint, load_public_keys

RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_EMPTY_MESSAGE_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_the_rfc8032_test_1_seed_gives_its_public_key_and_signature() -> None:
    jwk = SIGNER.public_jwk()
    assert SIGNER.public_key().public_bytes_raw().hex() == RFC8032_PUBLIC
    assert SIGNER.sign(b"").hex() == RFC8032_EMPTY_MESSAGE_SIGNATURE
    assert jwk["x"] == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"


def test_kid_is_the_rfc7638_thumbprint_given_in_rfc8037() -> None:
    # RFC 8037 appendix A.3 computes this thumbprint for the RFC 8032 test 1 key.
    assert SIGNER.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert jwk_thumbprint(SIGNER.public_key()) == SIGNER.kid


def test_public_jwk_names_type_curve_key_id_algorithm_and_use() -> None:
    assert SIGNER.public_jwk() == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        "kid": SIGNER.kid,
        "alg": "EdDSA",
        "use": "sig",
    }


def test_a_seed_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        LocalEd25519Signer.from_seed(b"short")


def test_load_or_create_writes_a_0600_key_in_a_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "log.pem"
    signer = LocalEd25519Signer.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    assert LocalEd25519Signer.load_or_create(path).kid == signer.kid


def test_a_key_file_readable_by_others_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    LocalEd25519Signer.load_or_create(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        LocalEd25519Signer.load_or_create(path)
    assert str(path) in caught.value.message


def test_a_key_file_writable_by_group_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.pem"
    LocalEd25519Signer.load_or_create(path)
    path.chmod(0o620)
    with pytest.raises(ConfigError, match="group or others"):
        LocalEd25519Signer.load_or_create(path)


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def test_a_key_file_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(path, pem)
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        LocalEd25519Signer.load_or_create(path)


def test_a_key_file_that_is_not_pem_is_refused_without_a_vendor_exception(tmp_path: Path) -> None:
    path = tmp_path / "junk.pem"
    _write_private(path, b"not a key")
    with pytest.raises(ConfigError, match="PKCS#8"):
        LocalEd25519Signer.load_or_create(path)


def test_a_process_losing_the_creation_race_uses_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.pem"
    winner = LocalEd25519Signer.load_or_create(path)
    # The loser checked for the file just before the winner published it.
    monkeypatch.setattr(Path, "exists", lambda self: False)
    loser = LocalEd25519Signer.load_or_create(path)
    assert loser.kid == winner.kid
    assert list(tmp_path.iterdir()) == [path]


def test_concurrent_load_or_create_yields_one_key(tmp_path: Path) -> None:
    path = tmp_path / "home" / "log.pem"
    barrier = threading.Barrier(8)
    kids: list[str] = []

    def start() -> None:
        barrier.wait()
        kids.append(LocalEd25519Signer.load_or_create(path).kid)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(kids) == 8
    assert set(kids) == {LocalEd25519Signer.load_or_create(path).kid}
    assert os.listdir(path.parent) == ["log.pem"]


def test_load_public_keys_keeps_ed25519_signing_keys_by_kid_and_skips_others() -> None:
    rsa_like = {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"}
    encryption = {**OTHER_SIGNER.public_jwk(), "use": "enc", "kid": "enc"}
    keys = load_public_keys({"keys": [rsa_like, SIGNER.public_jwk(), encryption]})
    assert list(keys) == [SIGNER.kid]
    assert keys[SIGNER.kid].public_bytes_raw() == SIGNER.public_key().public_bytes_raw()


def test_load_public_keys_uses_the_given_kid_or_else_the_thumbprint() -> None:
    named = {**SIGNER.public_jwk(), "kid": "log-2026"}
    unnamed = {k: v for k, v in OTHER_SIGNER.public_jwk().items() if k != "kid"}
    assert set(load_public_keys({"keys": [named, unnamed]})) == {"log-2026", OTHER_SIGNER.kid}


def test_load_public_keys_refuses_two_keys_with_one_kid() -> None:
    clash = {**OTHER_SIGNER.public_jwk(), "kid": SIGNER.kid}
    with pytest.raises(ConfigError, match="two keys"):
        load_public_keys({"keys": [SIGNER.public_jwk(), clash]})


@pytest.mark.parametrize("x", ["", "AAAA", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=", 7])
def test_load_public_keys_refuses_an_ed25519_key_with_a_bad_x(x: object) -> None:
    with pytest.raises(ConfigError, match="'x'"):
        load_public_keys({"keys": [{**SIGNER.public_jwk(), "x": x}]})


@pytest.mark.parametrize("document", [{}, {"keys": {}}, {"keys": "x"}])
def test_load_public_keys_refuses_a_document_without_a_keys_list(document: Any) -> None:
    with pytest.raises(ConfigError, match="keys"):
        load_public_keys(document)


def test_a_jwks_key_marked_for_tokens_is_not_trusted_for_records() -> None:
    from grantline.evidence.signer import (  # noqa: PLC0415
        LOG_PURPOSE,
        PURPOSE_MEMBER,
        TOKEN_PURPOSE,
        LocalEd25519Signer,
        load_public_keys,
    )

    log_key = LocalEd25519Signer.from_seed(bytes(32))
    token_key = LocalEd25519Signer.from_seed(bytes([1]) * 32)
    jwks = {
        "keys": [
            {**token_key.public_jwk(), PURPOSE_MEMBER: TOKEN_PURPOSE},
            {**log_key.public_jwk(), PURPOSE_MEMBER: LOG_PURPOSE},
        ]
    }
    assert set(load_public_keys(jwks)) == {log_key.kid}
