# pragma version ~=0.4.3
"""
@title The records a fraud proof passes around and the events it logs
@custom:contract-name dispute_types
@license MIT
@notice Structs and events of disputes.vy, apart so the contract keeps to its logic.
        aggregation/chunk_proof.py builds the same records in Python, field for field,
        and hashes a Claim as its ABI encoding (all fields static: its 32-byte words).
@dev    Declarations only: no functions, no state.
"""

import merkle


#: What a proposer states about a round's aggregate. `rule`: 1 FedAvg, 2 clipped FedAvg,
#: 3 median, 4 trimmed mean; `trim_num / trim_den` is beta; `clip_q` the fixed clip bound;
#: `num_params` the model's parameter count (from the spec); `updates_hash` the end of the
#: hash chain over the accepted updates' Entries; `*_offset` a blob's data offset H.
struct Claim:
    rule: uint8
    trim_num: uint256
    trim_den: uint256
    clip_q: uint256
    num_params: uint256
    num_updates: uint256
    updates_hash: bytes32
    previous_root: bytes32
    previous_offset: uint256
    aggregate_root: bytes32
    aggregate_offset: uint256


#: One chunk of a blob and its Merkle proof (sibling hashes from the leaf up).
struct Piece:
    chunk: Bytes[merkle.CHUNK]
    proof: DynArray[bytes32, merkle.MAX_DEPTH]


#: One accepted update as the claim states it: its root, data offset, weight
#: (num_examples) and squared norm (clipped FedAvg; else 0).
struct Entry:
    root: bytes32
    offset: uint256
    weight: uint256
    squared_norm: uint256


#: One update's part of a challenge: its entry and the chunk holding the coordinate.
struct Input:
    entry: Entry
    piece: Piece


#: A challenge's running state; between transactions only its keccak is stored.
#: `weighted_sum`/`weight_total` serve the FedAvg rules, the counts and `between_sum`
#: the order statistics (values below/up to `low` and `high`, sum strictly between).
struct Tally:
    claim_id: uint256
    rule: uint8
    clip_q: uint256
    num_params: uint256
    coordinate: uint256
    previous_value: int256
    proposed_value: int256
    low: int256
    high: int256
    next_update: uint256
    links: bytes32
    weighted_sum: int256
    weight_total: uint256
    below_low: uint256
    upto_low: uint256
    below_high: uint256
    upto_high: uint256
    between_sum: int256


event Proposed:
    claim_id: indexed(uint256)
    proposer: indexed(address)
    claim_hash: bytes32


event ChallengeOpened:
    challenge_id: indexed(uint256)
    claim_id: indexed(uint256)
    challenger: indexed(address)
    coordinate: uint256


event ChallengeStepped:
    challenge_id: indexed(uint256)
    next_update: uint256
    tally_hash: bytes32


event FraudProven:
    claim_id: indexed(uint256)
    challenger: indexed(address)
    coordinate: uint256
    proposed: int256
    expected: int256


event OffsetRefuted:
    claim_id: indexed(uint256)
    challenger: indexed(address)
    position: uint256
    stated: uint256
    actual: uint256
