# pragma version ~=0.4.3
"""
@title Packed storage words for the coordinator
@custom:contract-name packing
@license MIT
@notice A trainer's commit must cost under 50k gas whatever the model size, so the
        state a commit touches lives in two 256-bit words: one per job (phase,
        round, deadline, counters) and one per trainer (registration, last
        commit, lazily accrued reward). These pure functions are the only code
        that knows the bit layout, so the layout is documented in one place.
@dev    Job word:      phase 0..7 | round 8..39 | deadline 40..103 |
                       commits 104..135 | trainers 136..167 | examples 168..231 |
                       version 232..255
        Trainer word:  registered 0 | excluded 1 | settled 2 | last_round 3..34 |
                       examples 35..82 | slot 83..94 | accrued 95..190 |
                       flags 191..206 | score 207..222 | rounds 223..238 |
                       ejected 239 | folded 240 | sampled 241
                       (a commit rewrites bits 0..94 and keeps 191.. as they are;
                       `slot` is the commit's position in the round, which indexes
                       the round's scores; `score` and `rounds` are the trainer's
                       record in this job: an EMA of its consensus scores and the
                       finalised rounds it committed to; `sampled`: the job
                       samples its trainers, so a commit names its seat)
        Round word:    status 0..7 | accepted_commits 8..39 | accepted_weight 40..103 |
                       reward 104..231 | scored 232
                       (weight is examples, or consensus scores in a scored job;
                       reward is what the round's trainers share)
        Reputation:    score 0..15 | rounds 16..63 | scored_rounds 64..111 |
                       flags 112..159 | jobs 160..207
"""

# Bit offsets of the fields, for hot paths that update a word in place.
JOB_ROUND: constant(uint256) = 8
JOB_DEADLINE: constant(uint256) = 40
JOB_COMMITS: constant(uint256) = 104
JOB_TRAINERS: constant(uint256) = 136
JOB_EXAMPLES: constant(uint256) = 168
TRAINER_LAST_ROUND: constant(uint256) = 3
TRAINER_EXAMPLES: constant(uint256) = 35
TRAINER_SLOT: constant(uint256) = 83
TRAINER_ACCRUED: constant(uint256) = 95
TRAINER_FLAGS: constant(uint256) = 191
TRAINER_SCORE: constant(uint256) = 207
TRAINER_ROUNDS: constant(uint256) = 223
TRAINER_EJECTED: constant(uint256) = 239
TRAINER_FOLDED: constant(uint256) = 240
TRAINER_SAMPLED: constant(uint256) = 241
ROUND_ACCEPTED_WEIGHT: constant(uint256) = 40
ROUND_REWARD: constant(uint256) = 104
ROUND_SCORED: constant(uint256) = 232

MASK8: constant(uint256) = 2**8 - 1
MASK12: constant(uint256) = 2**12 - 1
MASK16: constant(uint256) = 2**16 - 1
MASK24: constant(uint256) = 2**24 - 1
MASK32: constant(uint256) = 2**32 - 1
MASK48: constant(uint256) = 2**48 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK96: constant(uint256) = 2**96 - 1
MASK128: constant(uint256) = 2**128 - 1


struct JobWord:
    phase: uint8
    round: uint32
    deadline: uint64
    commits: uint32
    trainers: uint32
    examples: uint64
    version: uint24


struct TrainerWord:
    registered: bool
    excluded: bool
    settled: bool
    last_round: uint32
    examples: uint64
    slot: uint16
    accrued: uint128
    flags: uint16
    score: uint16
    rounds: uint16
    ejected: bool
    folded: bool
    sampled: bool


struct RoundWord:
    status: uint8
    accepted_commits: uint32
    accepted_weight: uint64
    reward: uint128
    scored: bool


struct Reputation:
    score: uint16
    rounds: uint64
    scored_rounds: uint64
    flags: uint64
    jobs: uint64


@internal
@pure
def _unpack_job(word: uint256) -> JobWord:
    """
    @dev Splits a job word into its fields.
    @param word The packed job word.
    @return JobWord The fields.
    """
    return JobWord(
        phase=convert(word & MASK8, uint8),
        round=convert((word >> 8) & MASK32, uint32),
        deadline=convert((word >> 40) & MASK64, uint64),
        commits=convert((word >> 104) & MASK32, uint32),
        trainers=convert((word >> 136) & MASK32, uint32),
        examples=convert((word >> 168) & MASK64, uint64),
        version=convert((word >> 232) & MASK24, uint24),
    )


@internal
@pure
def _pack_job(job: JobWord) -> uint256:
    """
    @dev Joins job fields into one word.
    @param job The fields.
    @return uint256 The packed word.
    """
    return (
        convert(job.phase, uint256)
        | (convert(job.round, uint256) << 8)
        | (convert(job.deadline, uint256) << 40)
        | (convert(job.commits, uint256) << 104)
        | (convert(job.trainers, uint256) << 136)
        | (convert(job.examples, uint256) << 168)
        | (convert(job.version, uint256) << 232)
    )


