"""Tamper-evident evidence: canonical JSON, signed records, the hash chain, checkpoints, verify.

Imports only the standard library, ``cryptography``, ``rfc8785`` and ``grantline.domain``,
so that an auditor's verifier stays light. The format is specified in docs/evidence-format.md.
"""

from grantline.evidence.canonical import canonicalize
from grantline.evidence.chain import ChainHead, seal_next
from grantline.evidence.checkpoint import Checkpoint, make_checkpoint, parse_checkpoint
from grantline.evidence.record import GENESIS, chain_hash, seal, split
from grantline.evidence.signer import LocalEd25519Signer, Signer, load_public_keys
from grantline.evidence.verify import Finding, VerifyReport, verify_export

__all__ = [
    "GENESIS",
    "ChainHead",
    "Checkpoint",
    "Finding",
    "LocalEd25519Signer",
    "Signer",
    "VerifyReport",
    "canonicalize",
    "chain_hash",
    "load_public_keys",
    "make_checkpoint",
    "parse_checkpoint",
    "seal",
    "seal_next",
    "split",
    "verify_export",
]
