# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Optimistic verification: one bonded proposer a round, a challenge window, one-chunk proofs
@custom:contract-name optimistic
@license MIT
@notice A job in optimistic mode names this contract as its whole committee, with quorum 1,
        so the coordinator finalises a round exactly when this contract proposes it, and
        this contract proposes only a result that stood unchallenged for `challenge_window`
        seconds. Per round:

        1. One bonded proposer, drawn from the round's randomness (the previous finalised
           model's root), posts the aggregate's claim (disputes.vy's `Claim`) and the
           round's exclusions and flags. After `proposal_window` seconds without one, any
           bonded proposer may post instead.
        2. For `challenge_window` seconds anyone may prove one coordinate of the claim
           wrong (`challenge`, or `open_challenge` / `add_updates` / `close_challenge`
           split over transactions, or `prove_wrong_offset`). A proof strikes the claim
           in the same transaction: the proposer's bond is slashed, `bounty_bps` of it to
           whoever proved it and the rest to the job's sponsor, and the round opens to
           the next drawn proposer.
        3. What one chunk cannot show (a wrong exclusion, a wrong flag, a forged list of
           updates) anyone may `escalate` by posting a bond of the same size: the bonded
           proposers then vote, and `escalation_quorum` identical votes decide the round.
           The side the vote goes against loses its bond in the same split.
        4. After the window, anyone may `settle`: the claim's result goes to the
           coordinator as this contract's proposal, which finalises the round.

        Bonds are held here, in the job's token, apart from the coordinator's stakes: the
        coordinator has no code room for a second kind of deposit, and keeping them apart
        means a proposer's bond answers for its proposals alone (docs/design.md,
        "Optimistic verification").
@dev    The proofs run in disputes.vy, bound to this contract at deployment: claims are
        registered there under ids (job_id << 48) | (round << 8) | attempt, so no claim id
        is stored here, and a proof that strikes one calls `strike` here, so the proof and
        the slashing are one transaction. (One contract with both would be over EIP-170's
        24,576 bytes.)
