"""The request API fuzzed from its own OpenAPI document against a served broker (schemathesis).

Properties: no answer is a server error (no 5xx at all: the broker's store, signer and policy
are up, so a 503 would be a bug too), and every answer is one the document describes: its
status, content type, headers and body schema. Invalid input (schemathesis' negative mode) must
be refused with a documented 4xx, and authenticated operations refuse a missing or wrong token.

The caller is ``user:fuzzer``, added to a copy of the shipped policy as an auditor and an
operator bound to ``db-read`` (issued at once), ``report-write`` (needs an approver) and
``db-admin`` (break-glass), so that the document's examples reach every kind of answer.
Bounded for CI: a fixed seed, derandomised, at most ``MAX_EXAMPLES`` fuzzed cases an operation.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, settings
from jwt.algorithms import OKPAlgorithm
from tests.conftest import POLICIES, Served, serve

from grantline.api.app import create_app
from grantline.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

FUZZER = "user:fuzzer"
SEED = 20261123
MAX_EXAMPLES = 50
STATEFUL_EXAMPLES = 25


def _fuzzer_policies(directory: Path) -> Path:
    shutil.copytree(POLICIES, directory)
    data_file = directory / "data.json"
    data: dict[str, Any] = json.loads(data_file.read_text())
    grantline = data["grantline"]
    grantline["groups"]["auditors"].append(FUZZER)
    grantline["groups"]["operators"].append(FUZZER)
    roles = ["db-read", "report-write", "db-admin"]
    grantline["bindings"].append({"subject": FUZZER, "roles": roles})
    data_file.write_text(json.dumps(data))
    return directory


# schemathesis builds the document's examples, authenticated, when the module is collected,
# before any broker runs: so the fuzzer's token comes from an issuer made here, in memory, that
# the broker is told to trust (GRANTLINE_TRUSTED_ISSUERS), not from the broker's dev issuer.
_ISSUER = "https://fuzzer.grantline.test"
_KEY = Ed25519PrivateKey.generate()
_KID = "fuzzer-1"


def _token() -> str:
    now = int(time.time())
    claims = {"iss": _ISSUER, "sub": FUZZER, "aud": "grantline", "iat": now, "nbf": now}
    return jwt.encode({**claims, "exp": now + 3600}, _KEY, algorithm="EdDSA", headers={"kid": _KID})


TOKEN = _token()


def _trusted_issuers(directory: Path) -> Path:
    jwk = {**json.loads(OKPAlgorithm.to_jwk(_KEY.public_key())), "kid": _KID, "alg": "EdDSA"}
    entry = {"issuer": _ISSUER, "algorithms": ["EdDSA"], "jwks": {"keys": [jwk]}}
    path = directory / "trusted-issuers.json"
    path.write_text(json.dumps([entry]))
    return path


@pytest.fixture(scope="module")
def fuzzed_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("openapi-fuzz")
    served = serve(
        root / "home",
        policies=_fuzzer_policies(root / "policies"),
        extra_env={"GRANTLINE_TRUSTED_ISSUERS": str(_trusted_issuers(root))},
    )
    yield served
    served.stop()


# Tuning, each with its reason; nothing is excluded.
# Statuses that answer schema-valid input without breaking the document's promise:
# schemathesis' own list, and 413: the body limit (GRANTLINE_MAX_BODY_BYTES) counts bytes while
# the schema's maxLength counts characters, so long multi-byte strings can exceed it.
ACCEPTED = ["2XX", "3XX", 401, 403, 404, 409, 413, 429]
# ... and 422 where the broker refuses schema-valid input for reasons a schema cannot state.
ACCEPTED_OR_REFUSED = [*ACCEPTED, 422]
# Statuses that refuse invalid input: schemathesis' own list, and 413 (refused unparsed).
REJECTED = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5XX"]
CHECKS = {
    "positive_data_acceptance": {"expected-statuses": ACCEPTED},
    "negative_data_rejection": {"expected-statuses": REJECTED},
}
OPERATIONS: list[dict[str, Any]] = [
    {
        # Query parameters the document does not name are ignored, as HTTP APIs do, so an
        # extra one is not invalid input. Only GETs: extra body members must still be refused.
        "include-method": "GET",
        "generation": {"allow-extra-parameters": False},
    },
    {
        # Access requests refused with 422 although schema-valid: a credential type this
        # broker does not offer (Vault types, no Vault here), rules across members
        # (break_glass needs a justification, agent.on_behalf_of a subject_token, public_key
        # a jwt credential), a subject_token that does not verify, an EC key off its curve.
        "include-operation-id": "requestAccess",
        "checks": {
            **CHECKS,
            "positive_data_acceptance": {"expected-statuses": ACCEPTED_OR_REFUSED},
        },
    },
    {
        # Proofs past the end of the log, or a consistency proof with from > to: the log's
        # size is state, and from <= to relates two parameters.
        "include-operation-id": ["inclusionProof", "inclusionProofs", "consistencyProof"],
        "checks": {
            **CHECKS,
            "positive_data_acceptance": {"expected-statuses": ACCEPTED_OR_REFUSED},
        },
    },
]

# The document is taken from the app itself, so that schemathesis can make one test per
# operation when the module is collected (its lazy, fixture-loaded schemas do not run on
# pytest 9); the first test checks that the broker serves exactly this document.
DOCUMENT = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
            "auth": {"openapi": {"bearerAuth": {"bearer": TOKEN}}},
            "checks": CHECKS,
            "request-timeout": 10,
            "operations": OPERATIONS,
        }
    ),
)


def test_the_broker_serves_the_document_that_is_fuzzed(fuzzed_broker: Served) -> None:
    served = httpx.get(f"{fuzzed_broker.url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(DOCUMENT))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_documented_and_none_is_a_server_error(
    case: schemathesis.Case, fuzzed_broker: Served
) -> None:
    case.call_and_validate(base_url=fuzzed_broker.url)


def test_workflows_along_the_documents_links_answer_as_documented(fuzzed_broker: Served) -> None:
    """Stateful: a request id from an answer is used as the document's links say (describe,
    lineage, revoke, approve, reject, collect), so those answers are checked on real requests."""
    base_url = fuzzed_broker.url

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": base_url}

    Workflow.run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=6,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
