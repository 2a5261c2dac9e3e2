"""The ledger's Merkle tree and its proofs (``consentkit.ledger.tree``, ``consentkit.ledger.proofs``),
checked against other implementations.

* RFC 6962 vectors: leaf inputs, node and root hashes of trees of 0 to 8 leaves, from
  transparency-dev/merkle ``testonly/constants.go`` (commit 417fb0c3).
* The proof probes of transparency-dev/merkle ``testdata/inclusion`` and ``testdata/consistency``
  (happy paths and their mutations; ``INCLUSION_PROBES`` and ``CONSISTENCY_PROBES`` below, every
  file at commit 417fb0c3).
* Go's ``golang.org/x/mod/sumdb/tlog`` (v0.9.0): roots, record proofs and tree proofs for trees
  of up to a million leaves (``GO_TLOG`` below; how they were made is said there).
* A deliberately naive second implementation written here from the RFC 9162 §2.1 text:
  recursive MTH, PATH and PROOF, and verifiers that walk the same recursion, compared with the
  module for every size up to 70, every index and every pair of sizes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentkit.errors import LedgerError
from consentkit.ledger.proofs import (
    ChunkedTree,
    LeafTree,
    consistency_proof,
    inclusion_proof,
    proof_reads,
    verify_consistency,
    verify_inclusion,
)
from consentkit.ledger.tree import (
    EMPTY_ROOT,
    TreeBuilder,
    TreeError,
    chunk_roots,
    leaf_hash,
    leaf_hash_bytes,
    leaf_hashes,
    node_hash,
    root_from_chunks,
    root_from_leaves,
)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def record_hash(i: int) -> str:
    """The record hashes of the Go vectors: SHA-256 of the decimal index, as hex."""
    return hashlib.sha256(str(i).encode()).hexdigest()


def flip(value: bytes, bit: int = 0) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


# --- the naive reference: RFC 9162 §2.1, read literally -----------------------------------------


def rfc_k(n: int) -> int:
    """ "the largest power of two smaller than n" (n > 1), by counting."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the data entries themselves (the records' 32-byte hashes)."""
    if len(d) == 0:
        return sha(b"")
    if len(d) == 1:
        return sha(b"\x00" + d[0])
    k = rfc_k(len(d))
    return sha(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:]))


def rfc_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    if len(d) == 1:
        return []
    k = rfc_k(len(d))
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(d)
    if m == n:
        return [] if b else [rfc_mth(d)]
    k = rfc_k(n)
    if m <= k:
        return [*rfc_subproof(m, d[:k], b), rfc_mth(d[k:])]
    return [*rfc_subproof(m - k, d[k:], False), rfc_mth(d[:k])]


def rfc_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return rfc_subproof(m, d, True)


