"""How long and how hard the fault suites run: CI's scale by default, longer under ``make soak``.

``GRANTLINE_TEST_SCALE`` multiplies request counts and fault rounds (``make soak`` sets 10);
the properties asserted do not change with it.
"""

from __future__ import annotations

import os


def scale() -> float:
    raw = os.environ.get("GRANTLINE_TEST_SCALE", "1")
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"GRANTLINE_TEST_SCALE must be a number, not {raw!r}") from exc
    if value <= 0:
        raise ValueError("GRANTLINE_TEST_SCALE must be positive")
    return value


def scaled(count: int) -> int:
    """``count`` at CI's scale, times ``GRANTLINE_TEST_SCALE``; at least 1."""
    return max(1, round(count * scale()))
