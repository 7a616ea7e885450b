"""Agents acting for principals (both tokens proven), and credentials bound to a key (cnf)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.conftest import Served, export, serve, verify

from grantline.client import ProofOfPossessionError, make_dpop_proof, verify_proof_of_possession
from grantline.identity.dev_issuer import DevIssuer

pytestmark = pytest.mark.e2e

ALICE = "user:alice"
AGENT = "spiffe://example.org/agents/report-bot"
PLANNER = "spiffe://example.org/agents/planner"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    broker = serve(tmp_path / "home")
    yield broker
    broker.stop()


def as_agent(served: Served, *, principal_token: str, **overrides: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "target": "postgres://orders-db",
        "role": "db-read",
        "ttl_seconds": 300,
        "purpose": "summarise last week's orders for alice",
        "subject_token": principal_token,
        "agent": {
            "on_behalf_of": ALICE,
            "goal": "weekly order summary",
            "tool": "sql.query",
            "prompt_sha256": hashlib.sha256(b"summarise my orders").hexdigest(),
        },
    }
    body.update(overrides)
    with served.client(AGENT) as client:
        return client.post("/v1/access-requests", json=body)


def verified_claims(served: Served, token: str, audience: str) -> dict[str, Any]:
    jwks = httpx.get(f"{served.url}/.well-known/jwks.json").json()
    key = jwt.PyJWK(
        next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(token)["kid"])
    )
    claims: dict[str, Any] = jwt.decode(token, key=key.key, algorithms=["EdDSA"], audience=audience)
    return claims


def lineage(served: Served, request_id: str) -> list[dict[str, Any]]:
    with served.client("user:auditor") as client:
        records: list[dict[str, Any]] = client.get(
            f"/v1/access-requests/{request_id}/lineage"
        ).json()["records"]
    return records


def test_an_agent_acting_for_alice_gets_a_token_for_alice_with_an_act_claim(
    served: Served, tmp_path: Path
) -> None:
    response = as_agent(served, principal_token=served.token(ALICE))
    assert response.status_code == 201, response.text
    claims = verified_claims(served, response.json()["credential"]["token"], "postgres://orders-db")
    assert claims["sub"] == ALICE
    assert claims["act"] == {"sub": AGENT}

    records = lineage(served, response.json()["request_id"])
    requested = records[0]["data"]
    assert requested["identity"]["subject"] == ALICE
    assert requested["actor"]["subject"] == AGENT
    assert requested["actor"]["chain"] == [AGENT]
    assert requested["request"]["agent"]["goal"] == "weekly order summary"
    assert records[-1]["data"]["act"] == {"sub": AGENT}

    # Both alice and the agent may read the request; the agent is who asked.
    for subject in (ALICE, AGENT):
        with served.client(subject) as client:
            summary = client.get(f"/v1/access-requests/{response.json()['request_id']}").json()
        assert summary["subject"] == ALICE
        assert summary["requested_by"] == AGENT
    export(served, tmp_path / "export.jsonl")
    code, output = verify(served, tmp_path / "export.jsonl")
    assert code == 0, output


def test_a_chain_of_agents_nests_the_act_claim(served: Served) -> None:
    # alice's token as the planner agent obtained it: it already names the planner as actor.
    issuer = DevIssuer(served.home / "keys" / "dev-issuer.pem")
    delegated = issuer.mint(ALICE, claims={"act": {"sub": PLANNER}})
    response = as_agent(served, principal_token=delegated)
    assert response.status_code == 201, response.text
    claims = verified_claims(served, response.json()["credential"]["token"], "postgres://orders-db")
    assert claims["act"] == {"sub": AGENT, "act": {"sub": PLANNER}}
    requested = lineage(served, response.json()["request_id"])[0]["data"]
    assert requested["actor"]["chain"] == [AGENT, PLANNER]
    # A chain is trusted no more than its least trusted agent.
    rogue = issuer.mint(ALICE, claims={"act": {"sub": "spiffe://example.org/agents/rogue"}})
    denied = as_agent(served, principal_token=rogue)
    assert denied.status_code == 403
    assert "agents/rogue in the actor chain is not bound" in denied.json()["error"]["message"]


def test_an_agent_never_gets_more_than_its_principal(served: Served) -> None:
    # The agent is bound to db-write; alice is not.
    more = as_agent(served, principal_token=served.token(ALICE), role="db-write", ttl_seconds=60)
    assert more.status_code == 403
    assert "user:alice is not bound to role db-write" in more.json()["error"]["message"]
    # db-admin is human_only, whatever the bindings say.
    human = as_agent(served, principal_token=served.token(ALICE), role="db-admin")
    assert human.status_code == 403
    assert "human_only" in human.json()["error"]["message"]


def test_delegation_must_be_proven(served: Served) -> None:
    asserted = {
        "target": "postgres://orders-db",
        "role": "db-read",
        "ttl_seconds": 60,
        "agent": {"on_behalf_of": ALICE},
    }
    with served.client(AGENT) as client:
        response = client.post("/v1/access-requests", json=asserted)
    assert response.status_code == 422
    assert "subject_token" in response.json()["error"]["message"]

    forged = as_agent(served, principal_token=served.token(ALICE)[:-4] + "AAAA")
    assert forged.status_code == 422
    assert forged.json()["error"]["code"] == "invalid_subject_token"

    mismatch = as_agent(served, principal_token=served.token("user:bob"))
    assert mismatch.status_code == 422
    assert "on_behalf_of" in mismatch.json()["error"]["message"]


def jwk_of(private_key: Any) -> dict[str, Any]:
    public: dict[str, Any] = json.loads(
        jwt.algorithms.get_default_algorithms()[
            "EdDSA" if isinstance(private_key, Ed25519PrivateKey) else "ES256"
        ].to_jwk(private_key.public_key())
    )
    return public


def thumbprint_of(jwk: dict[str, Any]) -> str:
    """RFC 7638, computed here independently of the broker."""
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y") if k in jwk}
    digest = hashlib.sha256(
        json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "make_key", [Ed25519PrivateKey.generate, lambda: generate_private_key(SECP256R1())]
)
def test_a_key_bound_token_is_accepted_with_its_key_and_refused_with_another(
    served: Served, make_key: Any
) -> None:
    key = make_key()
    public = jwk_of(key)
    with served.client("spiffe://example.org/ci-runner") as client:
        response = client.post(
            "/v1/access-requests",
            json={
                "target": "postgres://orders-db",
                "role": "db-read",
                "ttl_seconds": 300,
                "public_key": public,
            },
        )
    assert response.status_code == 201, response.text
    token = response.json()["credential"]["token"]
    claims = verified_claims(served, token, "postgres://orders-db")
    assert claims["cnf"] == {"jkt": thumbprint_of(public)}
    issued = lineage(served, response.json()["request_id"])[-1]["data"]
    assert issued["cnf"] == {"jkt": thumbprint_of(public)}

    url = "https://orders-db.example/query"
    proof = make_dpop_proof(key, method="POST", url=url, access_token=token)
    assert verify_proof_of_possession(
        claims, proof, method="POST", url=url, access_token=token
    ) == thumbprint_of(public)
    stolen = make_dpop_proof(make_key(), method="POST", url=url, access_token=token)
    with pytest.raises(ProofOfPossessionError):
        verify_proof_of_possession(claims, stolen, method="POST", url=url, access_token=token)


def test_a_private_key_or_a_non_jwt_binding_is_refused(served: Served) -> None:
    key = Ed25519PrivateKey.generate()
    private = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key))
    with served.client("spiffe://example.org/ci-runner") as client:
        leaked = client.post(
            "/v1/access-requests",
            json={
                "target": "postgres://orders-db",
                "role": "db-read",
                "ttl_seconds": 60,
                "public_key": private,
            },
        )
    assert leaked.status_code == 422
    assert leaked.json()["error"]["message"].startswith("public_key: ")
    assert private["d"] not in leaked.text


def test_a_token_that_states_its_actor_is_treated_as_an_agent(served: Served) -> None:
    """A token exchange service may mint alice's token for an agent, with an act claim:
    the agent presenting it is an agent, whatever the request says."""
    issuer = DevIssuer(served.home / "keys" / "dev-issuer.pem")
    exchanged = issuer.mint(ALICE, claims={"act": {"sub": AGENT}})
    headers = {"Authorization": f"Bearer {exchanged}"}
    glass = httpx.post(
        f"{served.url}/v1/access-requests",
        json={
            "target": "postgres://orders-db",
            "role": "db-admin",
            "ttl_seconds": 300,
            "break_glass": True,
            "justification": "the agent says it is urgent",
        },
        headers=headers,
    )
    assert glass.status_code == 403
    assert "agents cannot break glass" in glass.json()["error"]["message"]
    read = httpx.post(
        f"{served.url}/v1/access-requests",
        json={"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 300},
        headers=headers,
    )
    assert read.status_code == 201, read.text
    claims = verified_claims(served, read.json()["credential"]["token"], "postgres://orders-db")
    assert claims["sub"] == ALICE
    assert claims["act"] == {"sub": AGENT}
