"""HTTP metrics for ``/metrics``: responses by route and status, and the time to answer.

Recorded by the request middleware (``grantline.observe.http``), with the request's ids.
"""

from __future__ import annotations

from grantline.observe.metrics import render_http_metrics


def render_metrics() -> str:
    return render_http_metrics()
