# pragma version ~=0.4.3
"""
@title fedledger round coordinator
@custom:contract-name coordinator
@license MIT
@notice Replaces the trusted server of federated learning. For each job it runs
        the round state machine (OPEN -> AGGREGATING -> FINALIZED or FAILED),
        holds the sponsor's reward pool and every participant's stake, accepts
        one update commitment per trainer per round, finalises a round when a
        quorum of the committee proposes the same aggregate, and pays the round
        reward to the accepted committers by number of examples. The quorum's
        proposal also flags provably bad updates: each flag slashes part of the
        trainer's stake into the reward pool, and enough flags eject it.
        Every state change emits an event: the event log is the audit trail.
@dev    Gas: a steady-state commit touches one job word and one trainer word
        (see `packing.vy`) and emits one event, so it costs the same for any
        model size. Rewards are not pushed: a trainer's share of the round it
        last committed to is settled lazily on its next commit or withdrawal.
        Rounding: a share is floor(reward * examples / accepted_examples); the
        dust (< accepted_commits wei per round) stays in the contract.
        Several jobs share one deployment; a new contract version serves new
        jobs while old ones stay auditable where they ran.
"""

from ethereum.ercs import IERC20

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


struct JobParams:
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
    committee: DynArray[address, MAX_COMMITTEE]
    allowlist: DynArray[address, MAX_ALLOWLIST]


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
    use_allowlist: bool


event JobCreated:
    job_id: indexed(uint256)
    sponsor: indexed(address)
    token: address
    spec_hash: bytes32
    initial_model: bytes32
    rounds: uint32
    quorum: uint32
    reward_pool: uint256


event Registered:
    job_id: indexed(uint256)
    account: indexed(address)
    trainer: bool
    validator: bool
    stake: uint256


event RoundOpened:
    job_id: indexed(uint256)
    round: uint32
    version: uint24
    global_model: bytes32
    deadline: uint64


event UpdateCommitted:
    job_id: indexed(uint256)
    trainer: indexed(address)
    round: uint32
    commitment: bytes32
    num_examples: uint64


event CommitsClosed:
    job_id: indexed(uint256)
    round: uint32
    commits: uint32
    examples: uint64
    deadline: uint64


event AggregateProposed:
    job_id: indexed(uint256)
    validator: indexed(address)
    round: uint32
    aggregate: bytes32
    proposal: bytes32
    excluded: DynArray[address, MAX_EXCLUDED]
    flags: uint256
    votes: uint32


event UpdateExcluded:
    job_id: indexed(uint256)
    trainer: indexed(address)
    round: uint32


event TrainerSlashed:
    job_id: indexed(uint256)
    trainer: indexed(address)
    round: uint32
    amount: uint256
    flags: uint16


event TrainerEjected:
    job_id: indexed(uint256)
    trainer: indexed(address)
    round: uint32
    flags: uint16


event ValidatorSlashed:
    job_id: indexed(uint256)
    validator: indexed(address)
    round: uint32
    proposal: bytes32
    amount: uint256


event RoundFinalized:
    job_id: indexed(uint256)
    round: uint32
    version: uint24
    aggregate: bytes32
    proposal: bytes32
    accepted_commits: uint32
    accepted_examples: uint64
    reward: uint256


event RoundFailed:
    job_id: indexed(uint256)
    round: uint32
    reason: String[32]
    failures: uint32


event JobCompleted:
    job_id: indexed(uint256)
    version: uint24
    final_model: bytes32


event JobAborted:
    job_id: indexed(uint256)
    round: uint32
    failures: uint32


event Withdrawn:
    job_id: indexed(uint256)
    account: indexed(address)
    reward: uint256
    stake: uint256


event PoolReclaimed:
    job_id: indexed(uint256)
    sponsor: indexed(address)
    amount: uint256


## @notice Number of jobs created; job ids run from 1.
job_count: public(uint256)

