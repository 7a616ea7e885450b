"""Settings (environment, prefix GRANTLINE_) and the composition root that wires the broker.

Only this module reads the environment. Everything else receives its settings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from grantline import settings_rules
from grantline.broker import Broker, BrokerSettings
from grantline.broker.activation import PolicyWatch
from grantline.broker.approvals import Approvals
from grantline.broker.usage import UsageRecorder
from grantline.domain.clock import Clock, SystemClock
from grantline.domain.errors import ConfigError, IssuanceError
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
from grantline.issuers.base import CredentialIssuer
from grantline.issuers.jwt import JwtIssuer
from grantline.issuers.vault.audit import AuditTail, VaultUse
from grantline.issuers.vault.client import VaultClient, VaultSettings
from grantline.issuers.vault.pki import VaultPkiIssuer
from grantline.issuers.vault.secret import VaultSecretIssuer
from grantline.issuers.vault.token import VaultTokenIssuer
from grantline.issuers.vault.transit import TransitSigner
from grantline.notify import Notification, Notifier
from grantline.observe.instruments import (
    ObservedBroker,
    TimedLedger,
    TimedPolicyEngine,
    timed_issuers,
)
from grantline.observe.tracing import Tracing
from grantline.policy.embedded import EmbeddedRegoEngine
from grantline.policy.opa import OpaEngine, OpaSettings
from grantline.reconcile.alerts import Alerts
from grantline.reconcile.reconciler import Reconciler, ReconcileSettings
from grantline.store.checkpoints import Checkpoints
from grantline.store.connection import StoreSettings, check_persistence, connect
from grantline.store.durability import (
    Durability,
    DurabilitySettings,
    PersistenceProbe,
    check_durability,
)
from grantline.store.grants import RedisGrants
from grantline.store.lock import RequestLocks, StoreLock
from grantline.store.log import RedisLog
from grantline.store.pickup import PickupBox, PickupStore
from grantline.store.policy_archive import PolicyArchive, PolicyArchiveReader
from grantline.store.ratelimit import RedisRateLimits
from grantline.store.tree import RedisTree
from grantline.store.usage import Observation, RedisUsage
from grantline.store.vault_audit import RedisAuditState

log = logging.getLogger(__name__)


class _FromEnvironment(BaseSettings):
    """Settings read from ``GRANTLINE_*``: a wrong value is a ConfigError naming the variable."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            # Not chained: pydantic's own text quotes the values, and a Redis URL or a
            # webhook URL may carry a secret into whatever prints the traceback.
            raise ConfigError(settings_rules.describe(exc)) from None


