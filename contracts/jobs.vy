# pragma version ~=0.4.3
"""
@title The coordinator's shared job state
@custom:contract-name jobs
@license MIT
@notice Every part of the coordinator reads a job's configuration, its packed
        job word and its participants' words: this module holds that state so
        the modules for rounds, stakes, rewards and keys can share it without
        importing one another. It holds no logic beyond its getters.
@dev    A module of coordinator.vy (`initializes: jobs`), not a contract on its
        own. The packed words' bit layout is in `packing.vy`. The phase and
        round-outcome codes and the size bounds are here because every module
        compares against them.
"""

import packing


# Phases of a job's current round.
PHASE_NONE: constant(uint8) = 0
PHASE_OPEN: constant(uint8) = 1
PHASE_AGGREGATING: constant(uint8) = 2
PHASE_DONE: constant(uint8) = 3
PHASE_ABORTED: constant(uint8) = 4

# Outcome of a round, kept per round for lazy reward settlement.
ROUND_PENDING: constant(uint8) = 0
ROUND_FINALIZED: constant(uint8) = 1
ROUND_FAILED: constant(uint8) = 2

MAX_COMMITTEE: constant(uint256) = 128
MAX_EXCLUDED: constant(uint256) = 256
MAX_ALLOWLIST: constant(uint256) = 256
# Scores: 16 bits per committer, 16 to a word, in commit order; 0..SCORE_ONE,
# where SCORE_ONE is the round's best contribution as the validator measured it.
MAX_SCORE_WORDS: constant(uint256) = 256
MAX_COMMITS: constant(uint256) = 16 * MAX_SCORE_WORDS
SCORE_ONE: constant(uint256) = 10000


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


## @notice Number of jobs created; job ids run from 1.
job_count: public(uint256)

_config: HashMap[uint256, JobConfig]
_job: HashMap[uint256, uint256]
_trainer: HashMap[uint256, HashMap[address, uint256]]
# validator word: member 0 | registered 1 | last proposed round 2..33
_validator: HashMap[uint256, HashMap[address, uint256]]
_allowed: HashMap[uint256, HashMap[address, bool]]
# each round's outcome (packing.RoundWord), written once when it finalises or fails
_round: HashMap[uint256, HashMap[uint32, uint256]]
_votes: HashMap[uint256, HashMap[uint32, HashMap[bytes32, uint32]]]
_proposal_of: HashMap[uint256, HashMap[uint32, HashMap[address, bytes32]]]
_committee: HashMap[uint256, DynArray[address, MAX_COMMITTEE]]


@external
@view
def job_state(job_id: uint256) -> packing.JobWord:
    """
    @notice The job's current phase, round, deadline and counters.
    @param job_id The job.
    @return packing.JobWord The unpacked job word.
    """
    return packing._unpack_job(self._job[job_id])


@external
@view
def job_config(job_id: uint256) -> JobConfig:
    """
    @notice The job's immutable configuration.
    @param job_id The job.
    @return JobConfig The configuration.
    """
    return self._config[job_id]


@external
@view
def trainer_state(job_id: uint256, account: address) -> packing.TrainerWord:
    """
    @notice A trainer's registration, last commit and settled-but-unpaid reward.
    @param job_id The job.
    @param account The trainer.
    @return packing.TrainerWord The unpacked trainer word.
    """
    return packing._unpack_trainer(self._trainer[job_id][account])


@external
@view
def is_validator(job_id: uint256, account: address) -> bool:
    """
    @notice Whether an account is a registered committee validator.
    @param job_id The job.
    @param account The account.
    @return bool True when it may propose.
    """
    return (self._validator[job_id][account] & 2) != 0