_config: HashMap[uint256, JobConfig]
_job: HashMap[uint256, uint256]
_trainer: HashMap[uint256, HashMap[address, uint256]]
# validator word: member 0 | registered 1 | last proposed round 2..33
_validator: HashMap[uint256, HashMap[address, uint256]]
_allowed: HashMap[uint256, HashMap[address, bool]]
_stake: HashMap[uint256, HashMap[address, uint256]]
_round: HashMap[uint256, HashMap[uint32, uint256]]
_round_model: HashMap[uint256, HashMap[uint32, bytes32]]
_votes: HashMap[uint256, HashMap[uint32, HashMap[bytes32, uint32]]]
_proposal_of: HashMap[uint256, HashMap[uint32, HashMap[address, bytes32]]]
_global_model: HashMap[uint256, bytes32]
_failures: HashMap[uint256, uint32]
_pool: HashMap[uint256, uint256]


@deploy
def __init__():
    """
    @dev Nothing to set up: jobs carry their own configuration.
    """
    pass


@external
def create_job(params: JobParams) -> uint256:
    """
    @notice Opens a job and its first round, pulling `rounds * reward_per_round`
            reward tokens from the caller (the sponsor), who must have approved them.
    @param params The job's on-chain parameters; `spec_hash` binds the full off-chain spec.
    @return uint256 The new job id.
    """
    assert params.token != empty(address), "coordinator: token is zero"
    assert params.rounds > 0, "coordinator: no rounds"
    assert params.min_commits > 0, "coordinator: min commits is zero"
    assert params.quorum > 0, "coordinator: quorum is zero"
    assert convert(params.quorum, uint256) <= len(params.committee), "coordinator: quorum above committee size"
    assert params.commit_window > 0 and params.aggregate_window > 0, "coordinator: window is zero"
    assert params.spec_hash != empty(bytes32), "coordinator: spec hash is zero"
    assert params.initial_model != empty(bytes32), "coordinator: initial model is zero"
    assert params.slash_bps <= 10000, "coordinator: slash above stake"

    job_id: uint256 = self.job_count + 1
    self.job_count = job_id
    for v: address in params.committee:
        assert v != empty(address), "coordinator: validator is zero"
        assert self._validator[job_id][v] == 0, "coordinator: duplicate validator"
        self._validator[job_id][v] = 1
    for a: address in params.allowlist:
        self._allowed[job_id][a] = True

    self._config[job_id] = JobConfig(
        sponsor=msg.sender,
        token=params.token,
        spec_hash=params.spec_hash,
        initial_model=params.initial_model,
        rounds=params.rounds,
        min_commits=params.min_commits,
        quorum=params.quorum,
        commit_window=params.commit_window,
        aggregate_window=params.aggregate_window,
        max_failures=params.max_failures,
        stake=params.stake,
        reward_per_round=params.reward_per_round,
        slash_bps=params.slash_bps,
        max_flags=params.max_flags,
        use_allowlist=len(params.allowlist) > 0,
    )
    pool: uint256 = params.reward_per_round * convert(params.rounds, uint256)
    self._pool[job_id] = pool
    self._global_model[job_id] = params.initial_model
    if pool > 0:
        assert extcall IERC20(params.token).transferFrom(msg.sender, self, pool), "coordinator: pool transfer failed"

    log JobCreated(
        job_id=job_id,
        sponsor=msg.sender,
        token=params.token,
        spec_hash=params.spec_hash,
        initial_model=params.initial_model,
        rounds=params.rounds,
        quorum=params.quorum,
        reward_pool=pool,
    )
    job: packing.JobWord = empty(packing.JobWord)
    self._open_round(job_id, job, 1, params.commit_window)
    return job_id


