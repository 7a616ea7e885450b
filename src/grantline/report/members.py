"""Typed reads of record members: records are attacker-influenced, so every member is checked
for its type before it is used, and a wrong one reads as empty."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def items(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def text(value: object) -> str:
    return value if isinstance(value, str) else ""


def integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def name(value: object) -> str:
    """A string member that repeats across records (a subject, a role, a target), interned:
    the figures keep one per request, and a log repeats a few thousand names many times."""
    return sys.intern(text(value))
