"""The signed line: sealing, splitting, signatures over exact bytes, domain separation, hashing."""

from __future__ import annotations

import hashlib
import json

import pytest
from evidence_support import KEYS, OTHER_SIGNER, SIGNER, sign_raw

from grantline.domain.errors import IntegrityError
from grantline.evidence.canonical import b64url_decode, canonicalize
from grantline.evidence.record import (
    CHECKPOINT_DOMAIN,
    GENESIS,
    RECORD_DOMAIN,
    chain_hash,
    check_signed,
    read_line,
    seal,
    split,
)

BODY = {"v": 1, "seq": 1, "zulu": "last key", "data": {"b": 1, "a": [1, 2]}}


def _code(line: bytes, domain: bytes = RECORD_DOMAIN) -> str:
    with pytest.raises(IntegrityError) as caught:
        check_signed(read_line(line), KEYS, domain)
    return caught.value.code


def test_seal_then_split_gives_back_the_canonical_body_with_kid_and_the_signature() -> None:
    line = seal(BODY, SIGNER, RECORD_DOMAIN)
    signed, signature = split(line)
    assert signed == canonicalize({**BODY, "kid": SIGNER.kid})
    assert SIGNER.public_key().verify(signature, RECORD_DOMAIN + signed) is None


def test_sig_is_appended_last_even_where_sorting_would_put_it_earlier() -> None:
    line = seal(BODY, SIGNER, RECORD_DOMAIN)
    assert line.endswith(b'"zulu":"last key","sig":"' + line[-88:-2] + b'"}')
    assert json.loads(line)["sig"] == line[-88:-2].decode()


def test_a_sealed_line_is_one_line_of_json_without_spaces() -> None:
    line = seal({"text": "two\nlines and spaces"}, SIGNER, RECORD_DOMAIN)
    assert b"\n" not in line
    assert b" " not in line.replace(b"lines and spaces", b"")


def test_a_verified_line_passes_check_signed() -> None:
    check_signed(read_line(seal(BODY, SIGNER, RECORD_DOMAIN)), KEYS, RECORD_DOMAIN)


def test_seal_refuses_a_body_that_already_has_sig() -> None:
    with pytest.raises(IntegrityError, match="sig"):
        seal({"sig": "x"}, SIGNER, RECORD_DOMAIN)


def test_seal_refuses_a_float_in_the_body() -> None:
    with pytest.raises(IntegrityError, match="float"):
        seal({"data": {"ratio": 0.5}}, SIGNER, RECORD_DOMAIN)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b'{"a":1}',
        b'{"a":1,"sig":"' + b"A" * 85 + b'"}',  # 85 characters cannot be 64 bytes
        b'{"a":1,"sig":"' + b"A" * 86 + b'"} ',  # something after the closing brace
        b'{"a":1,"sig":"' + b"A" * 86 + b'"}\n',  # the terminator is not part of a line
        b'{"a":1, "sig":"' + b"A" * 86 + b'"}',
        b'["a",1,"sig":"' + b"A" * 86 + b'"}',
        b'{"a":1,"sig":"' + b"A" * 85 + b'B"}',  # non-zero spare bits: a second spelling
    ],
)
def test_split_refuses_a_line_not_ending_in_exactly_one_signature(line: bytes) -> None:
    with pytest.raises(IntegrityError) as caught:
        split(line)
    assert caught.value.code == "malformed_line"


def test_read_line_refuses_signed_bytes_that_are_not_a_json_object() -> None:
    with pytest.raises(IntegrityError, match="not valid JSON"):
        read_line(b'{"a":,"sig":"' + b"A" * 86 + b'"}')


def test_a_line_with_whitespace_added_but_the_same_json_meaning_is_refused() -> None:
    line = seal(BODY, SIGNER, RECORD_DOMAIN)
    spaced = line.replace(b'"seq":1', b'"seq": 1')
    assert json.loads(spaced) == json.loads(line)
    assert _code(spaced) == "bad_signature"


def test_a_line_with_keys_reordered_but_the_same_json_meaning_is_refused() -> None:
    line = seal({"a": 1, "b": 2}, SIGNER, RECORD_DOMAIN)
    reordered = line.replace(b'"a":1,"b":2', b'"b":2,"a":1')
    assert json.loads(reordered) == json.loads(line)
    assert _code(reordered) == "bad_signature"


def test_a_signature_by_a_key_not_trusted_is_an_unknown_kid() -> None:
    assert _code(seal(BODY, OTHER_SIGNER, RECORD_DOMAIN)) == "unknown_kid"


def test_a_foreign_key_claiming_a_trusted_kid_is_a_bad_signature() -> None:
    forged = sign_raw(canonicalize({**BODY, "kid": SIGNER.kid}), signer=OTHER_SIGNER)
    assert _code(forged) == "bad_signature"


def test_a_record_signature_does_not_verify_as_a_checkpoint_signature() -> None:
    assert _code(seal(BODY, SIGNER, RECORD_DOMAIN), CHECKPOINT_DOMAIN) == "bad_signature"


def test_correctly_signed_but_non_canonical_bytes_are_reported_as_not_canonical() -> None:
    signed = b'{"kid":"' + SIGNER.kid.encode() + b'", "v":1}'
    assert _code(sign_raw(signed)) == "not_canonical"


def test_correctly_signed_bytes_with_a_float_are_reported_as_not_canonical() -> None:
    signed = b'{"kid":"' + SIGNER.kid.encode() + b'","n":1.5}'
    assert _code(sign_raw(signed)) == "not_canonical"


def test_correctly_signed_bytes_repeating_a_key_are_reported_as_duplicate_key() -> None:
    signed = b'{"kid":"' + SIGNER.kid.encode() + b'","v":1,"v":2}'
    assert _code(sign_raw(signed)) == "duplicate_key"


def test_correctly_signed_bytes_carrying_sig_inside_are_refused() -> None:
    signed = canonicalize({"kid": SIGNER.kid, "sig": "inner"})
    assert _code(sign_raw(signed)) == "invalid_field"


def test_chain_hash_is_domain_separated_sha256_of_the_full_line() -> None:
    line = seal(BODY, SIGNER, RECORD_DOMAIN)
    expected = hashlib.sha256(b"grantline/chain/v1\x00" + line).hexdigest()
    assert chain_hash(line) == "sha256:" + expected
    assert chain_hash(line) != "sha256:" + hashlib.sha256(line).hexdigest()


def test_genesis_is_sha256_prefix_and_64_zeros() -> None:
    assert GENESIS == "sha256:" + "0" * 64


def test_the_signature_in_a_line_is_64_bytes() -> None:
    assert len(b64url_decode(seal(BODY, SIGNER, RECORD_DOMAIN)[-88:-2])) == 64
