"""Unauthenticated endpoints: published keys, discovery, health, readiness, metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from grantline.api import responses as bodies
from grantline.api.auth import runtime_of
from grantline.api.metrics import render_metrics
from grantline.broker.access import BREAK_GLASS_GRANTS
from grantline.notify import render_metrics as render_webhooks
from grantline.observe.metrics import render_broker_metrics
from grantline.reconcile.alerts import render_metrics as render_findings

router = APIRouter(tags=["public"])

_LOG_KEY = "127.0.0.1:8080/grantline+ee0d4e6e+AUBbqh6iRWLP6NreIWAiSUmq21FX44CDkz9kQP/Vu2wK\n"
_METRICS = (
    "# HELP grantline_break_glass_grants_total Break-glass grants issued, by role.\n"
    "# TYPE grantline_break_glass_grants_total counter\n"
    'grantline_break_glass_grants_total{role="db-admin"} 1\n'
)


@router.get(
    "/.well-known/jwks.json",
    operation_id="jwks",
    summary="Public keys (JWKS)",
    response_model=None,
    responses={200: {"model": bodies.Jwks}},
)
async def jwks(request: Request) -> JSONResponse:
    return JSONResponse(runtime_of(request).jwks(), headers={"Cache-Control": "max-age=300"})


@router.get(
    "/.well-known/openid-configuration",
    operation_id="discovery",
    summary="Discovery document",
    response_model=None,
    responses={200: {"model": bodies.Discovery}},
)
async def discovery(request: Request) -> dict[str, Any]:
    issuer = runtime_of(request).settings.issuer_url
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/v1/introspect",
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["none"],
    }


@router.get(
    "/.well-known/grantline-log-key",
    operation_id="logKey",
    summary="The log key as a C2SP verifier key",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"example": _LOG_KEY}}}},
)
async def log_key(request: Request) -> PlainTextResponse:
    """The log key as a C2SP verifier key, to check checkpoint notes with."""
    return PlainTextResponse(runtime_of(request).checkpoints.verifier_key().encode() + "\n")


@router.get(
    "/healthz",
    operation_id="healthz",
    summary="Liveness",
    response_model=None,
    responses={200: {"model": bodies.Health}},
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness",
    response_model=None,
    responses={
        200: {"model": bodies.Readiness},
        503: {"model": bodies.Readiness, "description": "Not ready: a check failed."},
    },
)
async def readyz(request: Request) -> JSONResponse:
    """Ready only when the store answers, the signing keys work and a policy is loaded."""
    runtime = runtime_of(request)
    checks = {
        "store": await runtime.grants.ping(),
        "signer": await _signer_works(request),
        "policy": runtime.policy.ready(),
    }
    reasons: list[str] = []
    if runtime.persistence is not None:
        # A store that answers but cannot write to disk would lose what it acknowledges.
        persisting = await runtime.persistence.status()
        checks["persistence"] = persisting.ok
        reasons += [persisting.reason] if persisting.reason else []
    status = 200 if all(checks.values()) else 503
    body: dict[str, Any] = {"ready": status == 200, "checks": checks}
    if reasons:
        body["reasons"] = reasons
    if runtime.vault is not None:
        # Reported, not required: without Vault the broker still issues JWTs.
        body["vault"] = await runtime.vault.healthy()
    return JSONResponse(body, status_code=status)


async def _signer_works(request: Request) -> bool:
    runtime = runtime_of(request)

    def probe() -> None:
        runtime.log_signer.sign(b"grantline/readiness\x00")
        runtime.token_signer.sign(b"grantline/readiness\x00")

    try:
        # A key held in Vault signs over the network: never on the event loop.
        if runtime.log_signer.blocking or runtime.token_signer.blocking:
            await asyncio.to_thread(probe)
        else:
            probe()
    except Exception:
        return False
    return True


class PrometheusText(PlainTextResponse):
    media_type = "text/plain; version=0.0.4"


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    response_class=PrometheusText,
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {PrometheusText.media_type: {"example": _METRICS}},
        }
    },
)
async def metrics() -> PrometheusText:
    text = (
        render_metrics()
        + render_broker_metrics()
        + render_findings()
        + render_webhooks()
        + _break_glass_metrics()
    )
    return PrometheusText(text)


def _break_glass_metrics() -> str:
    lines = [
        "# HELP grantline_break_glass_grants_total Break-glass grants issued, by role.",
        "# TYPE grantline_break_glass_grants_total counter",
    ]
    lines += [
        f'grantline_break_glass_grants_total{{role="{role}"}} {count}'
        for role, count in sorted(BREAK_GLASS_GRANTS.items())
    ]
    return "\n".join(lines) + "\n"
