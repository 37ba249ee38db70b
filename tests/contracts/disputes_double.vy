# pragma version ~=0.4.3
"""
@title Test double: a disputes.vy that strikes whatever it is told to
@notice Binds like disputes.vy and takes any claim, but `strike_as` calls its verifier's
        `strike` with any claim id, which the real disputes.vy never does: it strikes only
        a registered, unstruck claim it has just proven wrong, and the verifier retires
        every claim it moves past. This reaches optimistic.vy's "not the live claim", its
        defence against a disputes contract that did otherwise.
"""


#: disputes.vy's Claim (dispute_types.vy), field for field: the same ABI tuple
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


interface Verifier:
    def strike(claim_id: uint256, by: address): nonpayable


verifier: public(address)
claim_hash: public(HashMap[uint256, bytes32])


@external
def bind():
    self.verifier = msg.sender


@external
def register(claim_id: uint256, c: Claim, proposer: address):
    self.claim_hash[claim_id] = keccak256(abi_encode(c))


@external
def retire(claim_id: uint256):
    self.claim_hash[claim_id] = empty(bytes32)


@external
def strike_as(claim_id: uint256, by: address):
    extcall Verifier(self.verifier).strike(claim_id, by)
