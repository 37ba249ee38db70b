# pragma version ~=0.4.3
"""
@title One-chunk fraud proofs against a proposed aggregate
@custom:contract-name disputes
@license MIT
@notice In optimistic mode one bonded proposer states a round's aggregate and anyone
        may prove it wrong. A proof names one coordinate c of the flattened model and
        supplies, for the previous global model, the proposed aggregate and every
        accepted update, the 4 KiB chunk holding c with its Merkle proof. The contract
        checks each proof against the committed root, recomputes the aggregate at c
        with exactly the Python rounding (aggregation/chunk_witness.py), and strikes
        the claim when the proposed value differs.

        The median and trimmed mean are checked through two witnesses, s[k] and
        s[n-1-k], verified by counting (coordinate_math.vy), so no sort runs on chain.
        A 4 KiB chunk costs 163,840 gas of calldata at EIP-7623's floor and EIP-7825
        caps a transaction at 16,777,216, so a challenge may be split: open, add
        updates in as many transactions as needed, close; between them only the
        keccak of the running tally is stored, and each step resupplies the tally.
        The updates are bound to the claim by a hash chain over their Entries.
        Coordinate c of a blob is the int64 LE at byte H + 8c (H: the blob's data
        offset, a multiple of 8), wholly inside chunk (H + 8c) // 4096. The claim
        states H per blob; `prove_wrong_offset` refutes a false H from chunk 0.
@dev    Deployed alone it takes claims from anyone (`propose`), which is how its tests
        and bench/challenge_gas.py drive it. Bound to optimistic.vy (`bind`), its claims
        are the verifier's live ones (`Verifier.claim_hash`, nothing stored here) and every
        proof that strikes one calls the verifier's `strike`, so a proof and the slashing
        it causes are one transaction.
"""

import coordinate_math
import dispute_types
import merkle

#: Inputs (chunks of updates) one call takes at most. Vyper reserves memory for the whole
#: array, and memory costs 3 gas a word plus words**2 / 512: ~1M gas a call at 128, ~0.37M
#: at 64. 64 (+2) all-nonzero chunks are ~11.0M gas of calldata: any call fits the cap.
MAX_INPUTS: constant(uint256) = 64
#: Updates a claim may name at most (the issue's bar is 100 trainers).
MAX_UPDATES: constant(uint256) = 1024

RULE_FEDAVG: constant(uint8) = 1
RULE_CLIPPED: constant(uint8) = 2
RULE_MEDIAN: constant(uint8) = 3
RULE_TRIMMED: constant(uint8) = 4


interface Verifier:
    def strike(claim_id: uint256, by: address): nonpayable
    def claim_hash(claim_id: uint256) -> bytes32: view


#: the contract whose claims these are (optimistic.vy), once bound; zero: standalone
verifier: public(address)
#: claim id -> keccak256(abi_encode(Claim)), set once by `propose` or `register`
claim_hash: public(HashMap[uint256, bytes32])
proposer: public(HashMap[uint256, address])
struck: public(HashMap[uint256, bool])
claim_count: public(uint256)
#: challenge id -> keccak256(abi_encode(Tally)); empty once closed
tally_hash: public(HashMap[uint256, bytes32])
challenger: public(HashMap[uint256, address])
challenge_count: public(uint256)


@external
def bind():
    """
    @notice Makes the caller this contract's verifier, once: from then on the claims are its
            (`claim_hash` asks it which are live), and every proof that strikes one calls
            its `strike`.
    @dev    optimistic.vy's constructor calls it on a freshly deployed instance.
    """
    assert self.verifier == empty(address), "disputes: already bound"
    self.verifier = msg.sender


