# pragma version ~=0.4.3
"""
@title Merkle proofs over 4 KiB chunks of a committed blob
@custom:contract-name merkle
@license MIT
@notice The on-chain half of codec/commitment.py: a fraud proof shows one chunk of a
        blob and log2(n) sibling hashes instead of the whole blob. The tree is the
        codec's exactly, keccak256 so the EVM can hash it:
            leaf = keccak256(0x00 || chunk)     (the last chunk may be short)
            node = keccak256(0x01 || left || right)
            an odd node at the end of a level is promoted unchanged
        The prefixes keep a leaf from being read as a node. The root does not encode
        the chunk count, so the caller supplies it from the blob's known length; the
        walk below follows the same level widths as the codec, so it knows where a
        node was promoted and consumes no sibling there.
@dev    A library module: internal pure functions only, no state.
"""

#: The leaf size of the codec's tree, in bytes.
CHUNK: constant(uint256) = 4096
#: Sibling hashes at most: 2**32 chunks is 16 TiB, far past any model.
MAX_DEPTH: constant(uint256) = 32


@internal
@pure
def _verify(
    root: bytes32,
    chunk: Bytes[CHUNK],
    index: uint256,
    num_chunks: uint256,
    proof: DynArray[bytes32, MAX_DEPTH],
) -> bool:
    """
    @notice True iff `chunk` is chunk `index` of a `num_chunks`-chunk blob committed to
            by `root`, as codec.commitment.verify_proof decides it.
    @dev    Malformed input (index past the end, too few or too many siblings) gives
            False rather than a revert, so the caller chooses the revert reason.
    @param root The committed Merkle root.
    @param chunk The chunk's bytes (at most CHUNK; only the last chunk is short).
    @param index The chunk's position, from 0.
    @param num_chunks The blob's chunk count, ceil(length / CHUNK), at least 1.
    @param proof Sibling hashes from the leaf up, none for promoted levels.
    @return Whether the proof holds.
    """
    if num_chunks == 0 or index >= num_chunks:
        return False
    node: bytes32 = keccak256(concat(b"\x00", chunk))
    width: uint256 = num_chunks
    position: uint256 = index
    used: uint256 = 0
    for _: uint256 in range(MAX_DEPTH + 1):
        if width <= 1:
            break
        if position % 2 == 1 or position + 1 < width:
            if used == len(proof):
                return False
            sibling: bytes32 = proof[used]
            used += 1
            if position % 2 == 1:
                node = keccak256(concat(b"\x01", sibling, node))
            else:
                node = keccak256(concat(b"\x01", node, sibling))
        position //= 2
        width = (width + 1) // 2
    return used == len(proof) and node == root