@external
def register(job_id: uint256, as_trainer: bool):
    """
    @notice Stakes `stake` tokens and joins a running job. A committee member is
            registered as validator too; `as_trainer` adds the trainer role.
    @param job_id The job.
    @param as_trainer Whether the caller will commit updates.
    """
    job: packing.JobWord = packing._unpack_job(self._job[job_id])
    assert job.phase == PHASE_OPEN or job.phase == PHASE_AGGREGATING, "coordinator: job not running"
    vword: uint256 = self._validator[job_id][msg.sender]
    is_member: bool = (vword & 1) != 0
    assert as_trainer or is_member, "coordinator: not a committee member"
    t: packing.TrainerWord = packing._unpack_trainer(self._trainer[job_id][msg.sender])
    assert not t.ejected, "coordinator: trainer ejected"
    assert not t.registered and (vword & 2) == 0, "coordinator: already registered"
    cfg_stake: uint256 = self._config[job_id].stake
    if as_trainer:
        if self._config[job_id].use_allowlist:
            assert self._allowed[job_id][msg.sender], "coordinator: not on allowlist"
        t.registered = True
        self._trainer[job_id][msg.sender] = packing._pack_trainer(t)
        job.trainers += 1
        self._job[job_id] = packing._pack_job(job)
    if is_member:
        self._validator[job_id][msg.sender] = vword | 2
    self._stake[job_id][msg.sender] = cfg_stake
    if cfg_stake > 0:
        assert extcall IERC20(self._config[job_id].token).transferFrom(msg.sender, self, cfg_stake), "coordinator: stake transfer failed"
    log Registered(job_id=job_id, account=msg.sender, trainer=as_trainer, validator=is_member, stake=cfg_stake)


@external
def commit(job_id: uint256, round: uint32, commitment: bytes32, num_examples: uint64):
    """
    @notice Commits this trainer's update for the open round: the Merkle root of
            its quantised update blob and the number of examples it trained on.
            Closes the commit phase early once every registered trainer has
            committed, provided that is at least `min_commits`.
    @param job_id The job.
    @param round The round the update was trained for.
    @param commitment Merkle root of the update blob in the blob store.
    @param num_examples FedAvg weight of the update.
    """
    # The hot path of the protocol: it works on the packed words in place
    # (layout in packing.vy) instead of unpacking them, to stay cheap in gas
    # and in EVM steps.
    word: uint256 = self._job[job_id]
    assert word & packing.MASK8 == convert(PHASE_OPEN, uint256), "coordinator: round not open"
    assert (word >> packing.JOB_ROUND) & packing.MASK32 == convert(round, uint256), "coordinator: wrong round"
    assert block.timestamp <= (word >> packing.JOB_DEADLINE) & packing.MASK64, "coordinator: commit window closed"
    assert commitment != empty(bytes32), "coordinator: empty commitment"
    assert num_examples > 0, "coordinator: no examples"
    tword: uint256 = self._trainer[job_id][msg.sender]
    if tword & 1 == 0:
        assert (tword >> packing.TRAINER_EJECTED) & 1 == 0, "coordinator: trainer ejected"
        raise "coordinator: not a registered trainer"
    last_round: uint256 = (tword >> packing.TRAINER_LAST_ROUND) & packing.MASK32
    assert last_round != convert(round, uint256), "coordinator: already committed"

    accrued: uint256 = (tword >> packing.TRAINER_ACCRUED) & packing.MASK128
    if tword & 4 == 0 and last_round != 0:
        accrued += self._share(job_id, tword)
        assert accrued <= packing.MASK128, "coordinator: reward overflow"
    # registered, not excluded, not settled, this round, these examples, accrued
    # reward, and the flag count kept as it was
    self._trainer[job_id][msg.sender] = (
        1
        | (convert(round, uint256) << packing.TRAINER_LAST_ROUND)
        | (convert(num_examples, uint256) << packing.TRAINER_EXAMPLES)
        | (accrued << packing.TRAINER_ACCRUED)
        | ((tword >> packing.TRAINER_FLAGS) << packing.TRAINER_FLAGS)
    )

    examples: uint256 = ((word >> packing.JOB_EXAMPLES) & packing.MASK64) + convert(num_examples, uint256)
    assert examples <= packing.MASK64, "coordinator: too many examples"
    word = word + (1 << packing.JOB_COMMITS) + (convert(num_examples, uint256) << packing.JOB_EXAMPLES)
    log UpdateCommitted(job_id=job_id, trainer=msg.sender, round=round, commitment=commitment, num_examples=num_examples)
    commits: uint256 = (word >> packing.JOB_COMMITS) & packing.MASK32
    if commits == (word >> packing.JOB_TRAINERS) & packing.MASK32:
        # every registered trainer has committed: close early, if that is enough commits
        # (the config is read only here, to keep the common commit cheap)
        if commits >= convert(self._config[job_id].min_commits, uint256):
            self._close_commits(job_id, packing._unpack_job(word))
            return
    self._job[job_id] = word