class Settings(_FromEnvironment):
    """Every setting of the broker. Environment variables are ``GRANTLINE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GRANTLINE_", extra="ignore")

    home: Path = Field(default=Path(".grantline"), description="state directory")
    redis_url: str | None = Field(default=None, description="external Redis; else embedded Valkey")
    # Redis Sentinel (docs/reliability.md): the primary's address is asked of the sentinels;
    # GRANTLINE_REDIS_URL then names the service as its host and gives the password.
    redis_sentinels: str | None = Field(
        default=None, description="Sentinel addresses, host:port,host:port,..."
    )
    redis_sentinel_service: str = Field(
        default="grantline", description="the primary's name in Sentinel (sentinel monitor)"
    )
    redis_sentinel_password: str | None = Field(
        default=None, description="password the sentinels require (their requirepass), if any"
    )
    policies: Path = Field(default=Path("policies"), description="policy directory")
    host: str = "127.0.0.1"
    port: int = 8400
    public_url: str | None = Field(default=None, description="issuer URL of minted JWTs")
    dev_issuer: bool = Field(default=True, description="trust the dev identity issuer")
    trusted_issuers: Path | None = Field(default=None, description="JSON file of trusted issuers")
    audience: str = Field(default="grantline", description="aud expected in caller tokens")
    max_body_bytes: int = 64 * 1024
    # Hostile clients (README, "Hardening"): the request head, load shedding, rate limits.
    max_header_bytes: int = Field(default=32 * 1024, gt=0, description="larger heads get 431")
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, allow_inf_nan=False, description="a head unfinished by then: 408"
    )
    max_concurrent_requests: int = Field(
        default=256, ge=0, description="requests in flight per process; more get 503 (0: no cap)"
    )
    rate_limit_per_minute: int = Field(
        default=0, ge=0, description="/v1 calls per caller per minute, across replicas (0: off)"
    )
    store_timeout_seconds: float = 1.0
    # What confirms an append is on disk (store/durability.py, docs/reliability.md).
    store_durability: Durability = Field(
        default=Durability.FSYNC, description="fsync, waitaof (replicas) or none"
    )
    store_waitaof_replicas: int = Field(
        default=0, ge=0, description="replicas that must fsync each append (waitaof)"
    )
    store_waitaof_timeout_ms: int = Field(
        default=500, ge=1, description="how long an append waits for WAITAOF"
    )
    policy_reload_seconds: float = 2.0
    workers: int = 1
    log_level: str = "info"
    # Vault / OpenBao: the broker's own access (a token, or AppRole role and secret ids).
    vault_addr: str | None = Field(default=None, description="Vault/OpenBao address")
    vault_token: str | None = Field(default=None, description="the broker's own Vault token")
    vault_role_id: str | None = None
    vault_secret_id: str | None = None
    vault_approle_mount: str = "approle"
    vault_token_role: str = "grantline"  # noqa: S105 — a token role's name
    vault_timeout_seconds: float = 5.0
    vault_dev: bool = Field(
        default=True,
        description="with no vault_addr, `serve` starts a local OpenBao dev server if bao exists",
    )
    signer: Literal["local", "transit"] = Field(
        default="local", description="where the record and JWT signing keys live"
    )
    vault_transit_mount: str = "transit"
    transit_log_key: str = "grantline-log"
    transit_token_key: str = "grantline-token"  # noqa: S105 — a key's name in Vault
    usage_window_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="uses of a grant are recorded as one `used` record per window this long",
    )
    usage_expected: bool = Field(
        default=False,
        description="resource servers report JWT uses: a JWT grant that expires unused is "
        "reported (`never_used`)",
    )
    # Uses of vault_token grants, read from OpenBao's file audit device (docs/usage.md).
    vault_audit_log: Path | None = Field(
        default=None,
        description="OpenBao's file audit log, read for uses of Vault grant tokens (unset: off)",
    )
    vault_audit_device: str = Field(
        default="file", description="the path of that audit device in OpenBao (sys/audit-hash)"
    )
    # The reconciler.
    reconcile_seconds: float = Field(default=30.0, description="0 turns the loop off")
    reconcile_issue_delay_seconds: float = 60.0
    reconcile_grace_seconds: float = 30.0
    reconcile_revoke_orphans: bool = True
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_attempts: int = Field(default=6, ge=1, description="deliveries tried per event")
    webhook_backoff_seconds: float = Field(default=0.5, gt=0, description="first retry delay")
    log_origin: str | None = Field(
        default=None, description="the log's name in checkpoints (default: <host:port>/grantline)"
    )
    checkpoint_seconds: float = Field(
        default=60.0, ge=0, description="interval of published checkpoints (0: on demand only)"
    )
    approval_window_seconds: float = Field(
        default=3600.0, gt=0, description="how long a request may wait for its approvers"
    )
    policy_input_retention_days: int = Field(
        default=400,
        ge=0,
        le=36500,
        description="how long the input of each decision is kept for replay (0: for good)",
    )
    break_glass_review_seconds: float = Field(
        default=72 * 3600.0, gt=0, description="deadline of a break-glass grant's review"
    )
    # An OPA server decides instead of the embedded engine when its URL is set.
    opa_url: str | None = Field(default=None, description="OPA server; else the embedded engine")
    opa_timeout_seconds: float = Field(default=0.5, gt=0, description="per call to OPA")
    opa_retries: int = Field(default=2, ge=0, le=5, description="retries on connection errors")
    opa_token: str | None = Field(default=None, description="bearer token OPA requires, if any")
    # Observability (docs/observability.md).
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="json: one object a line; auto: text on a terminal, else json"
    )
    access_log: bool = Field(default=True, description="uvicorn's access log, as log lines")
    otel_endpoint: str | None = Field(
        default=None, description="OTLP collector base URL for traces (needs grantline[otel])"
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
        description="the standard OpenTelemetry variables, which the OTLP exporter reads itself",
    )
    # Start-up checks (settings_rules.py): a wrong value stops `serve` naming the variable.
    allow_dev_issuer_on_network: bool = Field(
        default=False, description="trust the dev issuer on a non-loopback GRANTLINE_HOST"
    )
    embedded_store: bool = Field(
        default=True, description="with no redis_url, `serve` starts an embedded Valkey"
    )

    @field_validator(*settings_rules.FIELD_RULES)
    @classmethod
    def _field_rule(cls, value: Any, info: ValidationInfo) -> Any:
        return settings_rules.FIELD_RULES[str(info.field_name)](value)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = settings_rules.cross_field_problems(self)
        if (
            self.store_durability is Durability.WAITAOF
            and self.store_waitaof_timeout_ms >= self.store_timeout_seconds * 1000
        ):
            problems.append(
                "GRANTLINE_STORE_WAITAOF_TIMEOUT_MS must be below GRANTLINE_STORE_TIMEOUT_SECONDS"
            )
        problems += self._sentinel_problems()
        if self.trusted_issuers is not None:
            problems += _trusted_issuers_problems(self.trusted_issuers, self.audience)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _sentinel_problems(self) -> list[str]:
        if not self.redis_sentinels:
            return []
        service = self.redis_sentinel_service
        shape = f"redis://[user:password@]{service}[/db], or rediss://"
        problems = []
        if not self.redis_url:
            problems.append(
                "GRANTLINE_REDIS_URL must be set when GRANTLINE_REDIS_SENTINELS is: it gives "
                f"the primary's password and database ({shape})"
            )
        else:
            parts = urlsplit(self.redis_url)
            if parts.scheme == "unix" or parts.hostname != service.lower() or parts.port:
                problems.append(
                    "GRANTLINE_REDIS_URL must name the Sentinel service as its host, with no "
                    f"port, when GRANTLINE_REDIS_SENTINELS is set ({shape}): the primary's "
                    "address comes from the sentinels"
                )
        if self.store_durability is not Durability.WAITAOF or self.store_waitaof_replicas < 1:
            # Replication is asynchronous: a failover promotes a replica that may not have
            # the last appends, and the broker may have handed out their credentials.
            problems.append(
                "GRANTLINE_REDIS_SENTINELS needs GRANTLINE_STORE_DURABILITY=waitaof and "
                "GRANTLINE_STORE_WAITAOF_REPLICAS=1 or more: a failover promotes a replica, and "
                "an append no replica confirmed can be lost with the old primary after its "
                "credential was handed out"
            )
        return problems

    @property
    def store(self) -> StoreSettings:
        """How to reach the store: the server of GRANTLINE_REDIS_URL, or the primary the
        sentinels name.

        Raises:
            ConfigError: no store is configured.
        """
        if not self.redis_url:
            raise ConfigError("no store: set GRANTLINE_REDIS_URL or run `grantline serve`")
        sentinels = self.redis_sentinels
        return StoreSettings(
            self.redis_url,
            socket_timeout=self.store_timeout_seconds,
            sentinels=tuple(settings_rules.sentinel_addresses(sentinels)) if sentinels else (),
            service=self.redis_sentinel_service,
            sentinel_password=self.redis_sentinel_password,
        )

    @property
    def durability(self) -> DurabilitySettings:
        return DurabilitySettings(
            self.store_durability, self.store_waitaof_replicas, self.store_waitaof_timeout_ms
        )

    @property
    def issuer_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def origin(self) -> str:
        """The log's origin line in checkpoints: stable, one token, no scheme."""
        return self.log_origin or urlsplit(self.issuer_url).netloc + "/grantline"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"


