"""The rules a setting's value must follow, and the message that names a broken one.

``config.Settings`` applies these at start-up, so that a wrong value stops ``grantline serve``
with a message naming the environment variable (``GRANTLINE_PORT must be ...``) instead of
failing later, or never. Messages never quote a URL or secret: a Redis URL carries its
password, a webhook URL may carry a token.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import ValidationError

ENV_PREFIX = "GRANTLINE_"
HTTP_SCHEMES = ("http", "https")
STORE_SCHEMES = ("redis", "rediss", "unix")
# uvicorn's level names (it registers "trace" with the logging module).
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def checked_url(value: str | None, schemes: Iterable[str]) -> str | None:
    """``value`` when it is an absolute URL of one of ``schemes`` naming a host.

    ``unix://`` URLs name a socket path instead of a host. Raises ValueError with a message
    that does not quote the URL.
    """
    if value is None:
        return None
    allowed = tuple(schemes)
    shapes = [f"{scheme}://" for scheme in allowed]
    described = " or ".join(filter(None, [", ".join(shapes[:-1]), shapes[-1]]))
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 — parsing the port is the check
    except ValueError:
        raise ValueError(f"must be a URL starting with {described}; it does not parse") from None
    if parts.scheme not in allowed:
        shown = f"'{parts.scheme}://'" if parts.scheme else "no scheme"
        raise ValueError(f"must be a URL starting with {described}, not one with {shown}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("must name a socket path (unix:///path/to/redis.sock)")
    elif not parts.hostname:
        raise ValueError(f"must be an absolute URL with a host ({described})")
    return value


def checked_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"must be a TCP port between 1 and 65535, not {value}")
    return value


def checked_log_level(value: str) -> str:
    level = value.strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return level


def checked_positive(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"must be a number above 0, not {value}")
    return value


def checked_not_negative(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"must be 0 or more, not {value}")
    return value


def checked_host(value: str) -> str:
    if not value.strip():
        raise ValueError("must name an address to listen on (0.0.0.0, 127.0.0.1, ...)")
    return value


def checked_origin(value: str | None) -> str | None:
    if value is not None and (not value or any(c.isspace() for c in value)):
        raise ValueError("must be one word with no spaces (a checkpoint note's first line)")
    return value


def sentinel_addresses(value: str) -> list[tuple[str, int]]:
    """The ``host:port`` entries of a comma-separated Sentinel list (IPv6 in brackets).

    Raises ValueError naming the first entry that is not one.
    """
    addresses = []
    for entry in (part.strip() for part in value.split(",")):
        host, _, port = entry.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(
                f"must be a comma-separated list of host:port, and {entry!r} is not one"
            )
        addresses.append((host, int(port)))
    return addresses


def checked_sentinels(value: str | None) -> str | None:
    if value is not None:
        sentinel_addresses(value)
    return value


def checked_sentinel_service(value: str) -> str:
    # Sentinel's own rule for a master's name (sentinel.conf: "A-z 0-9 and .-_").
    if not value or not all(c.isascii() and (c.isalnum() or c in ".-_") for c in value):
        raise ValueError("must be the name of `sentinel monitor` (letters, digits, '.-_')")
    return value


def _url_of(schemes: tuple[str, ...]) -> Callable[[str | None], str | None]:
    return lambda value: checked_url(value, schemes)


# The rule of each setting that has one, by field name (config.Settings applies them).
FIELD_RULES: dict[str, Callable[[Any], Any]] = {
    "port": checked_port,
    "host": checked_host,
    "log_level": checked_log_level,
    "log_origin": checked_origin,
    "redis_url": _url_of(STORE_SCHEMES),
    "redis_sentinels": checked_sentinels,
    "redis_sentinel_service": checked_sentinel_service,
    **dict.fromkeys(
        ("vault_addr", "public_url", "webhook_url", "opa_url", "otel_endpoint"),
        _url_of(HTTP_SCHEMES),
    ),
    **dict.fromkeys(
        (
            "workers",
            "max_body_bytes",
            "store_timeout_seconds",
            "vault_timeout_seconds",
            "policy_reload_seconds",
        ),
        checked_positive,
    ),
    **dict.fromkeys(
        ("reconcile_seconds", "reconcile_issue_delay_seconds", "reconcile_grace_seconds"),
        checked_not_negative,
    ),
}


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


def describe(exc: ValidationError) -> str:
    """One line per broken setting, each naming its environment variable, never its value."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        context = error.get("ctx") or {}
        own = error["type"] == "value_error" and "error" in context
        message = str(context["error"]) if own else error["msg"]
        if not error["loc"]:
            lines.append(message)  # a rule over several settings names them itself
            continue
        field = str(error["loc"][0])
        # A field read under an alias names its variable itself (OTEL_EXPORTER_OTLP_ENDPOINT).
        name = field if field.isupper() else env_name(field)
        lines.append(f"{name} {message}" if own else f"{name}: {message}")
    return "; ".join(lines)


