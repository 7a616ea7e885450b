"""Checkpoints: signed statements of size and head, verified on parse."""

from __future__ import annotations

import json

import pytest
from evidence_support import KEYS, ORIGIN, OTHER_SIGNER, SIGNER, T0, checkpoint_over, records

from grantline.domain.errors import IntegrityError
from grantline.evidence.canonical import canonicalize
from grantline.evidence.chain import ChainHead
from grantline.evidence.checkpoint import Checkpoint, make_checkpoint, parse_checkpoint
from grantline.evidence.record import CHECKPOINT_DOMAIN, GENESIS, RECORD_DOMAIN, seal


def _code(line: bytes) -> str:
    with pytest.raises(IntegrityError) as caught:
        parse_checkpoint(line, KEYS)
    return caught.value.code


def test_a_checkpoint_states_the_size_and_head_of_the_chain() -> None:
    _, head = records()
    assert parse_checkpoint(checkpoint_over(head), KEYS) == Checkpoint(
        origin=ORIGIN, size=head.seq, head=head.hash, at="2026-11-23T11:00:00.123Z", kid=SIGNER.kid
    )


def test_a_checkpoint_of_an_empty_log_has_size_0_and_the_genesis_head() -> None:
    line = make_checkpoint(ChainHead.genesis(), origin=ORIGIN, at=T0, signer=SIGNER)
    assert json.loads(line) | {"sig": ""} == {
        "v": 1,
        "event": "checkpoint",
        "origin": ORIGIN,
        "size": 0,
        "head": GENESIS,
        "at": "2026-11-23T10:00:00.123Z",
        "kid": SIGNER.kid,
        "sig": "",
    }
    assert parse_checkpoint(line, KEYS).size == 0


def test_a_checkpoint_by_an_untrusted_key_is_refused() -> None:
    assert _code(checkpoint_over(ChainHead.genesis(), OTHER_SIGNER)) == "unknown_kid"


def test_a_checkpoint_body_signed_under_the_record_domain_is_refused() -> None:
    body = {"v": 1, "event": "checkpoint", "origin": ORIGIN, "size": 0, "head": GENESIS,
            "at": "2026-11-23T10:00:00.123Z"}  # fmt: skip
    assert _code(seal(body, SIGNER, RECORD_DOMAIN)) == "bad_signature"


def test_a_record_line_is_not_a_checkpoint() -> None:
    assert _code(records()[0][0]) == "invalid_field"


def test_a_changed_size_breaks_the_checkpoint_signature() -> None:
    line = make_checkpoint(ChainHead(3, GENESIS), origin=ORIGIN, at=T0, signer=SIGNER)
    assert _code(line.replace(b'"size":3', b'"size":2')) == "bad_signature"


@pytest.mark.parametrize(
    ("field", "value"),
    [("size", -1), ("size", "3"), ("head", "sha256:xyz"), ("origin", None), ("v", 0),
     ("at", "yesterday")],
)  # fmt: skip
def test_a_signed_checkpoint_with_a_wrong_field_is_refused(field: str, value: object) -> None:
    body = {"v": 1, "event": "checkpoint", "origin": ORIGIN, "size": 0, "head": GENESIS,
            "at": "2026-11-23T10:00:00.123Z", field: value}  # fmt: skip
    assert _code(seal(body, SIGNER, CHECKPOINT_DOMAIN)) == "invalid_field"


def test_a_malformed_checkpoint_line_is_refused() -> None:
    assert _code(canonicalize({"event": "checkpoint"})) == "malformed_line"
