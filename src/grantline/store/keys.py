"""Key names in Redis. One hash tag keeps every key on one Cluster slot, so scripts stay atomic.

The append script in ``log.py`` builds the per-request names from ``PREFIX`` the same way;
change them together.
"""

from __future__ import annotations

import enum

from grantline.evidence.merkle import HASH_SIZE

PREFIX = "{grantline}"

LOG = f"{PREFIX}:log"
HEAD = f"{PREFIX}:head"
# Which writer appends next after losing the race for the head (store/log.py); a short lease.
LOG_TURN = f"{PREFIX}:lock:log-turn"


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


# Entries per chunk of a Merkle tree level (32 MiB of hashes): a Redis string holds at most
# 512 MiB, so one string per level would stop the log at 2**24 records. Tests shrink it, before
# creating the store objects, which read it when created (store/log.py, store/tree.py).
TREE_CHUNK = 2**20


def tree(level: int, chunk: int = 0) -> str:
    """One chunk of the Merkle tree's perfect nodes of ``level``, 32 bytes each, in order
    (store/tree.py): ``{grantline}:tree:<level>`` for chunk 0, the one name a level had before
    levels were chunked, then ``{grantline}:tree:<level>:<chunk>``."""
    return f"{PREFIX}:tree:{level}" if chunk == 0 else f"{PREFIX}:tree:{level}:{chunk}"


TREE_MATCH = f"{PREFIX}:tree:*"  # a SCAN pattern for every chunk of every level


def tree_entry(level: int, index: int, chunk_size: int | None = None) -> tuple[str, int]:
    """The key and byte offset of entry ``index`` of tree level ``level``, with chunks of
    ``chunk_size`` entries (TREE_CHUNK by default). The append script's ``tree_entry``
    (store/log.py) is the same function in Lua: change them together."""
    chunk, at = divmod(index, chunk_size or TREE_CHUNK)
    return tree(level, chunk), at * HASH_SIZE


# Uses of issued credentials waiting to be recorded, per grant and window (store/usage.py).
USAGE_PENDING = f"{PREFIX}:usage:pending"


def usage(member: str) -> str:
    """The aggregate of one grant's uses in one window; ``member`` is "<request id>|<window>"."""
    return f"{PREFIX}:usage:{member}"


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
