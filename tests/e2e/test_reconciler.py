"""The reconciler against a real OpenBao: orphans, revocations outside the broker, expiry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest
from tests.conftest import Bao, Served, cli, export, serve, verify

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
OPERATOR = "user:operator"
KV = {"target": "vault://secret", "role": "vault-kv-read", "credential_type": "vault_token"}


@pytest.fixture
def served(tmp_path: Path, redis_url: str, own_bao: Bao) -> Iterator[Served]:
    env = {
        **own_bao.broker_env(),
        # Judge everything at once: these tests create their own drift on purpose.
        "GRANTLINE_RECONCILE_GRACE_SECONDS": "0",
        "GRANTLINE_RECONCILE_ISSUE_DELAY_SECONDS": "0",
    }
    broker = serve(tmp_path / "home", redis_url=redis_url, extra_env=env)
    yield broker
    broker.stop()


def ask(served: Served, body: dict[str, Any], ttl: int = 300) -> dict[str, Any]:
    with served.client(CI) as client:
        response = client.post("/v1/access-requests", json={**body, "ttl_seconds": ttl})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def reconcile(served: Served) -> dict[str, Any]:
    with served.client(OPERATOR) as client:
        response = client.post("/v1/reconcile")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def lineage(served: Served, request_id: str) -> list[dict[str, Any]]:
    with served.client("user:auditor") as client:
        records: list[dict[str, Any]] = client.get(
            f"/v1/access-requests/{request_id}/lineage"
        ).json()["records"]
    return records


def test_normal_grants_are_never_flagged(served: Served) -> None:
    ask(served, KV)
    ask(served, {"target": "postgres://orders-db", "role": "db-read"})

    report = reconcile(served)

    assert report["ran"] is True
    assert report["findings"] == {}
    assert report["errors"] == []


def test_a_token_made_in_vault_for_an_unknown_request_is_found_and_revoked(
    served: Served, own_bao: Bao
) -> None:
    # What a broker-looking token minted behind the broker's back (or by a crashed broker
    # whose records were lost) looks like: the broker's token role, a request id, no record.
    made = own_bao.root().auth.token.create(
        role_name="grantline",
        policies=["grantline-kv-read"],
        meta={"grantline_request_id": "01JFAKE0000000000000000000"},
        ttl="1h",
    )["auth"]

    report = reconcile(served)

    assert report["findings"] == {"issuance_without_approval": 1}
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=own_bao.addr, token=made["client_token"]).auth.token.lookup_self()
    [record] = lineage(served, "01JFAKE0000000000000000000")
    assert record["event"] == "reconciled"
    assert record["data"]["finding"] == "issuance_without_approval"
    assert record["data"]["action"] == "revoked"
    # Raised once: a second pass has nothing left to say.
    assert reconcile(served)["findings"] == {}


def test_a_token_of_another_role_is_left_alone(served: Served, own_bao: Bao) -> None:
    own_bao.root().auth.token.create(
        policies=["default"], meta={"grantline_request_id": "someone-else"}, ttl="1h"
    )

    assert reconcile(served)["findings"] == {}


def test_a_token_revoked_directly_in_vault_is_recorded_as_revoked_by_the_reconciler(
    served: Served, own_bao: Bao
) -> None:
    grant = ask(served, KV)
    own_bao.root().auth.token.revoke_accessor(grant["credential"]["accessor"])

    report = reconcile(served)

    assert report["findings"] == {"revoked_outside_broker": 1}
    records = lineage(served, grant["request_id"])
    assert [r["event"] for r in records][-2:] == ["reconciled", "revoked"]
    assert records[-1]["data"]["source"] == "reconciler"
    with served.client(CI) as client:
        assert client.get(f"/v1/access-requests/{grant['request_id']}").json()["status"] == (
            "revoked"
        )


def test_expiry_is_recorded_without_a_finding_and_the_log_still_verifies(
    served: Served, tmp_path: Path
) -> None:
    grants = [
        ask(served, KV, ttl=1),
        ask(served, {"target": "postgres://orders-db", "role": "db-read"}, ttl=1),
        ask(
            served,
            {"target": "mtls://payments", "role": "mtls-workload", "credential_type": "x509"},
            ttl=1,
        ),
        ask(
            served,
            {"target": "valkey://cache", "role": "cache-read", "credential_type": "vault_secret"},
            ttl=1,
        ),
    ]
    time.sleep(6.5)  # past the TTL and the reconciler's few seconds of grace for Vault

    report = reconcile(served)

    assert report["findings"] == {}
    assert report["expired"] == 4
    # Their grant tokens are retired with them: nothing is left to flag on the next pass.
    assert reconcile(served)["findings"] == {}
    for grant in grants:
        assert lineage(served, grant["request_id"])[-1]["event"] == "expired"
    assert export(served, tmp_path / "export.jsonl")
    code, output = verify(served, tmp_path / "export.jsonl")
    assert code == 0, output


def test_the_reconcile_command_reports_findings_with_exit_code_1(
    served: Served, own_bao: Bao
) -> None:
    own_bao.root().auth.token.create(
        role_name="grantline", meta={"grantline_request_id": "01JFAKE1"}, ttl="1h"
    )
    env = {**served.env, "GRANTLINE_TOKEN": served.token(OPERATOR)}

    result = cli(env, "reconcile", check=False)

    assert result.returncode == 1
    assert '"issuance_without_approval": 1' in result.stdout


def test_only_operators_may_run_the_reconciler(served: Served) -> None:
    with served.client(CI) as client:
        response = client.post("/v1/reconcile")
    assert response.status_code == 403