@external
def propose(c: dispute_types.Claim) -> uint256:
    """
    @notice Registers a claim about a round's aggregate, standalone (unbound) only: a bound
            instance takes claims from its verifier.
    @param c The claim: rule and parameters, layout, roots and the updates' hash chain.
    @return The claim's id, from 1.
    """
    assert self.verifier == empty(address), "disputes: claims come from the verifier"
    claim_id: uint256 = self.claim_count + 1
    self.claim_count = claim_id
    self._register(claim_id, c, msg.sender)
    self.proposer[claim_id] = msg.sender
    return claim_id


@external
def challenge(
    claim_id: uint256,
    c: dispute_types.Claim,
    coordinate: uint256,
    previous: dispute_types.Piece,
    aggregate: dispute_types.Piece,
    low: int256,
    high: int256,
    inputs: DynArray[dispute_types.Input, MAX_INPUTS],
):
    """
    @notice A whole challenge in one transaction: proves claim `c` wrong at the flat
            index `coordinate`, or reverts "disputes: the proposed value is right".
    @param previous The previous model's chunk holding the coordinate.
    @param aggregate The proposed aggregate's chunk holding it.
    @param low The witness s[k] (median, trimmed mean; else 0).
    @param high The witness s[n-1-k] (median, trimmed mean; else 0).
    @param inputs Every accepted update's chunk holding it, in the claim's order.
    """
    self._challenge(claim_id, c, coordinate, previous, aggregate, low, high, inputs, msg.sender)


@external
def open_challenge(
    claim_id: uint256,
    c: dispute_types.Claim,
    coordinate: uint256,
    previous: dispute_types.Piece,
    aggregate: dispute_types.Piece,
    low: int256,
    high: int256,
) -> (uint256, dispute_types.Tally):
    """
    @notice Starts a challenge split over transactions; updates follow in `add_updates`.
    @return The challenge id and the running tally, which the next step resupplies.
    """
    t: dispute_types.Tally = self._open(claim_id, c, coordinate, previous, aggregate, low, high)
    challenge_id: uint256 = self.challenge_count + 1
    self.challenge_count = challenge_id
    self.challenger[challenge_id] = msg.sender
    self.tally_hash[challenge_id] = keccak256(abi_encode(t))
    log dispute_types.ChallengeOpened(
        challenge_id=challenge_id, claim_id=claim_id, challenger=msg.sender, coordinate=coordinate
    )
    return challenge_id, t


@external
def add_updates(
    challenge_id: uint256, t: dispute_types.Tally, inputs: DynArray[dispute_types.Input, MAX_INPUTS]
) -> dispute_types.Tally:
    """
    @notice Adds the next accepted updates' chunks to a split challenge; only its opener
            may, or anyone could fold junk into the stored tally and void the challenge.
    @param challenge_id The challenge.
    @param t The running tally, as the last step returned it.
    @param inputs The next updates, in the claim's order.
    @return The new running tally.
    """
    self._check_tally(challenge_id, t)
    assert msg.sender == self.challenger[challenge_id], "disputes: caller is not the challenger"
    tally: dispute_types.Tally = t
    for j: uint256 in range(len(inputs), bound=MAX_INPUTS):
        tally = self._absorb(tally, inputs[j])
    digest: bytes32 = keccak256(abi_encode(tally))
    self.tally_hash[challenge_id] = digest
    log dispute_types.ChallengeStepped(challenge_id=challenge_id, next_update=tally.next_update, tally_hash=digest)
    return tally


@external
def close_challenge(challenge_id: uint256, t: dispute_types.Tally, c: dispute_types.Claim):
    """
    @notice Ends a split challenge: strikes the claim if the value is wrong, else reverts.
            Anyone may send it; the proof is credited to whoever opened the challenge.
    @param challenge_id The challenge.
    @param t The running tally after the last update.
    @param c The claim, checked against its hash.
    """
    self._close_challenge(challenge_id, t, c)


