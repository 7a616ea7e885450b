"""Pure rules of the domain: TTL bounds, time format, ids, the policy input, the error tree."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from datetime import UTC, datetime, timedelta

import pytest

import grantline
from grantline.domain.errors import GrantlineError, InvalidRequestError
from grantline.domain.ids import new_request_id, uuid7
from grantline.domain.models import (
    AccessRequest,
    ActiveGrant,
    CredentialType,
    Delegation,
    Identity,
    RequestId,
    Ttl,
    format_time,
    parse_time,
)
from grantline.domain.policy_input import build_policy_input

NOW = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize("seconds", [0, -1, 30 * 24 * 3600 + 1, True, 1.5, "60"])
def test_ttl_outside_one_second_to_thirty_days_is_refused(seconds: object) -> None:
    with pytest.raises(InvalidRequestError, match="ttl_seconds"):
        Ttl(seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds", [1, 600, 30 * 24 * 3600])
def test_ttl_inside_the_bounds_is_kept(seconds: int) -> None:
    assert Ttl(seconds).seconds == seconds


def test_times_are_utc_with_milliseconds_and_round_trip() -> None:
    text = format_time(NOW)
    assert text == "2026-11-23T10:00:00.123Z"
    assert parse_time(text) == NOW.replace(microsecond=123000)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 1, 1))


def test_request_ids_are_uuid7_and_sort_by_time() -> None:
    first = new_request_id(NOW)
    later = new_request_id(NOW + timedelta(milliseconds=5))
    assert first[14] == "7"
    assert first < later
    assert str(uuid7(NOW, bytes(10)))[:13] == str(uuid7(NOW, b"\xff" * 10))[:13]


def test_policy_input_has_the_contract_shape_with_broker_supplied_time_and_grants() -> None:
    identity = Identity("spiffe://example.org/ci", "grantline-dev", {"sub": "x", "score": 0.5})
    request = AccessRequest("postgres://orders-db", "db-read", Ttl(600), CredentialType.JWT, "job")
    grants = [
        ActiveGrant(RequestId("b"), "deployer", "k8s://prod", NOW + timedelta(minutes=9)),
        ActiveGrant(RequestId("a"), "db-read", "postgres://x", NOW + timedelta(minutes=1)),
    ]
    built = build_policy_input(identity, request, grants, NOW)
    assert set(built) == {"identity", "request", "active_grants", "now"}
    assert built["now"] == "2026-11-23T10:00:00.123Z"
    assert built["identity"]["subject"] == "spiffe://example.org/ci"
    assert built["identity"]["claims"]["score"] == "0.5"  # floats never reach a digest
    assert built["request"] == {
        "target": "postgres://orders-db",
        "role": "db-read",
        "ttl_seconds": 600,
        "credential_type": "jwt",
        "purpose": "job",
        "ticket": "",
        "agent": {},
        "break_glass": False,
        "justification": "",
        "public_key_thumbprint": "",
    }
    assert [g["request_id"] for g in built["active_grants"]] == ["a", "b"]


def test_an_agent_appears_as_the_actor_beside_its_principal() -> None:
    alice = Identity("user:alice", "grantline-dev", {"act": {"sub": "agent:planner"}})
    agent = Identity("agent:report-bot", "grantline-dev", {})
    delegation = Delegation.of(alice, agent)
    assert delegation.chain == ("agent:report-bot", "agent:planner")
    assert delegation.act_claim() == {
        "sub": "agent:report-bot",
        "act": {"sub": "agent:planner"},
    }
    request = AccessRequest("postgres://orders-db", "db-read", Ttl(60))
    built = build_policy_input(alice, request, [], NOW, actor=agent)
    assert built["identity"]["subject"] == "user:alice"
    assert built["actor"]["subject"] == "agent:report-bot"


@pytest.mark.parametrize(
    "act",
    [{"sub": ""}, {"sub": 7}, "agent", {"sub": "a", "act": {"nope": 1}}],
)
def test_a_malformed_act_claim_in_the_principal_token_is_refused(act: object) -> None:
    alice = Identity("user:alice", "grantline-dev", {"act": act})
    with pytest.raises(InvalidRequestError, match="act claim"):
        Delegation.of(alice, Identity("agent:x", "grantline-dev"))


def test_a_chain_longer_than_the_limit_or_a_self_delegation_is_refused() -> None:
    nested: dict[str, object] = {"sub": "agent:0"}
    for n in range(1, 6):
        nested = {"sub": f"agent:{n}", "act": nested}
    alice = Identity("user:alice", "grantline-dev", {"act": nested})
    with pytest.raises(InvalidRequestError):
        Delegation.of(alice, Identity("agent:x", "grantline-dev"))
    with pytest.raises(InvalidRequestError, match="itself"):
        Delegation.of(alice, Identity("user:alice", "grantline-dev"))


def test_repeated_grants_of_one_role_on_one_target_reach_the_policy_once_the_longest() -> None:
    grants = [
        ActiveGrant(RequestId(f"r{i}"), "db-read", "postgres://x", NOW + timedelta(minutes=i))
        for i in (3, 9, 1)
    ]
    grants.append(ActiveGrant(RequestId("w"), "db-write", "postgres://x", NOW))
    request = AccessRequest(target="postgres://x", role="db-read", ttl=Ttl(60))

    built = build_policy_input(Identity("s", "i"), request, grants, NOW)

    held = {(g["role"], g["request_id"]) for g in built["active_grants"]}
    assert held == {("db-read", "r9"), ("db-write", "w")}


def test_every_exception_class_in_the_package_derives_from_the_root() -> None:
    offenders = []
    for module_info in pkgutil.walk_packages(grantline.__path__, "grantline."):
        module = importlib.import_module(module_info.name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ != module.__name__ or not issubclass(obj, BaseException):
                continue
            if not issubclass(obj, GrantlineError):
                offenders.append(f"{module.__name__}.{name}")
    assert offenders == []
