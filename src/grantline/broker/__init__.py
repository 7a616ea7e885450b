"""The use cases: access requests (access.py) and their approvals (approvals.py)."""

from grantline.broker.access import (
    AUDITORS,
    OPERATORS,
    Broker,
    BrokerSettings,
    RequestOutcome,
    approvals_of,
    handle_of,
)

__all__ = [
    "AUDITORS",
    "OPERATORS",
    "Broker",
    "BrokerSettings",
    "RequestOutcome",
    "approvals_of",
    "handle_of",
]
