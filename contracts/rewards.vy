# pragma version ~=0.4.3
"""
@title Reward settlement, scores, validator fees and reputation
@custom:contract-name rewards
@license MIT
@notice Decides who is paid what once a round has an outcome. A trainer's share
        of a finalised round is settled lazily, on its next commit or
        withdrawal, by examples or, in a scored job, by the stake-weighted
        median of the quorum's scores, so no single validator decides who is
        paid; validators whose scores stay near that consensus share a fee.
        Each trainer's consensus scores, rounds and flags fold into an
        on-chain reputation when it leaves an ended job, which a job may
        require to join.
@dev    A module of coordinator.vy. Rounding: a share is
        floor(reward * weight / accepted_weight); the dust (< accepted_commits
        wei per round) stays in the contract. Scores are 16 bits per committer,
        16 to a word, in commit order (`jobs.SCORE_ONE` is the best).
"""

import jobs
import packing
import stakes

uses: jobs
uses: stakes


event ScoresSettled:
    job_id: indexed(uint256)
    round: uint32
    scores: DynArray[uint256, jobs.MAX_SCORE_WORDS]
    total: uint64


event ValidatorRewarded:
    job_id: indexed(uint256)
    validator: indexed(address)
    round: uint32
    amount: uint256


event ReputationUpdated:
    account: indexed(address)
    job_id: indexed(uint256)
    score: uint16
    rounds: uint64
    scored_rounds: uint64
    flags: uint64
    jobs: uint64


# a validator's scores for the round it last proposed (overwritten each round)
_scores: HashMap[uint256, HashMap[address, HashMap[uint256, uint256]]]
# the consensus scores of each finalised round of a scored job
_consensus: HashMap[uint256, HashMap[uint32, HashMap[uint256, uint256]]]
_fees: HashMap[uint256, HashMap[address, uint256]]
_reputation: HashMap[address, uint256]


@external
@view
def claimable(job_id: uint256, account: address) -> uint256:
    """
    @notice Reward and validator fees `withdraw` would pay now, stake excluded.
    @param job_id The job.
    @param account The trainer or validator.
    @return uint256 Token amount.
    """
    reward: uint256 = 0
    word: uint256 = jobs._trainer[job_id][account]
    if word != 0:
        share: uint256 = 0
        word, share = self._settled(job_id, word)
        reward = ((word >> packing.TRAINER_ACCRUED) & packing.MASK96) + share
    return reward + self._fees[job_id][account]


@external
@view
def fees_of(job_id: uint256, account: address) -> uint256:
    """
    @notice Validator fees earned in a job and not yet withdrawn.
    @param job_id The job.
    @param account The validator.
    @return uint256 Token amount.
    """
    return self._fees[job_id][account]


@external
@view
def consensus_score(job_id: uint256, round: uint32, slot: uint256) -> uint256:
    """
    @notice The consensus score of the committer in `slot` of a finalised
            round of a scored job (0..SCORE_ONE).
    @param job_id The job.
    @param round The round.
    @param slot The commit's position in the round, from 0.
    @return uint256 The score.
    """
    return (self._consensus[job_id][round][slot >> 4] >> ((slot & 15) << 4)) & packing.MASK16


@external
@view
def reputation(account: address) -> packing.Reputation:
    """
    @notice An account's record over the jobs it has withdrawn from after they
            ended: mean consensus score (0..SCORE_ONE, weighted by scored
            rounds), finalised rounds committed to, flags, and jobs. The
            current job's running record is in `trainer_state`.
    @param account The account.
    @return packing.Reputation The record.
    """
    return packing._unpack_reputation(self._reputation[account])


@internal
@view
def _settled(job_id: uint256, tword: uint256) -> (uint256, uint256):
    """
    @dev Settles the round the trainer last committed to, if it has an outcome
         and is not settled yet. Returns the trainer word marked settled with
         its record updated (one more finalised round; in a scored job the
         score EMA moves a quarter of the way to this round's consensus score),
         and the round's share of the reward (nothing if the round failed or
         excluded the update), which the caller adds to what it pays or accrues.
    """
    last_round: uint256 = (tword >> packing.TRAINER_LAST_ROUND) & packing.MASK32
    if tword & 4 != 0 or last_round == 0:
        return tword, 0
    rword: uint256 = jobs._round[job_id][convert(last_round, uint32)]
    status: uint256 = rword & packing.MASK8
    if status == convert(jobs.ROUND_PENDING, uint256):
        return tword, 0
    word: uint256 = tword | 4
    if status != convert(jobs.ROUND_FINALIZED, uint256):
        return word, 0

    weight: uint256 = 0
    rounds: uint256 = (word >> packing.TRAINER_ROUNDS) & packing.MASK16
    if (rword >> packing.ROUND_SCORED) & 1 != 0:
        if word & 2 == 0:
            slot: uint256 = (word >> packing.TRAINER_SLOT) & packing.MASK12
            weight = (self._consensus[job_id][convert(last_round, uint32)][slot >> 4] >> ((slot & 15) << 4)) & packing.MASK16
        ema: uint256 = weight
        if rounds > 0:
            ema = (3 * ((word >> packing.TRAINER_SCORE) & packing.MASK16) + weight) // 4
        word = (word & ~(packing.MASK16 << packing.TRAINER_SCORE)) | (ema << packing.TRAINER_SCORE)
    elif word & 2 == 0:
        weight = (word >> packing.TRAINER_EXAMPLES) & packing.MASK48
    word = (word & ~(packing.MASK16 << packing.TRAINER_ROUNDS)) | (min(rounds + 1, packing.MASK16) << packing.TRAINER_ROUNDS)

    if weight == 0:
        return word, 0
    return word, (
        ((rword >> packing.ROUND_REWARD) & packing.MASK128) * weight
        // ((rword >> packing.ROUND_ACCEPTED_WEIGHT) & packing.MASK64)
    )


