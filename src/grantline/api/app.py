"""The FastAPI application and its lifespan: build the runtime, reload policies, close cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI

from grantline import __version__
from grantline.api import errors, openapi, ratelimit
from grantline.api.limits import BodySizeLimit, ConcurrencyLimit
from grantline.api.routes import audit, operations, policy, public, requests, ui, usage
from grantline.config import Runtime, Settings, runtime
from grantline.domain.errors import ConfigError, DependencyUnavailableError, GrantlineError
from grantline.observe import tracing as traces
from grantline.observe.http import RequestContext

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, tracing: traces.Tracing | None = None
) -> FastAPI:
    """The ASGI app for ``settings`` (read from the environment when not given). ``tracing``
    stands in for the exporter the settings name (tests give one that keeps spans in memory)."""
    settings = settings or Settings()
    owned = None if tracing is not None else _tracing(settings)
    tracing = tracing or owned

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime(settings, tracing) as built:
            app.state.runtime = built
            # The policy this process decides with is on record before it decides anything.
            await built.policy_watch.start()
            await built.notifier.start()
            tasks = [
                asyncio.create_task(_reload_policies(built)),
                asyncio.create_task(_settle_withheld(built)),
                asyncio.create_task(_record_usage(built)),
            ]
            if settings.reconcile_seconds > 0:
                tasks.append(asyncio.create_task(_reconcile(built)))
            if built.vault is not None:
                tasks.append(asyncio.create_task(_renew_vault_token(built)))
            if built.vault_audit is not None:
                tasks.append(asyncio.create_task(_read_vault_audit(built)))
            if settings.checkpoint_seconds > 0:
                tasks.append(asyncio.create_task(_publish_checkpoints(built)))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await built.notifier.close()
                if owned is not None:
                    owned.shutdown()

    app = FastAPI(
        title="Grantline",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    ratelimit.install(app)
    app.include_router(requests.router)
    app.include_router(audit.router)
    app.include_router(policy.router)
    app.include_router(operations.router)
    app.include_router(public.router)
    app.include_router(ui.router)
    app.include_router(usage.router)
    openapi.install(app)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    if settings.max_concurrent_requests > 0:
        # Outside the body limit: a shed request costs no more than its 503.
        app.add_middleware(ConcurrencyLimit, limit=settings.max_concurrent_requests)
    # Outermost: ids, HTTP metrics and the request's span cover everything inside.
    app.add_middleware(RequestContext, tracing=tracing)
    return app


def _tracing(settings: Settings) -> traces.Tracing | None:
    return traces.from_settings(
        settings.otel_endpoint, from_environment=settings.otel_exporter_otlp_endpoint is not None
    )


async def _reload_policies(built: Runtime) -> None:
    while True:
        await asyncio.sleep(built.settings.policy_reload_seconds)
        try:
            if await built.policy_watch.check():
                log.info("policy reloaded: %s", built.policy.digest)
        except ConfigError as exc:
            log.error(  # noqa: TRY400 — the message says it all; no traceback wanted
                "policy reload failed, keeping the previous policy: %s", exc.message
            )
        except GrantlineError as exc:
            log.error(  # noqa: TRY400
                "could not record the policy activation, trying again: %s", exc.message
            )


async def _every(seconds: float, job: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``job`` every ``seconds``; the loop outlives any one failed run."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except GrantlineError as exc:
            log.error("could not %s: %s", what, exc.message)  # noqa: TRY400
        except Exception:
            log.exception("could not %s", what)


async def _settle_withheld(built: Runtime) -> None:
    """Credentials withheld for want of a confirmed ``issued`` record: once the store answers,
    revoke those whose record landed after all (broker/withheld.py)."""
    broker = built.broker

    async def settle() -> None:
        if not len(broker.withheld):
            return
        try:
            revoked = await broker.settle_withheld()
        except DependencyUnavailableError:
            return  # the store still fails, as the requests' 503s said: the next pass retries
        if revoked:
            log.warning("revoked %d withheld credentials whose issued record landed", revoked)

    await _every(1.0, settle, "settle withheld credentials")


async def _record_usage(built: Runtime) -> None:
    """Each usage window, once ended, becomes one ``used`` record (broker/usage.py)."""
    every = min(5.0, max(0.5, built.settings.usage_window_seconds / 2))
    await _every(every, built.usage.record_closed, "record usage")


async def _read_vault_audit(built: Runtime) -> None:
    """Uses of Vault grant tokens, from OpenBao's audit log (issuers/vault/audit.py)."""
    if built.vault_audit is not None:
        await _every(1.0, built.vault_audit.run_once, "read the OpenBao audit log")


async def _reconcile(built: Runtime) -> None:
    while True:
        await asyncio.sleep(built.settings.reconcile_seconds)
        try:
            report = await built.reconciler.run_once()
        except GrantlineError as exc:
            log.error("reconciliation pass failed: %s", exc.message)  # noqa: TRY400
            continue
        except Exception:
            # The loop must outlive any one bad pass.
            log.exception("reconciliation pass failed")
            continue
        for problem in report.errors:
            log.warning("reconciliation: %s", problem)


async def _publish_checkpoints(built: Runtime) -> None:
    while True:
        try:
            await built.checkpoints.publish()
        except GrantlineError as exc:
            log.error("could not publish a checkpoint: %s", exc.message)  # noqa: TRY400
        except Exception:
            log.exception("could not publish a checkpoint")
        await asyncio.sleep(built.settings.checkpoint_seconds)


async def _renew_vault_token(built: Runtime) -> None:
    vault = built.vault
    while vault is not None:
        await asyncio.sleep(10)
        try:
            if await vault.renew_if_due(built.clock.now()):
                log.info("renewed the broker's Vault token")
        except GrantlineError as exc:
            log.error("could not renew the broker's Vault token: %s", exc.message)  # noqa: TRY400
        except Exception:
            log.exception("could not renew the broker's Vault token")
