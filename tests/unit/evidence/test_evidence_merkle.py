"""The Merkle tree against the RFC 6962 test vectors of Certificate Transparency."""

from __future__ import annotations

import pytest

from grantline.evidence.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    frontier_append,
    frontier_levels,
    frontier_root,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
HASHES = [leaf_hash(leaf) for leaf in LEAVES]


def _perfect_of(leaves: list[bytes]):  # type: ignore[no-untyped-def]
    def perfect(level: int, index: int) -> bytes:
        return root_of(leaves[index << level : (index + 1) << level])

    return perfect


def many(n: int) -> list[bytes]:
    return [leaf_hash(str(i).encode()) for i in range(n)]


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_rfc6962_vectors(size: int) -> None:
    assert root_of(HASHES[:size]).hex() == ROOTS[size - 1]


def test_the_empty_tree_is_the_hash_of_nothing() -> None:
    assert root_of([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert frontier_root([]) == EMPTY_ROOT


def test_the_inclusion_proof_of_leaf_5_of_8_is_the_published_one() -> None:
    proof = inclusion_proof(5, 8, _perfect_of(HASHES))
    assert [p.hex() for p in proof] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert verify_inclusion(HASHES[5], 5, 8, proof, bytes.fromhex(ROOTS[7]))


def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not() -> None:
    leaves = many(33)
    perfect = _perfect_of(leaves)
    for size in range(1, 34):
        root = root_of(leaves[:size])
        for index in range(size):
            proof = inclusion_proof(index, size, perfect)
            assert verify_inclusion(leaves[index], index, size, proof, root)
            assert not verify_inclusion(leaf_hash(b"forged"), index, size, proof, root)
            if proof:
                assert not verify_inclusion(leaves[index], index, size, proof[:-1], root)
            if size > 1:
                other = (index + 1) % size
                assert not verify_inclusion(leaves[index], other, size, proof, root)


def test_every_consistency_proof_verifies_and_a_rewritten_prefix_does_not() -> None:
    leaves = many(33)
    perfect = _perfect_of(leaves)
    for new in range(1, 34):
        new_root = root_of(leaves[:new])
        for old in range(1, new + 1):
            proof = consistency_proof(old, new, perfect)
            old_root = root_of(leaves[:old])
            assert verify_consistency(old, new, old_root, new_root, proof)
            rewritten = root_of([leaf_hash(b"rewritten"), *leaves[1:old]])
            assert not verify_consistency(old, new, rewritten, new_root, proof)


def test_the_frontier_gives_every_root_as_leaves_are_appended() -> None:
    leaves = many(40)
    frontier: list[bytes] = []
    stored: dict[tuple[int, int], bytes] = {}
    for size, leaf in enumerate(leaves):
        for level, node in frontier_append(size, frontier, leaf):
            index = sum(1 for key in stored if key[0] == level)
            stored[(level, index)] = node
        assert frontier_root(frontier) == root_of(leaves[: size + 1])
        assert [stored[at] for at in frontier_levels(size + 1)] == frontier
    assert all(node == root_of(leaves[i << lv : (i + 1) << lv]) for (lv, i), node in stored.items())
