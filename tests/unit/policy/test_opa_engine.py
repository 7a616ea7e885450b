"""The OPA server backend against OPA's documented Data API shapes (respx): decisions, the
policy digest read from provenance, and every failure denying with ``engine_error``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import rfc8785
from tests.unit.policy.opa_double import OPA_URL, OpaDouble, denies_empty_input, opa_body, undefined

from grantline.broker.decisions import decision_evidence, outcome_of
from grantline.policy.engine import NO_DECISION, canonical_input
from grantline.policy.opa import OPA_PROVENANCE, OpaEngine, OpaSettings, revisions_digest

POLICIES = Path(__file__).resolve().parents[3] / "policies"
DECISION = f"{OPA_URL}/v1/data/grantline/decision"
APPROVAL = f"{OPA_URL}/v1/data/grantline/approval"
CI = "spiffe://example.org/ci-runner"
ALLOW = {"allow": True, "reasons": [], "require_approval": False, "rule": "rbac"}


def access_input(role: str = "db-read", ttl: int = 600, subject: str = CI) -> dict[str, Any]:
    return {
        "identity": {"subject": subject, "issuer": "https://issuer.test", "claims": {}},
        "request": {
            "target": "postgres://orders-db",
            "role": role,
            "ttl_seconds": ttl,
            "credential_type": "jwt",
            "purpose": "test",
            "ticket": "",
            "agent": {},
        },
        "active_grants": [],
        "now": "2026-11-23T10:00:00.000Z",
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> Iterator[OpaEngine]:
    opa = OpaEngine(OpaSettings(OPA_URL, timeout_seconds=0.2, retries=2), monotonic=clock)
    yield opa
    opa.close()


@pytest.fixture
def double(mock: respx.MockRouter) -> OpaDouble:
    served = OpaDouble(POLICIES)
    served.install(mock)
    return served


def only_decisions(mock: respx.MockRouter, body: dict[str, Any]) -> respx.Route:
    """Decisions answer ``body``; the empty input (the vetting probe) a well-formed deny, and
    the approval rule is undefined, all under the provenance of ``body``."""
    mock.post(APPROVAL).mock(return_value=httpx.Response(200, json=undefined(body)))
    return mock.post(DECISION).mock(side_effect=denies_empty_input(body))


def assert_engine_error(decision: Any, fragment: str) -> None:
    assert decision.allow is False
    assert decision.extra.get("engine_error") is True
    assert any(fragment in reason for reason in decision.reasons), decision.reasons


# -- decisions ---------------------------------------------------------------------------------


def test_an_allowed_request_posts_the_canonical_input_with_provenance(
    engine: OpaEngine, double: OpaDouble, mock: respx.MockRouter
) -> None:
    policy_input = access_input()

    decision = engine.evaluate(policy_input)

    assert decision.allow is True
    assert decision.extra["rule"] == "rbac"
    canonical = canonical_input(policy_input)
    assert decision.input_json == canonical
    assert decision.input_digest == "sha256:" + hashlib.sha256(canonical).hexdigest()
    sent = next(c.request for c in mock.calls if c.request.content != b'{"input":{}}')
    assert sent.url.path == "/v1/data/grantline/decision"
    assert sent.url.params["provenance"] == "true"
    assert sent.content == b'{"input":' + canonical + b"}"
    assert sent.headers["content-type"] == "application/json"


def test_a_bundle_built_by_grantline_names_its_decisions_by_the_bundle_digest(
    engine: OpaEngine, double: OpaDouble
) -> None:
    decision = engine.evaluate(access_input())

    assert decision.policy_digest == double.engine.digest == double.revision
    opa = decision.extra[OPA_PROVENANCE]
    assert opa["bundles"] == {"grantline": double.revision}
    assert opa["decision_id"].startswith("d-")


def test_other_revisions_are_named_by_a_digest_of_the_revisions_map(
    engine: OpaEngine, mock: respx.MockRouter
) -> None:
    body = opa_body(ALLOW, revision="v42")
    body["provenance"]["bundles"]["extra"] = {"revision": "git-abc"}
    only_decisions(mock, body)

    decision = engine.evaluate(access_input())

    revisions = {"extra": "git-abc", "grantline": "v42"}
    expected = hashlib.sha256(b"grantline-opa-revisions-v1\n" + rfc8785.dumps(revisions))
    assert decision.policy_digest == "sha256:" + expected.hexdigest()
    assert decision.policy_digest == revisions_digest(revisions)
    assert decision.extra[OPA_PROVENANCE]["bundles"] == revisions


def test_a_decision_of_the_embedded_engine_and_of_opa_compare_the_same_in_a_replay(
    engine: OpaEngine, double: OpaDouble
) -> None:
    policy_input = access_input(ttl=7200)

    through_opa = decision_evidence(engine.evaluate(policy_input))
    embedded = decision_evidence(double.engine.evaluate(policy_input))

    assert through_opa["allow"] is False
    assert OPA_PROVENANCE in through_opa
    assert outcome_of(through_opa) == outcome_of(embedded)


def test_an_approval_is_asked_of_the_approval_document(
    engine: OpaEngine, double: OpaDouble, mock: respx.MockRouter
) -> None:
    approval_input = {
        "approver": {"subject": "user:sam", "issuer": "i", "claims": {}},
        "approver_active_grants": [],
        "request": {
            "request_id": "r1",
            "subject": "user:alice",
            "requested_by": "user:alice",
            "actors": [],
            "role": "report-write",
            "target": "s3://reports",
            "ttl_seconds": 600,
            "credential_type": "jwt",
        },
        "approval": {"all_of": [{"group": "security", "count": 1, "members": ["user:sam"]}]},
        "now": "2026-11-23T10:05:00.000Z",
    }

    decision = engine.evaluate_approval(approval_input)

    assert decision.allow is True
    assert decision.extra["groups"] == ["security"]
    assert any(c.request.url.path.endswith("/approval") for c in mock.calls)


def test_an_undefined_decision_denies_as_the_embedded_engine_does(
    engine: OpaEngine, mock: respx.MockRouter
) -> None:
    only_decisions(mock, opa_body())  # no "result": undefined for this input

    decision = engine.evaluate(access_input())

    assert decision.allow is False
    assert decision.reasons == (NO_DECISION,)
    assert "engine_error" not in decision.extra


@pytest.mark.parametrize(
    ("result", "fragment"),
    [
        ({"allow": "true", "reasons": []}, "allow must be a boolean"),
        ({"allow": True}, "reasons must be a list of strings"),
        ({"allow": True, "reasons": [], "require_approval": "yes"}, "require_approval"),
        ([True], "expected an object, got an array"),
        ("allow", "expected an object, got a string"),
    ],
)
def test_a_malformed_decision_denies(
    engine: OpaEngine, mock: respx.MockRouter, result: Any, fragment: str
) -> None:
    only_decisions(mock, opa_body(result))

    decision = engine.evaluate(access_input())

    assert decision.allow is False
    assert any(fragment in reason for reason in decision.reasons), decision.reasons


# -- failures: every one denies, marked engine_error --------------------------------------------


def test_a_timeout_denies_and_is_not_retried(engine: OpaEngine, mock: respx.MockRouter) -> None:
    route = mock.post(DECISION).mock(side_effect=httpx.ReadTimeout("slow"))

    decision = engine.evaluate(access_input())

    assert_engine_error(decision, "OPA did not answer within 0.2 s")
    assert route.call_count == 1


def test_connection_errors_are_retried_a_bounded_number_of_times(
    engine: OpaEngine, mock: respx.MockRouter
) -> None:
    route = mock.post(DECISION).mock(side_effect=httpx.ConnectError("refused"))

    decision = engine.evaluate(access_input())

    assert_engine_error(decision, "OPA is unreachable (ConnectError)")
    assert route.call_count == 3  # the first try and two retries


def test_a_connection_error_then_an_answer_decides(
    engine: OpaEngine, double: OpaDouble, mock: respx.MockRouter
) -> None:
    answers = iter([httpx.ConnectError("refused"), httpx.ConnectTimeout("slow to connect")])

    def flaky(request: httpx.Request) -> httpx.Response:
        failure = next(answers, None)
        if failure is not None:
            raise failure
        return double._decision(request)

    mock.post(DECISION).mock(side_effect=flaky)

    assert engine.evaluate(access_input()).allow is True


@pytest.mark.parametrize(
    ("response", "fragment"),
    [
        (httpx.Response(500, json={"code": "internal_error", "message": "x"}), "HTTP 500"),
        (httpx.Response(503, text="unavailable"), "HTTP 503"),
        (httpx.Response(400, json={"code": "invalid_parameter"}), "(invalid_parameter)"),
        (httpx.Response(404), "HTTP 404"),
        (httpx.Response(200, text="<html>not json</html>"), "something other than JSON"),
        (httpx.Response(200, json=[1, 2]), "not an object"),
        (httpx.Response(200, content=b'{"result": {}, "result": {"allow": true}}'), "JSON"),
        (httpx.Response(200, json={"result": ALLOW, "provenance": []}), "provenance"),
        (
            httpx.Response(200, json={"result": ALLOW, "provenance": {"bundles": {"b": 1}}}),
            "provenance",
        ),
    ],
)
def test_a_bad_answer_denies_with_engine_error(
    engine: OpaEngine, mock: respx.MockRouter, response: httpx.Response, fragment: str
) -> None:
    mock.post(DECISION).mock(return_value=response)

    assert_engine_error(engine.evaluate(access_input()), fragment)


def test_an_error_message_from_opa_is_never_repeated(
    engine: OpaEngine, mock: respx.MockRouter
) -> None:
    # OPA's messages may quote the input, which holds the caller's claims.
    body = {"code": "internal_error", "message": "eval failed at input.identity.claims.secret"}
    mock.post(DECISION).mock(return_value=httpx.Response(500, json=body))

    decision = engine.evaluate(access_input())

    assert all("claims" not in reason for reason in decision.reasons)


def test_an_input_that_is_not_json_denies_without_asking_opa(
    engine: OpaEngine, mock: respx.MockRouter
) -> None:
    route = mock.post(DECISION)

    decision = engine.evaluate({"now": float("nan")})

    assert decision.allow is False
    assert decision.input_digest == "none"
    assert route.call_count == 0


def test_a_policy_that_allows_an_empty_input_is_refused(
    engine: OpaEngine, double: OpaDouble, mock: respx.MockRouter
) -> None:
    mock.post(APPROVAL).mock(return_value=httpx.Response(200, json=opa_body()))
    mock.post(DECISION).mock(return_value=httpx.Response(200, json=opa_body(ALLOW)))

    decision = engine.evaluate(access_input())

    assert_engine_error(decision, "it allows an empty input, so it would allow anything")
    engine.refresh()
    assert engine.ready() is False


def test_an_approval_rule_that_lets_anyone_approve_is_refused(
    engine: OpaEngine, mock: respx.MockRouter
) -> None:
    only_decisions(mock, opa_body(ALLOW))
    lets_anyone = {"allow": True, "reasons": [], "groups": ["security"]}
    mock.post(APPROVAL).mock(return_value=httpx.Response(200, json=opa_body(lets_anyone)))

    assert_engine_error(engine.evaluate(access_input()), "would let anyone approve")


def test_an_opa_without_the_policy_denies_every_request(
    engine: OpaEngine, mock: respx.MockRouter
) -> None:
    # No bundle activated yet: every document is undefined.
    mock.post(DECISION).mock(return_value=httpx.Response(200, json={}))
    mock.post(APPROVAL).mock(return_value=httpx.Response(200, json={}))

    assert_engine_error(engine.evaluate(access_input()), "policy returned no decision")


def test_the_token_is_sent_as_a_bearer_token(mock: respx.MockRouter, double: OpaDouble) -> None:
    opa = OpaEngine(OpaSettings(OPA_URL, token="opa-secret"))
    try:
        opa.evaluate(access_input())
    finally:
        opa.close()

    assert all(c.request.headers["authorization"] == "Bearer opa-secret" for c in mock.calls)


# -- readiness and the policy data --------------------------------------------------------------


def test_ready_only_after_a_refresh_reached_opa(engine: OpaEngine, double: OpaDouble) -> None:
    assert engine.ready() is False
    assert engine.group_members("auditors") == frozenset()

    engine.refresh()

    assert engine.ready() is True
    assert "user:auditor" in engine.group_members("auditors")
    assert engine.role_config("vault-kv-read")["vault"] == {"policies": ["grantline-kv-read"]}
    assert engine.role_config("no-such-role") == {}
    assert engine.digest == double.revision


def test_readiness_never_calls_opa(engine: OpaEngine, mock: respx.MockRouter) -> None:
    assert engine.ready() is False
    assert mock.calls.call_count == 0


def test_unreachable_opa_is_not_ready(
    engine: OpaEngine, double: OpaDouble, mock: respx.MockRouter
) -> None:
    engine.refresh()
    mock.post(DECISION).mock(side_effect=httpx.ConnectError("refused"))

    engine.refresh()

    assert engine.ready() is False


def test_a_failed_decision_makes_the_engine_not_ready_until_refreshed(
    engine: OpaEngine, double: OpaDouble, mock: respx.MockRouter
) -> None:
    engine.refresh()
    mock.post(DECISION).mock(side_effect=httpx.ReadTimeout("slow"))
    engine.evaluate(access_input())

    assert engine.ready() is False


def test_policy_data_older_than_its_age_limit_reads_as_none(
    engine: OpaEngine, double: OpaDouble, clock: Clock
) -> None:
    engine.refresh()
    clock.now += 31

    assert engine.group_members("auditors") == frozenset()
    assert engine.role_config("vault-kv-read") == {}
    assert engine.ready() is False


def test_malformed_policy_data_is_refused(
    engine: OpaEngine, double: OpaDouble, mock: respx.MockRouter
) -> None:
    mock.get(f"{OPA_URL}/v1/data/grantline/groups").mock(
        return_value=httpx.Response(200, json={"result": {"auditors": "user:eve"}})
    )

    engine.refresh()

    assert engine.ready() is False
    assert engine.group_members("auditors") == frozenset()


def test_opa_keeps_no_bundle_files(engine: OpaEngine, double: OpaDouble) -> None:
    engine.evaluate(access_input())

    assert engine.bundle_files(engine.digest) is None
    assert engine.bundle is None


def test_revisions_digest_of_a_grantline_digest_is_the_digest() -> None:
    digest = "sha256:" + "ab" * 32

    assert revisions_digest({"any-name": digest}) == digest
    assert revisions_digest({"a": digest, "b": digest}) != digest
    assert revisions_digest({"a": "sha256:short"}).startswith("sha256:")
    assert (
        revisions_digest({})
        == "sha256:" + hashlib.sha256(b"grantline-opa-revisions-v1\n{}").hexdigest()
    )


def test_the_legacy_provenance_revision_is_read(engine: OpaEngine, mock: respx.MockRouter) -> None:
    body = {"result": ALLOW, "provenance": {"version": "0.10.8", "revision": "legacy-7"}}
    only_decisions(mock, body)

    decision = engine.evaluate(access_input())

    assert decision.extra[OPA_PROVENANCE] == {"bundles": {"": "legacy-7"}}
    assert json.loads(json.dumps(decision.extra))  # plain JSON, ready for the record


def test_the_url_it_shows_never_carries_credentials() -> None:
    opa = OpaEngine(OpaSettings("http://grantline:s3cret@opa.test:8181"))
    try:
        assert opa.url == "http://opa.test:8181"
    finally:
        opa.close()
