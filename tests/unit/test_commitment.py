"""Merkle commitments: pinned known answers, proofs for every leaf, tamper evidence."""

from __future__ import annotations

import random

import pytest
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from fedledger.codec.commitment import (
    CHUNK_SIZE,
    chunk_at,
    commitment_hex,
    merkle_proof,
    merkle_root,
    num_chunks,
    parse_commitment,
    verify_proof,
)
from fedledger.errors import CodecError


def leaf(chunk: bytes) -> bytes:
    return bytes(keccak(b"\x00" + chunk))


def node(left: bytes, right: bytes) -> bytes:
    return bytes(keccak(b"\x01" + left + right))


# 4 full chunks and a 100-byte tail: 5 leaves, so the last one is promoted twice.
FIXED = bytes(i % 251 for i in range(4 * CHUNK_SIZE + 100))


def test_known_answer_by_hand() -> None:
    c = [FIXED[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE] for i in range(5)]
    assert len(c[4]) == 100
    level1 = [node(leaf(c[0]), leaf(c[1])), node(leaf(c[2]), leaf(c[3])), leaf(c[4])]
    level2 = [node(level1[0], level1[1]), level1[2]]
    by_hand = node(level2[0], level2[1])
    assert merkle_root(FIXED) == by_hand
    # Pinned once from the definition above, so a hash-backend change cannot slip through.
    assert by_hand.hex() == "9d22fe47895a1abe6e97545f56a387575de3dbf514ef9d32a52419226a1a0f96"


def test_small_known_answers() -> None:
    empty = "bc36789e7a1e281436464229828f817d6612f7b477d66591ff96a9e064bcc98a"
    assert merkle_root(b"").hex() == empty  # one empty leaf
    assert merkle_root(b"abc") == leaf(b"abc")
    two = b"x" * (CHUNK_SIZE + 1)
    assert merkle_root(two) == node(leaf(b"x" * CHUNK_SIZE), leaf(b"x"))
    assert len(merkle_root(FIXED)) == 32


def test_keccak_not_sha3() -> None:
    import hashlib

    assert merkle_root(b"abc") != hashlib.sha3_256(b"\x00abc").digest()


@pytest.mark.parametrize("n_chunks", [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17])
def test_proof_for_every_index(n_chunks: int) -> None:
    # random, so no two chunks are equal (equal chunks would share proofs legitimately)
    data = random.Random(n_chunks).randbytes(n_chunks * CHUNK_SIZE - 17)
    assert num_chunks(len(data)) == n_chunks
    root = merkle_root(data)
    for index in range(n_chunks):
        proof = merkle_proof(data, index)
        chunk = chunk_at(data, index)
        assert verify_proof(root, chunk, index, n_chunks, proof)
        # the same proof must fail for a different index, chunk or root
        if n_chunks > 1:
            assert not verify_proof(root, chunk, (index + 1) % n_chunks, n_chunks, proof)
        assert not verify_proof(root, chunk + b"!", index, n_chunks, proof)
        assert not verify_proof(bytes(32), chunk, index, n_chunks, proof)


def test_verify_rejects_malformed_input() -> None:
    root = merkle_root(FIXED)
    proof = merkle_proof(FIXED, 4)
    chunk = chunk_at(FIXED, 4)
    assert verify_proof(root, chunk, 4, 5, proof)
    assert not verify_proof(root, chunk, 4, 5, [*proof, bytes(32)])  # extra sibling
    assert not verify_proof(root, chunk, 4, 5, proof[:-1])  # missing sibling
    assert not verify_proof(root, chunk, 4, 6, proof)  # count where leaf 4 is not promoted
    assert not verify_proof(root, chunk, 5, 5, proof)  # index out of range
    assert not verify_proof(root, chunk, -1, 5, proof)
    assert not verify_proof(root, chunk, 0, 0, [])
    assert not verify_proof(root, b"x" * (CHUNK_SIZE + 1), 4, 5, proof)
    assert not verify_proof(root[:31], chunk, 4, 5, proof)
    assert not verify_proof(root, chunk, 4, 5, [p[:31] for p in proof])
    with pytest.raises(CodecError, match="out of range"):
        merkle_proof(FIXED, 5)
    with pytest.raises(CodecError, match="out of range"):
        chunk_at(FIXED, -1)


def test_empty_data_proof() -> None:
    assert merkle_proof(b"", 0) == []
    assert verify_proof(merkle_root(b""), b"", 0, 1, [])


@settings(max_examples=30)
@given(st.binary(min_size=1, max_size=3 * CHUNK_SIZE + 10), st.data())
def test_single_byte_flip_changes_root(data: bytes, draw: st.DataObject) -> None:
    pos = draw.draw(st.integers(0, len(data) - 1))
    flipped = bytearray(data)
    flipped[pos] ^= 1 << draw.draw(st.integers(0, 7))
    assert merkle_root(bytes(flipped)) != merkle_root(data)


def test_appending_or_truncating_changes_root() -> None:
    assert merkle_root(FIXED + b"\x00") != merkle_root(FIXED)
    assert merkle_root(FIXED[:-1]) != merkle_root(FIXED)
    exact = b"a" * (2 * CHUNK_SIZE)
    assert merkle_root(exact + b"") != merkle_root(exact + b"\x00")


def test_hex_roundtrip_and_errors() -> None:
    c = merkle_root(FIXED)
    text = commitment_hex(c)
    assert text.startswith("0x") and len(text) == 66 and text == text.lower()
    assert parse_commitment(text) == c
    assert parse_commitment(text[2:].upper()) == c
    with pytest.raises(CodecError, match="64 hex digits, has 62"):
        parse_commitment(text[:-2])
    with pytest.raises(CodecError, match="not hexadecimal"):
        parse_commitment("0x" + "zz" * 32)
    with pytest.raises(CodecError, match="hex string"):
        parse_commitment(c)  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="32 bytes, got 31"):
        commitment_hex(c[:31])


def _reference_root(data: bytes) -> bytes:
    """The root by the definition alone: eth_utils' keccak, one leaf after another."""
    level = [leaf(data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE]) for i in range(num_chunks(len(data)))]
    while len(level) > 1:
        parents = [node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = parents + ([level[-1]] if len(level) % 2 else [])
    return level[0]


@pytest.mark.parametrize("leaves", [63, 64, 65, 107, 257])
def test_leaves_hashed_on_several_threads_give_the_definitions_root(leaves: int) -> None:
    """Around and above PARALLEL_LEAVES the leaves are split between threads: same root."""
    from fedledger.codec import commitment

    assert commitment.PARALLEL_LEAVES == 64
    data = random.Random(leaves).randbytes(leaves * CHUNK_SIZE - 17)
    assert merkle_root(data) == _reference_root(data)