def log_signer(settings: Settings) -> Signer:
    return LocalEd25519Signer.load_or_create(settings.keys_dir / "log-signing.pem")


def token_signer(settings: Settings) -> Signer:
    return LocalEd25519Signer.load_or_create(settings.keys_dir / "token-signing.pem")


def opa_engine(settings: Settings) -> OpaEngine | None:
    """The OPA client of ``GRANTLINE_OPA_URL``, or None when no OPA server is configured."""
    if not settings.opa_url:
        return None
    return OpaEngine(
        OpaSettings(
            url=settings.opa_url,
            timeout_seconds=settings.opa_timeout_seconds,
            retries=settings.opa_retries,
            token=settings.opa_token,
        )
    )


def policy_engine(settings: Settings) -> EmbeddedRegoEngine | OpaEngine:
    """The OPA server when one is configured, else the embedded engine over the policies."""
    return opa_engine(settings) or EmbeddedRegoEngine(settings.policies)


def dev_issuer(settings: Settings) -> DevIssuer:
    return DevIssuer(settings.keys_dir / "dev-issuer.pem", audience=settings.audience)


def trusted_issuers(settings: Settings) -> list[TrustedIssuer]:
    """The dev issuer (when enabled) and the issuers of the trusted-issuers file."""
    issuers = [dev_issuer(settings).trusted_issuer()] if settings.dev_issuer else []
    if settings.trusted_issuers is not None:
        issuers += _issuers_from_file(settings.trusted_issuers, settings.audience)
    return issuers


