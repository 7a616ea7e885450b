"""Webhook delivery counters and the queue-depth gauge, per process, in Prometheus text format."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Protocol


@dataclass
class WebhookTotals:
    """Since start-up: notifications by final outcome, and attempts followed by another."""

    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    retries: int = 0


TOTALS = WebhookTotals()


class _Queued(Protocol):
    def queue_depth(self) -> int: ...


# The gauge is read from the notifiers alive at scrape time, so it cannot drift from the queues.
_notifiers: weakref.WeakSet[_Queued] = weakref.WeakSet()


def watch(notifier: _Queued) -> None:
    """Count ``notifier``'s queue in the depth gauge for as long as the notifier lives."""
    _notifiers.add(notifier)


def queue_depth() -> int:
    return sum(notifier.queue_depth() for notifier in list(_notifiers))


def render_metrics() -> str:
    """The webhook metrics in the Prometheus text format, for ``/metrics``."""
    lines = [
        "# HELP grantline_webhook_deliveries_total Webhook notifications by final outcome.",
        "# TYPE grantline_webhook_deliveries_total counter",
        f'grantline_webhook_deliveries_total{{outcome="delivered"}} {TOTALS.delivered}',
        f'grantline_webhook_deliveries_total{{outcome="failed"}} {TOTALS.failed}',
        f'grantline_webhook_deliveries_total{{outcome="dropped"}} {TOTALS.dropped}',
        "# HELP grantline_webhook_retries_total Webhook delivery attempts that were retried.",
        "# TYPE grantline_webhook_retries_total counter",
        f"grantline_webhook_retries_total {TOTALS.retries}",
        "# HELP grantline_webhook_queue_depth Webhook notifications waiting for delivery.",
        "# TYPE grantline_webhook_queue_depth gauge",
        f"grantline_webhook_queue_depth {queue_depth()}",
    ]
    return "\n".join(lines) + "\n"
