"""Canonical encodings of evidence: RFC 8785 (JCS) JSON, a strict JSON reader, unpadded base64url.

Records hold no floats, so every conforming JCS implementation writes them identically.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any, NoReturn

import rfc8785

from grantline.domain.errors import IntegrityError

# I-JSON (RFC 7493) integers: exactly representable as IEEE 754 doubles, as JCS requires.
MAX_SAFE_INTEGER = 2**53 - 1

_B64URL = re.compile(rb"[A-Za-z0-9_-]*")


def canonicalize(obj: object) -> bytes:
    """The RFC 8785 bytes of a JSON value built from dict, list, str, int, bool and None.

    Raises :class:`IntegrityError` (code ``not_canonicalizable``) for anything else: floats
    (records hold none, so cross-language canonicalisation stays trivial), integers beyond
    ±(2**53 - 1), non-string keys, strings that are not valid Unicode, other types.
    """
    try:
        plain = _plain(obj)
        if _ascii_keys(plain):
            return _fast_dumps(plain)
        return rfc8785.dumps(plain)
    except RecursionError:
        _refuse("the value is nested too deeply")
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:  # a lone surrogate
        _refuse(str(exc), exc)


def canonicalize_parsed(value: Any) -> bytes:
    """:func:`canonicalize` for a value :func:`parse_json` returned, without copying it.

    Such a value is made of exact builtin types already, so one walk checks what JCS needs
    (no float, integers within ±(2**53 - 1)) and whether every key is ASCII; the verifier
    runs this once per record. Raises :class:`IntegrityError` as :func:`canonicalize` does.
    """
    try:
        if _checked(value):
            return _fast_dumps(value)
        return rfc8785.dumps(value)
    except RecursionError:
        _refuse("the value is nested too deeply")
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
        _refuse(str(exc), exc)


def _checked(value: Any) -> bool:
    """Refuse floats and unsafe integers; whether every object key is ASCII."""
    kind = type(value)
    if kind is dict:
        ascii_keys = True
        for key, item in value.items():
            ascii_keys = _checked(item) and ascii_keys and key.isascii()
        return ascii_keys
    if kind is list:
        return all([_checked(item) for item in value])
    if kind is int:
        _plain_int(value)
    elif kind is float:
        _refuse(f"float {value!r}: records hold integers only")
    return True


def _fast_dumps(plain: Any) -> bytes:
    """The same bytes as RFC 8785 for float-free values whose object keys are all ASCII.

    For such values JCS and ``json.dumps`` agree: both escape exactly ``"``, ``\\``, and the
    C0 controls (``\\b \\f \\n \\r \\t`` short, others as lowercase ``\\u00xx``), and
    leave every other character as UTF-8; integers print alike; and sorting ASCII keys by
    UTF-16 code units (JCS) is sorting them by code points (Python). It is several times faster
    than the pure-Python ``rfc8785`` package, and this runs for every record on the request
    path; a property test holds the two to the same bytes.
    """
    return json.dumps(plain, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _ascii_keys(plain: Any) -> bool:
    if type(plain) is dict:
        return all(k.isascii() and _ascii_keys(v) for k, v in plain.items())
    if type(plain) is list:
        return all(_ascii_keys(item) for item in plain)
    return True


def _plain(obj: Any) -> Any:
    """A copy made of plain dict/list/str/int/bool/None, or a refusal naming what is wrong."""
    # Exact types first: this runs for every record on the request path.
    kind = type(obj)
    if kind is str or kind is bool or obj is None:
        return obj
    if kind is dict:
        return {_key(key): _plain(value) for key, value in obj.items()}
    if kind is list:
        return [_plain(item) for item in obj]
    if kind is int:
        return _plain_int(obj)
    return _plain_other(obj)


def _plain_int(obj: int) -> int:
    if not -MAX_SAFE_INTEGER <= obj <= MAX_SAFE_INTEGER:
        _refuse(f"integer {obj} is outside ±(2**53 - 1)")
    return int(obj)


def _plain_other(obj: object) -> Any:
    """Subclasses (a ``StrEnum`` member), other mappings and tuples made plain; the rest refused."""
    if isinstance(obj, str):
        return str.__str__(obj)  # the characters themselves, whatever a subclass's __str__ says
    if isinstance(obj, int):
        return _plain_int(obj)
    if isinstance(obj, float):
        _refuse(f"float {obj!r}: records hold integers only")
    if isinstance(obj, Mapping):
        return {_key(key): _plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(item) for item in obj]
    _refuse(f"a {type(obj).__name__} is not a JSON value")


def _key(key: object) -> str:
    if not isinstance(key, str):
        _refuse(f"object key {key!r} is not a string")
    return key


def _refuse(reason: str, cause: BaseException | None = None) -> NoReturn:
    raise IntegrityError(f"cannot canonicalise: {reason}", code="not_canonicalizable") from cause


def parse_json(data: bytes) -> tuple[Any, bool]:
    """Parse strict UTF-8 JSON; return the value and whether some object repeated a key.

    Raises :class:`IntegrityError` (code ``malformed_line``) on invalid UTF-8, invalid JSON,
    ``NaN``/``Infinity``, or nesting too deep to parse.
    """
    duplicates = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicates
        result = dict(items)
        duplicates = duplicates or len(result) != len(items)
        return result

    try:
        # Decode explicitly: json.loads(bytes) would also accept UTF-16 and UTF-32.
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeError are both
        raise IntegrityError(f"not valid JSON: {exc}", code="malformed_line") from exc
    return value, duplicates


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def is_json_int(value: object) -> bool:
    """True for a JSON integer as Python parses one: an ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def b64url_encode(raw: bytes) -> str:
    """Base64url without padding (RFC 4648 §5, as JWS uses it)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """Decode unpadded base64url, refusing any other spelling of the same bytes.

    Raises :class:`IntegrityError` (code ``malformed_line``): padding, foreign characters or
    non-zero spare bits would let one signature or key have several spellings.
    """
    data = text.encode("ascii", "replace") if isinstance(text, str) else text
    if not _B64URL.fullmatch(data):
        raise IntegrityError("not unpadded base64url", code="malformed_line")
    try:
        raw = base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except binascii.Error as exc:
        raise IntegrityError("not unpadded base64url", code="malformed_line") from exc
    if b64url_encode(raw).encode("ascii") != data:
        raise IntegrityError("not the canonical base64url spelling", code="malformed_line")
    return raw
