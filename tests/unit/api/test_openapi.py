"""The OpenAPI document: every operation declares its errors in the API's own error body, the
bearer scheme covers exactly the routes that authenticate, and every example in it validates
against the schema it illustrates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from grantline.api.app import create_app
from grantline.api.auth import caller
from grantline.api.openapi import BEARER, MESSAGES
from grantline.api.routes import audit, operations, policy, public, requests
from grantline.config import Settings

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # Through JSON, as it is served.
    built: dict[str, Any] = json.loads(json.dumps(create_app(Settings()).openapi()))
    return built


def operations_of(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_every_operation_is_named_summarised_and_tagged(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations_of(document)]
    assert len(ids) == len(set(ids)) == 26
    for path, method, operation in operations_of(document):
        assert operation.get("summary"), (method, path)
        assert operation.get("tags"), (method, path)


def test_every_v1_operation_declares_the_bearer_scheme_and_its_401_and_503(
    document: dict[str, Any],
) -> None:
    scheme = document["components"]["securitySchemes"][BEARER]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    for path, method, operation in operations_of(document):
        if path.startswith("/v1/"):
            assert operation["security"] == [{BEARER: []}], (method, path)
            assert {"401", "503"} <= set(operation["responses"]), (method, path)
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
        else:
            assert "security" not in operation, (method, path)
            assert "401" not in operation["responses"], (method, path)


def test_the_bearer_scheme_covers_exactly_the_routes_that_depend_on_the_caller() -> None:
    def authenticates(dependant: Dependant) -> bool:
        return any(d.call is caller or authenticates(d) for d in dependant.dependencies)

    for module in (requests, audit, policy, operations, public):
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            assert authenticates(route.dependant) == route.path.startswith("/v1/"), route.path


def refusable(operation: dict[str, Any]) -> bool:
    """Whether some input can fail validation: a body, a query parameter, or a path
    parameter constrained beyond "any string"."""
    unconstrained = {"type": "string", "title": ...}
    return "requestBody" in operation or any(
        parameter["in"] != "path"
        or set(parameter["schema"]) - set(unconstrained)
        or parameter["schema"]["type"] != "string"
        for parameter in operation.get("parameters", [])
    )


def test_exactly_the_operations_with_refusable_input_declare_422(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations_of(document):
        assert ("422" in operation["responses"]) == refusable(operation), (method, path)


def test_every_operation_with_a_body_declares_400_and_413(document: dict[str, Any]) -> None:
    for path, method, operation in operations_of(document):
        if "requestBody" in operation:
            assert {"400", "413"} <= set(operation["responses"]), (method, path)


def test_every_error_answer_is_the_error_body_with_an_example_per_code(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations_of(document):
        for status, answer in operation["responses"].items():
            if not 400 <= int(status) < 600 or (path, method, status) in _OWN_BODIES:
                continue
            content = answer["content"]
            assert list(content) == ["application/json"], (method, path, status)
            assert content["application/json"]["schema"] == ERROR_BODY, (method, path, status)
            examples = content["application/json"]["examples"]
            assert examples, (method, path, status)
            for code, example in examples.items():
                assert example["value"]["error"] == {"code": code, "message": MESSAGES[code]}
                assert f"`{code}`" in answer["description"]


# Answers whose body is not the plain error body: a denial carries its decision too, and
# readiness answers with the checks that failed.
_OWN_BODIES = {("/v1/access-requests", "post", "403"), ("/readyz", "get", "503")}


def test_fastapis_own_validation_error_schema_is_not_documented(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "HTTPValidationError" not in text
    assert "ValidationError" not in document["components"]["schemas"]


def test_the_content_types_are_documented_where_they_differ(document: dict[str, Any]) -> None:
    paths = document["paths"]
    records = paths["/v1/records"]["get"]["responses"]["200"]
    assert set(records["content"]) == {"application/json", "application/x-ndjson"}
    assert records["headers"]["X-Next-After"]["required"] is True
    checkpoint = paths["/v1/checkpoint"]["get"]["responses"]["200"]["content"]
    assert set(checkpoint) == {"application/json", "text/plain"}
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {
        "text/plain; version=0.0.4"
    }
    assert set(paths["/.well-known/grantline-log-key"]["get"]["responses"]["200"]["content"]) == {
        "text/plain"
    }
    introspect = paths["/v1/introspect"]["post"]["requestBody"]["content"]
    assert set(introspect) == {"application/json", "application/x-www-form-urlencoded"}


def test_a_credential_answer_says_it_must_not_be_stored(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for path, method, status in [
        ("/v1/access-requests", "post", "201"),
        ("/v1/access-requests/{request_id}/credential", "get", "200"),
        ("/v1/introspect", "post", "200"),
    ]:
        assert paths[path][method]["responses"][status]["headers"]["Cache-Control"]["required"]


def examples_in(node: Any) -> Iterator[tuple[Any, Any, str]]:
    """(example, the schema it illustrates, where) for every example anywhere in ``node``."""
    if isinstance(node, list):
        for index, child in enumerate(node):
            for example, schema, where in examples_in(child):
                yield example, schema, f"[{index}].{where}"
        return
    if not isinstance(node, dict):
        return
    yield from _own_examples(node)
    for key, child in node.items():
        if key not in ("example", "examples"):
            for example, schema, where in examples_in(child):
                yield example, schema, f"{key}.{where}"


def _own_examples(node: dict[str, Any]) -> Iterator[tuple[Any, Any, str]]:
    if "schema" in node:
        # A media type or a parameter: examples of the value its schema describes.
        if "example" in node:
            yield node["example"], node["schema"], "example"
        for name, example in (node.get("examples") or {}).items():
            yield example["value"], node["schema"], f"examples.{name}"
    elif isinstance(node.get("examples"), list):
        # A schema object: JSON Schema's list of examples of itself.
        for index, example in enumerate(node["examples"]):
            yield example, node, f"examples[{index}]"


def test_every_example_validates_against_the_schema_it_illustrates(
    document: dict[str, Any],
) -> None:
    found = list(examples_in(document))
    assert len(found) > 60
    components = document["components"]
    for example, schema, where in found:
        rooted = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        validator = jsonschema_rs.validator_for(
            {**rooted, "components": components}, validate_formats=True
        )
        errors = [error.message for error in validator.iter_errors(example)]
        assert not errors, (where, errors)


def test_the_example_walk_finds_a_broken_example() -> None:
    broken = {"schema": {"type": "integer"}, "examples": {"bad": {"value": "seven"}}}
    [(example, schema, _)] = list(examples_in({"content": {"application/json": broken}}))
    assert not jsonschema_rs.validator_for(schema).is_valid(example)
