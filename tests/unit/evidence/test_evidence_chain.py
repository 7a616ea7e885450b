"""The hash chain: sealing records onto the head, and the record fields a verifier checks."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from evidence_support import KEYS, SIGNER, T0, records

from grantline.domain.errors import IntegrityError
from grantline.domain.models import Event
from grantline.evidence.chain import ChainHead, check_record_fields, seal_next
from grantline.evidence.record import GENESIS, RECORD_DOMAIN, chain_hash, check_signed, read_line


def _seal(head: ChainHead, **overrides: Any) -> tuple[bytes, ChainHead]:
    arguments: dict[str, Any] = {
        "request_id": "req-1",
        "event": Event.REQUESTED,
        "at": T0,
        "data": {"k": "v"},
        "signer": SIGNER,
    }
    return seal_next(head, **{**arguments, **overrides})


def test_the_genesis_head_is_seq_0_with_the_genesis_hash() -> None:
    assert ChainHead.genesis() == ChainHead(0, GENESIS)


def test_the_first_record_has_seq_1_and_prev_genesis_and_all_required_fields() -> None:
    line, head = _seal(ChainHead.genesis())
    body = json.loads(line)
    assert body == {
        "v": 1,
        "seq": 1,
        "prev": GENESIS,
        "request_id": "req-1",
        "event": "requested",
        "at": "2026-11-23T10:00:00.123Z",
        "kid": SIGNER.kid,
        "data": {"k": "v"},
        "sig": body["sig"],
    }
    assert head == ChainHead(1, chain_hash(line))


def test_each_record_points_at_the_chain_hash_of_the_line_before() -> None:
    lines, head = records()
    for before, after in itertools.pairwise(lines):
        assert json.loads(after)["prev"] == chain_hash(before)
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert head == ChainHead(len(lines), chain_hash(lines[-1]))


def test_sealed_records_verify_and_have_valid_fields() -> None:
    for line in records()[0]:
        signed = read_line(line)
        check_signed(signed, KEYS, RECORD_DOMAIN)
        check_record_fields(signed.body)


def test_at_is_written_in_utc_with_milliseconds_whatever_the_zone_given() -> None:
    paris = T0.astimezone(timezone(timedelta(hours=1)))
    assert json.loads(_seal(ChainHead.genesis(), at=paris)[0])["at"] == "2026-11-23T10:00:00.123Z"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        _seal(ChainHead.genesis(), at=datetime(2026, 11, 23))


def test_extra_top_level_fields_are_sealed_beside_the_reserved_ones() -> None:
    line, _ = _seal(ChainHead.genesis(), extra={"break_glass": True})
    assert json.loads(line)["break_glass"] is True


@pytest.mark.parametrize("field", ["seq", "prev", "kid", "sig", "v"])
def test_extra_fields_may_not_replace_a_reserved_field(field: str) -> None:
    with pytest.raises(IntegrityError, match="may not replace"):
        _seal(ChainHead.genesis(), extra={field: 1})


def test_data_with_a_float_is_refused_before_anything_is_signed() -> None:
    with pytest.raises(IntegrityError, match="float"):
        _seal(ChainHead.genesis(), data={"latency": 0.25})


def _valid_body() -> dict[str, Any]:
    return dict(read_line(_seal(ChainHead.genesis())[0]).body)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("v", 2),
        ("v", True),
        ("seq", 0),
        ("seq", "1"),
        ("seq", True),
        ("prev", "sha256:" + "0" * 63),
        ("prev", "SHA256:" + "0" * 64),
        ("request_id", 7),
        ("event", "checkpoint"),
        ("event", None),
        ("at", "2026-11-23T10:00:00Z"),
        ("at", "2026-11-23T10:00:00.123+00:00"),
        ("kid", 1),
        ("data", []),
    ],
)
def test_a_record_field_of_the_wrong_form_is_an_invalid_field(field: str, value: object) -> None:
    body = {**_valid_body(), field: value}
    with pytest.raises(IntegrityError, match=repr(field)) as caught:
        check_record_fields(body)
    assert caught.value.code == "invalid_field"


@pytest.mark.parametrize("field", ["v", "seq", "prev", "request_id", "event", "at", "kid", "data"])
def test_a_missing_record_field_is_an_invalid_field(field: str) -> None:
    body = _valid_body()
    del body[field]
    with pytest.raises(IntegrityError, match=repr(field)):
        check_record_fields(body)


def test_record_times_from_format_time_are_accepted_across_the_day() -> None:
    for hours in (0, 13, 23):
        moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hours, microseconds=999_999)
        check_record_fields(read_line(_seal(ChainHead.genesis(), at=moment)[0]).body)
