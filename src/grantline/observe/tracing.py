"""The OpenTelemetry adapter: the one module that imports it, and only once traces are on.

With no endpoint configured nothing here runs and OpenTelemetry is never imported: the
instruments hold ``None`` instead of a :class:`Tracing` and skip spans with one test.
Attributes are ids, names and counts; never a token, a credential, a reason or a message.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

from grantline import __version__
from grantline.domain.errors import GrantlineError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind, TracerProvider

log = logging.getLogger(__name__)

Attribute = str | bool | int | float

# The OTLP exporters, preferred first: OTLP over HTTP takes the collector's base URL plus
# the signal's path, gRPC the address alone.
_EXPORTERS = (
    ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "/v1/traces"),
    ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", ""),
)
_PROPAGATED = (b"traceparent", b"tracestate")


class SpanHandle(Protocol):
    def set_attribute(self, key: str, value: Attribute) -> None: ...

    def update_name(self, name: str) -> None: ...

    def set_status(self, status: Any) -> None: ...


class _NoSpan:
    def set_attribute(self, key: str, value: Attribute) -> None:
        return None

    def update_name(self, name: str) -> None:
        return None

    def set_status(self, status: Any) -> None:
        return None


_NOTHING: AbstractContextManager[SpanHandle] = nullcontext(_NoSpan())


class Tracing:
    """Spans through one OpenTelemetry tracer provider (an SDK provider with its exporter)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import trace  # noqa: PLC0415 — imported only when traces are on
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )

        self._trace = trace
        self._provider = provider
        self._tracer = provider.get_tracer("grantline", __version__)
        self._propagator = TraceContextTextMapPropagator()

    def server(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]]
    ) -> AbstractContextManager[SpanHandle]:
        """The span of one HTTP request, continuing the caller's W3C trace context if sent."""
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in _PROPAGATED}
        parent = self._propagator.extract(carrier) if carrier else None
        attributes = {"http.request.method": method, "url.path": path}
        return self._span(method, attributes, self._trace.SpanKind.SERVER, parent)

    def child(
        self, name: str, attributes: Mapping[str, Attribute]
    ) -> AbstractContextManager[SpanHandle]:
        """A span under the current one; nothing outside a traced request (background work
        such as a reconciliation pass makes no orphan spans)."""
        if not self._trace.get_current_span().is_recording():
            return _NOTHING
        return self._span(name, attributes, self._trace.SpanKind.INTERNAL, None)

    def annotate(self, attributes: Mapping[str, Attribute]) -> None:
        """Add ``attributes`` to the current span, if one is being recorded."""
        span = self._trace.get_current_span()
        if span.is_recording():
            span.set_attributes(dict(attributes))

    def fail(self, span: SpanHandle, error_type: str) -> None:
        """Mark ``span`` as failed with ``error_type`` (a code, never a message)."""
        from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, error_type))

    def shutdown(self) -> None:
        """Export what is buffered and stop the provider's processors."""
        shutdown = getattr(self._provider, "shutdown", None)
        if callable(shutdown):
            shutdown()

    @contextmanager
    def _span(
        self,
        name: str,
        attributes: Mapping[str, Attribute],
        kind: SpanKind,
        parent: Context | None,
    ) -> Iterator[SpanHandle]:
        # Exceptions are not recorded: their messages and stack frames are not ours to export.
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=kind,
            attributes=dict(attributes),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                self.fail(span, error_type(exc))
                raise


def error_type(exc: BaseException) -> str:
    return exc.code if isinstance(exc, GrantlineError) else type(exc).__name__


def from_settings(endpoint: str | None, *, from_environment: bool) -> Tracing | None:
    """Traces exported over OTLP to ``endpoint`` (a collector's base URL), or to where the
    standard ``OTEL_EXPORTER_OTLP_*`` variables say when ``from_environment``; None when
    neither is set, or when OpenTelemetry or an OTLP exporter is not installed."""
    if not endpoint and not from_environment:
        return None
    try:
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    except ImportError:
        log.warning("traces are off: install grantline[otel] to export them")
        return None
    exporter = _otlp_exporter(endpoint)
    if exporter is None:
        log.warning("traces are off: install opentelemetry-exporter-otlp to export them")
        return None
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        # OTEL_SERVICE_NAME, when set, names the service; else it is grantline.
        resource = resource.merge(Resource({"service.name": "grantline"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider)


def _otlp_exporter(endpoint: str | None) -> Any:
    for module_name, path in _EXPORTERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if endpoint is None:
            return module.OTLPSpanExporter()
        return module.OTLPSpanExporter(endpoint=endpoint.rstrip("/") + path)
    return None
