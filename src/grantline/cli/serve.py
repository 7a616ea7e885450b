"""``grantline serve``: run the broker, starting the embedded Valkey when no Redis is given."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import uvicorn

from grantline import settings_rules
from grantline.api.connection_limits import guarded_protocol
from grantline.cli import exit_codes
from grantline.config import Settings, dev_issuer, log_signer, token_signer
from grantline.domain.errors import ConfigError
from grantline.issuers.vault.devserver import DevOpenBao, bao_binary, prepare_for_grantline
from grantline.observe import logs
from grantline.store.valkey import EmbeddedValkey

log = logging.getLogger(__name__)


def register(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run the broker")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8400)")
    parser.add_argument("--policies", type=Path, help="policy directory (default ./policies)")
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    overrides = {
        key: value
        for key, value in (
            ("host", args.host),
            ("port", args.port),
            ("policies", args.policies),
            ("workers", args.workers),
        )
        if value is not None
    }
    settings = Settings(**overrides)  # raises ConfigError naming a wrong setting
    problems = settings_rules.serving_problems(settings)
    if problems:
        raise ConfigError("; ".join(problems))
    logs.configure(_log_format(settings), settings.log_level)
    _prepare_keys(settings)
    valkey = None
    if not settings.redis_url:
        valkey = EmbeddedValkey(settings.home.resolve() / "valkey")
        settings = settings.model_copy(update={"redis_url": valkey.start()})
        log.info("embedded Valkey started under %s", valkey.directory)
    bao = None
    try:
        if not settings.vault_addr and settings.vault_dev and bao_binary() is not None:
            bao, settings = _start_dev_openbao(settings)
        _serve(settings)
    finally:
        if bao is not None:
            bao.stop()
        if valkey is not None:
            valkey.stop()
    return exit_codes.OK


def _start_dev_openbao(settings: Settings) -> tuple[DevOpenBao, Settings]:
    """A throwaway in-memory OpenBao, so that Vault credentials work with no set-up."""
    home = settings.home.resolve() / "openbao"
    # Its file audit device shows the uses of Vault grant tokens (docs/usage.md).
    audit_log = settings.vault_audit_log or home / "audit.log"
    bao = DevOpenBao(home / "bao.log", audit_log=audit_log)
    try:
        addr = bao.start()
        broker_token = prepare_for_grantline(bao.root())
    except Exception as exc:
        bao.stop()
        raise ConfigError(f"the local OpenBao dev server could not be prepared: {exc}") from exc
    log.info(
        "local OpenBao dev server at %s (in memory: its credentials end with it; set "
        "GRANTLINE_VAULT_ADDR for a real one, GRANTLINE_VAULT_DEV=false for none)",
        addr,
    )
    update = {"vault_addr": addr, "vault_token": broker_token, "vault_audit_log": audit_log}
    return bao, settings.model_copy(update=update)


def _log_format(settings: Settings) -> logs.Format:
    # Decided here, where stderr is the terminal or not, and handed to the workers as is.
    return logs.resolve_format(settings.log_format, sys.stderr)


def _prepare_keys(settings: Settings) -> None:
    # Created once here, before any worker starts, so workers only ever read them.
    log_signer(settings)
    token_signer(settings)
    if settings.dev_issuer:
        dev_issuer(settings)


def _serve(settings: Settings) -> None:
    log.info("serving on %s", settings.issuer_url)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        # The same handler, formatter, ids and redaction, in every worker.
        "log_config": logs.logging_config(_log_format(settings), settings.log_level),
        "timeout_keep_alive": 5,
        "server_header": False,
        # A deadline and a size cap on each request's head (slowloris; uvicorn has neither).
        "http": guarded_protocol(settings.header_timeout_seconds, settings.max_header_bytes),
    }
    if settings.workers > 1:
        # Workers are separate processes that read their settings from the environment.
        os.environ.update(_environment(settings))
        uvicorn.run(
            "grantline.api.app:create_app", factory=True, workers=settings.workers, **common
        )
        return
    from grantline.api.app import create_app  # noqa: PLC0415 — the app is built after Valkey starts

    uvicorn.run(create_app(settings), **common)


def _environment(settings: Settings) -> dict[str, str]:
    values = settings.model_dump(exclude_none=True)
    return {f"GRANTLINE_{key.upper()}": str(value) for key, value in values.items()}