def _trusted_issuers_problems(path: Path, audience: str) -> list[str]:
    """What stops the trusted-issuers file from loading, JWKS files included. JWKS URLs are
    fetched when first needed (an identity provider that is down must not stop the broker),
    and must be https: a key fetched in the clear can be swapped on the way."""
    name = settings_rules.env_name("trusted_issuers")
    try:
        for issuer in _issuers_from_file(path, audience):
            if issuer.jwks_url is None:
                issuer.keys()
            elif not _secure_jwks_url(issuer.jwks_url):
                return [f"{name}: the jwks_url of {issuer.issuer} must be https"]
    except ConfigError as exc:
        return [f"{name}: {exc.message}"]
    return []


def _secure_jwks_url(url: str) -> bool:
    parts = urlsplit(url)
    loopback = settings_rules.is_loopback(parts.hostname or "")
    secure = parts.scheme == "https" or (parts.scheme == "http" and loopback)
    return secure and bool(parts.hostname)


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
    policy: EmbeddedRegoEngine | OpaEngine
    grants: RedisGrants
    log_signer: Signer
    token_signer: Signer
    log: RedisLog
    client: aioredis.Redis
    clock: Clock
    reconciler: Reconciler
    approvals: Approvals
    tree: RedisTree
    checkpoints: Checkpoints
    notifier: Notifier
    policy_archive: PolicyArchiveReader
    policy_watch: PolicyWatch
    usage: UsageRecorder
    vault: VaultClient | None = None
    persistence: PersistenceProbe | None = None
    rate_limits: RedisRateLimits | None = None
    vault_audit: AuditTail | None = None

    def jwks(self) -> dict[str, Any]:
        """Both public keys, each marked with its purpose so a verifier trusts only the log key."""
        tokens = [{**k, PURPOSE_MEMBER: TOKEN_PURPOSE} for k in self.token_signer.public_jwks()]
        records = [{**k, PURPOSE_MEMBER: LOG_PURPOSE} for k in self.log_signer.public_jwks()]
        return {"keys": tokens + records}


