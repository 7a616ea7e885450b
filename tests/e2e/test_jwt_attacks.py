"""The JWT attack table of RELIABILITY.md (row 19) against a served broker.

Properties: every forged, malformed or out-of-bounds caller token is refused with a 401 in our
error shape naming the reason; nothing is recorded (the export has no new records); and no
token makes the broker fetch anything (a local listener named by ``jku``/``x5u``/``jwk`` and an
``x5c`` header is never hit). The unit tests of ``identity/verifier.py`` check the same refusals
on the verifier alone; these check them end to end, through the HTTP layer and its limits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, generate_private_key
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm
from tests.conftest import Served, export, serve

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

ISSUER = "https://idp.grantline.test"
AUDIENCE = "grantline"
CALLER = "spiffe://example.org/ci-runner"
ED_KEY = Ed25519PrivateKey.generate()
RSA_KEY: RSAPrivateKey = generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_KEY = Ed25519PrivateKey.generate()


@dataclass
class Listener:
    """An attacker's HTTP server: it records every request made to it, and serves a JWKS."""

    url: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def attacker() -> Iterator[Listener]:
    jwks = json.dumps({"keys": [_jwk(ATTACKER_KEY, "ed")]}).encode()
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Listener(f"http://127.0.0.1:{server.server_address[1]}", hits)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("jwt-attacks")
    issuers = root / "trusted-issuers.json"
    jwks = {"keys": [_jwk(ED_KEY, "ed"), _jwk(RSA_KEY, "rsa")]}
    entry = {"issuer": ISSUER, "algorithms": ["EdDSA", "RS256"], "jwks": jwks}
    issuers.write_text(json.dumps([entry]))
    served = serve(root / "home", extra_env={"GRANTLINE_TRUSTED_ISSUERS": str(issuers)})
    try:
        # The control: a well-formed token of this issuer is accepted, so every 401 below is
        # the verifier refusing the attack, not an issuer the broker does not know.
        assert _ask(served, _token()).status_code == 201
        yield served
    finally:
        served.stop()


