"""How a reconciler finding reaches people: a structured log line, a counter, a webhook."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from grantline.notify import SIGNATURE_HEADER, Notifier, signature

__all__ = ["FINDINGS", "SIGNATURE_HEADER", "Alerts", "render_metrics", "signature"]

log = logging.getLogger("grantline.alerts")

# Findings by code since the process started, for /metrics.
FINDINGS: Counter[str] = Counter()


class Alerts:
    """Raises alerts; the webhook is only queued, so a failing receiver never holds the pass up."""

    def __init__(self, notifier: Notifier | None = None) -> None:
        self._notifier = notifier

    async def alert(self, finding: str, request_id: str, details: Mapping[str, Any]) -> None:
        FINDINGS[finding] += 1
        event = {"event": "reconciled", "finding": finding, "request_id": request_id, **details}
        log.warning(json.dumps(event, sort_keys=True, default=str))
        if self._notifier is not None:
            self._notifier.notify("reconciled", request_id, {"finding": finding, **details})


def render_metrics() -> str:
    """The findings counter, for ``/metrics`` (the webhook's own are ``notify.render_metrics``)."""
    lines = [
        "# HELP grantline_reconcile_findings_total Reconciler findings by type.",
        "# TYPE grantline_reconcile_findings_total counter",
    ]
    lines += [
        f'grantline_reconcile_findings_total{{finding="{code}"}} {count}'
        for code, count in sorted(FINDINGS.items())
    ]
    return "\n".join(lines) + "\n"