@asynccontextmanager
async def runtime(settings: Settings, tracing: Tracing | None = None) -> AsyncIterator[Runtime]:
    """Build the broker from settings. The store URL must be set (``serve`` starts Valkey).
    With ``tracing``, requests make spans of their policy, issuance and log work.

    Raises:
        ConfigError: a setting or file is unusable, or the store may evict evidence.
    """
    client = connect(settings.store)
    vault = vault_client(settings)
    try:
        await check_persistence(client)
        await check_durability(client, settings.durability)
        if await RedisTree(client).rebuild(RedisLog(client)):
            log.warning("built the Merkle tree of a log written before it existed")
        if vault is not None:
            await _login(vault)
        built = _assemble(settings, client, vault, tracing)
        try:
            yield built
        finally:
            if isinstance(built.policy, OpaEngine):
                built.policy.close()
    finally:
        if vault is not None:
            await vault.close()
        await client.aclose()


def vault_client(settings: Settings) -> VaultClient | None:
    """The broker's Vault session, or None when no Vault is configured."""
    if not settings.vault_addr:
        return None
    return VaultClient(
        VaultSettings(
            addr=settings.vault_addr,
            token=settings.vault_token,
            role_id=settings.vault_role_id,
            secret_id=settings.vault_secret_id,
            approle_mount=settings.vault_approle_mount,
            token_role=settings.vault_token_role,
            timeout_seconds=settings.vault_timeout_seconds,
        )
    )


async def _login(vault: VaultClient) -> None:
    try:
        await vault.login()
    except IssuanceError as exc:
        # The broker still serves JWTs; Vault credentials fail with 503 until Vault answers.
        log.error("Vault login failed, Vault credentials are unavailable: %s", exc.message)  # noqa: TRY400


def _signers(settings: Settings, vault: VaultClient | None) -> tuple[Signer, Signer]:
    """The record and JWT signers: local key files, or keys held in Vault's Transit engine."""
    if settings.signer == "local":
        return log_signer(settings), token_signer(settings)
    if vault is None:
        raise ConfigError("GRANTLINE_SIGNER=transit needs Vault: set GRANTLINE_VAULT_ADDR")
    mount = settings.vault_transit_mount
    return (
        TransitSigner(vault, settings.transit_log_key, mount=mount),
        TransitSigner(vault, settings.transit_token_key, mount=mount),
    )


