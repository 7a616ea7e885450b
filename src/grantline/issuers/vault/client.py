"""The broker's own session with Vault or OpenBao: the only module that imports hvac.

hvac is synchronous, so every call runs on a small thread pool of its own. hvac retries
nothing, and this module keeps it that way for anything that creates a credential: a blind
retry of a mint after a lost reply would create a second credential nobody records.
Every Vault failure becomes an :class:`IssuanceError` whose code says which kind it was.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import hvac
import hvac.exceptions
import requests

from grantline.domain.errors import ConfigError, IssuanceError
from grantline.domain.models import parse_time

log = logging.getLogger(__name__)

T = TypeVar("T")

# Meta keys on every token the broker creates: how the reconciler ties a token to a request.
META_REQUEST_ID = "grantline_request_id"
META_SUBJECT = "grantline_subject"
META_ROLE = "grantline_role"
# Vault answers these for a token, accessor or lease that no longer exists.
_GONE = ("bad token", "invalid accessor", "invalid lease", "lease not found")


@dataclass(frozen=True, slots=True)
class VaultSettings:
    addr: str
    token: str | None = None
    role_id: str | None = None
    secret_id: str | None = None
    approle_mount: str = "approle"
    token_role: str = "grantline"  # noqa: S105 — the name of a token role, not a secret
    timeout_seconds: float = 5.0
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What Vault says about a token: its own clock's times, never the token itself."""

    accessor: str
    issued_at: datetime
    expires_at: datetime | None
    meta: Mapping[str, str]
    policies: tuple[str, ...]
    role: str = ""
    orphan: bool = False


@dataclass(frozen=True, slots=True)
class NewToken:
    token: str
    info: TokenInfo


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    lease_id: str
    issued_at: datetime
    expires_at: datetime


