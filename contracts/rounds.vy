# pragma version ~=0.4.3
"""
@title The round state machine
@custom:contract-name rounds
@license MIT
@notice Moves each job's current round OPEN -> AGGREGATING -> FINALIZED or
        FAILED, and the job to DONE after its last round or to ABORTED after
        more than `max_failures` failed rounds in a row. A round finalises when
        a quorum of the committee proposes the same result; applying that
        result excludes updates, slashes and perhaps ejects flagged trainers,
        settles a scored round's scores and moves the round reward out of the
        pool. `advance` lets anyone move a round whose deadline has passed, so
        no single party can stall a job.
@dev    A module of coordinator.vy, on top of the others: it reads the shared
        job state (jobs.vy), slashes into the pool (stakes.vy), settles scores
        (rewards.vy) and closes the key directory when a masked round fails
        (keys.vy). Each round that opens asks the sampler to draw (a no-op for
        a job that does not sample). Revert strings keep the `coordinator:`
        prefix: the deployed contract is the coordinator.
"""

import jobs
import keys
import packing
import rewards
import stakes

uses: jobs
uses: stakes
uses: keys
uses: rewards


interface Sampler:
    def bind(): nonpayable
    def draw(job_id: uint256, round: uint32, global_model: bytes32): nonpayable
    def check(job_id: uint256, round: uint32, account: address, committee: bool, seat: uint256) -> uint256: view


event PrivacySpent:
    job_id: indexed(uint256)
    round: uint32
    micro_epsilon: uint64


event RoundOpened:
    job_id: indexed(uint256)
    round: uint32
    version: uint24
    global_model: bytes32
    deadline: uint64


event CommitsClosed:
    job_id: indexed(uint256)
    round: uint32
    commits: uint32
    examples: uint64
    deadline: uint64


event UpdateExcluded:
    job_id: indexed(uint256)
    trainer: indexed(address)
    round: uint32


event RoundFinalized:
    job_id: indexed(uint256)
    round: uint32
    version: uint24
    aggregate: bytes32
    proposal: bytes32
    accepted_commits: uint32
    accepted_weight: uint64
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


_round_model: HashMap[uint256, HashMap[uint32, bytes32]]
_global_model: HashMap[uint256, bytes32]
# consecutive failed rounds; a finalised round resets it
_failures: HashMap[uint256, uint32]
# differential privacy: micro-ε spent by the job so far (the last quorum's figure)
_epsilon: HashMap[uint256, uint64]
# where jobs that sample their trainers or draw their committee draw them (sampler.vy);
# storage, not an immutable, because immutables lengthen the code past EIP-170
_sampler: address


@external
def advance(job_id: uint256):
    """
    @notice Moves a round whose deadline has passed to its next phase, so no
            single party can stall a job: an open round with enough commits
            goes to aggregation, otherwise the round fails (and the next round
            opens, or the job aborts after `max_failures` failures in a row).
    @param job_id The job.
    """
    job: packing.JobWord = packing._unpack_job(jobs._job[job_id])
    assert job.phase == jobs.PHASE_OPEN or job.phase == jobs.PHASE_AGGREGATING, "coordinator: job not running"
    assert block.timestamp > convert(job.deadline, uint256), "coordinator: phase not expired"
    if job.phase == jobs.PHASE_OPEN:
        if job.commits >= jobs._config[job_id].min_commits:
            self._close_commits(job_id, job)
        else:
            self._fail(job_id, job, "too few commits")
    else:
        self._fail(job_id, job, "no quorum")


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
    return packing._unpack_round(jobs._round[job_id][round]), self._round_model[job_id][round]


@external
@view
def epsilon_spent(job_id: uint256) -> uint64:
    """
    @notice Privacy loss ε the job has spent so far, in micro-ε (zero without DP).
    @param job_id The job.
    @return uint64 The last quorum's cumulative ε, times 10^6, rounded up.
    """
    return self._epsilon[job_id]


@external
@view
def global_model(job_id: uint256) -> bytes32:
    """
    @notice Merkle root of the model trainers train from now.
    @param job_id The job.
    @return bytes32 The commitment.
    """
    return self._global_model[job_id]


@internal
def _open_round(job_id: uint256, job: packing.JobWord, round: uint32, window: uint64):
    """
    @dev Starts `round` with a fresh commit window.
    """
    result: packing.JobWord = job
    result.phase = jobs.PHASE_OPEN
    result.round = round
    result.deadline = convert(block.timestamp, uint64) + window
    result.commits = 0
    result.examples = 0
    jobs._job[job_id] = packing._pack_job(result)
    log RoundOpened(
        job_id=job_id, round=round, version=result.version,
        global_model=self._global_model[job_id], deadline=result.deadline,
    )
    # a job that samples has the sampler draw as the round opens (a no-op for others)
    extcall Sampler(self._sampler).draw(job_id, round, self._global_model[job_id])


