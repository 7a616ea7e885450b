"""Vault credentials through a served broker: issue, use, revoke at the source, fail closed."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hvac
import hvac.exceptions
import pytest
import redis
import redis.exceptions
from cryptography import x509
from tests.conftest import Bao, Served, export, serve, verify

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
OPERATOR = "user:operator"
KV = {"target": "vault://secret", "role": "vault-kv-read", "credential_type": "vault_token"}
PKI = {"target": "mtls://payments", "role": "mtls-workload", "credential_type": "x509"}
CACHE = {"target": "valkey://cache", "role": "cache-read", "credential_type": "vault_secret"}


def ask(served: Served, body: dict[str, Any], ttl: int = 300) -> httpx.Response:
    with served.client(CI) as client:
        return client.post(
            "/v1/access-requests", json={**body, "ttl_seconds": ttl, "purpose": "e2e"}
        )


def lineage(served: Served, request_id: str) -> list[dict[str, Any]]:
    with served.client(CI) as client:
        response = client.get(f"/v1/access-requests/{request_id}/lineage")
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()["records"]
    return records


def status(served: Served, request_id: str) -> str:
    with served.client(CI) as client:
        return str(client.get(f"/v1/access-requests/{request_id}").json()["status"])


def revoke(served: Served, request_id: str) -> httpx.Response:
    with served.client(CI) as client:
        return client.post(
            f"/v1/access-requests/{request_id}/revoke", json={"reason": "job finished"}
        )


@pytest.fixture
def vault_broker(tmp_path: Path, redis_url: str, bao: Bao) -> Iterator[Served]:
    served = serve(
        tmp_path / "home",
        redis_url=redis_url,
        extra_env={**bao.broker_env(), "GRANTLINE_VAULT_TIMEOUT_SECONDS": "2"},
    )
    yield served
    served.stop()


def test_a_vault_token_is_issued_recorded_without_its_secret_and_works_at_vault(
    vault_broker: Served, bao: Bao, tmp_path: Path
) -> None:
    response = ask(vault_broker, KV)
    assert response.status_code == 201, response.text
    body = response.json()
    token = body["credential"]["token"]
    me = hvac.Client(url=bao.addr, token=token).auth.token.lookup_self()["data"]
    assert me["meta"]["grantline_request_id"] == body["request_id"]
    assert "grantline-kv-read" in me["policies"]

    records = lineage(vault_broker, body["request_id"])
    assert [r["event"] for r in records] == ["requested", "evaluated", "approved", "issued"]
    issued = records[-1]["data"]
    assert issued["handle"] == {"accessor": me["accessor"]}
    assert issued["credential_type"] == "vault_token"
    assert token not in json.dumps(records)
    assert export(vault_broker, tmp_path / "export.jsonl")
    code, output = verify(vault_broker, tmp_path / "export.jsonl")
    assert code == 0, output


def test_revoking_a_vault_token_kills_it_at_vault_and_twice_is_harmless(
    vault_broker: Served, bao: Bao
) -> None:
    body = ask(vault_broker, KV).json()
    token = body["credential"]["token"]

    first = revoke(vault_broker, body["request_id"])
    second = revoke(vault_broker, body["request_id"])

    assert first.status_code == 200, first.text
    assert second.json()["already"] is True
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=bao.addr, token=token).auth.token.lookup_self()
    events = [r["event"] for r in lineage(vault_broker, body["request_id"])]
    assert events == ["requested", "evaluated", "approved", "issued", "revoked"]


def test_a_certificate_is_issued_for_the_callers_spiffe_id_and_revoked_onto_the_crl(
    vault_broker: Served, bao: Bao
) -> None:
    response = ask(vault_broker, PKI, ttl=600)
    assert response.status_code == 201, response.text
    credential = response.json()["credential"]
    certificate = x509.load_pem_x509_certificate(credential["certificate"].encode())
    uris = certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == [CI]
    issued = lineage(vault_broker, response.json()["request_id"])[-1]["data"]
    assert issued["handle"]["serial"] == credential["serial_number"]
    assert "PRIVATE KEY" not in json.dumps(issued)

    assert revoke(vault_broker, response.json()["request_id"]).status_code == 200

    crl = x509.load_pem_x509_crl(httpx.get(f"{bao.addr}/v1/pki/crl/pem").content)
    assert crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None


def test_a_leased_database_user_works_until_the_grant_is_revoked(
    vault_broker: Served, bao: Bao
) -> None:
    response = ask(vault_broker, CACHE)
    assert response.status_code == 201, response.text
    credential = response.json()["credential"]
    port = bao.cache.port
    login = {"port": port, **{k: credential["data"][k] for k in ("username", "password")}}
    assert redis.Redis(**login).ping() is True
    issued = lineage(vault_broker, response.json()["request_id"])[-1]["data"]
    assert issued["handle"]["lease_id"] == credential["lease_id"]

    assert revoke(vault_broker, response.json()["request_id"]).status_code == 200

    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(**login).ping()


def test_vault_stopped_gives_503_no_credential_and_a_failed_record(
    tmp_path: Path, redis_url: str, own_bao: Bao
) -> None:
    served = serve(tmp_path / "home", redis_url=redis_url, extra_env=own_bao.broker_env())
    try:
        own_bao.server.stop()
        response = ask(served, KV)
        assert response.status_code == 503
        body = response.json()
        assert body["error"]["code"] == "vault_unavailable"
        assert "credential" not in body
        assert "Traceback" not in response.text
        # A JWT still works without Vault.
        jwt_body = {"target": "postgres://orders-db", "role": "db-read"}
        assert ask(served, jwt_body).status_code == 201
    finally:
        served.stop()


def test_revoke_while_vault_hangs_stays_pending_and_the_reconciler_finishes_it(
    tmp_path: Path, redis_url: str, own_bao: Bao
) -> None:
    env = {**own_bao.broker_env(), "GRANTLINE_VAULT_TIMEOUT_SECONDS": "1"}
    served = serve(tmp_path / "home", redis_url=redis_url, extra_env=env)
    bao_pid = own_bao.server.pid
    try:
        body = ask(served, KV).json()
        token = body["credential"]["token"]
        os.kill(bao_pid, signal.SIGSTOP)
        try:
            failed = revoke(served, body["request_id"])
        finally:
            os.kill(bao_pid, signal.SIGCONT)

        assert failed.status_code == 503
        assert failed.json()["error"]["code"] == "revocation_pending"
        # Never falsely revoked: a timed-out revocation may or may not have reached Vault,
        # so the grant stays in force (and in SoD checks) until a retry is confirmed.
        assert status(served, body["request_id"]) == "revocation_pending"

        with served.client(OPERATOR) as client:
            report = client.post("/v1/reconcile").json()

        assert report["revoked"] == 1
        assert status(served, body["request_id"]) == "revoked"
        with pytest.raises(hvac.exceptions.Forbidden):
            hvac.Client(url=own_bao.addr, token=token).auth.token.lookup_self()
        events = [r["event"] for r in lineage(served, body["request_id"])]
        assert events[-2:] == ["revocation_failed", "revoked"]
        assert lineage(served, body["request_id"])[-1]["data"]["source"] == "reconciler"
    finally:
        served.stop()


def test_a_vault_type_the_broker_has_no_vault_for_is_a_422(broker: Served) -> None:
    response = ask(broker, KV)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "credential_type_unavailable"


def test_with_transit_signing_a_key_rotation_keeps_the_whole_log_verifiable(
    tmp_path: Path, redis_url: str, own_bao: Bao
) -> None:
    # One issuer URL for both runs: the restarted broker listens on another port.
    env = {
        **own_bao.broker_env(),
        "GRANTLINE_SIGNER": "transit",
        "GRANTLINE_PUBLIC_URL": "https://grantline.example.org",
    }
    jwt_body = {"target": "postgres://orders-db", "role": "db-read"}
    first = serve(tmp_path / "home", redis_url=redis_url, extra_env=env)
    try:
        token = ask(first, jwt_body).json()["credential"]["token"]
        with first.client(CI) as client:
            introspected = client.post("/v1/introspect", data={"token": token}).json()
        assert introspected["active"] is True
    finally:
        first.stop()

    own_bao.root().write_data("transit/keys/grantline-log/rotate")
    own_bao.root().write_data("transit/keys/grantline-token/rotate")
    second = serve(tmp_path / "home", redis_url=redis_url, extra_env=env)
    try:
        assert ask(second, jwt_body).status_code == 201
        jwks = httpx.get(f"{second.url}/.well-known/jwks.json").json()
        assert len(jwks["keys"]) == 4  # two versions each of the token and the log key
        # A JWT signed before the rotation is still recognised.
        with second.client(CI) as client:
            assert client.post("/v1/introspect", data={"token": token}).json()["active"]
        assert export(second, tmp_path / "export.jsonl")
        code, output = verify(second, tmp_path / "export.jsonl")
        assert code == 0, output
    finally:
        second.stop()
