"""Telling the outside what happened: signed webhooks, delivered in the background."""

from grantline.notify.metrics import TOTALS, WebhookTotals, render_metrics
from grantline.notify.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    GiveUp,
    Notification,
    Notifier,
    signature,
)

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TOTALS",
    "GiveUp",
    "Notification",
    "Notifier",
    "WebhookTotals",
    "render_metrics",
    "signature",
]