"""

from ethereum.ercs import IERC20

import dispute_types
import packing

PHASE_AGGREGATING: constant(uint8) = 2
PHASE_DONE: constant(uint8) = 3
PHASE_ABORTED: constant(uint8) = 4
MAX_PROPOSERS: constant(uint256) = 128
MAX_EXCLUDED: constant(uint256) = 256
MAX_SCORE_WORDS: constant(uint256) = 256
RULE_FEDAVG: constant(uint8) = 1
RULE_TRIMMED: constant(uint8) = 4

# A job's live round, one word: proposer 0..159 | at 160..199 | attempt 200..207 |
# escalated 208 | round 209..240. `at` is the end of the claim's window while a proposer
# is set, and when the round reopened after a strike while none is. One word a job, not a
# round, so each round rewrites warm slots (~5k gas) instead of filling fresh ones (22.1k).
REC_AT: constant(uint256) = 160
REC_ATTEMPT: constant(uint256) = 200
REC_ESCALATED: constant(uint256) = 208
REC_ROUND: constant(uint256) = 209
MASK40: constant(uint256) = 2**40 - 1
PROPOSER: constant(uint256) = 2**160 - 1
# A job's timing and shares, one word: challenge_window 0..63 | proposal_window 64..127 |
# aggregate_window 128..191 | bounty_bps 192..207 | escalation_quorum 208..239
MAX_UPDATES: constant(uint256) = 1024
INT64_HALF: constant(uint256) = 2**63


#: What a job's sponsor fixes when it delegates the job's verification here. The rule and
#: its parameters are the spec's, so a claim cannot pick another rule.
struct Terms:
    rule: uint8
    trim_num: uint256
    trim_den: uint256
    clip_q: uint256
    num_params: uint256
    challenge_window: uint64
    proposal_window: uint64
    aggregate_window: uint64
    bond: uint256
    bounty_bps: uint16
    escalation_quorum: uint32


#: The coordinator's JobConfig, field for field (its ABI tuple).
struct JobConfig:
    sponsor: address
    token: address
    spec_hash: bytes32
    initial_model: bytes32
    rounds: uint32
    min_commits: uint32
    quorum: uint32
    commit_window: uint64
    aggregate_window: uint64
    max_failures: uint32
    stake: uint256
    reward_per_round: uint256
    slash_bps: uint16
    max_flags: uint16
    scored: bool
    validator_fee_bps: uint16
    score_tolerance: uint16
    min_reputation: uint16
    use_allowlist: bool
    clients_per_round: uint16
    validators_per_round: uint16
    committee_size: uint16


interface Coordinator:
    def job_state(job_id: uint256) -> packing.JobWord: view
    def job_config(job_id: uint256) -> JobConfig: view
    def global_model(job_id: uint256) -> bytes32: view
    def is_validator(job_id: uint256, account: address) -> bool: view
    def register(job_id: uint256, as_trainer: bool): nonpayable
    def withdraw(job_id: uint256): nonpayable
    def propose(
        job_id: uint256,
        round: uint32,
        aggregate: bytes32,
        excluded: DynArray[address, MAX_EXCLUDED],
        flags: uint256,
        scores: DynArray[uint256, MAX_SCORE_WORDS],
        micro_epsilon: uint64,
        seat: uint256,
    ): nonpayable


interface Disputes:
    def bind(): nonpayable


event JobDelegated:
    job_id: indexed(uint256)
    sponsor: indexed(address)
    terms: Terms
    named: DynArray[address, MAX_PROPOSERS]


event ProposerBonded:
    job_id: indexed(uint256)
    proposer: indexed(address)
    amount: uint256


event ProposalPosted:
    job_id: indexed(uint256)
    round: indexed(uint32)
    proposer: indexed(address)
    attempt: uint8
    claim_id: uint256
    claim_hash: bytes32
    claim: dispute_types.Claim
    excluded: DynArray[address, MAX_EXCLUDED]
    flags: uint256
    final_at: uint64


event ProposalStruck:
    job_id: indexed(uint256)
    round: indexed(uint32)
    proposer: indexed(address)
    attempt: uint8
    by: address
    slashed: uint256
    bounty: uint256


event ProposalSettled:
    job_id: indexed(uint256)
    round: indexed(uint32)
    proposer: indexed(address)
    attempt: uint8
    aggregate: bytes32


event RoundEscalated:
    job_id: indexed(uint256)
    round: indexed(uint32)
    escalator: indexed(address)


event VoteCast:
    job_id: indexed(uint256)
    round: indexed(uint32)
    voter: indexed(address)
    result: bytes32
    votes: uint32


event EscalationDecided:
    job_id: indexed(uint256)
    round: indexed(uint32)
    loser: indexed(address)
    upheld: bool
    slashed: uint256
    bounty: uint256


event RoundExpired:
    job_id: indexed(uint256)
    round: indexed(uint32)
    refunded: uint256


event Paid:
    account: indexed(address)
    token: indexed(address)
    amount: uint256


coordinator: public(immutable(address))
disputes: public(immutable(address))
_terms: HashMap[uint256, Terms]
#: keccak of the claim fields the terms fix (rule, trim, clip, parameters): one SLOAD to check
_shape: HashMap[uint256, bytes32]
_timing: HashMap[uint256, uint256]
_bond: HashMap[uint256, uint256]
_token: HashMap[uint256, address]
_sponsor: HashMap[uint256, address]
_proposers: HashMap[uint256, DynArray[address, MAX_PROPOSERS]]
_listed: HashMap[uint256, HashMap[address, bool]]
#: a job whose sponsor named its proposers takes bonds from them alone
_closed: HashMap[uint256, bool]
_named: HashMap[uint256, HashMap[address, bool]]
#: job -> proposer -> bond held
bond_of: public(HashMap[uint256, HashMap[address, uint256]])
#: job -> its live round (see REC_*), the live claim's hash and its result's hash
_record: HashMap[uint256, uint256]
_claim: HashMap[uint256, bytes32]
_result: HashMap[uint256, bytes32]
_escalator: HashMap[uint256, HashMap[uint32, address]]
#: claim id -> result -> votes, and who voted: an escalation is about one claim
_votes: HashMap[uint256, HashMap[bytes32, uint32]]
_voted: HashMap[uint256, HashMap[address, bool]]
#: job -> bonds posted so far; job -> that count when its live round was escalated; job ->
#: account -> the count its latest bond made: a vote counts only from a bond posted before
#: the escalation, so nobody can bond voters once they see which way a dispute needs to go
_bonds_posted: HashMap[uint256, uint256]
_roll: HashMap[uint256, uint256]
_bond_seq: HashMap[uint256, HashMap[address, uint256]]
#: token -> account -> paid out by `collect`
owed: public(HashMap[address, HashMap[address, uint256]])


@deploy
def __init__(coordinator_: address, disputes_: address):
    """
    @param coordinator_ The coordinator whose jobs may delegate their verification here.
    @param disputes_ A freshly deployed, unbound disputes.vy, which this binds.
    """
    coordinator = coordinator_
    disputes = disputes_
    extcall Disputes(disputes_).bind()


@external
def delegate(job_id: uint256, terms: Terms, named: DynArray[address, MAX_PROPOSERS]):
    """
    @notice The sponsor hands a job's verification to this contract, before its first
            round aggregates: the contract stakes as the job's one committee member
            (the stake is pulled from the sponsor, who must have approved it) and the
            terms are fixed for the job's life.
    @param job_id A job whose committee is this contract alone, with quorum 1, unscored.
    @param terms The rule (as in the spec), the windows, the bond and the bounty share.
    @param named The only accounts that may bond (the spec's committee); empty: anyone may.
           An escalation is decided by the vote of proposers bonded before it, so with
           bonding open to anyone a party that bonded `escalation_quorum` accounts in
           advance decides it: a job run for a consortium names its committee, as quorum
           mode does.
    """
    cfg: JobConfig = staticcall Coordinator(coordinator).job_config(job_id)
    assert msg.sender == cfg.sponsor, "optimistic: caller is not the sponsor"
    assert self._token[job_id] == empty(address), "optimistic: job already delegated"
    # this contract alone: `register` below proves it a member, and the size that it is the only one
    assert cfg.quorum == 1 and cfg.committee_size == 1 and not cfg.scored and cfg.validators_per_round == 0, "optimistic: job not delegated to one proposer"
    job: packing.JobWord = staticcall Coordinator(coordinator).job_state(job_id)
    assert job.phase == 1 and job.round == 1 and job.version == 0, "optimistic: job already aggregating"
    assert terms.rule >= RULE_FEDAVG and terms.rule <= RULE_TRIMMED, "optimistic: rule not chunk-local"
    assert terms.challenge_window > 0 and terms.bond > 0, "optimistic: no window or no bond"
    assert terms.bounty_bps <= 10000, "optimistic: bounty above bond"
    assert terms.escalation_quorum > 0, "optimistic: escalation quorum is zero"
    assert terms.aggregate_window == cfg.aggregate_window, "optimistic: aggregate window differs"
    assert max(terms.aggregate_window, max(terms.proposal_window, terms.challenge_window)) < 2**32, "optimistic: window too long"
    assert terms.proposal_window + terms.challenge_window <= terms.aggregate_window, "optimistic: windows exceed aggregation"
    assert terms.num_params >= 1, "optimistic: no parameters"
    assert terms.trim_den >= 1 and 2 * terms.trim_num < terms.trim_den, "optimistic: trim fraction not in [0, 1/2)"
    assert terms.rule != 2 or (terms.clip_q >= 1 and terms.clip_q < INT64_HALF), "optimistic: clip bound not fixed"
    self._terms[job_id] = terms
    self._shape[job_id] = keccak256(abi_encode(terms.rule, terms.trim_num, terms.trim_den, terms.clip_q, terms.num_params))
    self._timing[job_id] = (
        convert(terms.challenge_window, uint256)
        | (convert(terms.proposal_window, uint256) << 64)
        | (convert(terms.aggregate_window, uint256) << 128)
        | (convert(terms.bounty_bps, uint256) << 192)
        | (convert(terms.escalation_quorum, uint256) << 208)
    )
    self._bond[job_id] = terms.bond
    self._token[job_id] = cfg.token
    self._sponsor[job_id] = msg.sender
    if cfg.stake > 0:
        assert extcall IERC20(cfg.token).transferFrom(msg.sender, self, cfg.stake), "optimistic: stake transfer failed"
        assert extcall IERC20(cfg.token).approve(coordinator, cfg.stake), "optimistic: approve failed"
    extcall Coordinator(coordinator).register(job_id, False)
    for account: address in named:
        assert account != empty(address) and not self._named[job_id][account], "optimistic: bad named proposer"
        self._named[job_id][account] = True
    self._closed[job_id] = len(named) > 0
    log JobDelegated(job_id=job_id, sponsor=msg.sender, terms=terms, named=named)


@external
def bond(job_id: uint256):
    """
    @notice Posts the job's bond and joins its proposers (or tops a slashed bond up).
    @param job_id A delegated job that has not ended.
    """
    token: address = self._token[job_id]
    assert token != empty(address), "optimistic: job not delegated"
    self._check_running(job_id)
    held: uint256 = self.bond_of[job_id][msg.sender]
    need: uint256 = self._bond[job_id]
    assert held < need, "optimistic: already bonded"
    assert not self._closed[job_id] or self._named[job_id][msg.sender], "optimistic: not a named proposer"
    if not self._listed[job_id][msg.sender]:
        assert len(self._proposers[job_id]) < MAX_PROPOSERS, "optimistic: too many proposers"
        self._proposers[job_id].append(msg.sender)
        self._listed[job_id][msg.sender] = True
    self.bond_of[job_id][msg.sender] = need
    posted: uint256 = self._bonds_posted[job_id] + 1
    self._bonds_posted[job_id] = posted
    self._bond_seq[job_id][msg.sender] = posted
    assert extcall IERC20(token).transferFrom(msg.sender, self, need - held), "optimistic: bond transfer failed"
    log ProposerBonded(job_id=job_id, proposer=msg.sender, amount=need)


@external
def propose(
    job_id: uint256,
    round: uint32,
    c: dispute_types.Claim,
    excluded: DynArray[address, MAX_EXCLUDED],
    flags: uint256,
):
    """
    @notice Posts a round's result: the claim about its aggregate, and the committers it
            excluded (strictly ascending, as the coordinator wants them) and flags.
    @param job_id The job.
    @param round The round the coordinator is aggregating.
    @param c The claim; its rule and parameters are the job's terms, its previous model
           the coordinator's global model, its update count the commits not excluded.
    @param excluded Committers left out, ascending.
    @param flags Bit i set: `excluded[i]` is flagged.
    """
    bond: uint256 = self._bond[job_id]
    assert self.bond_of[job_id][msg.sender] >= bond and bond > 0, "optimistic: not bonded"
    job: packing.JobWord = staticcall Coordinator(coordinator).job_state(job_id)
    assert job.phase == PHASE_AGGREGATING and job.round == round, "optimistic: round not aggregating"
    record: uint256 = self._live(job_id, round)
    assert record & PROPOSER == 0, "optimistic: round already proposed"
    attempt: uint256 = (record >> REC_ATTEMPT) & packing.MASK8
    # the last attempt (255) would be one no proof could strike (the next would not fit
    # the record's 8 bits): after 255 struck claims the round takes none and fails
    assert attempt < 255, "optimistic: too many attempts"
    timing: uint256 = self._timing[job_id]
    since: uint256 = convert(job.deadline, uint256) - ((timing >> 128) & packing.MASK64)
    if attempt > 0:
        since = (record >> REC_AT) & MASK40
    model: bytes32 = staticcall Coordinator(coordinator).global_model(job_id)
    drawn: address = self._drawn(job_id, round, attempt, model)
    late: bool = block.timestamp > since + ((timing >> 64) & packing.MASK64)
    assert msg.sender == drawn or late or self.bond_of[job_id][drawn] < bond, "optimistic: not the drawn proposer"
    shape: bytes32 = keccak256(abi_encode(c.rule, c.trim_num, c.trim_den, c.clip_q, c.num_params))
    assert shape == self._shape[job_id], "optimistic: claim off the job's terms"
    assert c.previous_root == model, "optimistic: claim not on the global model"
    assert c.num_updates + len(excluded) == convert(job.commits, uint256), "optimistic: updates do not add up"
    assert c.num_updates >= 1 and c.num_updates <= MAX_UPDATES, "optimistic: bad update count"
    assert flags >> len(excluded) == 0, "optimistic: flag outside excluded"
    self._check_offset(c.previous_offset)
    self._check_offset(c.aggregate_offset)
    claim_id: uint256 = (job_id << 48) | (convert(round, uint256) << 8) | attempt
    digest: bytes32 = keccak256(abi_encode(c))
    final_at: uint256 = block.timestamp + (timing & packing.MASK64)
    self._claim[job_id] = digest
    self._result[job_id] = keccak256(abi_encode(c.aggregate_root, excluded, flags))
    self._record[job_id] = (
        convert(msg.sender, uint256) | (final_at << REC_AT) | (attempt << REC_ATTEMPT)
        | (convert(round, uint256) << REC_ROUND)
    )
    log ProposalPosted(
        job_id=job_id, round=round, proposer=msg.sender, attempt=convert(attempt, uint8),
        claim_id=claim_id, claim_hash=digest, claim=c, excluded=excluded, flags=flags,
        final_at=convert(final_at, uint64),
    )


@external
def strike(claim_id: uint256, by: address):
    """
    @notice disputes.vy reports a proof against a live claim: slashes its proposer (the
            bounty to `by`) and opens the round to the next attempt. A proof that comes
            after the claim's window, or against a claim no longer live, reverts here and
            so is refused.
    @param claim_id The struck claim.
    @param by Who proved it wrong.
    """
    assert msg.sender == disputes, "optimistic: caller is not disputes"
    self._check_window(claim_id)
    self._strike(claim_id, by)


@external
def settle(job_id: uint256, round: uint32, aggregate: bytes32, excluded: DynArray[address, MAX_EXCLUDED], flags: uint256):
    """
    @notice Once a claim has stood its whole window, hands its result to the coordinator,
            which finalises the round. Anyone may call it, with the result as posted (the
            claim itself is not needed: it only mattered to proofs).
    """
    record: uint256 = self._live(job_id, round)
    proposer: address = convert(record & PROPOSER, address)
    assert proposer != empty(address), "optimistic: no proposal"
    assert (record >> REC_ESCALATED) & 1 == 0, "optimistic: round escalated"
    assert block.timestamp > (record >> REC_AT) & MASK40, "optimistic: challenge window open"
    assert keccak256(abi_encode(aggregate, excluded, flags)) == self._result[job_id], "optimistic: result does not match"
    self._record[job_id] = record & ~PROPOSER
    extcall Coordinator(coordinator).propose(job_id, round, aggregate, excluded, flags, [], 0, 0)
    log ProposalSettled(
        job_id=job_id, round=round, proposer=proposer,
        attempt=convert((record >> REC_ATTEMPT) & packing.MASK8, uint8), aggregate=aggregate,
    )


@external
def escalate(job_id: uint256, round: uint32):
    """
    @notice Sends a posted claim to a vote of the bonded proposers, for what one chunk
            cannot prove (exclusions, flags, the list of updates). The caller posts a
            bond the size of a proposer's, lost if the vote upholds the claim.
    """
    record: uint256 = self._live(job_id, round)
    assert record & PROPOSER != 0, "optimistic: no proposal"
    assert (record >> REC_ESCALATED) & 1 == 0, "optimistic: round escalated"
    assert block.timestamp <= (record >> REC_AT) & MASK40, "optimistic: challenge window closed"
    self._record[job_id] = record | (1 << REC_ESCALATED)
    self._escalator[job_id][round] = msg.sender
    self._roll[job_id] = self._bonds_posted[job_id]
    need: uint256 = self._bond[job_id]
    assert extcall IERC20(self._token[job_id]).transferFrom(msg.sender, self, need), "optimistic: bond transfer failed"
    log RoundEscalated(job_id=job_id, round=round, escalator=msg.sender)


@external
def vote(job_id: uint256, round: uint32, aggregate: bytes32, excluded: DynArray[address, MAX_EXCLUDED], flags: uint256):
    """
    @notice A bonded proposer, other than the two parties, votes an escalated round's
            result; `escalation_quorum` identical votes decide it and finalise the round.
            Only bonds posted before the escalation vote (a top-up counts as posting
            anew), so a party cannot answer an escalation by bonding voters.
    """
    record: uint256 = self._live(job_id, round)
    assert (record >> REC_ESCALATED) & 1 != 0 and record & PROPOSER != 0, "optimistic: round not escalated"
    bond: uint256 = self._bond[job_id]
    proposer: address = convert(record & PROPOSER, address)
    escalator: address = self._escalator[job_id][round]
    assert self.bond_of[job_id][msg.sender] >= bond, "optimistic: not bonded"
    assert msg.sender != proposer and msg.sender != escalator, "optimistic: party to the dispute"
    assert self._bond_seq[job_id][msg.sender] <= self._roll[job_id], "optimistic: bonded after the escalation"
    attempt: uint256 = (record >> REC_ATTEMPT) & packing.MASK8
    claim_id: uint256 = (job_id << 48) | (convert(round, uint256) << 8) | attempt
    assert not self._voted[claim_id][msg.sender], "optimistic: already voted"
    self._voted[claim_id][msg.sender] = True
    result: bytes32 = keccak256(abi_encode(aggregate, excluded, flags))
    votes: uint32 = self._votes[claim_id][result] + 1
    self._votes[claim_id][result] = votes
    log VoteCast(job_id=job_id, round=round, voter=msg.sender, result=result, votes=votes)
    timing: uint256 = self._timing[job_id]
    if convert(votes, uint256) < (timing >> 208) & packing.MASK32:
        return
    upheld: bool = result == self._result[job_id]
    loser: address = escalator
    amount: uint256 = bond
    if upheld:
        # the claim stood: the escalator's bond is the one at stake
        self._pay_slash(job_id, amount, proposer)
    else:
        amount = self.bond_of[job_id][proposer]
        self.bond_of[job_id][proposer] = 0
        loser = proposer
        self._pay_slash(job_id, amount, escalator)
        self.owed[self._token[job_id]][escalator] += bond
    self._record[job_id] = record & ~PROPOSER & ~(1 << REC_ESCALATED)
    self._escalator[job_id][round] = empty(address)
    log EscalationDecided(
        job_id=job_id, round=round, loser=loser, upheld=upheld, slashed=amount,
        bounty=amount * ((timing >> 192) & packing.MASK16) // 10000,
    )
    extcall Coordinator(coordinator).propose(job_id, round, aggregate, excluded, flags, [], 0, 0)


@external
def expire(job_id: uint256, round: uint32):
    """
    @notice Clears a round the coordinator has moved past without this contract's proposal
            (its aggregation window ran out): an escalator's bond is returned, since no
            vote decided against it, and the claim can no longer be challenged.
    """
    job: packing.JobWord = staticcall Coordinator(coordinator).job_state(job_id)
    assert job.round != round or job.phase != PHASE_AGGREGATING, "optimistic: round still aggregating"
    record: uint256 = self._live(job_id, round)
    escalator: address = self._escalator[job_id][round]
    assert record & PROPOSER != 0 or escalator != empty(address), "optimistic: no proposal"
    refunded: uint256 = 0
    if escalator != empty(address):
        refunded = self._bond[job_id]
        self.owed[self._token[job_id]][escalator] += refunded
        self._escalator[job_id][round] = empty(address)
    if record & PROPOSER != 0:
        self._record[job_id] = record & ~PROPOSER & ~(1 << REC_ESCALATED)
    log RoundExpired(job_id=job_id, round=round, refunded=refunded)


@external
def release(job_id: uint256):
    """
    @notice After the job ends: returns bonds to their proposers and this contract's
            coordinator stake to the sponsor, as amounts `collect` pays.
    @dev    Anyone may call it; each proposer's bond is credited once (`unbond` reads it).
    """
    token: address = self._token[job_id]
    assert token != empty(address), "optimistic: job not delegated"
    job: packing.JobWord = staticcall Coordinator(coordinator).job_state(job_id)
    assert job.phase == PHASE_DONE or job.phase == PHASE_ABORTED, "optimistic: job still running"
    before: uint256 = staticcall IERC20(token).balanceOf(self)
    extcall Coordinator(coordinator).withdraw(job_id)
    returned: uint256 = staticcall IERC20(token).balanceOf(self) - before
    self.owed[token][self._sponsor[job_id]] += returned


@external
def unbond(job_id: uint256):
    """
    @notice After the job ends, a proposer's bond becomes payable by `collect`.
    """
    job: packing.JobWord = staticcall Coordinator(coordinator).job_state(job_id)
    assert job.phase == PHASE_DONE or job.phase == PHASE_ABORTED, "optimistic: job still running"
    held: uint256 = self.bond_of[job_id][msg.sender]
    assert held > 0, "optimistic: no bond"
    self.bond_of[job_id][msg.sender] = 0
    self.owed[self._token[job_id]][msg.sender] += held


@external
def collect(token: address):
    """
    @notice Pays the caller what it is owed in `token`: bounties, slashed shares, bonds.
    """
    amount: uint256 = self.owed[token][msg.sender]
    assert amount > 0, "optimistic: nothing owed"
    self.owed[token][msg.sender] = 0
    assert extcall IERC20(token).transfer(msg.sender, amount), "optimistic: transfer failed"
    log Paid(account=msg.sender, token=token, amount=amount)


@external
@view
def terms(job_id: uint256) -> Terms:
    """
    @notice A delegated job's terms (all zero when the job was not delegated).
    """
    return self._terms[job_id]


@external
@view
def proposers(job_id: uint256) -> DynArray[address, MAX_PROPOSERS]:
    """
    @notice Everyone who ever bonded for the job, in order: the list the draw indexes.
    """
    return self._proposers[job_id]


@external
@view
def drawn(job_id: uint256, round: uint32, attempt: uint256) -> address:
    """
    @notice The proposer drawn for a round's attempt (0 first, +1 after each strike).
    """
    return self._drawn(job_id, round, attempt, staticcall Coordinator(coordinator).global_model(job_id))


@external
@view
def claim_hash(claim_id: uint256) -> bytes32:
    """
    @notice The hash of a live claim (posted, neither struck, settled, decided nor expired),
            else zero: what disputes.vy checks a proof's claim against.
    """
    job_id: uint256 = claim_id >> 48
    record: uint256 = self._record[job_id]
    live: bool = (
        record & PROPOSER != 0
        and (record >> REC_ROUND) & packing.MASK32 == (claim_id >> 8) & packing.MASK32
        and (record >> REC_ATTEMPT) & packing.MASK8 == claim_id & packing.MASK8
    )
    if not live:
        return empty(bytes32)
    return self._claim[job_id]


@external
@view
def round_record(job_id: uint256, round: uint32) -> (address, uint64, uint8, bool, address):
    """
    @notice A round's current proposal: proposer (zero: none posted), end of its window
            (with no proposer: when the round reopened after a strike, or 0), attempt, whether
            it is escalated, and the escalator.
    """
    record: uint256 = self._live(job_id, round)
    return (
        convert(record & PROPOSER, address),
        convert((record >> REC_AT) & MASK40, uint64),
        convert((record >> REC_ATTEMPT) & packing.MASK8, uint8),
        (record >> REC_ESCALATED) & 1 != 0,
        self._escalator[job_id][round],
    )


@internal
@view
def _drawn(job_id: uint256, round: uint32, attempt: uint256, model: bytes32) -> address:
    """
    @notice proposers[keccak(job, round, attempt, global model) mod n]. The global model is
            the previous round's finalised aggregate: a deterministic function of the
            commits, so no proposer can steer the next draw (docs/design.md).
    """
    n: uint256 = len(self._proposers[job_id])
    if n == 0:
        return empty(address)
    h: uint256 = convert(keccak256(abi_encode(job_id, round, attempt, model)), uint256)
    return self._proposers[job_id][h % n]


@internal
@view
def _check_running(job_id: uint256):
    job: packing.JobWord = staticcall Coordinator(coordinator).job_state(job_id)
    assert job.phase != PHASE_DONE and job.phase != PHASE_ABORTED, "optimistic: job ended"


@internal
@view
def _check_window(claim_id: uint256):
    """
    @notice A claim may be proven wrong while it is the round's live claim and its window
            is open; after `settle` its hash is gone and disputes.vy refuses it anyway.
    """
    record: uint256 = self._record[claim_id >> 48]
    live: bool = (
        record & PROPOSER != 0
        and (record >> REC_ROUND) & packing.MASK32 == (claim_id >> 8) & packing.MASK32
        and (record >> REC_ATTEMPT) & packing.MASK8 == claim_id & packing.MASK8
    )
    assert live, "optimistic: not the live claim"
    assert block.timestamp <= (record >> REC_AT) & MASK40, "optimistic: challenge window closed"


@internal
def _strike(claim_id: uint256, by: address):
    """
    @notice Slashes a proven-wrong claim's proposer and opens the round to the next attempt.
    """
    job_id: uint256 = claim_id >> 48
    round: uint32 = convert((claim_id >> 8) & packing.MASK32, uint32)
    record: uint256 = self._record[job_id]
    proposer: address = convert(record & PROPOSER, address)
    attempt: uint256 = (record >> REC_ATTEMPT) & packing.MASK8
    amount: uint256 = self.bond_of[job_id][proposer]
    self.bond_of[job_id][proposer] = 0
    bounty: uint256 = self._pay_slash(job_id, amount, by)
    escalator: address = self._escalator[job_id][round]
    if escalator != empty(address):
        # a proof settled what the vote was for: the escalator was right
        self.owed[self._token[job_id]][escalator] += self._bond[job_id]
        self._escalator[job_id][round] = empty(address)
    self._record[job_id] = (
        (block.timestamp << REC_AT) | ((attempt + 1) << REC_ATTEMPT) | (convert(round, uint256) << REC_ROUND)
    )
    log ProposalStruck(
        job_id=job_id, round=round, proposer=proposer, attempt=convert(attempt, uint8), by=by,
        slashed=amount, bounty=bounty,
    )


@internal
def _pay_slash(job_id: uint256, amount: uint256, to: address) -> uint256:
    """
    @notice Splits a slashed bond: `bounty_bps` to `to`, the rest to the sponsor.
    @return The bounty.
    """
    bounty: uint256 = amount * ((self._timing[job_id] >> 192) & packing.MASK16) // 10000
    token: address = self._token[job_id]
    self.owed[token][to] += bounty
    self.owed[token][self._sponsor[job_id]] += amount - bounty
    return bounty


@internal
@view
def _live(job_id: uint256, round: uint32) -> uint256:
    """
    @notice The job's record if it is about `round`, else zero (nothing posted yet, attempt 0).
    """
    record: uint256 = self._record[job_id]
    if (record >> REC_ROUND) & packing.MASK32 != convert(round, uint256):
        return 0
    return record


@internal
@pure
def _check_offset(offset: uint256):
    """
    @notice A canonical blob's data offset: 8 + a JSON header padded to 8, so a multiple of 8
            from 16 up (as disputes.vy checks it).
    """
    assert offset >= 16 and offset % 8 == 0 and offset < 2**64, "optimistic: bad data offset"