@internal
def _fold(job_id: uint256, account: address, tword: uint256):
    """
    @dev Adds a trainer's record in an ended job to its reputation across jobs:
         the score becomes the mean of the per-job scores weighted by scored
         rounds (floor), and rounds, flags and jobs add up.
    """
    rep: packing.Reputation = packing._unpack_reputation(self._reputation[account])
    rounds: uint64 = convert((tword >> packing.TRAINER_ROUNDS) & packing.MASK16, uint64)
    if jobs._config[job_id].scored and rounds > 0:
        total: uint64 = rep.scored_rounds + rounds
        rep.score = convert(
            (convert(rep.score, uint256) * convert(rep.scored_rounds, uint256)
             + ((tword >> packing.TRAINER_SCORE) & packing.MASK16) * convert(rounds, uint256))
            // convert(total, uint256),
            uint16,
        )
        rep.scored_rounds = total
    rep.rounds += rounds
    rep.flags += convert((tword >> packing.TRAINER_FLAGS) & packing.MASK16, uint64)
    rep.jobs += 1
    self._reputation[account] = packing._pack_reputation(rep)
    log ReputationUpdated(
        account=account, job_id=job_id, score=rep.score, rounds=rep.rounds,
        scored_rounds=rep.scored_rounds, flags=rep.flags, jobs=rep.jobs,
    )


@internal
def _settle_scores(job_id: uint256, round: uint32, commits: uint256, proposal: bytes32, fee: uint256) -> (uint256, uint256):
    """
    @dev Takes, for every committer, the stake-weighted lower median of the
         scores posted by the validators of the winning proposal, so a lying
         minority of stake cannot move it outside the honest validators'
         range. Stores the medians, credits `fee` in equal parts to the
         validators whose every score is within `score_tolerance` of the
         median, and returns (sum of the medians, fees credited).
    """
    voters: DynArray[address, jobs.MAX_COMMITTEE] = []
    weights: DynArray[uint256, jobs.MAX_COMMITTEE] = []
    total_stake: uint256 = 0
    for v: address in jobs._committee[job_id]:
        if jobs._proposal_of[job_id][round][v] == proposal:
            voters.append(v)
            stake: uint256 = stakes._stake[job_id][v]
            weights.append(stake)
            total_stake += stake
    n: uint256 = len(voters)
    if total_stake == 0:
        # no stakes (or all slashed away): one validator, one vote
        for i: uint256 in range(n, bound=jobs.MAX_COMMITTEE):
            weights[i] = 1
        total_stake = n
    tolerance: uint256 = convert(jobs._config[job_id].score_tolerance, uint256)
    near: DynArray[bool, jobs.MAX_COMMITTEE] = []
    for i: uint256 in range(n, bound=jobs.MAX_COMMITTEE):
        near.append(True)

    consensus: DynArray[uint256, jobs.MAX_SCORE_WORDS] = []
    total: uint256 = 0
    for k: uint256 in range((commits + 15) // 16, bound=jobs.MAX_SCORE_WORDS):
        words: DynArray[uint256, jobs.MAX_COMMITTEE] = []
        for v: address in voters:
            words.append(self._scores[job_id][v][k])
        out: uint256 = 0
        for lane: uint256 in range(min(16, commits - 16 * k), bound=16):
            bits: uint256 = 16 * lane
            # lower weighted median: the least value whose weight at or below it is half
            median: uint256 = packing.MASK16
            for i: uint256 in range(n, bound=jobs.MAX_COMMITTEE):
                value: uint256 = (words[i] >> bits) & packing.MASK16
                if value < median:
                    below: uint256 = 0
                    for j: uint256 in range(n, bound=jobs.MAX_COMMITTEE):
                        if (words[j] >> bits) & packing.MASK16 <= value:
                            below += weights[j]
                    if 2 * below >= total_stake:
                        median = value
            for i: uint256 in range(n, bound=jobs.MAX_COMMITTEE):
                value: uint256 = (words[i] >> bits) & packing.MASK16
                if max(value, median) - min(value, median) > tolerance:
                    near[i] = False
            out |= median << bits
            total += median
        self._consensus[job_id][round][k] = out
        consensus.append(out)
    log ScoresSettled(job_id=job_id, round=round, scores=consensus, total=convert(total, uint64))

    paid: uint256 = 0
    agreeing: uint256 = 0
    for i: uint256 in range(n, bound=jobs.MAX_COMMITTEE):
        if near[i]:
            agreeing += 1
    if fee > 0 and agreeing > 0:
        each: uint256 = fee // agreeing
        for i: uint256 in range(n, bound=jobs.MAX_COMMITTEE):
            if near[i]:
                self._fees[job_id][voters[i]] += each
                log ValidatorRewarded(job_id=job_id, validator=voters[i], round=round, amount=each)
        paid = each * agreeing
    return total, paid
