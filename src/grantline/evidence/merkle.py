"""The Merkle tree over the log (RFC 6962 / RFC 9162 hashing): roots, proofs, their checks.

A leaf is the exact bytes of one record line (signature included), in log order: leaf ``i``
is the record with ``seq`` ``i + 1``. Leaves hash as ``SHA-256(0x00 || line)`` and nodes as
``SHA-256(0x01 || left || right)``. The store keeps every *perfect* subtree (``2**level``
leaves starting at a multiple of ``2**level``) as it completes, so any range's hash, and so
any proof, is a handful of lookups; the functions here take those lookups as a callable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index) -> the hash of leaves [index * 2**level, (index + 1) * 2**level)
PerfectNode = Callable[[int, int], bytes]


def leaf_hash(line: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + line).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH of the given leaf hashes (RFC 6962 section 2.1)."""
    if not leaves:
        return EMPTY_ROOT
    return range_hash(0, len(leaves), lambda level, index: _perfect(leaves, level, index))


def _perfect(leaves: Sequence[bytes], level: int, index: int) -> bytes:
    if level == 0:
        return leaves[index]
    return node_hash(
        _perfect(leaves, level - 1, 2 * index), _perfect(leaves, level - 1, 2 * index + 1)
    )


def range_hash(start: int, end: int, perfect: PerfectNode) -> bytes:
    """MTH of leaves ``[start, end)``, composed from perfect subtrees."""
    size = end - start
    if size <= 0:
        raise ValueError("an empty range has no subtree hash")
    if size & (size - 1) == 0 and start % size == 0:
        return perfect(size.bit_length() - 1, start // size)
    split = _largest_power_below(size)
    return node_hash(
        range_hash(start, start + split, perfect), range_hash(start + split, end, perfect)
    )


def inclusion_proof(index: int, size: int, perfect: PerfectNode) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 6962 2.1.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    return _path(index, 0, size, perfect)


def _path(index: int, start: int, end: int, perfect: PerfectNode) -> list[bytes]:
    size = end - start
    if size == 1:
        return []
    split = _largest_power_below(size)
    if index < start + split:
        return [
            *_path(index, start, start + split, perfect),
            range_hash(start + split, end, perfect),
        ]
    return [*_path(index, start + split, end, perfect), range_hash(start, start + split, perfect)]


def consistency_proof(old_size: int, new_size: int, perfect: PerfectNode) -> list[bytes]:
    """The proof that the tree of ``old_size`` leaves is a prefix of the one of ``new_size``
    (RFC 6962 2.1.2)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    if old_size == new_size:
        return []
    return _subproof(old_size, 0, new_size, True, perfect)


def _subproof(m: int, start: int, end: int, whole: bool, perfect: PerfectNode) -> list[bytes]:
    size = end - start
    if m == size:
        return [] if whole else [range_hash(start, end, perfect)]
    split = _largest_power_below(size)
    if m <= split:
        return [
            *_subproof(m, start, start + split, whole, perfect),
            range_hash(start + split, end, perfect),
        ]
    return [
        *_subproof(m - split, start + split, end, False, perfect),
        range_hash(start, start + split, perfect),
    ]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    old, new, sn = _climb(path[0], path[1:], fn, sn)
    return old == old_root and new == new_root and sn == 0


def _climb(seed: bytes, path: Sequence[bytes], fn: int, sn: int) -> tuple[bytes, bytes, int]:
    """Both roots a consistency path rebuilds (RFC 9162 2.1.4.2, step 6); ``sn`` must end 0."""
    fr = sr = seed
    for c in path:
        if sn == 0:
            return b"", b"", -1
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr, sr, sn


def frontier_append(size: int, frontier: list[bytes], leaf: bytes) -> list[tuple[int, bytes]]:
    """Append one leaf to a tree of ``size`` leaves whose perfect subtrees, largest first,
    are ``frontier`` (changed in place). Returns the perfect nodes this completes, as
    (level, hash), the leaf itself first: what the store must keep."""
    completed = [(0, leaf)]
    node, level = leaf, 0
    while size >> level & 1:
        node = node_hash(frontier.pop(), node)
        level += 1
        completed.append((level, node))
    frontier.append(node)
    return completed


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The root of a tree given its perfect subtrees, largest first."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for node in reversed(frontier[:-1]):
        root = node_hash(node, root)
    return root


def frontier_levels(size: int) -> list[tuple[int, int]]:
    """(level, index) of the perfect subtrees of a tree of ``size`` leaves, largest first."""
    return [
        (level, (size >> level) - 1)
        for level in range(size.bit_length() - 1, -1, -1)
        if size >> level & 1
    ]


def _largest_power_below(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)