@external
def prove_wrong_offset(
    claim_id: uint256,
    c: dispute_types.Claim,
    entries: DynArray[dispute_types.Entry, MAX_UPDATES],
    position: uint256,
    num_chunks: uint256,
    first: dispute_types.Piece,
):
    """
    @notice Refutes a data offset the claim states, from the blob's chunk 0.
    @dev    Chunk 0 is bound to the root whatever `num_chunks` the proof uses: its path
            climbs the tree's left edge, and a proof of another depth would need a leaf
            hash (prefix 0x00) equal to a node hash (prefix 0x01).
    @param claim_id The claim.
    @param c The claim itself.
    @param entries The claim's updates (checked against its hash chain); may be empty
           when `position` names the previous model or the aggregate.
    @param position An update's index; num_updates: the previous model;
           num_updates + 1: the aggregate.
    @param num_chunks The blob's true chunk count, for the proof.
    @param first The blob's chunk 0 and its proof.
    """
    self._prove_wrong_offset(claim_id, c, entries, position, num_chunks, first, msg.sender)


@internal
def _register(claim_id: uint256, c: dispute_types.Claim, by: address) -> bytes32:
    """
    @notice Checks a claim's form and records its hash under `claim_id`.
    @return The claim's hash.
    """
    assert c.rule >= RULE_FEDAVG and c.rule <= RULE_TRIMMED, "disputes: unknown rule"
    assert c.num_updates >= 1 and c.num_updates <= MAX_UPDATES, "disputes: bad update count"
    assert c.num_params >= 1, "disputes: no parameters"
    assert c.trim_den >= 1 and 2 * c.trim_num < c.trim_den, "disputes: trim fraction not in [0, 1/2)"
    fixed: bool = c.clip_q >= 1 and c.clip_q < coordinate_math.INT64_HALF
    assert c.rule != RULE_CLIPPED or fixed, "disputes: clip bound not fixed"
    self._check_offset(c.previous_offset)
    self._check_offset(c.aggregate_offset)
    digest: bytes32 = keccak256(abi_encode(c))
    self.claim_hash[claim_id] = digest
    log dispute_types.Proposed(claim_id=claim_id, proposer=by, claim_hash=digest)
    return digest


@internal
def _challenge(
    claim_id: uint256,
    c: dispute_types.Claim,
    coordinate: uint256,
    previous: dispute_types.Piece,
    aggregate: dispute_types.Piece,
    low: int256,
    high: int256,
    inputs: DynArray[dispute_types.Input, MAX_INPUTS],
    by: address,
):
    """
    @notice `challenge`, crediting the proof to `by`.
    """
    t: dispute_types.Tally = self._open(claim_id, c, coordinate, previous, aggregate, low, high)
    for j: uint256 in range(len(inputs), bound=MAX_INPUTS):
        t = self._absorb(t, inputs[j])
    self._close(t, c, by)


@internal
def _close_challenge(challenge_id: uint256, t: dispute_types.Tally, c: dispute_types.Claim) -> address:
    """
    @notice `close_challenge`.
    @return Whoever opened the challenge, to whom the proof is credited.
    """
    self._check_tally(challenge_id, t)
    self.tally_hash[challenge_id] = empty(bytes32)
    by: address = self.challenger[challenge_id]
    self._close(t, c, by)
    return by