class VaultClient:
    """Login, self-renewal and the few Vault calls the issuers and the reconciler make."""

    def __init__(self, settings: VaultSettings, *, max_workers: int = 16) -> None:
        if not settings.token and not (settings.role_id and settings.secret_id):
            raise ConfigError(
                "Vault needs GRANTLINE_VAULT_TOKEN, or GRANTLINE_VAULT_ROLE_ID and "
                "GRANTLINE_VAULT_SECRET_ID for AppRole login"
            )
        self.settings = settings
        self._session = requests.Session()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="vault")
        self._client = self._hvac(settings.token)
        self._renew_after: datetime | None = None
        self._logged_in = False

    def _hvac(self, token: str | None) -> hvac.Client:
        return hvac.Client(
            url=self.settings.addr,
            token=token,
            # requests takes a float; hvac's annotation says int.
            timeout=cast(int, self.settings.timeout_seconds),
            session=self._session,
            namespace=self.settings.namespace,
        )

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    # -- the broker's own token ---------------------------------------------------------------

    async def login(self) -> None:
        """Log in (AppRole) or check the configured token, and note when to renew it."""
        if self.settings.role_id and self.settings.secret_id:
            auth = await self._run(
                "log in with AppRole",
                lambda: self._client.auth.approle.login(
                    role_id=self.settings.role_id,
                    secret_id=self.settings.secret_id,
                    mount_point=self.settings.approle_mount,
                )["auth"],
            )
            self._client.token = auth["client_token"]
        me = await self._run("look up its own token", self._client.auth.token.lookup_self)
        self._schedule_renewal(me["data"])
        self._logged_in = True

    async def renew_if_due(self, now: datetime) -> bool:
        """Renew the broker's token once half its TTL is gone; log in again when it cannot be.

        Returns True when something was renewed. Raises :class:`IssuanceError` when neither
        renewal nor a new login worked.
        """
        if not self._logged_in:
            await self.login()  # start-up could not reach Vault: try again
            return True
        if self._renew_after is None or now < self._renew_after:
            return False
        try:
            auth = await self._run(
                "renew its own token", lambda: self._client.auth.token.renew_self()["auth"]
            )
            self._schedule_renewal({"ttl": auth["lease_duration"], "renewable": auth["renewable"]})
        except IssuanceError:
            if not (self.settings.role_id and self.settings.secret_id):
                raise
            await self.login()
        return True

    def _schedule_renewal(self, data: Mapping[str, Any]) -> None:
        ttl = int(data.get("ttl") or 0)
        if ttl <= 0:
            self._renew_after = None  # a root or periodic-less token that never expires
            return
        self._renew_after = datetime.now(UTC) + timedelta(seconds=ttl / 2)
        if not data.get("renewable") and not self.settings.role_id:
            log.warning("the broker's Vault token is not renewable; it expires in %d s", ttl)

    async def healthy(self) -> bool:
        try:
            status = await self._run(
                "read its health", lambda: self._client.sys.read_health_status(method="GET")
            )
        except IssuanceError:
            return False
        return isinstance(status, dict) and not status.get("sealed", True)

    # -- tokens ------------------------------------------------------------------------------

    async def create_token(
        self,
        *,
        policies: Sequence[str],
        ttl_seconds: int,
        meta: Mapping[str, str],
        display_name: str,
    ) -> NewToken:
        """An orphan token through the broker's token role, never renewable past its TTL."""
        auth = await self._run(
            "create a token",
            lambda: self._client.auth.token.create(
                role_name=self.settings.token_role,
                policies=list(policies),
                meta=dict(meta),
                ttl=f"{ttl_seconds}s",
                explicit_max_ttl=f"{ttl_seconds}s",
                renewable=False,
                display_name=display_name,
            )["auth"],
        )
        token, accessor = auth["client_token"], auth["accessor"]
        try:
            info = self._checked_new_token(await self.lookup_accessor(accessor))
        except BaseException:
            with contextlib.suppress(IssuanceError):
                await self.revoke_accessor(accessor)
            raise
        return NewToken(token, info)

    def _checked_new_token(self, info: TokenInfo | None) -> TokenInfo:
        if info is None:
            raise IssuanceError("Vault lost a token it had just created", code="vault_error")
        if not info.orphan:
            # A child of the broker's token would die with it: refuse the role, not guess.
            raise IssuanceError(
                f"the token role {self.settings.token_role} must create orphan tokens",
                code="issuer_misconfigured",
            )
        return info

    async def lookup_accessor(self, accessor: str) -> TokenInfo | None:
        """The token behind ``accessor``, or None when it is revoked or expired."""
        data = await self._run_or_gone(
            "look up a token",
            lambda: self._client.auth.token.lookup_accessor(accessor)["data"],
        )
        return None if data is None else _token_info(data)

    async def revoke_accessor(self, accessor: str) -> None:
        """Revoke the token (and its leases). A token already gone counts as revoked."""
        await self._run_or_gone(
            "revoke a token", lambda: self._client.auth.token.revoke_accessor(accessor)
        )

    async def list_accessors(self) -> list[str]:
        data = await self._run_or_gone(
            "list token accessors", lambda: self._client.auth.token.list_accessors()["data"]
        )
        return list(data.get("keys", [])) if data else []

    async def grant_tokens(self, *, concurrency: int = 8) -> list[TokenInfo]:
        """Every live token of the broker's token role whose metadata names a request.

        One lookup per token in Vault. Tokens of other roles are never this broker's, even if
        their metadata looks like it: another deployment sharing the Vault owns them.
        """
        accessors = await self.list_accessors()
        gate = asyncio.Semaphore(concurrency)
        refused: list[IssuanceError] = []

        async def lookup(accessor: str) -> TokenInfo | None:
            async with gate:
                try:
                    return await self.lookup_accessor(accessor)
                except IssuanceError as exc:
                    if exc.code != "vault_forbidden":
                        raise
                    refused.append(exc)
                    return None

        found = await asyncio.gather(*(lookup(a) for a in accessors))
        if refused and len(refused) == len(accessors):
            # Not one lookup allowed: the broker's policy lacks lookup-accessor.
            raise refused[0]
        if refused:
            # A crash can leave accessors whose token entry is gone: Vault lists them but
            # refuses to look them up, even to root, until `auth/token/tidy` removes them.
            # One of them must not hide every other orphan from the reconciler.
            log.warning(
                "Vault refused to look up %d of %d token accessors (dangling entries; "
                "`bao write auth/token/tidy` removes them); reconciling the others",
                len(refused),
                len(accessors),
            )
        role = self.settings.token_role
        return [
            info
            for info in found
            if info is not None and info.role == role and META_REQUEST_ID in info.meta
        ]

    # -- leased secrets ----------------------------------------------------------------------

    async def read_with(self, token: str, path: str) -> Mapping[str, Any]:
        """Read ``path`` as ``token``: a leased secret then belongs to that token."""
        client = self._hvac(token)
        response = await self._run("read a secret", lambda: client.read(path))
        if not isinstance(response, dict):
            raise IssuanceError(
                f"Vault has nothing at {path}: is its secrets engine mounted and configured?",
                code="vault_rejected",
            )
        return response

    async def write_with(
        self, token: str, path: str, params: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        client = self._hvac(token)
        response = await self._run(
            "write to a secrets engine", lambda: client.write_data(path, data=dict(params))
        )
        if not isinstance(response, dict):
            raise IssuanceError(f"Vault returned nothing at {path}", code="vault_rejected")
        return response

    async def lookup_lease(self, lease_id: str) -> LeaseInfo | None:
        response = await self._run_or_gone(
            "look up a lease",
            lambda: self._client.write_data("sys/leases/lookup", data={"lease_id": lease_id}),
        )
        data = response.get("data") if isinstance(response, dict) else None
        if not isinstance(data, dict):
            return None
        return LeaseInfo(
            lease_id=lease_id,
            issued_at=parse_time(data["issue_time"]),
            expires_at=parse_time(data["expire_time"]),
        )

    async def revoke_lease(self, lease_id: str) -> None:
        await self._run_or_gone(
            "revoke a lease",
            lambda: self._client.write_data("sys/leases/revoke", data={"lease_id": lease_id}),
        )

    # -- PKI ---------------------------------------------------------------------------------

    async def revoke_certificate(self, mount: str, serial: str) -> None:
        await self._run_or_gone(
            "revoke a certificate",
            lambda: self._client.write_data(f"{mount}/revoke", data={"serial_number": serial}),
        )

    async def read_certificate(self, mount: str, serial: str) -> Mapping[str, Any] | None:
        """The mount's record of ``serial`` (PEM and revocation time), or None if unknown."""
        data = await self._run_or_gone(
            "read a certificate",
            lambda: self._client.read(f"{mount}/cert/{serial}"),
        )
        if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
            return None
        record: Mapping[str, Any] = data["data"]
        return record

    # -- the audit device (usage evidence, issuers/vault/audit.py) ----------------------------

    async def audit_hash(self, device: str, value: str) -> str:
        """``value`` as the audit device at ``device`` writes it: ``hmac-sha256:<hex>``."""
        response = await self._run(
            "hash a value for its audit device",
            lambda: self._client.write_data(f"sys/audit-hash/{device}", data={"input": value}),
        )
        data = response.get("data") if isinstance(response, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("hash"), str):
            raise IssuanceError(
                f"Vault returned no hash for audit device {device}", code="vault_error"
            )
        return str(data["hash"])

    # -- Transit (blocking: the signer calls these off the event loop) ------------------------

    def transit_public_keys(self, mount: str, key: str) -> tuple[str, int, dict[int, str]]:
        """The key's type, newest version and base64 public key of every version."""
        try:
            response = self._client.read(f"{mount}/keys/{key}")
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise vault_error(exc, "read a Transit key") from exc
        if not isinstance(response, dict):
            raise IssuanceError(f"Vault has no Transit key {mount}/{key}", code="vault_rejected")
        data = response["data"]
        keys = {int(v): str(k["public_key"]) for v, k in data["keys"].items()}
        return str(data["type"]), int(data["latest_version"]), keys

    def transit_sign(self, mount: str, key: str, version: int, message: bytes) -> str:
        """``vault:v<version>:<base64 signature>`` of ``message`` under that key version."""
        try:
            response = self._client.write_data(
                f"{mount}/sign/{key}",
                data={"input": base64.b64encode(message).decode("ascii"), "key_version": version},
            )
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise vault_error(exc, "sign with its Transit key") from exc
        if not isinstance(response, dict):
            raise IssuanceError("Vault returned no signature", code="vault_error")
        return str(response["data"]["signature"])

    # -- plumbing ----------------------------------------------------------------------------

    async def _run(self, action: str, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, call)
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise vault_error(exc, action) from exc

    async def _run_or_gone(self, action: str, call: Callable[[], T]) -> T | None:
        """Like :meth:`_run`, but None when Vault says the thing no longer exists."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, call)
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath) as exc:
            if _is_gone(exc):
                return None
            raise vault_error(exc, action) from exc
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise vault_error(exc, action) from exc


def vault_error(exc: Exception, action: str) -> IssuanceError:
    """The IssuanceError for a Vault failure: never the request or its secrets, only its kind."""
    where = f"Vault could not {action}"
    if isinstance(exc, hvac.exceptions.VaultDown):
        return IssuanceError(f"{where}: it is sealed or in standby", code="vault_sealed")
    if isinstance(exc, hvac.exceptions.Forbidden | hvac.exceptions.Unauthorized):
        return IssuanceError(
            f"{where}: the broker's token was refused (expired, revoked or missing a policy)",
            code="vault_forbidden",
        )
    if isinstance(exc, hvac.exceptions.InvalidRequest | hvac.exceptions.InvalidPath):
        return IssuanceError(f"{where}: {_vault_messages(exc)}", code="vault_rejected")
    if isinstance(exc, requests.Timeout):
        return IssuanceError(f"{where}: no answer in time", code="vault_timeout")
    if isinstance(exc, requests.ConnectionError):
        return IssuanceError(f"{where}: it is unreachable", code="vault_unavailable")
    return IssuanceError(f"{where}: {type(exc).__name__}", code="vault_error")


def _is_gone(exc: Exception) -> bool:
    text = _vault_messages(exc).lower()
    return any(marker in text for marker in _GONE)


def _vault_messages(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        return "; ".join(str(e) for e in errors)[:300]
    return str(exc)[:300] or type(exc).__name__


def _token_info(data: Mapping[str, Any]) -> TokenInfo:
    expire, issued = data.get("expire_time"), data.get("issue_time")
    return TokenInfo(
        accessor=str(data["accessor"]),
        # issue_time keeps sub-second precision; creation_time is whole seconds.
        issued_at=parse_time(issued)
        if isinstance(issued, str)
        else datetime.fromtimestamp(int(data["creation_time"]), UTC),
        expires_at=parse_time(expire) if isinstance(expire, str) else None,
        meta={str(k): str(v) for k, v in (data.get("meta") or {}).items()},
        policies=tuple(str(p) for p in data.get("policies") or ()),
        role=str(data.get("role") or ""),
        orphan=bool(data.get("orphan")),
    )