@internal
def _close_commits(job_id: uint256, job: packing.JobWord):
    """
    @dev Ends the commit phase and starts the aggregation window.
    """
    result: packing.JobWord = job
    result.phase = jobs.PHASE_AGGREGATING
    result.deadline = convert(block.timestamp, uint64) + jobs._config[job_id].aggregate_window
    jobs._job[job_id] = packing._pack_job(result)
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
    excluded: DynArray[address, jobs.MAX_EXCLUDED],
    flags: uint256,
    scored: bool,
):
    """
    @dev Applies the quorum's result: marks excluded updates, slashes and
         perhaps ejects flagged trainers (even if the round then fails: the
         quorum has judged the updates), settles the scores of a scored job,
         records the round outcome, moves the round reward out of the pool
         and opens the next round (or completes the job). A scored round in
         which no committer scored above zero pays no trainer: its reward
         stays in the pool.
    """
    result: packing.JobWord = job
    accepted_examples: uint64 = job.examples
    slash: uint256 = jobs._config[job_id].stake * convert(jobs._config[job_id].slash_bps, uint256) // 10000
    max_flags: uint16 = jobs._config[job_id].max_flags
    i: uint256 = 0
    for trainer: address in excluded:
        t: packing.TrainerWord = packing._unpack_trainer(jobs._trainer[job_id][trainer])
        t.excluded = True
        accepted_examples -= t.examples
        log UpdateExcluded(job_id=job_id, trainer=trainer, round=job.round)
        if (flags >> i) & 1 != 0:
            t.flags += 1
            amount: uint256 = min(slash, stakes._stake[job_id][trainer])
            stakes._stake[job_id][trainer] -= amount
            stakes._pool[job_id] += amount
            log stakes.TrainerSlashed(job_id=job_id, trainer=trainer, round=job.round, amount=amount, flags=t.flags)
            if max_flags > 0 and t.flags >= max_flags and t.registered:
                t.registered = False
                t.ejected = True
                result.trainers -= 1
                log stakes.TrainerEjected(job_id=job_id, trainer=trainer, round=job.round, flags=t.flags)
        jobs._trainer[job_id][trainer] = packing._pack_trainer(t)
        i += 1
    accepted_commits: uint32 = job.commits - convert(len(excluded), uint32)
    if accepted_commits < jobs._config[job_id].min_commits:
        self._fail(job_id, result, "too few accepted updates")
        return

    reward: uint256 = jobs._config[job_id].reward_per_round
    weight: uint256 = convert(accepted_examples, uint256)
    if scored:
        fee: uint256 = reward * convert(jobs._config[job_id].validator_fee_bps, uint256) // 10000
        reward -= fee
        fees: uint256 = 0
        weight, fees = rewards._settle_scores(job_id, job.round, convert(job.commits, uint256), proposal, fee)
        stakes._pool[job_id] -= fees
        if weight == 0:
            reward = 0
    stakes._pool[job_id] -= reward
    jobs._round[job_id][job.round] = packing._pack_round(
        packing.RoundWord(
            status=jobs.ROUND_FINALIZED,
            accepted_commits=accepted_commits,
            accepted_weight=convert(weight, uint64),
            reward=convert(reward, uint128),
            scored=scored,
        )
    )
    self._round_model[job_id][job.round] = aggregate
    self._global_model[job_id] = aggregate
    self._failures[job_id] = 0
    result.version += 1
    log RoundFinalized(
        job_id=job_id, round=job.round, version=result.version, aggregate=aggregate,
        proposal=proposal, accepted_commits=accepted_commits,
        accepted_weight=convert(weight, uint64), reward=reward,
    )
    if convert(result.version, uint32) >= jobs._config[job_id].rounds:
        result.phase = jobs.PHASE_DONE
        jobs._job[job_id] = packing._pack_job(result)
        log JobCompleted(job_id=job_id, version=result.version, final_model=aggregate)
    else:
        self._open_round(job_id, result, job.round + 1, jobs._config[job_id].commit_window)


@internal
def _fail(job_id: uint256, job: packing.JobWord, reason: String[32]):
    """
    @dev Records a failed round and retries with a new round, or aborts the job
         after more than `max_failures` failures in a row.
    """
    jobs._round[job_id][job.round] = packing._pack_round(
        packing.RoundWord(status=jobs.ROUND_FAILED, accepted_commits=0, accepted_weight=0, reward=0, scored=False)
    )
    if job.version == 0 and job.commits > 0:
        keys._keys_used[job_id] = True  # those commits were masked against the directory
    failures: uint32 = self._failures[job_id] + 1
    self._failures[job_id] = failures
    log RoundFailed(job_id=job_id, round=job.round, reason=reason, failures=failures)
    if failures > jobs._config[job_id].max_failures:
        result: packing.JobWord = job
        result.phase = jobs.PHASE_ABORTED
        jobs._job[job_id] = packing._pack_job(result)
        log JobAborted(job_id=job_id, round=job.round, failures=failures)
    else:
        self._open_round(job_id, job, job.round + 1, jobs._config[job_id].commit_window)
