# pragma version ~=0.4.3
import contracts.merkle as merkle
@external
@pure
def verify(root: bytes32, chunk: Bytes[4096], index: uint256, n: uint256, proof: DynArray[bytes32, 32]) -> bool:
    return merkle._verify(root, chunk, index, n, proof)