def naive_root_from_path(m: int, n: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """Walk PATH's recursion backwards: the last proof entry is the top sibling."""
    if n == 1:
        return None if path else leaf
    if not path:
        return None
    k = rfc_k(n)
    *rest, sibling = path
    if m < k:
        sub = naive_root_from_path(m, k, leaf, rest)
        return None if sub is None else sha(b"\x01" + sub + sibling)
    sub = naive_root_from_path(m - k, n - k, leaf, rest)
    return None if sub is None else sha(b"\x01" + sibling + sub)


def naive_verify_inclusion(leaf: bytes, m: int, n: int, path: list[bytes], root: bytes) -> bool:
    return 0 <= m < n and naive_root_from_path(m, n, leaf, list(path)) == root


def naive_subproof_roots(
    m: int, n: int, proof: list[bytes], whole: bool, old_root: bytes
) -> tuple[bytes, bytes] | None:
    """Walk SUBPROOF's recursion backwards: (old subtree hash, new subtree hash), or None."""
    if m == n:
        if whole:
            return None if proof else (old_root, old_root)
        return (proof[0], proof[0]) if len(proof) == 1 else None
    if not proof:
        return None
    k = rfc_k(n)
    *rest, sibling = proof
    if m <= k:
        sub = naive_subproof_roots(m, k, rest, whole, old_root)
        return None if sub is None else (sub[0], sha(b"\x01" + sub[1] + sibling))
    sub = naive_subproof_roots(m - k, n - k, rest, False, old_root)
    if sub is None:
        return None
    return sha(b"\x01" + sibling + sub[0]), sha(b"\x01" + sibling + sub[1])


def naive_verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> bool:
    return 0 < m <= n and naive_subproof_roots(m, n, list(proof), True, old_root) == (old_root, new_root)


DATA = [bytes.fromhex(record_hash(i)) for i in range(300)]
LEAVES = [leaf_hash(record_hash(i)) for i in range(300)]
MAX_N = 70


# --- hashing ------------------------------------------------------------------------------------


def test_leaf_and_node_hashes_are_rfc_9162():
    raw = DATA[7]
    assert leaf_hash(raw.hex()) == sha(b"\x00" + raw)
    assert leaf_hash(raw.hex().upper()) == sha(b"\x00" + raw)
    assert leaf_hash_bytes(raw) == sha(b"\x00" + raw)
    assert leaf_hashes([d.hex() for d in DATA[:5]]) == LEAVES[:5]
    assert node_hash(LEAVES[0], LEAVES[1]) == sha(b"\x01" + LEAVES[0] + LEAVES[1])
    assert EMPTY_ROOT == sha(b"") == root_from_leaves([])


@pytest.mark.parametrize(
    "bad", ["", "ab", "g" * 64, "a" * 63, "a" * 65, " " + "a" * 63, "aa " * 21 + "a", "a" * 62 + " a"]
)
def test_a_record_hash_is_64_hex_digits(bad):
    for call in (leaf_hash, lambda h: leaf_hashes([h]), lambda h: TreeBuilder().extend_record_hashes([h])):
        with pytest.raises(TreeError, match="64 hex digits"):
            call(bad)
    with pytest.raises(TreeError):
        leaf_hash_bytes(b"\x00" * 31)
    with pytest.raises(TreeError):
        node_hash(LEAVES[0], LEAVES[1][:31])


def test_tree_errors_are_ledger_errors_and_value_errors():
    assert issubclass(TreeError, LedgerError)
    assert issubclass(TreeError, ValueError)


# --- RFC 6962 vectors (transparency-dev/merkle testonly/constants.go) --------------------------

RFC6962_LEAF_INPUTS = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
# NodeHashes(): level 0 (the leaves) to level 3 (the root of all eight).
RFC6962_NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
# RootHashes(): the root of the first n leaves, n = 0..8.
RFC6962_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# CompactTrees(): the perfect subtrees of each tree, as (level, index) into NodeHashes().
RFC6962_COMPACT = [
    [],
    [(0, 0)],
    [(1, 0)],
    [(1, 0), (0, 2)],
    [(2, 0)],
    [(2, 0), (0, 4)],
    [(2, 0), (1, 2)],
    [(2, 0), (1, 2), (0, 6)],
    [(3, 0)],
]


def test_rfc6962_reference_trees():
    # The reference leaves are arbitrary byte strings, not 32-byte record hashes: hash them here,
    # and check that against the vectors before everything the module builds on top of them.
    leaves = [sha(b"\x00" + bytes.fromhex(x)) for x in RFC6962_LEAF_INPUTS]
    nodes = [[bytes.fromhex(h) for h in level] for level in RFC6962_NODE_HASHES]
    assert leaves == nodes[0]
    for level in range(1, 4):
        for i, want in enumerate(nodes[level]):
            assert node_hash(nodes[level - 1][2 * i], nodes[level - 1][2 * i + 1]) == want
            width = 1 << level
            assert LeafTree(leaves).subtree_hash(i * width, (i + 1) * width) == want
    for n, want in enumerate(RFC6962_ROOTS):
        assert root_from_leaves(leaves[:n]) == bytes.fromhex(want), n
        builder = TreeBuilder()
        for leaf in leaves[:n]:
            builder.append(leaf)
        assert builder.root() == bytes.fromhex(want)
        assert builder.compact_range() == [nodes[lv][ix] for lv, ix in RFC6962_COMPACT[n]]
        assert TreeBuilder.from_compact_range(n, builder.compact_range()).root() == bytes.fromhex(want)


# --- transparency-dev/merkle proof probes ------------------------------------------------------


# Every file of transparency-dev/merkle testdata/inclusion and testdata/consistency at commit
# 417fb0c314750d94e53942e9f92e79b6d35915db, as (file name, the probe's fields, whether it must
# verify, i.e. not wantErr). Hashes are aliased to keep the table short; a few "hashes" are
# deliberately not 32 bytes (the probes' garbage values).
# Inclusion: (name, leafIdx, treeSize, leafHash, proof, root, valid).
# Consistency: (name, size1, size2, root1, root2, proof, valid).
PROBE_HASHES = {
    "H0": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "H1": "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    "H2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "H3": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "H4": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "H5": "86a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "H6": "4f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "H7": "7b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "H8": "",
    "H9": "57726f6e67526f6f74",
    "H10": "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "H11": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "H12": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "H13": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "H14": "1ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "H15": "da854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "H16": "c37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "H17": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "H18": "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "H19": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "H20": "ac1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "H21": "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "H22": "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "H23": "a08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "H24": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "H25": "646f6e277420636172652032",
    "H26": "646f6e277420636172652031",
    "H27": "abacaba000000000000000000000000000000000000000000060061e00123456",
    "H28": "57726f6e674c656166",
    "H29": "9ea296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "H30": "57083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "H31": "6347aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "H32": "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "H33": "b41a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "H34": "c2854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "H35": "db7ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "H36": "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "H37": "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "H38": "f2c54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "H39": "66340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "H40": "0d3aed023148ffd2a259fbd0cdc7fb3cf975658760d3775b82af6f90aacc2dfc",
}
INCLUSION_PROBES = [
    ("0/empty-root", 0, 1, "H0", [], "H24", False),
    ("0/happy-path", 0, 1, "H0", [], "H0", True),
    ("0/leafIdx-XOR-@2", 2, 1, "H0", [], "H0", False),
    ("0/leafIdx-plus-@1", 1, 1, "H0", [], "H0", False),
    ("0/leafIdx-sub-@1", 18446744073709551615, 1, "H0", [], "H0", False),
    ("0/preceding-garbage", 0, 1, "H0", ["H8"], "H0", False),
    ("0/preceding-root", 0, 1, "H0", ["H0"], "H0", False),
    ("0/random-root", 0, 1, "H0", [], "H27", False),
    ("0/trailing-garbage", 0, 1, "H0", ["H8"], "H0", False),
    ("0/trailing-root", 0, 1, "H0", ["H0"], "H0", False),
    ("0/treeSize-div-@2", 0, 0, "H0", [], "H0", False),
    ("0/treeSize-mul-@2", 0, 2, "H0", [], "H0", False),
    ("0/wrong-leaf", 0, 1, "H28", [], "H0", False),
    ("1/empty-root", 0, 8, "H0", ["H2", "H3", "H4"], "H24", False),
    ("1/happy-path", 0, 8, "H0", ["H2", "H3", "H4"], "H1", True),
    ("1/inserted-component", 0, 8, "H0", ["H2", "H27", "H3", "H4"], "H1", False),
    ("1/leafIdx-XOR-@2", 2, 8, "H0", ["H2", "H3", "H4"], "H1", False),
    ("1/leafIdx-plus-@1", 1, 8, "H0", ["H2", "H3", "H4"], "H1", False),
    ("1/leafIdx-sub-@1", 18446744073709551615, 8, "H0", ["H2", "H3", "H4"], "H1", False),
    ("1/modified-proof[0]-bit-@3", 0, 8, "H0", ["H29", "H3", "H4"], "H1", False),
    ("1/modified-proof[1]-bit-@3", 0, 8, "H0", ["H2", "H30", "H4"], "H1", False),
    ("1/modified-proof[2]-bit-@3", 0, 8, "H0", ["H2", "H3", "H31"], "H1", False),
    ("1/preceding-garbage", 0, 8, "H0", ["H8", "H2", "H3", "H4"], "H1", False),
    ("1/preceding-root", 0, 8, "H0", ["H1", "H2", "H3", "H4"], "H1", False),
    ("1/random-root", 0, 8, "H0", ["H2", "H3", "H4"], "H27", False),
    ("1/removed-component", 0, 8, "H0", ["H2", "H3"], "H1", False),
    ("1/trailing-garbage", 0, 8, "H0", ["H2", "H3", "H4", "H8"], "H1", False),
    ("1/trailing-root", 0, 8, "H0", ["H2", "H3", "H4", "H1"], "H1", False),
    ("1/treeSize-div-@2", 0, 4, "H0", ["H2", "H3", "H4"], "H1", False),
    ("1/treeSize-mul-@2", 0, 16, "H0", ["H2", "H3", "H4"], "H1", False),
    ("1/wrong-leaf", 0, 8, "H28", ["H2", "H3", "H4"], "H1", False),
    ("2/empty-root", 5, 8, "H32", ["H19", "H12", "H13"], "H24", False),
    ("2/happy-path", 5, 8, "H32", ["H19", "H12", "H13"], "H1", True),
    ("2/inserted-component", 5, 8, "H32", ["H19", "H27", "H12", "H13"], "H1", False),
    ("2/leafIdx-XOR-@2", 7, 8, "H32", ["H19", "H12", "H13"], "H1", False),
    ("2/leafIdx-plus-@1", 6, 8, "H32", ["H19", "H12", "H13"], "H1", False),
    ("2/leafIdx-sub-@1", 4, 8, "H32", ["H19", "H12", "H13"], "H1", False),
    ("2/modified-proof[0]-bit-@3", 5, 8, "H32", ["H33", "H12", "H13"], "H1", False),
    ("2/modified-proof[1]-bit-@3", 5, 8, "H32", ["H19", "H34", "H13"], "H1", False),
    ("2/modified-proof[2]-bit-@3", 5, 8, "H32", ["H19", "H12", "H35"], "H1", False),
    ("2/preceding-garbage", 5, 8, "H32", ["H8", "H19", "H12", "H13"], "H1", False),
    ("2/preceding-root", 5, 8, "H32", ["H1", "H19", "H12", "H13"], "H1", False),
    ("2/random-root", 5, 8, "H32", ["H19", "H12", "H13"], "H27", False),
    ("2/removed-component", 5, 8, "H32", ["H19", "H12"], "H1", False),
    ("2/trailing-garbage", 5, 8, "H32", ["H19", "H12", "H13", "H8"], "H1", False),
    ("2/trailing-root", 5, 8, "H32", ["H19", "H12", "H13", "H1"], "H1", False),
    ("2/treeSize-div-@2", 5, 4, "H32", ["H19", "H12", "H13"], "H1", False),
    ("2/treeSize-mul-@2", 5, 16, "H32", ["H19", "H12", "H13"], "H1", False),
    ("2/wrong-leaf", 5, 8, "H28", ["H19", "H12", "H13"], "H1", False),
    ("3/empty-root", 2, 3, "H36", ["H17"], "H24", False),
    ("3/happy-path", 2, 3, "H36", ["H17"], "H37", True),
    ("3/leafIdx-XOR-@2", 0, 3, "H36", ["H17"], "H37", False),
    ("3/leafIdx-plus-@1", 3, 3, "H36", ["H17"], "H37", False),
    ("3/leafIdx-sub-@1", 1, 3, "H36", ["H17"], "H37", False),
    ("3/modified-proof[0]-bit-@3", 2, 3, "H36", ["H38"], "H37", False),
    ("3/preceding-garbage", 2, 3, "H36", ["H8", "H17"], "H37", False),
    ("3/preceding-root", 2, 3, "H36", ["H37", "H17"], "H37", False),
    ("3/random-root", 2, 3, "H36", ["H17"], "H27", False),
    ("3/removed-component", 2, 3, "H36", [], "H37", False),
    ("3/trailing-garbage", 2, 3, "H36", ["H17", "H8"], "H37", False),
    ("3/trailing-root", 2, 3, "H36", ["H17", "H37"], "H37", False),
    ("3/treeSize-div-@2", 2, 1, "H36", ["H17"], "H37", False),
    ("3/treeSize-mul-@2", 2, 6, "H36", ["H17"], "H37", False),
    ("3/wrong-leaf", 2, 3, "H28", ["H17"], "H37", False),
    ("4/empty-root", 1, 5, "H2", ["H0", "H3", "H19"], "H24", False),
    ("4/happy-path", 1, 5, "H2", ["H0", "H3", "H19"], "H18", True),
    ("4/inserted-component", 1, 5, "H2", ["H0", "H27", "H3", "H19"], "H18", False),
    ("4/leafIdx-XOR-@2", 3, 5, "H2", ["H0", "H3", "H19"], "H18", False),
    ("4/leafIdx-plus-@1", 2, 5, "H2", ["H0", "H3", "H19"], "H18", False),
    ("4/leafIdx-sub-@1", 0, 5, "H2", ["H0", "H3", "H19"], "H18", False),
    ("4/modified-proof[0]-bit-@3", 1, 5, "H2", ["H39", "H3", "H19"], "H18", False),
    ("4/modified-proof[1]-bit-@3", 1, 5, "H2", ["H0", "H30", "H19"], "H18", False),
    ("4/modified-proof[2]-bit-@3", 1, 5, "H2", ["H0", "H3", "H33"], "H18", False),
    ("4/preceding-garbage", 1, 5, "H2", ["H8", "H0", "H3", "H19"], "H18", False),
    ("4/preceding-root", 1, 5, "H2", ["H18", "H0", "H3", "H19"], "H18", False),
    ("4/random-root", 1, 5, "H2", ["H0", "H3", "H19"], "H27", False),
    ("4/removed-component", 1, 5, "H2", ["H0", "H3"], "H18", False),
    ("4/trailing-garbage", 1, 5, "H2", ["H0", "H3", "H19", "H8"], "H18", False),
    ("4/trailing-root", 1, 5, "H2", ["H0", "H3", "H19", "H18"], "H18", False),
    ("4/treeSize-div-@2", 1, 2, "H2", ["H0", "H3", "H19"], "H18", False),
    ("4/treeSize-mul-@2", 1, 10, "H2", ["H0", "H3", "H19"], "H18", False),
    ("4/wrong-leaf", 1, 5, "H28", ["H0", "H3", "H19"], "H18", False),
    ("additional/0/empty-root-and-random-leaf", 0, 0, "H27", [], "H24", False),
    ("additional/0/empty-root", 0, 0, "H8", [], "H24", False),
    ("additional/0/random-leaf", 0, 0, "H27", [], "H8", False),
    ("additional/1/empty-root-and-random-leaf", 0, 1, "H27", [], "H24", False),
    ("additional/1/empty-root", 0, 1, "H8", [], "H24", False),
    ("additional/1/random-leaf", 0, 1, "H27", [], "H8", False),
    ("additional/2/empty-root-and-random-leaf", 1, 0, "H27", [], "H24", False),
    ("additional/2/empty-root", 1, 0, "H8", [], "H24", False),
    ("additional/2/random-leaf", 1, 0, "H27", [], "H8", False),
    ("additional/3/empty-root-and-random-leaf", 2, 1, "H27", [], "H24", False),
    ("additional/3/empty-root", 2, 1, "H8", [], "H24", False),
    ("additional/3/random-leaf", 2, 1, "H27", [], "H8", False),
    ("single-entry/empty-leaf", 0, 1, "H8", [], "H40", False),
    ("single-entry/empty-root-and-leaf", 0, 1, "H8", [], "H8", False),
    ("single-entry/empty-root", 0, 1, "H40", [], "H8", False),
    ("single-entry/matching-root-and-leaf", 0, 1, "H40", [], "H40", True),
]
CONSISTENCY_PROBES = [
    ("0/happy-path", 1, 1, "H0", "H0", [], True),
    ("1/empty-proof", 1, 8, "H0", "H1", [], False),
    ("1/happy-path", 1, 8, "H0", "H1", ["H2", "H3", "H4"], True),
    ("1/modified-proof@0-bit-@4", 1, 8, "H0", "H1", ["H5", "H3", "H4"], False),
    ("1/modified-proof@1-bit-@4", 1, 8, "H0", "H1", ["H2", "H6", "H4"], False),
    ("1/modified-proof@2-bit-@4", 1, 8, "H0", "H1", ["H2", "H3", "H7"], False),
    ("1/preceding-garbage", 1, 8, "H0", "H1", ["H8", "H2", "H3", "H4"], False),
    ("1/preceding-proof-@0", 1, 8, "H0", "H1", ["H2", "H2", "H3", "H4"], False),
    ("1/preceding-root1", 1, 8, "H0", "H1", ["H0", "H2", "H3", "H4"], False),
    ("1/preceding-root2", 1, 8, "H0", "H1", ["H1", "H2", "H3", "H4"], False),
    ("1/size1-XOR-@2", 3, 8, "H0", "H1", ["H2", "H3", "H4"], False),
    ("1/size1-plus-@1", 2, 8, "H0", "H1", ["H2", "H3", "H4"], False),
    ("1/size1-sub-@1", 0, 8, "H0", "H1", ["H2", "H3", "H4"], False),
    ("1/size2-div-@2", 1, 4, "H0", "H1", ["H2", "H3", "H4"], False),
    ("1/size2-mul-@2", 1, 16, "H0", "H1", ["H2", "H3", "H4"], False),
    ("1/swapped-roots", 1, 8, "H1", "H0", ["H2", "H3", "H4"], False),
    ("1/trailing-garbage", 1, 8, "H0", "H1", ["H2", "H3", "H4", "H8"], False),
    ("1/trailing-root1", 1, 8, "H0", "H1", ["H2", "H3", "H4", "H0"], False),
    ("1/trailing-root2", 1, 8, "H0", "H1", ["H2", "H3", "H4", "H1"], False),
    ("1/truncated-proof", 1, 8, "H0", "H1", ["H2", "H3"], False),
    ("1/wrong-root1", 1, 8, "H9", "H1", ["H2", "H3", "H4"], False),
    ("1/wrong-root2", 1, 8, "H0", "H9", ["H2", "H3", "H4"], False),
    ("2/empty-proof", 6, 8, "H10", "H1", [], False),
    ("2/happy-path", 6, 8, "H10", "H1", ["H11", "H12", "H13"], True),
    ("2/modified-proof@0-bit-@4", 6, 8, "H10", "H1", ["H14", "H12", "H13"], False),
    ("2/modified-proof@1-bit-@4", 6, 8, "H10", "H1", ["H11", "H15", "H13"], False),
    ("2/modified-proof@2-bit-@4", 6, 8, "H10", "H1", ["H11", "H12", "H16"], False),
    ("2/preceding-garbage", 6, 8, "H10", "H1", ["H8", "H11", "H12", "H13"], False),
    ("2/preceding-proof-@0", 6, 8, "H10", "H1", ["H11", "H11", "H12", "H13"], False),
    ("2/preceding-root1", 6, 8, "H10", "H1", ["H10", "H11", "H12", "H13"], False),
    ("2/preceding-root2", 6, 8, "H10", "H1", ["H1", "H11", "H12", "H13"], False),
    ("2/size1-XOR-@2", 4, 8, "H10", "H1", ["H11", "H12", "H13"], False),
    ("2/size1-plus-@1", 7, 8, "H10", "H1", ["H11", "H12", "H13"], False),
    ("2/size1-sub-@1", 5, 8, "H10", "H1", ["H11", "H12", "H13"], False),
    ("2/size2-div-@2", 6, 4, "H10", "H1", ["H11", "H12", "H13"], False),
    ("2/size2-mul-@2", 6, 16, "H10", "H1", ["H11", "H12", "H13"], False),
    ("2/swapped-roots", 6, 8, "H1", "H10", ["H11", "H12", "H13"], False),
    ("2/trailing-garbage", 6, 8, "H10", "H1", ["H11", "H12", "H13", "H8"], False),
    ("2/trailing-root1", 6, 8, "H10", "H1", ["H11", "H12", "H13", "H10"], False),
    ("2/trailing-root2", 6, 8, "H10", "H1", ["H11", "H12", "H13", "H1"], False),
    ("2/truncated-proof", 6, 8, "H10", "H1", ["H11", "H12"], False),
    ("2/wrong-root1", 6, 8, "H9", "H1", ["H11", "H12", "H13"], False),
    ("2/wrong-root2", 6, 8, "H10", "H9", ["H11", "H12", "H13"], False),
    ("3/empty-proof", 2, 5, "H17", "H18", [], False),
    ("3/happy-path", 2, 5, "H17", "H18", ["H3", "H19"], True),
    ("3/modified-proof@0-bit-@4", 2, 5, "H17", "H18", ["H6", "H19"], False),
    ("3/modified-proof@1-bit-@4", 2, 5, "H17", "H18", ["H3", "H20"], False),
    ("3/preceding-garbage", 2, 5, "H17", "H18", ["H8", "H3", "H19"], False),
    ("3/preceding-proof-@0", 2, 5, "H17", "H18", ["H3", "H3", "H19"], False),
    ("3/preceding-root1", 2, 5, "H17", "H18", ["H17", "H3", "H19"], False),
    ("3/preceding-root2", 2, 5, "H17", "H18", ["H18", "H3", "H19"], False),
    ("3/size1-XOR-@2", 0, 5, "H17", "H18", ["H3", "H19"], False),
    ("3/size1-plus-@1", 3, 5, "H17", "H18", ["H3", "H19"], False),
    ("3/size1-sub-@1", 1, 5, "H17", "H18", ["H3", "H19"], False),
    ("3/size2-div-@2", 2, 2, "H17", "H18", ["H3", "H19"], False),
    ("3/size2-mul-@2", 2, 10, "H17", "H18", ["H3", "H19"], False),
    ("3/swapped-roots", 2, 5, "H18", "H17", ["H3", "H19"], False),
    ("3/trailing-garbage", 2, 5, "H17", "H18", ["H3", "H19", "H8"], False),
    ("3/trailing-root1", 2, 5, "H17", "H18", ["H3", "H19", "H17"], False),
    ("3/trailing-root2", 2, 5, "H17", "H18", ["H3", "H19", "H18"], False),
    ("3/truncated-proof", 2, 5, "H17", "H18", ["H3"], False),
    ("3/wrong-root1", 2, 5, "H9", "H18", ["H3", "H19"], False),
    ("3/wrong-root2", 2, 5, "H17", "H9", ["H3", "H19"], False),
    ("4/empty-proof", 6, 7, "H10", "H21", [], False),
    ("4/happy-path", 6, 7, "H10", "H21", ["H11", "H22", "H13"], True),
    ("4/modified-proof@0-bit-@4", 6, 7, "H10", "H21", ["H14", "H22", "H13"], False),
    ("4/modified-proof@1-bit-@4", 6, 7, "H10", "H21", ["H11", "H23", "H13"], False),
    ("4/modified-proof@2-bit-@4", 6, 7, "H10", "H21", ["H11", "H22", "H16"], False),
    ("4/preceding-garbage", 6, 7, "H10", "H21", ["H8", "H11", "H22", "H13"], False),
    ("4/preceding-proof-@0", 6, 7, "H10", "H21", ["H11", "H11", "H22", "H13"], False),
    ("4/preceding-root1", 6, 7, "H10", "H21", ["H10", "H11", "H22", "H13"], False),
    ("4/preceding-root2", 6, 7, "H10", "H21", ["H21", "H11", "H22", "H13"], False),
    ("4/size1-XOR-@2", 4, 7, "H10", "H21", ["H11", "H22", "H13"], False),
    ("4/size1-plus-@1", 7, 7, "H10", "H21", ["H11", "H22", "H13"], False),
    ("4/size1-sub-@1", 5, 7, "H10", "H21", ["H11", "H22", "H13"], False),
    ("4/size2-div-@2", 6, 3, "H10", "H21", ["H11", "H22", "H13"], False),
    ("4/size2-mul-@2", 6, 14, "H10", "H21", ["H11", "H22", "H13"], False),
    ("4/swapped-roots", 6, 7, "H21", "H10", ["H11", "H22", "H13"], False),
    ("4/trailing-garbage", 6, 7, "H10", "H21", ["H11", "H22", "H13", "H8"], False),
    ("4/trailing-root1", 6, 7, "H10", "H21", ["H11", "H22", "H13", "H10"], False),
    ("4/trailing-root2", 6, 7, "H10", "H21", ["H11", "H22", "H13", "H21"], False),
    ("4/truncated-proof", 6, 7, "H10", "H21", ["H11", "H22"], False),
    ("4/wrong-root1", 6, 7, "H9", "H21", ["H11", "H22", "H13"], False),
    ("4/wrong-root2", 6, 7, "H10", "H9", ["H11", "H22", "H13"], False),
    (
        "additional/consistency-check-on-empty-tree-size1-is-zero-is-useless",
        0,
        1,
        "H24",
        "H24",
        ["H24"],
        False,
    ),
    ("additional/roots-do-not-match-and-sizes-are-zero", 0, 0, "H24", "H25", [], False),
    ("additional/roots-do-not-not-match-and-sizes-are-one", 1, 1, "H24", "H25", [], False),
    ("additional/size1-is-greater-than-size2-again", 2, 1, "H26", "H25", [], False),
    ("additional/size1-is-greater-than-size2", 1, 0, "H26", "H25", [], False),
    ("additional/size1-is-zero-and-does-not-equal-size2", 0, 1, "H26", "H25", [], False),
    ("additional/size1-is-zero-and-size2-is-not-zero", 0, 1, "H24", "H25", [], False),
    ("additional/sizes-are-equal-one-and-proof-is-empty", 1, 1, "H25", "H25", [], True),
    ("additional/sizes-are-equal-one-but-roots-are-not", 1, 1, "H26", "H25", [], False),
    ("additional/sizes-are-equal-zero-and-proof-is-empty", 0, 0, "H26", "H26", [], False),
    ("additional/sizes-are-equal-zero-but-roots-are-not", 0, 0, "H26", "H25", [], False),
    ("additional/sizes-do-not-watch-and-proof-is-empty", 1, 2, "H26", "H25", [], False),
    ("additional/sizes-match-but-proof-is-not-empty-and-sizes-are-one", 1, 1, "H24", "H24", ["H24"], False),
    ("additional/sizes-match-but-proof-is-not-empty-and-sizes-are-zero", 0, 0, "H24", "H24", ["H24"], False),
]


def _h(alias: str) -> bytes:
    return bytes.fromhex(PROBE_HASHES[alias])


# One deliberate difference: a root that is not 32 bytes is never a valid tree head here, even
# when two equal sizes make the proof trivially empty; transparency-dev accepts two equal
# 12-byte "roots" in that probe.
PROBE_DEVIATIONS = {"additional/sizes-are-equal-one-and-proof-is-empty": False}


@pytest.mark.parametrize("probe", INCLUSION_PROBES, ids=lambda p: p[0])
def test_transparency_dev_inclusion_probes(probe):
    _name, index, size, leaf, proof, root, valid = probe
    args = (_h(leaf), index, size, [_h(p) for p in proof], _h(root))
    assert verify_inclusion(*args) is valid
    if valid:
        assert naive_verify_inclusion(*args)


@pytest.mark.parametrize("probe", CONSISTENCY_PROBES, ids=lambda p: p[0])
def test_transparency_dev_consistency_probes(probe):
    name, size1, size2, root1, root2, proof, valid = probe
    valid = PROBE_DEVIATIONS.get(name, valid)
    args = (size1, size2, _h(root1), _h(root2), [_h(p) for p in proof])
    assert verify_consistency(*args) is valid
    if valid:
        assert naive_verify_consistency(*args)


def test_transparency_dev_happy_paths_are_our_proofs():
    # Their happy paths are over the RFC 6962 reference leaves: our prover must emit exactly them.
    leaves = [sha(b"\x00" + bytes.fromhex(x)) for x in RFC6962_LEAF_INPUTS]
    happy = [p for p in INCLUSION_PROBES if p[0].endswith("/happy-path")]
    assert len(happy) == 5
    for _, index, size, _, proof, _, _ in happy:
        assert inclusion_proof(index, size, leaves[:size]) == [_h(p) for p in proof]
    happy = [p for p in CONSISTENCY_PROBES if p[0].endswith("/happy-path")]
    assert len(happy) == 5
    for _, size1, size2, _, _, proof, _ in happy:
        assert consistency_proof(size1, size2, leaves[:size2]) == [_h(p) for p in proof]


# --- Go's sumdb/tlog ---------------------------------------------------------------------------


# Made with golang.org/x/mod v0.9.0 sumdb/tlog (Go 1.19): record i (i = 0 .. 999,999) is the
# 32-byte SHA-256 of the decimal string of i, stored with tlog.StoredHashes(i, record, storage);
# then tlog.TreeHash(n) ("root n ROOT"), tlog.ProveRecord(size, index) ("incl size index
# PROOF...") and tlog.ProveTree(new, old) ("cons old new PROOF..."), printed as hex. Go's
# RecordHash(record) is our leaf_hash(record.hex()).
GO_TLOG = """
root 1 13a77175e35eb1d9da91ee14df0d7772cea71289800206e2b45c882ecb06efbf
root 2 bbb441530bdded54e6e2bfcdc829819ff39b30768eb9f023071dffc16b410f10
root 3 8be871f13785b4c81a1700459c76ac2b3ae2caebb7876c376e223c6adff98c47
root 4 626635eec4e2fa4a75475a0f1d633dbee55b6783247c108b9a12dcc60f13836e
root 5 4e23fb40d8876f1299cca9b3c28432a01b11d1a20126606914612892ff2e09a7
root 7 5653c4ab2514ccd6ea4f0159702d2aba901f2562aa75abcff5a19e344bee038f
root 8 da17ac5d45a1b0c50260c7e411bf342ba2a41c9c824bb3b6404e5330a585a057
root 255 1142469aa08a9713e3dfe466a675ed1fbd5ce471895367f335ce65713cd87de8
root 256 88c3ded0ed520b5c0b743ae9164b0dfe169a4bd0079e6d45d03ae82d1cbd0259
root 257 14d1fb3b16124718be1f903daf2e3edd5712d1cb6a1125827c5ad1f19e9eb74a
root 1000 3b93b70ed68de7847cfafb398f3df0cf232fe05dfb117f8a8cf9dc31990ddb3b
root 4097 45dadbbd420bc6d44464eeb5d8c67ee874a50c4aee7d0f527739369faa831a61
root 65535 fa39c13b40cbc7cc392ee0438f3b794242936c77b98ebe1232ffcbe2e46c7bce
root 65536 21b90f9ace11feaeff73efdedafa6b076657da514a00ef009f1a67e90f96f564
root 65537 bb1d46344d5e816305d926534c08680360b76eb580ae7372246de35c26efc3f7
root 100000 835ac4ce131159055ab6ad0fdff2e93302d5c90a5aac4eb661df94c041f4de80
root 1000000 46cac2e63bb6d97247a5b5417d925f94c4e2e5f42eb390afe1e9f1a472f21931
incl 1000 0 58705e7af8dbab9f2f5b6449ba18d22cce7eedf245fca8dcfd93cf0f906ccf95 94d8e890a83c68081af355575ee41d8738f4eab7150e5b41862787b5996682ef dda8915079e27037f07130ff899b9ce7e6d619fec11809b6afa5b3794a239dc8 4b3116d1b02d2fd73e0b3dd2d6eefdc06baa64814f46688b8bc0edf8564480c1 3150f0cfdcb941ace16aa6578607aba02ff80cb146768bc5fd6d67d2feacacfa 24c7046993ad5683916db4e0d140f49254ab612b9c924da95497ad7b2070208c f77400a07e1a24308a7249d67ed0df4bf2bde580aa3a14abf9248c274fa173d0 da5e5524dd50811a1e22f07631dcf7e417ae611a9dc435cebae326160882f10f 7aa340542e158ba69e2dba06f7088ef1594175e57e33f16467a293d4179011b4 29c48f5cf5256a690b5f49448aa323e7755087d9f1c97a7f3dcecd21b956d158
incl 1000 999 41a86ec651aa322999a5b00c4e85f6b14dc1fb03fe52b14c96d9bdc8645d3757 16f2c399830facad24312cc91b8cbb80ccc24132af081012e6d2eb11eddf65f1 ba199992cf1462e66bb33894d34d9b9b1ec348722bfe3e38d10157b33d57ab55 0ccc621d0ef783c93b431df08884ed66544ecef2e0666ce76840a68a9c350b00 1feb412add431f2ad204ae05576185f59e2197c34bc9133025ab1a2a89907b36 05252697d845ac662102c60d799eec92f69d4f18d2113fb2892d3065381f6ef1 aba4cba0adfe40f08ace8162a7d5af0031eadfd243afe5cfe57941d77072a878 cca5fabf2860cf52a877ed610298d8733031daf7756e2ae43c1aafd0c00a5c6c
incl 1000 513 42cc2d8227dae10999a02e14f9c8dfde18d7d95e5c2cf17faabb7436347ee0f2 22d32b4dae33a9cd2f12df8f791c6ecbfe0ee04f065103d8b2777eb290602c34 1cd82a1e278bc5e934a21845a21b1f46c3e794f804d880ecdae963aca2b30edd f05c11268bdbcd7eb42edabc9ff2b01d0066b3798bfd30888c8f3d753249f452 11c2aee47696682fb1d6e0bb2607fe47a6d62e87b9db87bea7ceea342f4347c8 089db024d15d3551a774af324a93f632c25cd35aceff7301c799f9c5cf859342 10247c63943310f2c1429060887b9b21ba5b80bb8558289f05a99d04e5dce169 9c2fd00103653ac5870ee03f669b480ca876371fe71ba8fe21cfde08182d27a1 adaecdd834044402c9da50457d5f1b96a9c4470921c7bcc0eff8289542c78f87 cca5fabf2860cf52a877ed610298d8733031daf7756e2ae43c1aafd0c00a5c6c
incl 65537 65536 21b90f9ace11feaeff73efdedafa6b076657da514a00ef009f1a67e90f96f564
incl 65537 12345 e2878973ab08c06d00c1f07babc5ca620ba3992693a1afb35e87eaa80214509d 554be385a81ca0223afe2333b1e36ccd5f4858c92b8edfd72f19bfeb1b491554 18e44d3236dede25c2f41c83306324729fd5434d70532f5b9db3017ac96d7f95 2ab153855001bba514255908be0944fe55db76b4c8b134c7bbda72f7400f3201 42d7494a9dfed336623b2da814b18fa6579b108c92870b32dc5e270957fe7a80 ffaa49c1066bf414ba56772d561c86319970a9629938841356c7f489430ee35e 2284496d61cb308aee549d55aa3a286e2716a91aea60064a94370185031180a1 e923239b1d48ff045009858e4a9790e827ae02d73973055c37d4e6631c344b2f 73b937b1b66904fc95960f2d57c169e8c48488cb78e63ec96d1fd51a5cfa8f5f 1c7c3b2c11b71d13898b3a41f67b4f173173c08313e7d327c017fc822156de4a eb9fd4ed9c4395e7eee220920bea343f5aa0f378c1185dcfc7c1e8455f0a9cb0 778e57b1c9733562abfddbced40980ae4e19e0bdac427c1117ee83207ce5ce70 2e4ba4b7c525e38d985ee7630a47fbabbd3cc4b393f24cf985cce9b29d3918c3 d6c459b80b5704094d8a131b6ca09b3f5e0a41a3f665ac4c70033e66ab94a979 322fec7ff4ea1c871e619c1ff3f63d93dc369ea9fcaec1761c37370f5feefeac 9ac83739e6cd9b82cc7bc67419764eddb6498a3a6c5e4c99a1f2fba2364922d8 58ffbd5b75811744e2d7fca9deb314a292511ea0f2f71f69561a4a1df4fc57de
incl 100000 99999 2e45beda47f37cc43975e12cc6dfb9fc8945404561dd98fc0700c00ed186855c 65568375165e4d977677c5f3fa662a7c1dd5069f46ee79e1fea127e3ce11a93f a4b2737353188ba8b461c44afec0671a88d6c7bdf6dfb95595a789e01076a1aa 2b48575c9b729e3ed44e7558729684289ddfec86a2716e2c505133a5b9b0b5f7 ef062c9b09f7bc298851675f45480b63163bffff2afb919126b879330f1c1bc6 3a926dc4246a891aba875894b565ada9f3886b241ab78fbdd147016cfc38c0bc 1e253eab127a66271b30b64edc94920bd893c7a5f459d16a2b5acdd596f42eef b86859c003cf1359c7bdcc5a64ca475e235bf1c1be4eb6bcddedafe2efd86c13 8e85d6ffbd27e2ad179309dd0e2d3846b62912c65253bb6bee0c20f7cbd99e7b 21b90f9ace11feaeff73efdedafa6b076657da514a00ef009f1a67e90f96f564
incl 100000 54321 9c85692f163a6139c5cf78c02cd97925beaa8aed27e5b280af31a3437a5fcdae c4039546d32e4d297f1bee3209b0d8ca32abe0d68c1718af2c8179fffe7ef6d0 4a28a09c6820d58b8f522b5251aa164ffadd54445c9c2ed8d8c58dc800015516 2017e4b3c59ed2f977ab9580a2872f6625a21faf273cc79c807b2d0113a67d62 b365986c2b0dab0e7748585df9a00a85d7d182e6768a9bebceb52f1ef124ef71 0a17c589482bd0587852e24881b2d09ae6873aef2af658deb4da340d72b66fc6 09e5cf2bd52ed241f60e3b0c11c9b086ec8975ab05e98a6f1725893fbba7d801 818d540093abfe70df10fd4a162e3fead5d6d9cc517334e6f64c3c4194090850 6861e903d18d2a978e509eaa7a03bfb934da46dbfa17fc95096a5faf25886902 cd8c02e5e3ef3d23dcee0475ac214ab9b9c81cb2eeb581caeeba6e42fae82d14 576818097b4a1a49c227ae375e515a6ec378a851db50d090b892d5c7b3d200b1 acb5d517d7c3a52ac28e3b3990d4834e7b5b45d56567b8e9bdb41c1469570606 42d7152eacdebfd0e7ff611948dfa8138b1a3ae9540c9170c10c45236c49533c 17419f97030f4c8f295578096223fe7194e985f8959273ac0b31b85cc8d06b15 5b5fed487ef85c7aafd39cfd5eb83a11b717670482d4c19ce2d2f74f2f5e4694 0eb23dd62b59c30479a3eddb01f9fb8b40a370785b5506c2b26739bfd1133d02 9e67e1a618c32ed4ddba7544968ff6a77c7512e9c6f75f3599d60a14a4a31bb3
incl 1000000 123456 0b0016e7bcf6a937bca6f81f5061f9b702d2e566baadec409e5bbfa248eeaca6 df22a1c4841a5a8a2ecf72c9db5c6bf264f12026f1beb33e262b45754f2254fd cb9085ff355cd4024102201c42281e7f9213e0e1c5404ca83d62b7270bde2562 9757cb172e4f8e280ae7f3898fd588b7695bc7854ac303c2cbae9db1cca91226 b15ce7c5b81dc5b19ce116507d1af021fe2b2ff823ae1bcacdf65e6f0fe21fbb 927560e18868e4dd50e3e02c376184178a5ab72ccc457d72b6c94011c1439703 345589922164eac7f02483a1daf7bf8f70eafa96047ed34d797ba8670a16e282 65da6054110c62aad2942ad2a62bd6889d41279c7443d4dd90d7bbcc117c7ddd b04854401214396319d500f850f2b72e52538f6461974efe0e6dc20a7f86566a 1f89a00dc6838054b5b7a91fa2809dfd54485f1dc321b3ddae82a8b826649e34 eb9a9030f374e976783a9d4392cc01e7e19968d918918ef46ed7f8125c0ce72a 39b151b5af47313cc946c3a9dc85131c92a98df407509aec084d76ecf64e668e e3bafb10ef6f1b03006c397589365e882157b1e85dff21adeef888b8d5c1d4c3 05534f743067cce7376bfee545af46bda59cbd7092d37d7d4a74611dee195143 a704ea6b691d72309bde11511974f78c982b6b8ceb85748f2e303fcdeab735a8 8e85d6ffbd27e2ad179309dd0e2d3846b62912c65253bb6bee0c20f7cbd99e7b 21b90f9ace11feaeff73efdedafa6b076657da514a00ef009f1a67e90f96f564 0c72e43db79e2318d70d820b9b959ca20ec673a983a0e636e92bf3c8a9a2d82f 7ea7d016efa80357ec71392534d01b9450512e15800b01b1a804710a07bf90f1 a8cd1365bf15cb8075cba6942c61a7c51f71584b9b4ec9e24a17fe4d9fedcf0e
incl 1000000 999999 cd6441e3d27e70e1e1d8c33a2a8c306337945986951e4905d9a57f00ec0c0166 10f43e5bee4c1ab06e74d89a5444ec1706f6c13b5e5d699bf11b63bfe139cccb 28ed0879d816db8279824558abcdb8d02b867f60dbb58cf321be37c8b0a13cf8 7442f6a30e6da39b38ae4e0fcf3b7f9f08baa465f412049a13a8131e8ea926af f175abd7240099f7a589dc28549cd50ddb38d9e52d4a4ffc9ee93d1944c15a3b 2a82312025b26763947307acd3c4b9fde33a01a11e89d884cb3b592dc9c9bd52 56b008a735299a66ed0f4c0fffcee4f1232802a99db6f7110b020c3dfb0eca92 cb6e9c78908d292a7dff01b94859f8943b9a28c568a20b00fd8c6b7a79b1c575 d1d22159bcef9ce08133c79047ad3104d04531f07dcb5d236e9d8fdb28c49983 ad0739515e5bc469104b75dc33340d4a8f194ca5ec6ebf8b7b78eeb21be952a0 cf8276cf4b4c8fb353ad2e6ad5cbcaefd377094047822d4c505f85865b236060 bb88f83825cc74bc41270835445eecb2e2625b8d22c4529e2cda6164abaecd99
cons 1 1000 58705e7af8dbab9f2f5b6449ba18d22cce7eedf245fca8dcfd93cf0f906ccf95 94d8e890a83c68081af355575ee41d8738f4eab7150e5b41862787b5996682ef dda8915079e27037f07130ff899b9ce7e6d619fec11809b6afa5b3794a239dc8 4b3116d1b02d2fd73e0b3dd2d6eefdc06baa64814f46688b8bc0edf8564480c1 3150f0cfdcb941ace16aa6578607aba02ff80cb146768bc5fd6d67d2feacacfa 24c7046993ad5683916db4e0d140f49254ab612b9c924da95497ad7b2070208c f77400a07e1a24308a7249d67ed0df4bf2bde580aa3a14abf9248c274fa173d0 da5e5524dd50811a1e22f07631dcf7e417ae611a9dc435cebae326160882f10f 7aa340542e158ba69e2dba06f7088ef1594175e57e33f16467a293d4179011b4 29c48f5cf5256a690b5f49448aa323e7755087d9f1c97a7f3dcecd21b956d158
cons 256 1000 7aa340542e158ba69e2dba06f7088ef1594175e57e33f16467a293d4179011b4 29c48f5cf5256a690b5f49448aa323e7755087d9f1c97a7f3dcecd21b956d158
cons 300 1000 f3afcf51675c7b84eebaf90cf72fc1129403dce71cb6b471e648716c05f4d635 ee4c267a9b1a75adbac02e7dc1982c8216e4648c24e6a06ced0eb83492fa1d80 dd4b1f6f8b8e0f7a912f7db1e9390e927e3fbd868826c07d09d02e55f75a1a0b 2f0461c5252469c3fa3cf0d0ae935130bb698efa5949f59b1ff990ef2e8d37a7 496a741c2b2e879f0d3aee480c21a0290ec132e9b4d44baad1c27e67021019d9 ef99fd51520528234bfc14aeb1bfa6eed497fd2b02d4b02a3cec73f5a12b5765 39fca9f90df8a927e16d2b30aad2d0b2673bf2e86bcc94adac131309caeb848b 88c3ded0ed520b5c0b743ae9164b0dfe169a4bd0079e6d45d03ae82d1cbd0259 29c48f5cf5256a690b5f49448aa323e7755087d9f1c97a7f3dcecd21b956d158
cons 999 1000 41a86ec651aa322999a5b00c4e85f6b14dc1fb03fe52b14c96d9bdc8645d3757 bb21eba76b80453e5a66a07c266e11239d746135d47b7228d6b5632246b51251 16f2c399830facad24312cc91b8cbb80ccc24132af081012e6d2eb11eddf65f1 ba199992cf1462e66bb33894d34d9b9b1ec348722bfe3e38d10157b33d57ab55 0ccc621d0ef783c93b431df08884ed66544ecef2e0666ce76840a68a9c350b00 1feb412add431f2ad204ae05576185f59e2197c34bc9133025ab1a2a89907b36 05252697d845ac662102c60d799eec92f69d4f18d2113fb2892d3065381f6ef1 aba4cba0adfe40f08ace8162a7d5af0031eadfd243afe5cfe57941d77072a878 cca5fabf2860cf52a877ed610298d8733031daf7756e2ae43c1aafd0c00a5c6c
cons 65536 65537 58ffbd5b75811744e2d7fca9deb314a292511ea0f2f71f69561a4a1df4fc57de
cons 12345 100000 e2878973ab08c06d00c1f07babc5ca620ba3992693a1afb35e87eaa80214509d 02c5074fe5e03a64369f1fe0683316b7a048785e470a0c2a0dc464041b9e9a31 554be385a81ca0223afe2333b1e36ccd5f4858c92b8edfd72f19bfeb1b491554 18e44d3236dede25c2f41c83306324729fd5434d70532f5b9db3017ac96d7f95 2ab153855001bba514255908be0944fe55db76b4c8b134c7bbda72f7400f3201 42d7494a9dfed336623b2da814b18fa6579b108c92870b32dc5e270957fe7a80 ffaa49c1066bf414ba56772d561c86319970a9629938841356c7f489430ee35e 2284496d61cb308aee549d55aa3a286e2716a91aea60064a94370185031180a1 e923239b1d48ff045009858e4a9790e827ae02d73973055c37d4e6631c344b2f 73b937b1b66904fc95960f2d57c169e8c48488cb78e63ec96d1fd51a5cfa8f5f 1c7c3b2c11b71d13898b3a41f67b4f173173c08313e7d327c017fc822156de4a eb9fd4ed9c4395e7eee220920bea343f5aa0f378c1185dcfc7c1e8455f0a9cb0 778e57b1c9733562abfddbced40980ae4e19e0bdac427c1117ee83207ce5ce70 2e4ba4b7c525e38d985ee7630a47fbabbd3cc4b393f24cf985cce9b29d3918c3 d6c459b80b5704094d8a131b6ca09b3f5e0a41a3f665ac4c70033e66ab94a979 322fec7ff4ea1c871e619c1ff3f63d93dc369ea9fcaec1761c37370f5feefeac 9ac83739e6cd9b82cc7bc67419764eddb6498a3a6c5e4c99a1f2fba2364922d8 9e67e1a618c32ed4ddba7544968ff6a77c7512e9c6f75f3599d60a14a4a31bb3
cons 99999 100000 2e45beda47f37cc43975e12cc6dfb9fc8945404561dd98fc0700c00ed186855c 3708de9f79d4e0c6dcc4e4b140968e30e20a2aa694238f4196c3c28876c27086 65568375165e4d977677c5f3fa662a7c1dd5069f46ee79e1fea127e3ce11a93f a4b2737353188ba8b461c44afec0671a88d6c7bdf6dfb95595a789e01076a1aa 2b48575c9b729e3ed44e7558729684289ddfec86a2716e2c505133a5b9b0b5f7 ef062c9b09f7bc298851675f45480b63163bffff2afb919126b879330f1c1bc6 3a926dc4246a891aba875894b565ada9f3886b241ab78fbdd147016cfc38c0bc 1e253eab127a66271b30b64edc94920bd893c7a5f459d16a2b5acdd596f42eef b86859c003cf1359c7bdcc5a64ca475e235bf1c1be4eb6bcddedafe2efd86c13 8e85d6ffbd27e2ad179309dd0e2d3846b62912c65253bb6bee0c20f7cbd99e7b 21b90f9ace11feaeff73efdedafa6b076657da514a00ef009f1a67e90f96f564
cons 777777 1000000 f8e8b287f1d573d16125c204e4a6d8ce81fb358dceffed49cef2b504e3b109b5 2b973fbfe01f1716912ee122398e9508fdc655d09ef79871da60465062f6ab03 ed5d5e4fe4e1d8db59d037f46f6f8df7f77e7dd84fe370639e036d21078bc6d0 80b4af1d58953478fb6d1d62e69bd275b0101c859ceadff969299a55cd7460c7 929817348b381af61a2afac1652074b430de483b91d13020b4da6a3e94dd2263 0bd49e6c088b08e0726af8f9d963267f6be31e39533ffa26ecdb836e34a900fc b26b93781183f9a15b4c1993392a3cdd625bd8e10d83319c53a87a57c117bdf2 7323e1f94020f3705309e523352cf5b81bb0c59fb108bf1e9c47d8293de6687e 25be05fbcbbc822a9d1233d2bdd4a6f1c36a612e8d0694029ec5c9f2099dae2d 5da3087534d1e3d494f35cc7d8bf4677ded4d0b188297639e9db27ec868d29a7 61dc2f9bcc6721ad6f633ffc2c4bbb87abc61268a5c57384ae70227cf2673640 16b1d9e6a3428ec001498243ebfcd17fc193d3262e6ec474fb7f0a288387ad8d 791d56c48de1b5ce8cc5549978fb42500a4a9634a4319aa613b3afa753c4daa3 fad15bc2b22453092b4fdffcfdb576b84175261763546157585a919650c7d974 ba0511d4cb60803b286658250790d9da4be0a95ae9b4280b0ec041c8d4db16ec 970b81afb017e78a1bc0c912251a6d5c545c2c5ee05e808ebb69818523dcd082 8a5accade088f62414eb6da9421fad4aa7d37a69fde80515d80a989548678422 153d0c6f080c340637d6b56281e295512b5f5ea5d2169e437941b79efb9fedd3 ec2937efabf60b0bf33b4b087c5aa3d95361a1d0507e182739ee3ff832dd7246 56b6f92aafb0cbde23acf4e868d651e0cf341e099fd8fad511cc5cd6fef83cc7 bb88f83825cc74bc41270835445eecb2e2625b8d22c4529e2cda6164abaecd99
"""


def _go_vectors(kind: str) -> list[tuple[int, int, list[bytes]]]:
    out = []
    for line in GO_TLOG.strip().splitlines():
        word, *fields = line.split()
        if word != kind:
            continue
        numbers = [int(f) for f in fields if len(f) < 64]
        hashes = [bytes.fromhex(f) for f in fields if len(f) == 64]
        out.append((numbers[0], numbers[1] if len(numbers) > 1 else 0, hashes))
    return out


def _go_leaves(n: int) -> list[bytes]:
    return leaf_hashes(record_hash(i) for i in range(n))


GO_ROOTS = {n: hashes[0] for n, _, hashes in _go_vectors("root")}
SMALL = 100_000  # the vectors up to this size run always; the million-leaf ones are marked slow


@pytest.fixture(scope="module")
def go_leaves() -> list[bytes]:
    return _go_leaves(SMALL)


def test_go_tlog_roots(go_leaves):
    for n, root in GO_ROOTS.items():
        if n <= SMALL:
            assert root_from_leaves(go_leaves[:n]) == root, n
    # The streaming path the ledger takes, from the records' hex hashes.
    builder = TreeBuilder()
    for n in sorted(GO_ROOTS):
        if n <= SMALL:
            builder.extend_record_hashes(record_hash(i) for i in range(builder.size, n))
            assert builder.root() == GO_ROOTS[n], n


def test_go_tlog_record_proofs(go_leaves):
    for size, index, proof in _go_vectors("incl"):
        if size <= SMALL:
            assert inclusion_proof(index, size, go_leaves[:size]) == proof, (size, index)
            assert verify_inclusion(go_leaves[index], index, size, proof, GO_ROOTS[size])


def test_go_tlog_tree_proofs(go_leaves):
    for old, new, proof in _go_vectors("cons"):
        if new <= SMALL:
            assert consistency_proof(old, new, go_leaves[:new]) == proof, (old, new)
            old_root = root_from_leaves(go_leaves[:old])
            assert verify_consistency(old, new, old_root, GO_ROOTS[new], proof)


@pytest.mark.slow
def test_go_tlog_million_leaves_from_chunks():
    """The case the chunk storage is for: a million records, 3,906 chunk roots and a 64-leaf tail."""
    n = 1_000_000
    builder = TreeBuilder()
    builder.extend_record_hashes(record_hash(i) for i in range(n))
    assert builder.root() == GO_ROOTS[n]
    leaves = _go_leaves(n)
    roots = list(chunk_roots(leaves))
    assert len(roots) == 3906
    assert root_from_chunks(roots, leaves[3906 * 256 :]) == GO_ROOTS[n]
    for size, index, proof in _go_vectors("incl"):
        if size == n:
            reads = proof_reads(n, index=index, have_tail_root=True)
            assert len(reads.leaf_chunks) == 1
            tree = ChunkedTree(
                n,
                roots,
                {c: leaves[c << 8 : (c + 1) << 8] for c in reads.leaf_chunks},
                tail_root=builder.tail_root(),
            )
            assert inclusion_proof(index, n, tree) == proof
    for old, new, proof in _go_vectors("cons"):
        if new == n:
            reads = proof_reads(n, old_size=old, have_tail_root=True)
            tree = ChunkedTree(
                n,
                roots,
                {c: leaves[c << 8 : (c + 1) << 8] for c in reads.leaf_chunks},
                tail_root=builder.tail_root(),
            )
            assert consistency_proof(old, new, tree) == proof
            assert verify_consistency(
                old, new, root_from_chunks(roots[: old >> 8], leaves[old >> 8 << 8 : old]), GO_ROOTS[n], proof
            )


# --- the naive reference, every size up to 70 --------------------------------------------------


@pytest.fixture(scope="module")
def naive_roots() -> list[bytes]:
    return [rfc_mth(DATA[:n]) for n in range(MAX_N + 1)]


def test_roots_match_the_naive_mth(naive_roots):
    builder = TreeBuilder()
    for n in range(MAX_N + 1):
        assert builder.root() == naive_roots[n] == root_from_leaves(LEAVES[:n]), n
        assert builder.size == n
        if n < MAX_N:
            builder.append(LEAVES[n])


@pytest.mark.parametrize("chunk_bits", [0, 1, 2, 3, 8])
def test_roots_from_chunks_match_the_naive_mth(naive_roots, chunk_bits):
    for n in range(MAX_N + 1):
        complete = n >> chunk_bits << chunk_bits
        roots = list(chunk_roots(LEAVES[:n], chunk_bits))
        assert len(roots) == n >> chunk_bits
        assert root_from_chunks(roots, LEAVES[complete:n], chunk_bits=chunk_bits) == naive_roots[n]
        tail = TreeBuilder.from_chunks(roots, LEAVES[complete:n], chunk_bits=chunk_bits).tail_root(chunk_bits)
        assert tail == (rfc_mth(DATA[complete:n]) if n > complete else None)
        assert (
            ChunkedTree(n, roots, {n >> chunk_bits: LEAVES[complete:n]}, chunk_bits=chunk_bits).root()
            == naive_roots[n]
        )


def test_inclusion_proofs_match_the_naive_path(naive_roots):
    for n in range(1, MAX_N + 1):
        for m in range(n):
            want = rfc_path(m, DATA[:n])
            assert inclusion_proof(m, n, LEAVES[:n]) == want, (m, n)
            assert verify_inclusion(LEAVES[m], m, n, want, naive_roots[n])
            assert naive_verify_inclusion(LEAVES[m], m, n, want, naive_roots[n])


def test_consistency_proofs_match_the_naive_proof(naive_roots):
    for n in range(1, MAX_N + 1):
        for m in range(1, n + 1):
            want = rfc_proof(m, DATA[:n])
            assert consistency_proof(m, n, LEAVES[:n]) == want, (m, n)
            assert verify_consistency(m, n, naive_roots[m], naive_roots[n], want)
            assert naive_verify_consistency(m, n, naive_roots[m], naive_roots[n], want)


@pytest.mark.parametrize("chunk_bits", [0, 1, 2, 3])
@pytest.mark.parametrize("keep_tail_root", [False, True])
def test_chunked_proofs_read_only_what_proof_reads_says(chunk_bits, keep_tail_root):
    """Small chunks make every case of the chunk logic happen in trees of a few dozen leaves."""
    per_chunk = 1 << chunk_bits
    all_roots = list(chunk_roots(LEAVES[:MAX_N], chunk_bits))
    for n in range(1, MAX_N + 1):
        builder = TreeBuilder.from_chunks(
            all_roots[: n >> chunk_bits], LEAVES[n >> chunk_bits << chunk_bits : n], chunk_bits=chunk_bits
        )
        tail_root = builder.tail_root(chunk_bits) if keep_tail_root else None

        def tree_for(reads, n=n, tail_root=tail_root):
            assert reads.chunk_roots == range(n >> chunk_bits)
            assert len(reads.leaf_chunks) <= (1 if keep_tail_root else 2)
            for chunk, leaves in zip(reads.leaf_chunks, reads.leaf_ranges, strict=True):
                assert leaves == range(chunk * per_chunk, min((chunk + 1) * per_chunk, n))
            # Chunks of the bigger, current tree: the view must ignore what lies past n.
            given = {c: LEAVES[c * per_chunk : (c + 1) * per_chunk] for c in reads.leaf_chunks}
            return ChunkedTree(n, all_roots, given, chunk_bits=chunk_bits, tail_root=tail_root)

        for m in range(n):
            reads = proof_reads(n, index=m, chunk_bits=chunk_bits, have_tail_root=keep_tail_root)
            assert inclusion_proof(m, n, tree_for(reads)) == rfc_path(m, DATA[:n]), (m, n)
        for m in range(1, n + 1):
            reads = proof_reads(n, old_size=m, chunk_bits=chunk_bits, have_tail_root=keep_tail_root)
            assert consistency_proof(m, n, tree_for(reads)) == rfc_proof(m, DATA[:n]), (m, n)


def test_a_chunk_that_was_not_read_is_an_error():
    roots = list(chunk_roots(LEAVES[:20], 2))
    with pytest.raises(TreeError, match="leaves of chunk 1"):
        inclusion_proof(5, 20, ChunkedTree(20, roots, {}, chunk_bits=2))
    with pytest.raises(TreeError, match="complete chunks"):
        ChunkedTree(20, roots[:3], chunk_bits=2)
    with pytest.raises(TreeError, match="not a node"):
        ChunkedTree(20, roots, chunk_bits=2).subtree_hash(2, 9)


def test_proof_reads_for_a_million_leaves():
    n = 1_000_000  # 3,906 complete chunks and 64 leaves after them
    reads = proof_reads(n, index=123_456)
    assert reads.chunk_roots == range(3906)
    assert reads.leaf_ranges == (range(123_392, 123_648), range(999_936, 1_000_000))
    assert proof_reads(n, index=123_456, have_tail_root=True).leaf_ranges == (range(123_392, 123_648),)
    assert proof_reads(n, index=999_999).leaf_ranges == (range(999_936, 1_000_000),)
    assert proof_reads(n, old_size=777_777, have_tail_root=True).leaf_chunks == (3038,)
    assert proof_reads(n, old_size=777_728, have_tail_root=True).leaf_chunks == ()
    with pytest.raises(TreeError):
        proof_reads(n, index=n)
    with pytest.raises(TreeError):
        proof_reads(n)


# --- tampering ---------------------------------------------------------------------------------


def test_tampered_inclusion_proofs_are_rejected(naive_roots):
    for n in range(1, MAX_N + 1):
        root = naive_roots[n]
        for m in range(n):
            proof = inclusion_proof(m, n, LEAVES[:n])
            leaf = LEAVES[m]
            for i in range(len(proof)):
                for bit in (0, 7):
                    bad = [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]]
                    assert not verify_inclusion(leaf, m, n, bad, root)
                    assert not naive_verify_inclusion(leaf, m, n, bad, root)
            assert not verify_inclusion(flip(leaf), m, n, proof, root)
            assert not verify_inclusion(leaf, m, n, proof, flip(root))
            assert not verify_inclusion(leaf, m, n, proof[:-1], root) or not proof
            assert not verify_inclusion(leaf, m, n, [*proof, proof[-1] if proof else root], root)
            for other in {m - 1, m + 1, m ^ 2} - {m}:
                if 0 <= other < n:
                    assert not verify_inclusion(leaf, other, n, proof, root), (m, other, n)
                    # ... and the other leaf with this leaf's proof neither.
                    assert not verify_inclusion(LEAVES[other], other, n, proof, root)
            for other in {n - 1, n + 1, 2 * n, n // 2} - {n}:
                if m < other <= MAX_N:
                    # Against the genuine checkpoint of that size: the proof is for another tree.
                    assert not verify_inclusion(leaf, m, other, proof, naive_roots[other]), (m, n, other)
            assert not verify_inclusion(leaf, m, 0, proof, root)
            assert not verify_inclusion(leaf, -1, n, proof, root)
            assert not verify_inclusion(leaf[:31], m, n, proof, root)


def test_tampered_consistency_proofs_are_rejected(naive_roots):
    for n in range(1, MAX_N + 1):
        for m in range(1, n + 1):
            proof = consistency_proof(m, n, LEAVES[:n])
            old, new = naive_roots[m], naive_roots[n]
            for i in range(len(proof)):
                bad = [*proof[:i], flip(proof[i], 3), *proof[i + 1 :]]
                assert not verify_consistency(m, n, old, new, bad), (m, n, i)
                assert not naive_verify_consistency(m, n, old, new, bad)
            assert not verify_consistency(m, n, flip(old), new, proof)
            assert not verify_consistency(m, n, old, flip(new), proof)
            if m != n:
                assert not verify_consistency(m, n, new, old, proof)
                assert not verify_consistency(m, n, old, new, proof[:-1])
                assert not verify_consistency(m, n, old, new, [*proof, proof[-1]])
            for other in {m - 1, m + 1} - {m}:
                if 0 < other <= n:
                    assert not verify_consistency(other, n, naive_roots[other], new, proof), (m, other, n)
            for other in {n - 1, n + 1} - {n}:
                if m <= other <= MAX_N:
                    assert not verify_consistency(m, other, old, naive_roots[other], proof), (m, n, other)
            assert not verify_consistency(0, n, EMPTY_ROOT, new, proof)


def test_consistency_from_the_empty_tree_proves_nothing():
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, root_from_leaves(LEAVES[:5]), [])
    with pytest.raises(TreeError):
        consistency_proof(0, 5, LEAVES[:5])
    with pytest.raises(TreeError):
        consistency_proof(6, 5, LEAVES[:5])
    with pytest.raises(TreeError):
        inclusion_proof(5, 5, LEAVES[:5])


