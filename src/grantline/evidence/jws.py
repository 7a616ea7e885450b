"""Compact JWS (RFC 7515) signed with a :class:`Signer`: EdDSA JWTs without a JWT library."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from grantline.evidence.signer import Signer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_jwt(claims: Mapping[str, Any], signer: Signer, *, typ: str = "JWT") -> str:
    """A compact JWT over ``claims``, with ``alg`` EdDSA and the signer's ``kid`` in its header."""
    header = {"alg": "EdDSA", "kid": signer.kid, "typ": typ}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(dict(claims), separators=(",", ":"), sort_keys=True).encode())
    )
    signature = signer.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64url(signature)