@external
def propose(
    job_id: uint256,
    round: uint32,
    aggregate: bytes32,
    excluded: DynArray[address, MAX_EXCLUDED],
    flags: uint256,
):
    """
    @notice A committee validator proposes the round's result: the Merkle root of
            the new global model, the committers whose updates it left out
            (sorted ascending) and which of those it flags as misbehaving. The
            round finalises as soon as `quorum` validators propose the
            identical result; a flag set that differs is a different proposal.
    @param job_id The job.
    @param round The aggregating round.
    @param aggregate Merkle root of the new global model blob.
    @param excluded Committers left out of the aggregate, strictly ascending.
    @param flags Bit i set: `excluded[i]` is flagged, to be slashed.
    """
    # checks read the packed job word in place; it is unpacked only to finalise
    word: uint256 = self._job[job_id]
    assert word & packing.MASK8 == convert(PHASE_AGGREGATING, uint256), "coordinator: round not aggregating"
    assert (word >> packing.JOB_ROUND) & packing.MASK32 == convert(round, uint256), "coordinator: wrong round"
    assert block.timestamp <= (word >> packing.JOB_DEADLINE) & packing.MASK64, "coordinator: aggregation window closed"
    assert aggregate != empty(bytes32), "coordinator: empty aggregate"
    vword: uint256 = self._validator[job_id][msg.sender]
    assert (vword & 2) != 0, "coordinator: not a registered validator"
    assert convert(vword >> 2, uint32) != round, "coordinator: already proposed"
    self._validator[job_id][msg.sender] = (vword & 3) | (convert(round, uint256) << 2)

    previous: address = empty(address)
    for trainer: address in excluded:
        assert convert(trainer, uint256) > convert(previous, uint256), "coordinator: excluded not sorted"
        previous = trainer
        last_round: uint256 = (self._trainer[job_id][trainer] >> packing.TRAINER_LAST_ROUND) & packing.MASK32
        assert last_round == convert(round, uint256), "coordinator: excluded not a committer"
    assert flags >> len(excluded) == 0, "coordinator: flag outside excluded"

    proposal: bytes32 = keccak256(abi_encode(aggregate, excluded, flags))
    votes: uint32 = self._votes[job_id][round][proposal] + 1
    self._votes[job_id][round][proposal] = votes
    self._proposal_of[job_id][round][msg.sender] = proposal
    log AggregateProposed(
        job_id=job_id, validator=msg.sender, round=round, aggregate=aggregate,
        proposal=proposal, excluded=excluded, flags=flags, votes=votes,
    )
    if votes == self._config[job_id].quorum:
        self._finalize(job_id, packing._unpack_job(word), aggregate, proposal, excluded, flags)