class SettingsView(Protocol):
    """The settings the rules over several settings read (``config.Settings`` has them)."""

    @property
    def host(self) -> str: ...
    @property
    def dev_issuer(self) -> bool: ...
    @property
    def allow_dev_issuer_on_network(self) -> bool: ...
    @property
    def webhook_url(self) -> str | None: ...
    @property
    def webhook_secret(self) -> str | None: ...
    @property
    def vault_addr(self) -> str | None: ...
    @property
    def vault_token(self) -> str | None: ...
    @property
    def vault_role_id(self) -> str | None: ...
    @property
    def vault_secret_id(self) -> str | None: ...
    @property
    def vault_dev(self) -> bool: ...
    @property
    def signer(self) -> str: ...
    @property
    def redis_url(self) -> str | None: ...
    @property
    def embedded_store(self) -> bool: ...
    @property
    def trusted_issuers(self) -> object | None: ...


def cross_field_problems(settings: SettingsView) -> list[str]:
    """What is wrong between settings that are each fine on their own."""
    problems = []
    if (
        settings.dev_issuer
        and not is_loopback(settings.host)
        and not settings.allow_dev_issuer_on_network
    ):
        # Anyone who can read GRANTLINE_HOME can mint any identity with the dev issuer: on a
        # network address that is everyone with a shell on the host or the image.
        problems.append(
            "GRANTLINE_DEV_ISSUER=true trusts a key kept beside the broker, which is for a "
            f"laptop; GRANTLINE_HOST={settings.host} listens beyond loopback. Set "
            "GRANTLINE_DEV_ISSUER=false and GRANTLINE_TRUSTED_ISSUERS, or "
            "GRANTLINE_ALLOW_DEV_ISSUER_ON_NETWORK=true for a throwaway set-up"
        )
    if settings.webhook_url and not settings.webhook_secret:
        problems.append(
            "GRANTLINE_WEBHOOK_SECRET must be set when GRANTLINE_WEBHOOK_URL is: receivers "
            "cannot tell unsigned events from forged ones"
        )
    problems += _vault_problems(settings)
    return problems


def _vault_problems(settings: SettingsView) -> list[str]:
    problems = []
    if bool(settings.vault_role_id) != bool(settings.vault_secret_id):
        problems.append(
            "GRANTLINE_VAULT_ROLE_ID and GRANTLINE_VAULT_SECRET_ID must be set together (AppRole)"
        )
    approle = settings.vault_role_id and settings.vault_secret_id
    if settings.vault_addr and not (settings.vault_token or approle):
        problems.append(
            "GRANTLINE_VAULT_TOKEN, or GRANTLINE_VAULT_ROLE_ID and GRANTLINE_VAULT_SECRET_ID, "
            "must be set when GRANTLINE_VAULT_ADDR is"
        )
    if settings.signer == "transit" and not settings.vault_addr and not settings.vault_dev:
        problems.append("GRANTLINE_SIGNER=transit needs GRANTLINE_VAULT_ADDR")
    return problems


def serving_problems(settings: SettingsView) -> list[str]:
    """What stops ``serve`` (only) from running: other commands read the same settings."""
    problems = []
    if not settings.redis_url and not settings.embedded_store:
        problems.append(
            "GRANTLINE_REDIS_URL must be set when GRANTLINE_EMBEDDED_STORE=false "
            "(the image's default: the store is an external Redis or Valkey)"
        )
    if not settings.dev_issuer and settings.trusted_issuers is None:
        problems.append(
            "GRANTLINE_TRUSTED_ISSUERS must be set when GRANTLINE_DEV_ISSUER=false: "
            "with no trusted identity issuer every request would be refused"
        )
    return problems
