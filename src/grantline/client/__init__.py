"""The Grantline client package; for now, DPoP proof of possession for bound tokens."""

from grantline.client.pop import (
    ProofOfPossessionError,
    make_dpop_proof,
    verify_proof_of_possession,
)

__all__ = ["ProofOfPossessionError", "make_dpop_proof", "verify_proof_of_possession"]