@external
def report_dissent(job_id: uint256, round: uint32, validator: address):
    """
    @notice Slashes a validator whose proposal for a finalised round differed
            from the quorum's: it proposed a result the honest majority did
            not compute. Anyone may report, once per validator and round.
    @param job_id The job.
    @param round A finalised round.
    @param validator The dissenting validator.
    """
    assert self._round[job_id][round] & packing.MASK8 == convert(ROUND_FINALIZED, uint256), "coordinator: round not finalized"
    proposal: bytes32 = self._proposal_of[job_id][round][validator]
    assert proposal != empty(bytes32), "coordinator: no proposal to dispute"
    assert self._votes[job_id][round][proposal] < self._config[job_id].quorum, "coordinator: proposal agreed with quorum"
    self._proposal_of[job_id][round][validator] = empty(bytes32)
    amount: uint256 = min(
        self._config[job_id].stake * convert(self._config[job_id].slash_bps, uint256) // 10000,
        self._stake[job_id][validator],
    )
    self._stake[job_id][validator] -= amount
    self._pool[job_id] += amount
    log ValidatorSlashed(job_id=job_id, validator=validator, round=round, proposal=proposal, amount=amount)


@external
def advance(job_id: uint256):
    """
    @notice Moves a round whose deadline has passed to its next phase, so no
            single party can stall a job: an open round with enough commits
            goes to aggregation, otherwise the round fails (and the next round
            opens, or the job aborts after `max_failures` failures in a row).
    @param job_id The job.
    """
    job: packing.JobWord = packing._unpack_job(self._job[job_id])
    assert job.phase == PHASE_OPEN or job.phase == PHASE_AGGREGATING, "coordinator: job not running"
    assert block.timestamp > convert(job.deadline, uint256), "coordinator: phase not expired"
    if job.phase == PHASE_OPEN:
        if job.commits >= self._config[job_id].min_commits:
            self._close_commits(job_id, job)
        else:
            self._fail(job_id, job, "too few commits")
    else:
        self._fail(job_id, job, "no quorum")


@external
def withdraw(job_id: uint256):
    """
    @notice Pays the caller its settled rewards and, once the job has ended,
            returns its stake.
    @param job_id The job.
    """
    job: packing.JobWord = packing._unpack_job(self._job[job_id])
    reward: uint256 = 0
    word: uint256 = self._trainer[job_id][msg.sender]
    if word != 0:
        # pay in 256 bits: the accrued field is 128 bits, the payout is not limited by it
        reward = self._unpaid(job_id, word)
        if self._resolved(job_id, word):
            word |= 4  # the last round's share is now paid: settled
        # accrued is paid: clear it, keep everything else (flags, ejection)
        self._trainer[job_id][msg.sender] = word & ~(packing.MASK128 << packing.TRAINER_ACCRUED)
    stake: uint256 = 0
    if job.phase == PHASE_DONE or job.phase == PHASE_ABORTED:
        stake = self._stake[job_id][msg.sender]
        self._stake[job_id][msg.sender] = 0
    assert reward + stake > 0, "coordinator: nothing to withdraw"
    assert extcall IERC20(self._config[job_id].token).transfer(msg.sender, reward + stake), "coordinator: transfer failed"
    log Withdrawn(job_id=job_id, account=msg.sender, reward=reward, stake=stake)


@external
def reclaim(job_id: uint256):
    """
    @notice Returns the unspent reward pool (failed rounds, excluded updates) to
            the sponsor once the job has ended.
    @param job_id The job.
    """
    assert msg.sender == self._config[job_id].sponsor, "coordinator: caller is not the sponsor"
    phase: uint8 = packing._unpack_job(self._job[job_id]).phase
    assert phase == PHASE_DONE or phase == PHASE_ABORTED, "coordinator: job not ended"
    amount: uint256 = self._pool[job_id]
    assert amount > 0, "coordinator: pool is empty"
    self._pool[job_id] = 0
    assert extcall IERC20(self._config[job_id].token).transfer(msg.sender, amount), "coordinator: transfer failed"
    log PoolReclaimed(job_id=job_id, sponsor=msg.sender, amount=amount)


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
def global_model(job_id: uint256) -> bytes32:
    """
    @notice Merkle root of the model trainers train from now.
    @param job_id The job.
    @return bytes32 The commitment.
    """
    return self._global_model[job_id]


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
def round_result(job_id: uint256, round: uint32) -> (packing.RoundWord, bytes32):
    """
    @notice A round's outcome and, if finalised, its aggregate commitment.
    @param job_id The job.
    @param round The round.
    @return packing.RoundWord The outcome.
    @return bytes32 The aggregate commitment.
    """
    return packing._unpack_round(self._round[job_id][round]), self._round_model[job_id][round]