# --- property tests: random trees, random damage -----------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 300),
    data=st.data(),
    chunk_bits=st.integers(0, 5),
)
def test_chunked_and_in_memory_proofs_agree(n, data, chunk_bits):
    m = data.draw(st.integers(0, n - 1))
    old = data.draw(st.integers(1, n))
    roots = list(chunk_roots(LEAVES[:n], chunk_bits))
    every_chunk = {c: LEAVES[c << chunk_bits : (c + 1) << chunk_bits] for c in range((n >> chunk_bits) + 1)}
    tree = ChunkedTree(n, roots, every_chunk, chunk_bits=chunk_bits)
    root = root_from_leaves(LEAVES[:n])
    assert tree.root() == root
    proof = inclusion_proof(m, n, tree)
    assert proof == inclusion_proof(m, n, LEAVES[:n])
    assert verify_inclusion(LEAVES[m], m, n, proof, root)
    proof = consistency_proof(old, n, tree)
    assert proof == consistency_proof(old, n, LEAVES[:n])
    assert verify_consistency(old, n, root_from_leaves(LEAVES[:old]), root, proof)


hashes32 = st.binary(min_size=32, max_size=32)


@settings(max_examples=400, deadline=None)
@given(n=st.integers(1, 80), data=st.data())
def test_inclusion_verifiers_agree_on_any_input(n, data):
    """The module's verifier and the naive one accept exactly the same (often damaged) proofs."""
    m = data.draw(st.integers(-1, n + 1))
    index = min(max(m, 0), n - 1)
    proof = inclusion_proof(index, n, LEAVES[:n])
    root = root_from_leaves(LEAVES[:n])
    leaf = LEAVES[index]
    damage = data.draw(st.sampled_from(["none", "replace", "drop", "add", "root", "leaf", "size"]))
    if damage == "replace" and proof:
        proof[data.draw(st.integers(0, len(proof) - 1))] = data.draw(hashes32)
    elif damage == "drop" and proof:
        del proof[data.draw(st.integers(0, len(proof) - 1))]
    elif damage == "add":
        proof.insert(data.draw(st.integers(0, len(proof))), data.draw(hashes32))
    elif damage == "root":
        root = data.draw(hashes32)
    elif damage == "leaf":
        leaf = data.draw(hashes32)
    elif damage == "size":
        n = data.draw(st.integers(0, 90))
    assert verify_inclusion(leaf, m, n, proof, root) == naive_verify_inclusion(leaf, m, n, proof, root)


