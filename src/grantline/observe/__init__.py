"""Observability: Prometheus metrics, structured logs with request ids, optional traces.

The broker's code does not know it is observed: the composition root wraps the policy
engine, the ledger, the issuers and the broker (``instruments``), the API adds one
middleware (``http``), ``serve`` configures logging (``logs``). OpenTelemetry is imported
by ``tracing`` alone, and only when traces are asked for.
"""
