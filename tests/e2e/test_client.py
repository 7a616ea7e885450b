"""grantline.client against a served broker: grants, renewal, denials, approvals, token files.

The shipped policy: ci-runner and alice may have db-read on postgres://orders-db (cap 3600 s);
report-write on s3://reports needs one approver of security (sam, sofia).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from tests.conftest import Served, serve

from grantline.client import (
    AccessDeniedError,
    ApprovalRequiredError,
    ApprovalTimeoutError,
    AuthenticationFailedError,
    ConflictError,
    CredentialGoneError,
    FileTokenSource,
    Grant,
    GrantlineClient,
    InvalidRequestError,
    Pending,
    RenewalPolicy,
    RequestClosedError,
)

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
ALICE, SAM, SOFIA = "user:alice", "user:sam", "user:sofia"
DB = "postgres://orders-db"
REPORTS = "s3://reports"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    broker = serve(tmp_path_factory.mktemp("client") / "home")
    yield broker
    broker.stop()


def client(served: Served, subject: str, **kwargs: object) -> GrantlineClient:
    return GrantlineClient(served.url, served.token(subject), **kwargs)  # type: ignore[arg-type]


def subject_of(grant: Grant) -> str:
    claims = jwt.decode(grant.token, options={"verify_signature": False})
    return str(claims["sub"])


def test_an_allowed_request_returns_a_typed_grant(served: Served) -> None:
    with client(served, CI) as ci:
        grant = ci.request_access(DB, "db-read", 600, purpose="nightly export", ticket="CHG-1")
    assert isinstance(grant, Grant)
    assert grant.credential.type == "jwt"
    assert grant.decision is not None
    assert grant.decision.allow is True
    assert grant.decision.policy_digest.startswith("sha256:")
    assert grant.expires_at > grant.received_at
    claims = jwt.decode(grant.token, options={"verify_signature": False})
    assert claims["request_id"] == grant.request_id
    assert claims["aud"] == DB
    # The token never shows in a repr (logs, tracebacks).
    assert grant.token not in repr(grant)


def test_a_denial_raises_access_denied_with_the_policys_reasons(served: Served) -> None:
    with client(served, CI) as ci, pytest.raises(AccessDeniedError) as denied:
        ci.request_access(DB, "db-read", 7200, purpose="too long")
    assert any("3600" in reason for reason in denied.value.reasons)
    assert denied.value.request_id
    assert denied.value.status == 403
    assert denied.value.code == "policy_denied"
    assert denied.value.decision is not None
    assert denied.value.decision.allow is False
    # The denial is a recorded request of its own, readable by whoever asked.
    with client(served, CI) as ci:
        assert ci.status(denied.value.request_id).status == "denied"


def test_credential_raises_the_denial_too(served: Served) -> None:
    with client(served, CI) as ci, pytest.raises(AccessDeniedError):
        ci.credential(DB, "deployer", 60)


def test_a_body_the_broker_refuses_is_an_invalid_request(served: Served) -> None:
    with client(served, CI) as ci, pytest.raises(InvalidRequestError) as refused:
        ci.request_access(DB, "db-read", 60, credential_type="carrier-pigeon")
    assert refused.value.status == 422


def test_a_refused_identity_token_is_an_authentication_failure(served: Served) -> None:
    with (
        GrantlineClient(served.url, "not.a.jwt") as stranger,
        pytest.raises(AuthenticationFailedError) as refused,
    ):
        stranger.request_access(DB, "db-read", 60)
    assert refused.value.status == 401


def test_credential_is_cached_then_renewed_before_it_expires(served: Served) -> None:
    renewal = RenewalPolicy(fraction=0.5, max_margin=None)
    with client(served, CI, renewal=renewal) as ci:
        first = ci.credential(DB, "db-read", 4, purpose="renewal")
        cached = ci.credential(DB, "db-read", 4, purpose="renewal")
        assert cached.request_id == first.request_id
        # A different request is a different grant.
        other = ci.credential(DB, "db-read", 4, purpose="another job")
        assert other.request_id != first.request_id

        wait = (renewal.due_at(first) - datetime.now(UTC)).total_seconds()
        time.sleep(max(wait, 0) + 0.05)
        renewed = ci.credential(DB, "db-read", 4, purpose="renewal")
    assert renewed.request_id != first.request_id
    assert renewed.expires_at > first.expires_at


def test_threads_asking_at_once_share_one_renewal(served: Served) -> None:
    results: list[str] = []
    with client(served, CI) as ci:

        def ask() -> None:
            results.append(ci.credential(DB, "db-read", 600, purpose="threads").request_id)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 8
    assert len(set(results)) == 1


def test_revoking_a_cached_grant_makes_credential_ask_again(served: Served) -> None:
    with client(served, CI) as ci:
        first = ci.credential(DB, "db-read", 600, purpose="revoked")
        revocation = ci.revoke(first, "job finished")
        assert revocation.status == "revoked"
        assert revocation.already is False
        assert ci.revoke(first.request_id, "twice").already is True
        again = ci.credential(DB, "db-read", 600, purpose="revoked")
        assert ci.introspect(first.token)["active"] is False
        assert ci.introspect(again.token)["active"] is True
        assert ci.status(first.request_id).status == "revoked"
    assert again.request_id != first.request_id


def test_a_role_needing_approval_is_pending_then_collected_once_approved(served: Served) -> None:
    with client(served, ALICE) as alice, client(served, SAM) as sam:
        pending = alice.request_access(REPORTS, "report-write", 900, purpose="restatement")
        assert isinstance(pending, Pending)
        assert [(f.group, f.count) for f in pending.approval.missing] == [("security", 1)]
        assert set(pending.approval.eligible) == {SAM, SOFIA}

        approver = threading.Thread(
            target=sam.approve, args=(pending.request_id, "signed off by the CFO")
        )
        approver.start()
        grant = alice.wait_for_approval(pending, timeout=60, poll_interval=0.1)
        approver.join()

        assert grant.request_id == pending.request_id
        assert subject_of(grant) == ALICE
        assert grant.decision is None  # the collect answer carries none
        with pytest.raises(CredentialGoneError):
            alice.collect(pending.request_id)
        with pytest.raises(CredentialGoneError):
            alice.wait_for_approval(pending.request_id, poll_interval=0.1)


def test_a_rejected_request_ends_the_wait_with_a_denial(served: Served) -> None:
    with client(served, ALICE) as alice, client(served, SOFIA) as sofia:
        pending = alice.request_access(REPORTS, "report-write", 900)
        assert isinstance(pending, Pending)
        assert sofia.reject(pending.request_id, "no change ticket").status == "rejected"
        with pytest.raises(RequestClosedError) as closed:
            alice.wait_for_approval(pending, poll_interval=0.1)
    assert closed.value.request_status == "rejected"
    assert isinstance(closed.value, AccessDeniedError)
    assert SOFIA in str(closed.value)


def test_waiting_gives_up_after_the_timeout_and_the_request_still_waits(served: Served) -> None:
    with client(served, ALICE) as alice:
        pending = alice.request_access(REPORTS, "report-write", 900)
        assert isinstance(pending, Pending)
        with pytest.raises(ApprovalTimeoutError):
            alice.wait_for_approval(pending, timeout=0.3, poll_interval=0.1)
        with pytest.raises(ConflictError):
            alice.collect(pending.request_id)
        assert alice.status(pending.request_id).status == "pending_approval"


def test_credential_for_a_role_needing_approval_raises_approval_required(served: Served) -> None:
    with client(served, ALICE) as alice, pytest.raises(ApprovalRequiredError) as required:
        alice.credential(REPORTS, "report-write", 900)
    assert required.value.pending.request_id == required.value.request_id
    assert required.value.pending.approval.missing


def test_a_token_file_is_read_again_when_it_changes(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "token"

    def rotate(token: str) -> None:
        # As the kubelet does: a new file swapped in, never a half-written one.
        staged = tmp_path / "token.new"
        staged.write_text(token + "\n")
        os.replace(staged, path)

    rotate(served.token(CI))
    with GrantlineClient(served.url, FileTokenSource(path)) as workload:
        first = workload.request_access(DB, "db-read", 60)
        rotate(served.token(ALICE))
        second = workload.request_access(DB, "db-read", 60)
        rotate("garbage")
        with pytest.raises(AuthenticationFailedError):
            workload.request_access(DB, "db-read", 60)
    assert isinstance(first, Grant)
    assert isinstance(second, Grant)
    assert subject_of(first) == CI
    assert subject_of(second) == ALICE
