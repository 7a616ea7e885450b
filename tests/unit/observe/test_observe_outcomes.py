"""Outcome labels: the rule and a small kind of reason, never a policy's free text."""

from __future__ import annotations

from typing import Any

import pytest

from grantline.domain.errors import DependencyUnavailableError, InvalidRequestError
from grantline.domain.models import Decision, Status
from grantline.observe.outcomes import failure_labels, kind_of, outcome_labels, reason_kind


def decision(allow: bool, *reasons: str, **extra: Any) -> Decision:
    return Decision(
        allow=allow,
        reasons=reasons,
        policy_digest="sha256:p",
        input_digest="sha256:i",
        extra=extra,
    )


def test_an_issued_request_is_labelled_with_its_rule() -> None:
    assert outcome_labels(Status.ISSUED, decision(True, rule="rbac")) == (
        "issued",
        "rbac",
        "allowed",
    )
    glass = decision(True, rule="break_glass", break_glass=True)
    assert outcome_labels(Status.ISSUED, glass) == ("issued", "break_glass", "break_glass")


def test_a_held_request_is_pending_approval() -> None:
    held = decision(True, rule="approval")
    assert outcome_labels(Status.PENDING_APPROVAL, held) == (
        "pending_approval",
        "approval",
        "approval_required",
    )


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("ttl_seconds 7200 exceeds the cap of 3600 for db-read", "ttl"),
        ("ttl_seconds 1000 exceeds the break-glass cap of 900 for db-admin", "ttl"),
        ("ttl_seconds 0 is below the minimum of 1", "ttl"),
        ("unknown role nope", "unknown_role"),
        ("subject spiffe://example.org/x is not bound to role deployer", "not_bound"),
        ("target s3://x is not allowed for role db-read", "target"),
        (
            "credential_type x509 is not allowed for role db-read (allowed: [jwt])",
            "credential_type",
        ),
        (
            "separation of duties: deployer conflicts with the active grant of x",
            "separation_of_duties",
        ),
        ("agent spiffe://example.org/agents/a is not bound to role db-admin", "delegation"),
        ("role db-admin is human_only and cannot be granted to an agent", "delegation"),
        ("role db-read has no break-glass access", "break_glass"),
        ("the policy did not accept break-glass for db-read", "break_glass"),
        ("the policy requires approval but names no valid approvers: bad", "approval"),
        ("identity.subject must be a non-empty string", "invalid_input"),
        ("policy returned no decision", "no_decision"),
        ("policy decision is malformed: allow must be a boolean", "malformed_decision"),
        ("policy denied the request without giving a reason", "unexplained"),
        ("no rule proved the request allowed", "not_proven"),
        ("something a custom policy says", "other"),
    ],
)
def test_the_shipped_policy_reasons_map_to_small_kinds(reason: str, kind: str) -> None:
    assert kind_of([reason]) == kind


def test_names_inside_a_reason_do_not_change_its_kind() -> None:
    # A subject named like a kind keyword: the wording around it decides.
    reason = "subject spiffe://example.org/agents/ttl-target is not bound to role db-read"
    assert kind_of([reason]) == "not_bound"


def test_a_decision_may_name_its_own_reason_code() -> None:
    assert reason_kind(decision(False, "whatever", reason_code="quota")) == "quota"
    assert reason_kind(decision(False, "x", reason_code="not an identifier!")) == "other"


def test_an_engine_error_is_its_own_kind() -> None:
    broken = decision(False, "rego failed at line 3", rule="deny", engine_error=True)
    assert outcome_labels(Status.DENIED, broken) == ("denied", "deny", "engine_error")


def test_fifty_distinct_denials_naming_subjects_make_one_series() -> None:
    labels = {
        outcome_labels(
            Status.DENIED,
            decision(
                False, f"subject spiffe://example.org/w{i} is not bound to role x", rule="deny"
            ),
        )
        for i in range(50)
    }
    assert labels == {("denied", "deny", "not_bound")}


def test_a_rule_name_that_is_free_text_is_not_a_label() -> None:
    named = decision(True, rule="allowed for spiffe://example.org/w1")
    assert outcome_labels(Status.ISSUED, named)[1] == "other"


def test_failures_are_labelled_with_the_error_code() -> None:
    unavailable = InvalidRequestError("no vault", code="credential_type_unavailable")
    assert failure_labels(unavailable) == ("failed", "none", "credential_type_unavailable")
    assert failure_labels(DependencyUnavailableError("down"))[2] == "dependency_unavailable"
    assert failure_labels(RuntimeError("boom"))[2] == "internal_error"