@internal
@pure
def _unpack_trainer(word: uint256) -> TrainerWord:
    """
    @dev Splits a trainer word into its fields.
    @param word The packed trainer word.
    @return TrainerWord The fields.
    """
    return TrainerWord(
        registered=(word & 1) != 0,
        excluded=(word & 2) != 0,
        settled=(word & 4) != 0,
        last_round=convert((word >> 3) & MASK32, uint32),
        examples=convert((word >> TRAINER_EXAMPLES) & MASK48, uint64),
        slot=convert((word >> TRAINER_SLOT) & MASK12, uint16),
        accrued=convert((word >> TRAINER_ACCRUED) & MASK96, uint128),
        flags=convert((word >> TRAINER_FLAGS) & MASK16, uint16),
        score=convert((word >> TRAINER_SCORE) & MASK16, uint16),
        rounds=convert((word >> TRAINER_ROUNDS) & MASK16, uint16),
        ejected=(word >> TRAINER_EJECTED) & 1 != 0,
        folded=(word >> TRAINER_FOLDED) & 1 != 0,
        sampled=(word >> TRAINER_SAMPLED) & 1 != 0,
    )


@internal
@pure
def _pack_trainer(t: TrainerWord) -> uint256:
    """
    @dev Joins trainer fields into one word.
    @param t The fields.
    @return uint256 The packed word.
    """
    word: uint256 = convert(t.last_round, uint256) << 3
    if t.registered:
        word |= 1
    if t.excluded:
        word |= 2
    if t.settled:
        word |= 4
    if t.ejected:
        word |= 1 << TRAINER_EJECTED
    if t.folded:
        word |= 1 << TRAINER_FOLDED
    if t.sampled:
        word |= 1 << TRAINER_SAMPLED
    return (
        word
        | ((convert(t.examples, uint256) & MASK48) << TRAINER_EXAMPLES)
        | ((convert(t.slot, uint256) & MASK12) << TRAINER_SLOT)
        | ((convert(t.accrued, uint256) & MASK96) << TRAINER_ACCRUED)
        | (convert(t.flags, uint256) << TRAINER_FLAGS)
        | (convert(t.score, uint256) << TRAINER_SCORE)
        | (convert(t.rounds, uint256) << TRAINER_ROUNDS)
    )


@internal
@pure
def _unpack_round(word: uint256) -> RoundWord:
    """
    @dev Splits a round-result word into its fields.
    @param word The packed round word.
    @return RoundWord The fields.
    """
    return RoundWord(
        status=convert(word & MASK8, uint8),
        accepted_commits=convert((word >> 8) & MASK32, uint32),
        accepted_weight=convert((word >> ROUND_ACCEPTED_WEIGHT) & MASK64, uint64),
        reward=convert((word >> ROUND_REWARD) & MASK128, uint128),
        scored=(word >> ROUND_SCORED) & 1 != 0,
    )


@internal
@pure
def _pack_round(r: RoundWord) -> uint256:
    """
    @dev Joins round-result fields into one word.
    @param r The fields.
    @return uint256 The packed word.
    """
    word: uint256 = (
        convert(r.status, uint256)
        | (convert(r.accepted_commits, uint256) << 8)
        | (convert(r.accepted_weight, uint256) << ROUND_ACCEPTED_WEIGHT)
        | (convert(r.reward, uint256) << ROUND_REWARD)
    )
    if r.scored:
        word |= 1 << ROUND_SCORED
    return word


@internal
@pure
def _unpack_reputation(word: uint256) -> Reputation:
    """
    @dev Splits an account's reputation word into its fields.
    @param word The packed reputation word.
    @return Reputation The fields.
    """
    return Reputation(
        score=convert(word & MASK16, uint16),
        rounds=convert((word >> 16) & MASK48, uint64),
        scored_rounds=convert((word >> 64) & MASK48, uint64),
        flags=convert((word >> 112) & MASK48, uint64),
        jobs=convert((word >> 160) & MASK48, uint64),
    )


@internal
@pure
def _pack_reputation(r: Reputation) -> uint256:
    """
    @dev Joins reputation fields into one word (each count saturates at 48 bits).
    @param r The fields.
    @return uint256 The packed word.
    """
    return (
        convert(r.score, uint256)
        | (min(convert(r.rounds, uint256), MASK48) << 16)
        | (min(convert(r.scored_rounds, uint256), MASK48) << 64)
        | (min(convert(r.flags, uint256), MASK48) << 112)
        | (min(convert(r.jobs, uint256), MASK48) << 160)
    )
