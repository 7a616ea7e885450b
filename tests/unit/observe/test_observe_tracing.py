"""The OpenTelemetry adapter: off by default, spans only inside a traced request."""

from __future__ import annotations

import logging

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from grantline.domain.errors import DependencyUnavailableError
from grantline.observe.http import RequestContext
from grantline.observe.tracing import Tracing, from_settings


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Tracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider)


def test_no_endpoint_means_no_tracing() -> None:
    assert from_settings(None, from_environment=False) is None


def test_an_endpoint_without_an_otlp_exporter_installed_turns_traces_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("opentelemetry.sdk")
    try:
        import opentelemetry.exporter.otlp  # type: ignore[import-not-found]  # noqa: F401, PLC0415

        pytest.skip("an OTLP exporter is installed here")
    except ImportError:
        pass
    with caplog.at_level(logging.WARNING):
        assert from_settings("http://collector:4318", from_environment=False) is None
    assert "opentelemetry-exporter-otlp" in caplog.text


def test_work_outside_a_traced_request_makes_no_span(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    with tracing.child("grantline.log.append", {"grantline.log.records": 1}) as span:
        span.set_attribute("ignored", True)

    assert exporter.get_finished_spans() == ()


def _app(tracing: Tracing) -> RequestContext:
    async def work(request: Request) -> PlainTextResponse:
        with tracing.child("grantline.policy.evaluate", {"grantline.policy.entrypoint": "x"}):
            pass
        if request.path_params["what"] == "fail":
            with tracing.child("grantline.credential.mint", {}):
                raise DependencyUnavailableError("down", code="vault_unavailable")
        return PlainTextResponse("ok")

    async def unavailable(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("down", status_code=503)

    starlette = Starlette(
        routes=[Route("/work/{what}", work)],
        exception_handlers={DependencyUnavailableError: unavailable},
    )
    return RequestContext(starlette, tracing)


async def test_a_request_is_a_server_span_with_its_work_as_children(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    transport = httpx.ASGITransport(app=_app(tracing))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/work/ok", headers={"X-Request-Id": "corr-9"})

    child, server = exporter.get_finished_spans()
    assert server.name == "GET /work/{what}"
    assert server.kind is SpanKind.SERVER
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/work/{what}"
    assert server.attributes["http.response.status_code"] == response.status_code == 200
    assert server.attributes["grantline.correlation_id"] == "corr-9"
    assert child.name == "grantline.policy.evaluate"
    assert child.parent is not None
    assert child.parent.span_id == server.context.span_id


async def test_a_failure_marks_the_span_with_its_code_and_records_no_message(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    transport = httpx.ASGITransport(app=_app(tracing))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/work/fail")

    assert response.status_code == 503
    spans = {span.name: span for span in exporter.get_finished_spans()}
    mint = spans["grantline.credential.mint"]
    assert mint.status.status_code is StatusCode.ERROR
    assert mint.attributes is not None
    assert mint.attributes["error.type"] == "vault_unavailable"
    assert mint.events == ()
    assert spans["GET /work/{what}"].status.status_code is StatusCode.ERROR


async def test_a_callers_trace_context_is_continued(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    transport = httpx.ASGITransport(app=_app(tracing))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await client.get("/work/ok", headers={"traceparent": parent})

    server = exporter.get_finished_spans()[-1]
    assert format(server.context.trace_id, "032x") == trace_id