@internal
def _prove_wrong_offset(
    claim_id: uint256,
    c: dispute_types.Claim,
    entries: DynArray[dispute_types.Entry, MAX_UPDATES],
    position: uint256,
    num_chunks: uint256,
    first: dispute_types.Piece,
    by: address,
):
    """
    @notice `prove_wrong_offset`, crediting the refutation to `by`.
    """
    self._check_claim(claim_id, c)
    root: bytes32 = c.aggregate_root
    stated: uint256 = c.aggregate_offset
    if position < c.num_updates:
        linked: bytes32 = empty(bytes32)
        for e: dispute_types.Entry in entries:
            linked = self._link(linked, e)
        same: bool = len(entries) == c.num_updates and linked == c.updates_hash
        assert same, "disputes: updates do not match the claim"
        root = entries[position].root
        stated = entries[position].offset
    elif position == c.num_updates:
        root = c.previous_root
        stated = c.previous_offset
    else:
        assert position == c.num_updates + 1, "disputes: no such blob"
    assert merkle._verify(root, first.chunk, 0, num_chunks, first.proof), "disputes: bad proof"
    assert len(first.chunk) >= 8, "disputes: chunk too short"
    actual: uint256 = 8 + coordinate_math._uint64_le(first.chunk, 0)
    assert actual != stated, "disputes: the stated offset is right"
    self.struck[claim_id] = True
    log dispute_types.OffsetRefuted(
        claim_id=claim_id, challenger=by, position=position, stated=stated, actual=actual
    )
    self._notify(claim_id, by)


@internal
def _notify(claim_id: uint256, by: address):
    """
    @notice Tells the verifier, if bound, that `by` struck `claim_id`; it slashes the
            proposer, or reverts the proof when the claim's window has closed.
    """
    if self.verifier != empty(address):
        extcall Verifier(self.verifier).strike(claim_id, by)


@internal
@pure
def _check_offset(offset: uint256):
    """
    @notice Reverts unless `offset` can be a canonical blob's data offset: 8 + a JSON
            header padded to 8 (at least 8 bytes), so a multiple of 8 from 16 up.
    """
    assert offset >= 16 and offset % 8 == 0 and offset < 2**64, "disputes: bad data offset"


@internal
@view
def _check_claim(claim_id: uint256, c: dispute_types.Claim):
    """
    @notice Reverts unless `c` is the registered (bound: the verifier's live), not yet struck
            claim `claim_id`.
    """
    stored: bytes32 = self.claim_hash[claim_id]
    if self.verifier != empty(address):
        stored = staticcall Verifier(self.verifier).claim_hash(claim_id)
    assert stored != empty(bytes32), "disputes: no such claim"
    assert keccak256(abi_encode(c)) == stored, "disputes: claim does not match"
    assert not self.struck[claim_id], "disputes: claim already struck"


@internal
@view
def _check_tally(challenge_id: uint256, t: dispute_types.Tally):
    """
    @notice Reverts unless `t` is the running tally the open challenge last stored.
    """
    stored: bytes32 = self.tally_hash[challenge_id]
    assert stored != empty(bytes32), "disputes: no open challenge"
    assert keccak256(abi_encode(t)) == stored, "disputes: tally does not match"


@internal
@view
def _open(
    claim_id: uint256,
    c: dispute_types.Claim,
    coordinate: uint256,
    previous: dispute_types.Piece,
    aggregate: dispute_types.Piece,
    low: int256,
    high: int256,
) -> dispute_types.Tally:
    """
    @notice A fresh tally: the previous and proposed values at `coordinate`, read from
            their proof-checked chunks, the witnesses, and nothing folded in yet.
    """
    self._check_claim(claim_id, c)
    assert coordinate < c.num_params, "disputes: coordinate out of range"
    return dispute_types.Tally(
        claim_id=claim_id,
        rule=c.rule,
        clip_q=c.clip_q,
        num_params=c.num_params,
        coordinate=coordinate,
        previous_value=self._value(c.previous_root, c.previous_offset, c.num_params, coordinate, previous),
        proposed_value=self._value(c.aggregate_root, c.aggregate_offset, c.num_params, coordinate, aggregate),
        low=low,
        high=high,
        next_update=0,
        links=empty(bytes32),
        weighted_sum=0,
        weight_total=0,
        below_low=0,
        upto_low=0,
        below_high=0,
        upto_high=0,
        between_sum=0,
    )


@internal
@pure
def _link(linked: bytes32, e: dispute_types.Entry) -> bytes32:
    """
    @notice One step of the hash chain binding a claim's updates, in order.
    """
    return keccak256(
        concat(
            linked,
            e.root,
            convert(e.offset, bytes32),
            convert(e.weight, bytes32),
            convert(e.squared_norm, bytes32),
        )
    )


