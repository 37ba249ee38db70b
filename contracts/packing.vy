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
                       examples 35..98 | accrued 99..226 | flags 227..242 |
                       ejected 243
        Round word:    status 0..7 | accepted_commits 8..39 | accepted_examples 40..103
"""

# Bit offsets of the fields, for hot paths that update a word in place.
JOB_ROUND: constant(uint256) = 8
JOB_DEADLINE: constant(uint256) = 40
JOB_COMMITS: constant(uint256) = 104
JOB_TRAINERS: constant(uint256) = 136
JOB_EXAMPLES: constant(uint256) = 168
TRAINER_LAST_ROUND: constant(uint256) = 3
TRAINER_EXAMPLES: constant(uint256) = 35
TRAINER_ACCRUED: constant(uint256) = 99
TRAINER_FLAGS: constant(uint256) = 227
TRAINER_EJECTED: constant(uint256) = 243
ROUND_ACCEPTED_EXAMPLES: constant(uint256) = 40

MASK8: constant(uint256) = 2**8 - 1
MASK16: constant(uint256) = 2**16 - 1
MASK24: constant(uint256) = 2**24 - 1
MASK32: constant(uint256) = 2**32 - 1
MASK64: constant(uint256) = 2**64 - 1
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
    accrued: uint128
    flags: uint16
    ejected: bool


struct RoundWord:
    status: uint8
    accepted_commits: uint32
    accepted_examples: uint64


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
        examples=convert((word >> 35) & MASK64, uint64),
        accrued=convert((word >> 99) & MASK128, uint128),
        flags=convert((word >> 227) & MASK16, uint16),
        ejected=(word >> 243) & 1 != 0,
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
        word |= 1 << 243
    return (
        word
        | (convert(t.examples, uint256) << 35)
        | (convert(t.accrued, uint256) << 99)
        | (convert(t.flags, uint256) << 227)
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
        accepted_examples=convert((word >> 40) & MASK64, uint64),
    )


@internal
@pure
def _pack_round(r: RoundWord) -> uint256:
    """
    @dev Joins round-result fields into one word.
    @param r The fields.
    @return uint256 The packed word.
    """
    return (
        convert(r.status, uint256)
        | (convert(r.accepted_commits, uint256) << 8)
        | (convert(r.accepted_examples, uint256) << 40)
    )