def _assemble(
    settings: Settings,
    client: aioredis.Redis,
    vault: VaultClient | None,
    tracing: Tracing | None = None,
) -> Runtime:
    records_key, tokens_key = _signers(settings, vault)
    policy = policy_engine(settings)
    redis_log, grants = RedisLog(client, settings.durability), RedisGrants(client)
    clock = SystemClock()
    jwt_issuer = JwtIssuer(tokens_key, settings.issuer_url)
    issuers: dict[str, CredentialIssuer] = {jwt_issuer.credential_type.value: jwt_issuer}
    if vault is not None:
        for issuer in (VaultTokenIssuer(vault), VaultPkiIssuer(vault), VaultSecretIssuer(vault)):
            issuers[issuer.credential_type.value] = issuer
    issuers = timed_issuers(issuers, tracing)
    tree = RedisTree(client)
    archive = PolicyArchive(
        policy.bundle_files, retention_seconds=settings.policy_input_retention_days * 86400
    )
    ledger = TimedLedger(redis_log, records_key, tree, archive, tracing=tracing)

    async def undelivered(notification: Notification, error: str) -> None:
        # Bound late: the broker records it, and the broker needs the notifier first.
        await broker.record_undelivered(
            notification.request_id,
            notification.event,
            notification.delivery_id,
            notification.attempts,
            error,
        )

    notifier = Notifier(
        url=settings.webhook_url,
        secret=settings.webhook_secret,
        attempts=settings.webhook_attempts,
        backoff_seconds=settings.webhook_backoff_seconds,
        on_give_up=undelivered,
    )
    broker = ObservedBroker(
        tracing=tracing,
        ledger=ledger,
        grants=grants,
        log=redis_log,
        policy=TimedPolicyEngine(policy, tracing),
        issuers=issuers,
        introspector=jwt_issuer,
        clock=clock,
        notifier=notifier,
        settings=BrokerSettings(
            approval_window_seconds=settings.approval_window_seconds,
            review_deadline_seconds=settings.break_glass_review_seconds,
        ),
    )
    approvals = Approvals(
        broker=broker,
        grants=grants,
        ledger=ledger,
        locks=RequestLocks(client),
        pickups=PickupStore(client),
        box=PickupBox.load_or_create(settings.keys_dir / "pickup.key"),
        clock=clock,
    )
    reconciler = Reconciler(
        broker=broker,
        approvals=approvals,
        grants=grants,
        ledger=ledger,
        issuers=issuers,
        inventory=vault,
        lock=StoreLock(client, "reconcile"),
        alerts=Alerts(notifier),
        clock=clock,
        settings=ReconcileSettings(
            issue_delay_seconds=settings.reconcile_issue_delay_seconds,
            grace_seconds=settings.reconcile_grace_seconds,
            revoke_orphans=settings.reconcile_revoke_orphans,
            lock_seconds=max(1.0, min(settings.reconcile_seconds or 30.0, 30.0)),
            usage_expected=settings.usage_expected,
        ),
    )
    usage = RedisUsage(client, settings.usage_window_seconds)
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
        reconciler=reconciler,
        approvals=approvals,
        tree=tree,
        checkpoints=Checkpoints(client, tree, records_key, settings.origin, clock),
        notifier=notifier,
        policy_archive=PolicyArchiveReader(client),
        policy_watch=PolicyWatch(policy, ledger, grants, clock),
        usage=UsageRecorder(
            broker=broker,
            grants=grants,
            usage=usage,
            ledger=ledger,
            clock=clock,
            lock=StoreLock(client, "usage"),
            alerts=Alerts(notifier),
        ),
        vault=vault,
        persistence=PersistenceProbe(client, settings.durability),
        rate_limits=(
            RedisRateLimits(client, settings.rate_limit_per_minute)
            if settings.rate_limit_per_minute > 0
            else None
        ),
        vault_audit=_vault_audit(settings, client, vault, usage, clock),
    )


def _vault_audit(
    settings: Settings,
    client: aioredis.Redis,
    vault: VaultClient | None,
    usage: RedisUsage,
    clock: Clock,
) -> AuditTail | None:
    """The reader of OpenBao's audit log, when GRANTLINE_VAULT_AUDIT_LOG names one."""
    if settings.vault_audit_log is None or vault is None:
        return None
    reporter = f"openbao-audit:{settings.vault_audit_device}"

    async def observe(uses: Sequence[VaultUse], batch_id: str) -> bool:
        seen = [Observation(**dataclasses.asdict(use), reporter=reporter) for use in uses]
        return await usage.observe(seen, batch_id)

    return AuditTail(
        path=settings.vault_audit_log,
        device=settings.vault_audit_device,
        token_role=settings.vault_token_role,
        hasher=vault,
        state=RedisAuditState(client),
        observe=observe,
        lease=StoreLock(client, "vault-audit"),
        clock=clock,
    )


class ClientSettings(_FromEnvironment):
    """Settings of the commands that talk to a broker (``request``, ``audit export``, ...)."""

    model_config = SettingsConfigDict(env_prefix="GRANTLINE_", extra="ignore")

    url: str = "http://127.0.0.1:8400"
    token: str | None = None
    timeout_seconds: float = 10.0