@settings(max_examples=400, deadline=None)
@given(n=st.integers(1, 80), data=st.data())
def test_consistency_verifiers_agree_on_any_input(n, data):
    m = data.draw(st.integers(1, n))
    proof = consistency_proof(m, n, LEAVES[:n])
    old, new = root_from_leaves(LEAVES[:m]), root_from_leaves(LEAVES[:n])
    damage = data.draw(st.sampled_from(["none", "replace", "drop", "add", "old", "new", "sizes"]))
    if damage == "replace" and proof:
        proof[data.draw(st.integers(0, len(proof) - 1))] = data.draw(hashes32)
    elif damage == "drop" and proof:
        del proof[data.draw(st.integers(0, len(proof) - 1))]
    elif damage == "add":
        proof.insert(data.draw(st.integers(0, len(proof))), data.draw(hashes32))
    elif damage == "old":
        old = data.draw(hashes32)
    elif damage == "new":
        new = data.draw(hashes32)
    elif damage == "sizes":
        m, n = data.draw(st.integers(0, 90)), data.draw(st.integers(0, 90))
    assert verify_consistency(m, n, old, new, proof) == naive_verify_consistency(m, n, old, new, proof)


# --- the builder -------------------------------------------------------------------------------


def test_builder_state_can_be_kept_and_resumed():
    builder = TreeBuilder()
    builder.extend(LEAVES[:37])
    saved_size, saved = builder.size, builder.compact_range()
    assert len(saved) == bin(37).count("1")
    resumed = TreeBuilder.from_compact_range(saved_size, saved)
    resumed.extend(LEAVES[37:100])
    assert resumed.root() == root_from_leaves(LEAVES[:100])
    copy = builder.copy()
    copy.append(LEAVES[37])
    assert builder.size == 37 and copy.size == 38
    assert builder.root() == root_from_leaves(LEAVES[:37])
    with pytest.raises(TreeError, match="3 subtree roots"):
        TreeBuilder.from_compact_range(37, saved[:2])


def test_builder_refuses_misplaced_subtrees_and_bad_leaves():
    builder = TreeBuilder()
    builder.extend(LEAVES[:3])
    with pytest.raises(TreeError, match="cannot start at leaf 3"):
        builder.append_subtree(LEAVES[0], 2)
    with pytest.raises(TreeError):
        builder.append(b"short")
    with pytest.raises(TreeError, match="leaf 4"):
        builder.extend([LEAVES[3], b"short"])
    assert builder.size == 4  # what was appended before the error stays, and counts
    with pytest.raises(TreeError, match=r"seq 6"):
        builder.extend_record_hashes([record_hash(4), "not hex"])
    assert builder.size == 5
    assert builder.root() == root_from_leaves(LEAVES[:5])
    with pytest.raises(TreeError, match="partial chunk has 4 leaves"):
        TreeBuilder.from_chunks([], LEAVES[:4], chunk_bits=2)
