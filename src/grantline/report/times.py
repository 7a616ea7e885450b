"""Record times as whole milliseconds since the epoch, and back (exact integer arithmetic:
a float timestamp would round some milliseconds down)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from grantline.domain.models import format_time, parse_time

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def millis_of(moment: datetime) -> int:
    return (moment - _EPOCH) // _MILLISECOND


def millis(value: object) -> int | None:
    """A record time (RFC 3339) in milliseconds, or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return millis_of(parse_time(value))
    except ValueError:
        return None


def iso(at_ms: int) -> str:
    """Milliseconds as a record time."""
    return format_time(_EPOCH + at_ms * _MILLISECOND)
