"""Log lines: one JSON object each, the request's ids on each, no token ever."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from grantline.observe import context
from grantline.observe.context import RequestIds
from grantline.observe.logs import (
    JsonFormatter,
    RedactSecrets,
    RequestIdsFilter,
    TextFormatter,
    logging_config,
    resolve_format,
)
from grantline.observe.redaction import REDACTED, redact

JWT = (
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy9jaS1ydW5uZXIifQ"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmUtNjQtYnl0ZXMtbG9uZy1hbmQtbW9yZQ"
)
VAULT = "hvs.CAESIJ3kX9aP0m1Zb2xL7qQvT8rWcYhUeNfGdKs4oBj6tA5VGh4KHGh2cy5"
LEGACY_VAULT = "s.Qf1s5zigZ4OX6akYjQXJC1jY"
PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAbc\n-----END PRIVATE KEY-----"


class Captured:
    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdsFilter())
        handler.addFilter(RedactSecrets())
        self.handler = handler
        self.logger = logging.getLogger(f"grantline.test.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(handler)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def entries(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    found = Captured(JsonFormatter())
    yield found
    found.logger.removeHandler(found.handler)


@pytest.mark.parametrize(
    "secret",
    [
        JWT,
        f"Bearer {JWT}",
        "Bearer opaque-access-token-0123456789",
        VAULT,
        LEGACY_VAULT,
        PEM,
    ],
)
def test_a_token_in_a_message_is_redacted(captured: Captured, secret: str) -> None:
    captured.logger.info("caller sent %s while asking", secret)
    captured.logger.warning(f"inline: {secret} end")

    text = captured.stream.getvalue()
    for token in (JWT, VAULT, LEGACY_VAULT, "opaque-access-token-0123456789", "MC4CAQAwBQYDK2Vw"):
        assert token not in text
    for entry in captured.entries():
        assert REDACTED in str(entry["message"])


def test_a_secret_field_in_a_dict_argument_is_redacted(captured: Captured) -> None:
    credential = {"username": "v-token-cache-read", "password": "A1a-9sd8f7g6h5j4k3"}
    captured.logger.info("minted %s", credential)

    [entry] = captured.entries()
    assert "A1a-9sd8f7g6h5j4k3" not in json.dumps(entry)
    assert "v-token-cache-read" in str(entry["message"])


def test_a_token_in_an_exception_or_extra_field_is_redacted(captured: Captured) -> None:
    try:
        _refuse(JWT)
    except ValueError:
        captured.logger.exception("failed", extra={"header": f"Authorization: Bearer {JWT}"})

    [entry] = captured.entries()
    assert JWT not in json.dumps(entry)
    assert "ValueError: refused [REDACTED]" in str(entry["exception"])
    assert entry["header"] == f"Authorization: Bearer {REDACTED}"


def _refuse(token: str) -> None:
    raise ValueError(f"refused {token}")


def test_ordinary_words_are_left_alone() -> None:
    text = "Bearer token required; basic checks passed; tests.status ok; s.short"
    assert redact(text) == text


def test_a_json_line_carries_time_level_logger_and_message(captured: Captured) -> None:
    captured.logger.warning("policy reloaded: %s", "sha256:abc")

    [entry] = captured.entries()
    assert entry["level"] == "WARNING"
    assert entry["logger"] == captured.logger.name
    assert entry["message"] == "policy reloaded: sha256:abc"
    assert str(entry["time"]).endswith("Z")
    assert "request_id" not in entry
    assert "correlation_id" not in entry


def test_lines_logged_in_a_request_carry_its_ids(captured: Captured) -> None:
    ids = RequestIds("corr-1")
    token = context.enter(ids)
    try:
        captured.logger.info("before the broker knows the request")
        context.note_request_id("0190-req")
        captured.logger.info("after")
    finally:
        context.leave(token)
    captured.logger.info("outside")

    first, second, outside = captured.entries()
    assert first["correlation_id"] == "corr-1"
    assert "request_id" not in first
    assert second["request_id"] == "0190-req"
    assert second["correlation_id"] == "corr-1"
    assert "correlation_id" not in outside


def test_a_request_id_is_claimed_only_while_the_broker_mints_one() -> None:
    ids = RequestIds("corr-2")
    token = context.enter(ids)
    try:
        context.claim_request_id("not-this-one")
        assert ids.request_id is None
        ids.claimable = True
        context.claim_request_id("minted")
        context.claim_request_id("a-later-one")
        assert ids.request_id == "minted"
    finally:
        context.leave(token)
    assert context.current() is None
    assert ids.active is False


def test_uvicorn_access_lines_keep_their_fields(captured: Captured) -> None:
    access = logging.getLogger("uvicorn.access")
    access.addHandler(captured.handler)
    access.propagate = False
    try:
        access.warning(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5",
            "GET",
            f"/v1/records?subject={JWT}",
            "1.1",
            401,
        )
    finally:
        access.removeHandler(captured.handler)
        access.propagate = True

    [entry] = captured.entries()
    assert entry["method"] == "GET"
    assert entry["status"] == 401
    assert entry["path"] == f"/v1/records?subject={REDACTED}"
    assert JWT not in json.dumps(entry)


def test_text_lines_end_with_the_ids() -> None:
    captured = Captured(TextFormatter())
    token = context.enter(RequestIds("corr-3", "req-3"))
    try:
        captured.logger.info("hello %s", JWT)
    finally:
        context.leave(token)
        captured.logger.removeHandler(captured.handler)

    [line] = captured.lines()
    assert line.endswith(f"hello {REDACTED} [request_id=req-3 correlation_id=corr-3]")


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    assert resolve_format("auto", _Stream(tty=True)) == "text"
    assert resolve_format("auto", _Stream(tty=False)) == "json"
    assert resolve_format("json", _Stream(tty=True)) == "json"
    assert resolve_format("text", _Stream(tty=False)) == "text"


def test_uvicorn_loggers_hand_their_lines_to_the_one_handler() -> None:
    config = logging_config("json", "info")

    assert config["disable_existing_loggers"] is False
    assert config["root"] == {"level": "INFO", "handlers": ["grantline"]}
    assert config["handlers"]["grantline"]["filters"] == ["request_ids", "redact"]
    assert config["formatters"]["grantline"]["()"].endswith("JsonFormatter")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert config["loggers"][name]["handlers"] == []
        assert config["loggers"][name]["propagate"] is True
    assert logging_config("text", "debug")["formatters"]["grantline"]["()"].endswith(
        "TextFormatter"
    )
