"""Key names in Redis. One hash tag keeps every key on one Cluster slot, so scripts stay atomic.

The append script in ``log.py`` builds the per-request names from ``PREFIX`` the same way;
change them together.
"""

from __future__ import annotations

import enum

PREFIX = "{grantline}"

LOG = f"{PREFIX}:log"
HEAD = f"{PREFIX}:head"


def batch(batch_id: str) -> str:
    return f"{PREFIX}:batch:{batch_id}"


def request(request_id: str) -> str:
    return f"{PREFIX}:req:{request_id}"


def lineage(request_id: str) -> str:
    return f"{PREFIX}:lineage:{request_id}"


def active(subject: str) -> str:
    return f"{PREFIX}:active:{subject}"


def jti(token_id: str) -> str:
    return f"{PREFIX}:jti:{token_id}"


def tree(level: int) -> str:
    """The Merkle tree's perfect nodes of one level, 32 bytes each, in order (store/tree.py)."""
    return f"{PREFIX}:tree:{level}"


CHECKPOINTS = f"{PREFIX}:checkpoints"  # published checkpoint notes, scored by tree size
# Policy bundles by digest, packed (store/policy_archive.py); kept for good.
POLICY_BUNDLES = f"{PREFIX}:policy:bundles"


def policy_input(digest: str) -> str:
    """The canonical policy input of one recorded decision, packed (store/policy_archive.py)."""
    return f"{PREFIX}:policy:input:{digest}"


def pickup(request_id: str) -> str:
    """An approved credential waiting for its requester, encrypted (store/pickup.py)."""
    return f"{PREFIX}:pickup:{request_id}"


class Index(enum.StrEnum):
    """The reconciler's work lists: sorted sets of request ids under ``{grantline}:index:``."""

    AWAITING_ISSUE = "awaiting_issue"  # allowed, not yet issued; scored by decision time
    LIVE = "live"  # issued, not yet revoked or expired; scored by expiry
    REVOKING = "revoking"  # a revocation failed at the issuer; scored by the failure time
    PENDING_APPROVAL = "pending_approval"  # waiting for approvers; scored by its deadline
    REVIEW_DUE = "review_due"  # break-glass grants not yet reviewed; scored by the deadline


def index(name: Index) -> str:
    return f"{PREFIX}:index:{name.value}"


def lock(name: str) -> str:
    return f"{PREFIX}:lock:{name}"
