"""How a reconciler finding reaches people: a structured log line, a counter, a webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

import httpx

log = logging.getLogger("grantline.alerts")

# Findings by code since the process started, for /metrics.
FINDINGS: Counter[str] = Counter()

SIGNATURE_HEADER = "X-Grantline-Signature"


def signature(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``: what a webhook receiver checks."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class Alerts:
    """Raises alerts; a failing webhook is logged and never stops the reconciler."""

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._url = webhook_url
        self._secret = webhook_secret or ""
        self._timeout = timeout_seconds

    async def alert(self, finding: str, request_id: str, details: Mapping[str, Any]) -> None:
        FINDINGS[finding] += 1
        event = {"event": "reconciled", "finding": finding, "request_id": request_id, **details}
        log.warning(json.dumps(event, sort_keys=True, default=str))
        if self._url:
            await self._post(event)

    async def _post(self, event: Mapping[str, Any]) -> None:
        body = json.dumps(event, sort_keys=True, default=str).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(body, self._secret)
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(str(self._url), content=body, headers=headers)
                response.raise_for_status()
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # A failing webhook must never stop the reconciler; the log line above stands.
            log.error("alert webhook failed: %s", type(exc).__name__)  # noqa: TRY400


def render_metrics() -> str:
    lines = [
        "# HELP grantline_reconcile_findings_total Reconciler findings by type.",
        "# TYPE grantline_reconcile_findings_total counter",
    ]
    lines += [
        f'grantline_reconcile_findings_total{{finding="{code}"}} {count}'
        for code, count in sorted(FINDINGS.items())
    ]
    return "\n".join(lines) + "\n"
