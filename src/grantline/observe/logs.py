"""Log lines of ``serve``: JSON (one object a line) or text, each with the ids of the HTTP
request it was logged in, and never a secret. uvicorn's own lines go the same way."""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import IO, Any, Literal

from grantline.observe import context
from grantline.observe.redaction import may_hold_secret, redact

Format = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_ID_FIELDS = ("request_id", "correlation_id")
# What every record has; anything else on a record was passed as ``extra`` and is logged.
_STANDARD = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
        "color_message",  # uvicorn's message again, with terminal colours
        *_ID_FIELDS,
    }
)
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


class RequestIdsFilter(logging.Filter):
    """Stamps each record with the ids of the HTTP request it is logged in, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = context.current()
        if ids is not None:
            record.correlation_id = ids.correlation_id
            if ids.request_id is not None and getattr(record, "request_id", None) is None:
                record.request_id = ids.request_id
        return True


class RedactSecrets(logging.Filter):
    """Replaces whatever looks like a token, a key or a password in the message and its
    arguments (exceptions and extras are redacted by the formatters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format is for logging to report, not us
            return True
        if not may_hold_secret(message):
            return True
        if not (isinstance(record.args, tuple) and record.args and _redact_args(record)):
            record.msg, record.args = redact(message), None
        return True


def _redact_args(record: logging.LogRecord) -> bool:
    """Redact the format and each argument apart, which keeps the arguments for formatters
    that read them (uvicorn's access fields); False when the line is not clean that way."""
    assert isinstance(record.args, tuple)  # noqa: S101 — the caller checked
    msg = redact(str(record.msg))
    args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
    try:
        formatted = msg % args
    except (TypeError, ValueError):
        return False
    if redact(formatted) != formatted:
        return False
    record.msg, record.args = msg, args
    return True


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id"?, "correlation_id"?, ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _ID_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            entry.update(zip(_ACCESS_FIELDS, record.args, strict=False))
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = _plain(value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, then ``request_id=… correlation_id=…`` when logged in a request."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [f"{n}={v}" for n in _ID_FIELDS if (v := getattr(record, n, None)) is not None]
        if not ids:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{' '.join(ids)}]{newline}{rest}"

    def formatException(self, ei: Any) -> str:  # noqa: N802 — logging's name
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 — logging's name
        return redact(super().formatStack(stack_info))


def resolve_format(setting: str, stream: IO[str]) -> Format:
    """``json`` or ``text``; ``auto`` is text on a terminal, JSON anywhere else."""
    if setting in ("json", "text"):
        return "json" if setting == "json" else "text"
    return "text" if stream.isatty() else "json"


def logging_config(log_format: Format, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``serve``, which uvicorn applies too (in every
    worker): one handler on stderr, our formatter, ids and redaction; uvicorn's loggers,
    its access log included, hand their records to it."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_ids": {"()": f"{__name__}.RequestIdsFilter"},
            "redact": {"()": f"{__name__}.RedactSecrets"},
        },
        "formatters": {"grantline": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "grantline": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "grantline",
                "filters": ["request_ids", "redact"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["grantline"]},
        "loggers": {
            name: {"level": level.upper(), "handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure(log_format: Format, level: str) -> dict[str, Any]:
    """Apply :func:`logging_config` now (for the lines before uvicorn starts); return it
    for uvicorn's ``log_config``."""
    config = logging_config(log_format, level)
    logging.addLevelName(5, "TRACE")  # uvicorn's level, which it registers only later
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    return config


def _iso(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(value if isinstance(value, str) else str(value))