def _jwk(key: Ed25519PrivateKey | RSAPrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, Ed25519PrivateKey):
        public = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
        return {**public, "kid": kid, "alg": "EdDSA", "use": "sig"}
    return {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "RS256"}


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": CALLER, "aud": AUDIENCE, "iat": now, "nbf": now}
    claims["exp"] = now + 600
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _token(
    claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
    key: Ed25519PrivateKey | RSAPrivateKey = ED_KEY,
) -> str:
    algorithm = "EdDSA" if isinstance(key, Ed25519PrivateKey) else "RS256"
    kid = "ed" if isinstance(key, Ed25519PrivateKey) else "rsa"
    all_headers = {"kid": kid, **(headers or {})}
    return jwt.encode(claims or _claims(), key, algorithm=algorithm, headers=all_headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], secret: bytes | None = None) -> str:
    """A token built by hand: unsigned, or HMAC-signed with ``secret``."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}"
    signature = b""
    if secret is not None:
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _public_pem(key: Ed25519PrivateKey | RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _x5c_header() -> dict[str, Any]:
    # Any certificate-shaped value will do: the header must be refused before it is parsed.
    return {"x5c": [_b64(b"not a certificate")]}


# Each case: the attack, and a fragment of the message the 401 must carry. The attacker's
# listener is known only when the module's fixtures run, so a case builds its token from it.
Attack = Callable[[Listener], str]
ATTACKS: dict[str, tuple[Attack, str]] = {
    "alg-none": (lambda _: _forge({"alg": "none", "kid": "ed"}), "algorithm"),
    "alg-None": (lambda _: _forge({"alg": "None", "kid": "ed"}), "algorithm"),
    "alg-NONE": (lambda _: _forge({"alg": "NONE", "kid": "ed"}), "algorithm"),
    "alg-none-no-kid": (lambda _: _forge({"alg": "none"}), "unknown key"),
    "hs256-with-the-rsa-public-pem": (
        lambda _: _forge({"alg": "HS256", "kid": "rsa"}, _public_pem(RSA_KEY)),
        "algorithm",
    ),
    "hs256-with-the-ed25519-public-pem": (
        lambda _: _forge({"alg": "HS256", "kid": "ed"}, _public_pem(ED_KEY)),
        "algorithm",
    ),
    "hs256-with-the-jwk-x": (
        lambda _: _forge({"alg": "HS256", "kid": "ed"}, _jwk(ED_KEY, "ed")["x"].encode()),
        "algorithm",
    ),
    "rs256-header-on-the-ed25519-key": (
        lambda _: _token(headers={"kid": "ed", "alg": "RS256"}, key=RSA_KEY),
        "algorithm",
    ),
    "unknown-kid": (lambda _: _token(headers={"kid": "k-unknown"}), "unknown key"),
    "path-like-kid": (lambda _: _token(headers={"kid": "../../etc/passwd"}), "unknown key"),
    "url-kid": (lambda a: _token(headers={"kid": f"{a.url}/kid"}), "unknown key"),
    "jku-to-the-attacker": (
        lambda a: _token(headers={"jku": f"{a.url}/jwks.json"}, key=ATTACKER_KEY),
        "refused fields",
    ),
    "x5u-to-the-attacker": (
        lambda a: _token(headers={"x5u": f"{a.url}/cert.pem"}, key=ATTACKER_KEY),
        "refused fields",
    ),
    "embedded-jwk-of-the-attacker": (
        lambda _: _token(headers={"jwk": _jwk(ATTACKER_KEY, "ed")}, key=ATTACKER_KEY),
        "refused fields",
    ),
    "x5c": (lambda _: _token(headers=_x5c_header()), "refused fields"),
    "crit": (lambda _: _token(headers={"crit": ["exp"]}), "critical"),
    "signed-by-another-key-with-our-kid": (lambda _: _token(key=ATTACKER_KEY), "invalid"),
    "missing-exp": (lambda _: _token(_claims(exp=None)), "exp"),
    "past-exp": (lambda _: _token(_claims(exp=int(time.time()) - 3600)), "expired"),
    "future-nbf": (lambda _: _token(_claims(nbf=int(time.time()) + 3600)), "not valid yet"),
    "future-iat": (lambda _: _token(_claims(iat=int(time.time()) + 3600)), "not valid yet"),
    "string-exp": (lambda _: _token(_claims(exp="never")), "exp"),
    "wrong-aud": (lambda _: _token(_claims(aud="another-service")), "audience"),
    "missing-aud": (lambda _: _token(_claims(aud=None)), "aud"),
    "wrong-iss": (lambda _: _token(_claims(iss="https://evil.test")), "untrusted issuer"),
    "missing-sub": (lambda _: _token(_claims(sub=None)), "sub"),
    "wrong-typ": (lambda _: _token(headers={"typ": "secevent+jwt"}), "typ"),
    "typ-not-a-string": (lambda _: _token(headers={"typ": ["JWT"]}), "typ"),
    "oversized-20kb": (lambda _: _token(_claims(pad="x" * 20_000)), "larger than"),
    "truncated-signature": (lambda _: _token()[:-10], "invalid"),
    "two-segments": (lambda _: ".".join(_token().split(".")[:2]), "malformed"),
}


def _records(lines: list[bytes]) -> list[bytes]:
    # An export ends with a checkpoint made for it; the records are what must not change.
    return [line for line in lines if json.loads(line).get("event") != "checkpoint"]


def _ask(served: Served, token: str) -> httpx.Response:
    body = {"target": "postgres://orders-db", "role": "db-read", "ttl_seconds": 60}
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{served.url}/v1/access-requests", json=body, headers=headers, timeout=10)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_an_attacking_token_is_refused_with_401_and_its_reason(
    target: Served, attacker: Listener, name: str
) -> None:
    attack, reason = ATTACKS[name]
    response = _ask(target, attack(attacker))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "unauthenticated"
    assert reason in error["message"], error["message"]
    assert not attacker.hits, f"the broker fetched {attacker.hits}"


def test_refused_tokens_leave_no_record_and_fetch_nothing(
    target: Served, attacker: Listener, tmp_path: Path
) -> None:
    before = _records(export(target, tmp_path / "before.jsonl"))
    for name, (attack, _) in ATTACKS.items():
        assert _ask(target, attack(attacker)).status_code == 401, name
    assert _records(export(target, tmp_path / "after.jsonl")) == before
    assert not attacker.hits, f"the broker fetched {attacker.hits}"


def test_a_valid_token_with_numbers_records_cannot_hold_is_served_not_a_500(
    target: Served,
) -> None:
    # Regression: an integer claim past 2**53 made the requested record uncanonicalisable
    # (IntegrityError, a 500). Such claims are now kept as strings, as floats are.
    token = _token(_claims(big=2**64, negative=-(2**60), ratio=0.5, nested={"n": [2**70]}))
    response = _ask(target, token)
    assert response.status_code == 201, response.text