@external
@view
def claimable(job_id: uint256, account: address) -> uint256:
    """
    @notice Reward `withdraw` would pay now, stake excluded.
    @param job_id The job.
    @param account The trainer.
    @return uint256 Token amount.
    """
    return self._unpaid(job_id, self._trainer[job_id][account])


@external
@view
def stake_of(job_id: uint256, account: address) -> uint256:
    """
    @notice Stake held for an account.
    @param job_id The job.
    @param account The participant.
    @return uint256 Token amount.
    """
    return self._stake[job_id][account]


@external
@view
def pool(job_id: uint256) -> uint256:
    """
    @notice Reward tokens not yet assigned to a finalised round.
    @param job_id The job.
    @return uint256 Token amount.
    """
    return self._pool[job_id]


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


@internal
@view
def _share(job_id: uint256, tword: uint256) -> uint256:
    """
    @dev The trainer's reward for the round it last committed to: zero until
         that round has an outcome, and zero if it failed or excluded the update.
    """
    rword: uint256 = self._round[job_id][convert((tword >> packing.TRAINER_LAST_ROUND) & packing.MASK32, uint32)]
    if rword & packing.MASK8 != convert(ROUND_FINALIZED, uint256) or tword & 2 != 0:
        return 0
    return (
        self._config[job_id].reward_per_round
        * ((tword >> packing.TRAINER_EXAMPLES) & packing.MASK64)
        // ((rword >> packing.ROUND_ACCEPTED_EXAMPLES) & packing.MASK64)
    )


@internal
@view
def _resolved(job_id: uint256, tword: uint256) -> bool:
    """
    @dev Whether the round the trainer last committed to has an outcome that
         is not yet settled into its accrued reward.
    """
    last_round: uint256 = (tword >> packing.TRAINER_LAST_ROUND) & packing.MASK32
    if tword & 4 != 0 or last_round == 0:
        return False
    return self._round[job_id][convert(last_round, uint32)] & packing.MASK8 != convert(ROUND_PENDING, uint256)


@internal
@view
def _unpaid(job_id: uint256, tword: uint256) -> uint256:
    """
    @dev Accrued reward plus the share of the last round, if it is resolved.
    """
    reward: uint256 = (tword >> packing.TRAINER_ACCRUED) & packing.MASK128
    if self._resolved(job_id, tword):
        reward += self._share(job_id, tword)
    return reward


@internal
def _open_round(job_id: uint256, job: packing.JobWord, round: uint32, window: uint64):
    """
    @dev Starts `round` with a fresh commit window.
    """
    result: packing.JobWord = job
    result.phase = PHASE_OPEN
    result.round = round
    result.deadline = convert(block.timestamp, uint64) + window
    result.commits = 0
    result.examples = 0
    self._job[job_id] = packing._pack_job(result)
    log RoundOpened(
        job_id=job_id, round=round, version=result.version,
        global_model=self._global_model[job_id], deadline=result.deadline,
    )


@internal
def _close_commits(job_id: uint256, job: packing.JobWord):
    """
    @dev Ends the commit phase and starts the aggregation window.
    """
    result: packing.JobWord = job
    result.phase = PHASE_AGGREGATING
    result.deadline = convert(block.timestamp, uint64) + self._config[job_id].aggregate_window
    self._job[job_id] = packing._pack_job(result)
    log CommitsClosed(
        job_id=job_id, round=result.round, commits=result.commits,
        examples=result.examples, deadline=result.deadline,
    )


