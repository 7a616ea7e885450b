"""Settings (environment, prefix GRANTLINE_) and the composition root that wires the broker.

Only this module reads the environment. Everything else receives its settings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from grantline.broker import Broker
from grantline.domain.clock import Clock, SystemClock
from grantline.domain.errors import ConfigError
from grantline.evidence.signer import (
    LOG_PURPOSE,
    PURPOSE_MEMBER,
    TOKEN_PURPOSE,
    LocalEd25519Signer,
    Signer,
)
from grantline.identity.dev_issuer import DevIssuer
from grantline.identity.issuers import TrustedIssuer
from grantline.identity.verifier import IdentityVerifier
from grantline.issuers.jwt import JwtIssuer
from grantline.policy.embedded import EmbeddedRegoEngine
from grantline.store.connection import StoreSettings, check_persistence, connect
from grantline.store.grants import RedisGrants
from grantline.store.ledger import Ledger
from grantline.store.log import RedisLog

log = logging.getLogger(__name__)


class Settings(BaseSettings):
    """Every setting of the broker. Environment variables are ``GRANTLINE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GRANTLINE_", extra="ignore")

    home: Path = Field(default=Path(".grantline"), description="state directory")
    redis_url: str | None = Field(default=None, description="external Redis; else embedded Valkey")
    policies: Path = Field(default=Path("policies"), description="policy directory")
    host: str = "127.0.0.1"
    port: int = 8400
    public_url: str | None = Field(default=None, description="issuer URL of minted JWTs")
    dev_issuer: bool = Field(default=True, description="trust the dev identity issuer")
    trusted_issuers: Path | None = Field(default=None, description="JSON file of trusted issuers")
    audience: str = Field(default="grantline", description="aud expected in caller tokens")
    max_body_bytes: int = 64 * 1024
    store_timeout_seconds: float = 1.0
    policy_reload_seconds: float = 2.0
    workers: int = 1
    log_level: str = "info"

    @property
    def issuer_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"


def log_signer(settings: Settings) -> Signer:
    return LocalEd25519Signer.load_or_create(settings.keys_dir / "log-signing.pem")


def token_signer(settings: Settings) -> Signer:
    return LocalEd25519Signer.load_or_create(settings.keys_dir / "token-signing.pem")


def dev_issuer(settings: Settings) -> DevIssuer:
    return DevIssuer(settings.keys_dir / "dev-issuer.pem", audience=settings.audience)


def trusted_issuers(settings: Settings) -> list[TrustedIssuer]:
    """The dev issuer (when enabled) and the issuers of the trusted-issuers file."""
    issuers = [dev_issuer(settings).trusted_issuer()] if settings.dev_issuer else []
    if settings.trusted_issuers is not None:
        issuers += _issuers_from_file(settings.trusted_issuers, settings.audience)
    return issuers


def _issuers_from_file(path: Path, audience: str) -> list[TrustedIssuer]:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read trusted issuers from {path}: {exc}") from exc
    if not isinstance(entries, list):
        raise ConfigError(f"{path} must hold a JSON list of issuers")
    return [_issuer_entry(entry, path, audience) for entry in entries]


def _issuer_entry(entry: Any, path: Path, audience: str) -> TrustedIssuer:
    if not isinstance(entry, dict) or not isinstance(entry.get("issuer"), str):
        raise ConfigError(f"{path}: every issuer needs an 'issuer' string")
    jwks_file = entry.get("jwks_file")
    return TrustedIssuer(
        issuer=entry["issuer"],
        audience=entry.get("audience", audience),
        algorithms=frozenset(entry.get("algorithms", ["EdDSA", "ES256", "RS256"])),
        jwks=entry.get("jwks"),
        jwks_file=(path.parent / jwks_file) if jwks_file else None,
        jwks_url=entry.get("jwks_url"),
    )


@dataclass
class Runtime:
    """Everything a served broker holds: built once at start-up, closed at shutdown."""

    settings: Settings
    broker: Broker
    verifier: IdentityVerifier
    policy: EmbeddedRegoEngine
    grants: RedisGrants
    log_signer: Signer
    token_signer: Signer
    log: RedisLog
    client: aioredis.Redis
    clock: Clock

    def jwks(self) -> dict[str, Any]:
        """Both public keys, each marked with its purpose so a verifier trusts only the log key."""
        token = {**self.token_signer.public_jwk(), PURPOSE_MEMBER: TOKEN_PURPOSE}
        records = {**self.log_signer.public_jwk(), PURPOSE_MEMBER: LOG_PURPOSE}
        return {"keys": [token, records]}


@asynccontextmanager
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Build the broker from settings. The store URL must be set (``serve`` starts Valkey).

    Raises:
        ConfigError: a setting or file is unusable, or the store may evict evidence.
    """
    if not settings.redis_url:
        raise ConfigError("no store: set GRANTLINE_REDIS_URL or run `grantline serve`")
    client = connect(
        StoreSettings(settings.redis_url, socket_timeout=settings.store_timeout_seconds)
    )
    try:
        await check_persistence(client)
        yield _assemble(settings, client)
    finally:
        await client.aclose()


def _assemble(settings: Settings, client: aioredis.Redis) -> Runtime:
    records_key, tokens_key = log_signer(settings), token_signer(settings)
    policy = EmbeddedRegoEngine(settings.policies)
    redis_log, grants = RedisLog(client), RedisGrants(client)
    clock = SystemClock()
    jwt_issuer = JwtIssuer(tokens_key, settings.issuer_url)
    broker = Broker(
        ledger=Ledger(redis_log, records_key),
        grants=grants,
        log=redis_log,
        policy=policy,
        issuers={jwt_issuer.credential_type.value: jwt_issuer},
        introspector=jwt_issuer,
        clock=clock,
    )
    return Runtime(
        settings=settings,
        broker=broker,
        verifier=IdentityVerifier(trusted_issuers(settings)),
        policy=policy,
        grants=grants,
        log_signer=records_key,
        token_signer=tokens_key,
        log=redis_log,
        client=client,
        clock=clock,
    )


class ClientSettings(BaseSettings):
    """Settings of the commands that talk to a broker (``request``, ``audit export``, ...)."""

    model_config = SettingsConfigDict(env_prefix="GRANTLINE_", extra="ignore")

    url: str = "http://127.0.0.1:8400"
    token: str | None = None
    timeout_seconds: float = 10.0