@internal
@pure
def _absorb(t: dispute_types.Tally, i: dispute_types.Input) -> dispute_types.Tally:
    """
    @notice Folds one accepted update's value at the coordinate into the tally.
    """
    self._check_offset(i.entry.offset)
    assert i.entry.weight < coordinate_math.UINT64, "disputes: weight too large"
    out: dispute_types.Tally = t
    out.links = self._link(t.links, i.entry)
    out.next_update = t.next_update + 1
    v: int256 = self._value(i.entry.root, i.entry.offset, t.num_params, t.coordinate, i.piece)
    if t.rule == RULE_FEDAVG or t.rule == RULE_CLIPPED:
        if t.rule == RULE_CLIPPED:
            v = coordinate_math._clip(v, i.entry.squared_norm, t.clip_q)
        out.weighted_sum = t.weighted_sum + convert(i.entry.weight, int256) * v
        out.weight_total = t.weight_total + i.entry.weight
        return out
    if v < t.low:
        out.below_low = t.below_low + 1
    if v <= t.low:
        out.upto_low = t.upto_low + 1
    if v < t.high:
        out.below_high = t.below_high + 1
    if v <= t.high:
        out.upto_high = t.upto_high + 1
    if v > t.low and v < t.high:
        out.between_sum = t.between_sum + v
    return out


@internal
def _close(t: dispute_types.Tally, c: dispute_types.Claim, by: address):
    """
    @notice Decides a complete tally: strikes the claim (credited to `by`) when the
            recomputed value differs from the proposed one, else reverts.
    """
    self._check_claim(t.claim_id, c)
    assert t.next_update == c.num_updates, "disputes: updates missing"
    assert t.links == c.updates_hash, "disputes: updates do not match the claim"
    n: uint256 = c.num_updates
    delta: int256 = 0
    if t.rule == RULE_FEDAVG or t.rule == RULE_CLIPPED:
        assert t.weight_total > 0, "disputes: weights sum to 0"
        delta = coordinate_math._div_half_up(t.weighted_sum, convert(t.weight_total, int256))
    else:
        k: uint256 = (n - 1) // 2
        if t.rule == RULE_TRIMMED:
            k = n * c.trim_num // c.trim_den
        assert coordinate_math._witnesses_hold(
            n, k, t.low, t.high, t.below_low, t.upto_low, t.below_high, t.upto_high
        ), "disputes: witnesses are not the order statistics"
        delta = coordinate_math._kept_mean(n, k, t.low, t.high, t.upto_low, t.below_high, t.between_sum)
    expected: int256 = t.previous_value + delta
    assert expected != t.proposed_value, "disputes: the proposed value is right"
    self.struck[t.claim_id] = True
    log dispute_types.FraudProven(
        claim_id=t.claim_id,
        challenger=by,
        coordinate=t.coordinate,
        proposed=t.proposed_value,
        expected=expected,
    )
    self._notify(t.claim_id, by)


@internal
@pure
def _value(
    root: bytes32, offset: uint256, num_params: uint256, coordinate: uint256, p: dispute_types.Piece
) -> int256:
    """
    @notice The int64 at `coordinate` of the blob committed to by `root`, from the one
            chunk holding it, after checking that chunk's proof.
    """
    position: uint256 = offset + 8 * coordinate
    num_chunks: uint256 = (offset + 8 * num_params + merkle.CHUNK - 1) // merkle.CHUNK
    assert merkle._verify(root, p.chunk, position // merkle.CHUNK, num_chunks, p.proof), "disputes: bad proof"
    at: uint256 = position % merkle.CHUNK
    assert at + 8 <= len(p.chunk), "disputes: chunk too short"
    return coordinate_math._int64_le(p.chunk, at)
