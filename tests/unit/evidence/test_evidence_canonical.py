"""RFC 8785 canonical form, the strict JSON reader and base64url, with vectors and fuzzing."""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from grantline.domain.errors import IntegrityError
from grantline.evidence.canonical import (
    MAX_SAFE_INTEGER,
    b64url_decode,
    b64url_encode,
    canonicalize,
    parse_json,
)


class Colour(enum.StrEnum):
    RED = "red"


def test_keys_are_sorted_by_utf16_code_units_as_rfc8785_requires() -> None:
    # RFC 8785 section 3.2.3's sorting example: U+1F600 (surrogates D83D DE00) sorts before
    # U+FB33, although its code point is larger.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonicalize(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_output_has_no_whitespace_and_nested_objects_are_sorted() -> None:
    assert canonicalize({"b": [1, {"d": None, "c": True}], "a": "x"}) == (
        b'{"a":"x","b":[1,{"c":true,"d":null}]}'
    )


def test_non_ascii_is_written_as_utf8_and_only_controls_quote_and_backslash_are_escaped() -> None:
    value = '\u00e9\u2028\U0001f600"\\\n\t\x01\x7f/'
    assert canonicalize(value) == '"\u00e9\u2028\U0001f600\\"\\\\\\n\\t\\u0001\x7f/"'.encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, b"0"), (-1, b"-1"), (MAX_SAFE_INTEGER, b"9007199254740991"),
     (-MAX_SAFE_INTEGER, b"-9007199254740991")],
)  # fmt: skip
def test_integers_are_written_in_plain_decimal(value: int, expected: bytes) -> None:
    assert canonicalize(value) == expected


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 10**30])
def test_integers_beyond_double_precision_are_refused(value: int) -> None:
    with pytest.raises(IntegrityError, match="outside"):
        canonicalize({"n": value})


@pytest.mark.parametrize("value", [1.0, 0.5, math.nan, math.inf, -0.0])
def test_floats_are_refused_even_whole_ones(value: float) -> None:
    with pytest.raises(IntegrityError, match="float") as caught:
        canonicalize({"data": [value]})
    assert caught.value.code == "not_canonicalizable"


@pytest.mark.parametrize("value", [{1: "x"}, {None: "x"}, {("a",): 1}])
def test_non_string_keys_are_refused(value: dict[Any, str]) -> None:
    with pytest.raises(IntegrityError, match="key"):
        canonicalize(value)


@pytest.mark.parametrize("value", [datetime(2026, 1, 1, tzinfo=UTC), b"bytes", {1, 2}, object()])
def test_values_without_a_json_form_are_refused(value: object) -> None:
    with pytest.raises(IntegrityError, match="not a JSON value"):
        canonicalize({"x": value})


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(IntegrityError):
        canonicalize({"x": "\ud800"})


def test_nesting_too_deep_for_the_stack_is_refused_not_crashed() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(IntegrityError, match="deep"):
        canonicalize(deep)


def test_mappings_tuples_and_str_enums_become_plain_json() -> None:
    value = MappingProxyType({"b": (1, 2), "a": OrderedDict(c=Colour.RED)})
    assert canonicalize(value) == b'{"a":{"c":"red"},"b":[1,2]}'


def test_parse_json_reports_a_repeated_key_anywhere() -> None:
    assert parse_json(b'{"a":1,"b":{"c":1}}') == ({"a": 1, "b": {"c": 1}}, False)
    assert parse_json(b'{"a":1,"b":{"c":1,"c":2}}')[1] is True


@pytest.mark.parametrize(
    "data",
    [b'{"a":NaN}', b'{"a":Infinity}', b'{"a":1', b"\xff{}", '{"a":1}'.encode("utf-16"),
     b"\xef\xbb\xbf{}", b"[" * 100_000, b"1" * 5000],
)  # fmt: skip
def test_parse_json_refuses_what_is_not_strict_utf8_json(data: bytes) -> None:
    with pytest.raises(IntegrityError) as caught:
        parse_json(data)
    assert caught.value.code == "malformed_line"


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\xff\xfe", bytes(range(64))])
def test_base64url_roundtrips_without_padding(raw: bytes) -> None:
    text = b64url_encode(raw)
    assert "=" not in text
    assert b64url_decode(text) == raw


@pytest.mark.parametrize("text", ["AA==", "AB", "A+/_", "A A", "A", "é"])
def test_base64url_refuses_padding_other_alphabets_and_non_canonical_spellings(text: str) -> None:
    # "AB" decodes to the same byte as "AA": accepting both would give one signature two lines.
    with pytest.raises(IntegrityError):
        b64url_decode(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
float_free_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(st.characters(codec="utf-8")),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(codec="utf-8")), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(json_values)
def test_canonicalize_returns_bytes_or_raises_only_integrity_error(value: object) -> None:
    try:
        result = canonicalize(value)
    except IntegrityError:
        return
    assert isinstance(result, bytes)


@settings(max_examples=300)
@given(float_free_values)
def test_canonical_bytes_match_rfc8785_and_reparse_to_the_same_canonical_bytes(value: Any) -> None:
    canonical = canonicalize(value)
    assert canonical == rfc8785.dumps(value)
    parsed, duplicates = parse_json(canonical)
    assert not duplicates
    assert canonicalize(parsed) == canonical


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(_JSON_VALUES)
def test_canonical_bytes_equal_the_rfc8785_reference_for_every_float_free_value(
    value: object,
) -> None:
    try:
        reference = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(IntegrityError):
            canonicalize(value)
        return
    assert canonicalize(value) == reference