@internal
def _finalize(
    job_id: uint256,
    job: packing.JobWord,
    aggregate: bytes32,
    proposal: bytes32,
    excluded: DynArray[address, MAX_EXCLUDED],
    flags: uint256,
):
    """
    @dev Applies the quorum's result: marks excluded updates, slashes and
         perhaps ejects flagged trainers (even if the round then fails: the
         quorum has judged the updates), records the round outcome, moves the
         round reward out of the pool and opens the next round (or completes
         the job).
    """
    result: packing.JobWord = job
    accepted_examples: uint64 = job.examples
    slash: uint256 = self._config[job_id].stake * convert(self._config[job_id].slash_bps, uint256) // 10000
    max_flags: uint16 = self._config[job_id].max_flags
    i: uint256 = 0
    for trainer: address in excluded:
        t: packing.TrainerWord = packing._unpack_trainer(self._trainer[job_id][trainer])
        t.excluded = True
        accepted_examples -= t.examples
        log UpdateExcluded(job_id=job_id, trainer=trainer, round=job.round)
        if (flags >> i) & 1 != 0:
            t.flags += 1
            amount: uint256 = min(slash, self._stake[job_id][trainer])
            self._stake[job_id][trainer] -= amount
            self._pool[job_id] += amount
            log TrainerSlashed(job_id=job_id, trainer=trainer, round=job.round, amount=amount, flags=t.flags)
            if max_flags > 0 and t.flags >= max_flags and t.registered:
                t.registered = False
                t.ejected = True
                result.trainers -= 1
                log TrainerEjected(job_id=job_id, trainer=trainer, round=job.round, flags=t.flags)
        self._trainer[job_id][trainer] = packing._pack_trainer(t)
        i += 1
    accepted_commits: uint32 = job.commits - convert(len(excluded), uint32)
    if accepted_commits < self._config[job_id].min_commits:
        self._fail(job_id, result, "too few accepted updates")
        return

    reward: uint256 = self._config[job_id].reward_per_round
    self._pool[job_id] -= reward
    self._round[job_id][job.round] = packing._pack_round(
        packing.RoundWord(
            status=ROUND_FINALIZED,
            accepted_commits=accepted_commits,
            accepted_examples=accepted_examples,
        )
    )
    self._round_model[job_id][job.round] = aggregate
    self._global_model[job_id] = aggregate
    self._failures[job_id] = 0
    result.version += 1
    log RoundFinalized(
        job_id=job_id, round=job.round, version=result.version, aggregate=aggregate,
        proposal=proposal, accepted_commits=accepted_commits,
        accepted_examples=accepted_examples, reward=reward,
    )
    if convert(result.version, uint32) >= self._config[job_id].rounds:
        result.phase = PHASE_DONE
        self._job[job_id] = packing._pack_job(result)
        log JobCompleted(job_id=job_id, version=result.version, final_model=aggregate)
    else:
        self._open_round(job_id, result, job.round + 1, self._config[job_id].commit_window)


@internal
def _fail(job_id: uint256, job: packing.JobWord, reason: String[32]):
    """
    @dev Records a failed round and retries with a new round, or aborts the job
         after more than `max_failures` failures in a row.
    """
    self._round[job_id][job.round] = packing._pack_round(
        packing.RoundWord(status=ROUND_FAILED, accepted_commits=0, accepted_examples=0)
    )
    failures: uint32 = self._failures[job_id] + 1
    self._failures[job_id] = failures
    log RoundFailed(job_id=job_id, round=job.round, reason=reason, failures=failures)
    if failures > self._config[job_id].max_failures:
        result: packing.JobWord = job
        result.phase = PHASE_ABORTED
        self._job[job_id] = packing._pack_job(result)
        log JobAborted(job_id=job_id, round=job.round, failures=failures)
    else:
        self._open_round(job_id, job, job.round + 1, self._config[job_id].commit_window)
