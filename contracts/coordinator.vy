# pragma version ~=0.4.3
# pragma optimize codesize
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
        In a scored job each validator also posts a contribution score per
        committer; the round reward is split by the stake-weighted median of
        the quorum's scores, so no single validator decides who is paid, and
        validators whose scores stay near that consensus share a fee. Each
        trainer's consensus scores, rounds and flags build an on-chain
        reputation that a job may require to join.
        Every state change emits an event: the event log is the audit trail.
@dev    Gas: a steady-state commit touches one job word and one trainer word
        (see `packing.vy`) and emits one event, so it costs the same for any
        model size. Rewards are not pushed: a trainer's share of the round it
        last committed to is settled lazily on its next commit or withdrawal.
        Rounding: a share is floor(reward * weight / accepted_weight), where the
        weight is the trainer's examples or, in a scored job, its consensus
        score; the dust (< accepted_commits wei per round) stays in the contract.
        Several jobs share one deployment; a new contract version serves new
        jobs while old ones stay auditable where they ran.
        Composition: this file holds the entry points that cross every part
        (create_job, register, commit, propose, withdraw) and exports the rest
        from its modules: jobs.vy (the shared job state), stakes.vy (stakes,
        pool, slashing), keys.vy (the secure-aggregation key directory),
        rewards.vy (settlement, scores, fees, reputation) and rounds.vy (the
        round state machine). Their revert strings keep the `coordinator:`
        prefix, since this is the contract that reverts. Storage is laid out
        in the order of the `initializes:` lines below; `Coordinator.sampler()`
        in src/fedledger/chain/coordinator.py reads `rounds._sampler` by slot.
"""

from ethereum.ercs import IERC20

import jobs
import keys
import packing
import rewards
import rounds
import stakes

initializes: jobs
initializes: stakes[jobs := jobs]
initializes: keys[jobs := jobs]
initializes: rewards[jobs := jobs, stakes := stakes]
initializes: rounds[jobs := jobs, stakes := stakes, keys := keys, rewards := rewards]

exports: (
    jobs.job_count,
    jobs.job_state,
    jobs.job_config,
    jobs.trainer_state,
    jobs.is_validator,
    stakes.report_dissent,
    stakes.reclaim,
    stakes.stake_of,
    stakes.pool,
    keys.reveal,
    keys.public_key,
    rewards.claimable,
    rewards.fees_of,
    rewards.consensus_score,
    rewards.reputation,
    rounds.advance,
    rounds.round_result,
    rounds.epsilon_spent,
    rounds.global_model,
)


interface DataRegistry:
    def bind(): nonpayable


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
    scored: bool
    validator_fee_bps: uint16
    score_tolerance: uint16
    min_reputation: uint16
    clients_per_round: uint16
    validators_per_round: uint16
    committee: DynArray[address, jobs.MAX_COMMITTEE]
    allowlist: DynArray[address, jobs.MAX_ALLOWLIST]


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


event UpdateCommitted:
    job_id: indexed(uint256)
    trainer: indexed(address)
    round: uint32
    commitment: bytes32
    num_examples: uint64


event AggregateProposed:
    job_id: indexed(uint256)
    validator: indexed(address)
    round: uint32
    aggregate: bytes32
    proposal: bytes32
    excluded: DynArray[address, jobs.MAX_EXCLUDED]
    flags: uint256
    scores: DynArray[uint256, jobs.MAX_SCORE_WORDS]
    votes: uint32


event Withdrawn:
    job_id: indexed(uint256)
    account: indexed(address)
    reward: uint256
    fees: uint256
    stake: uint256


## @notice Where the trainers of this coordinator's jobs commit to their data (data_registry.vy).
data_registry: public(immutable(address))


@deploy
def __init__(data_registry_: address, sampler_: address):
    """
    @dev Jobs carry their own configuration; the only setup is binding the data
         registry and the sampler, which then check their callers against
         this coordinator.
    @param data_registry_ A freshly deployed, unbound data registry.
    @param sampler_ A freshly deployed, unbound sampler.
    """
    data_registry = data_registry_
    rounds._sampler = sampler_
    extcall DataRegistry(data_registry_).bind()
    extcall rounds.Sampler(sampler_).bind()


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
    # a drawn committee (validators_per_round > 0) replaces the fixed one, which must be empty
    assert convert(params.quorum, uint256) <= len(params.committee) + convert(params.validators_per_round, uint256) and (params.validators_per_round == 0 or (len(params.committee) == 0 and not params.scored)), "coordinator: quorum above committee size"
    assert params.commit_window > 0 and params.aggregate_window > 0, "coordinator: window is zero"
    assert params.spec_hash != empty(bytes32), "coordinator: spec hash is zero"
    assert params.initial_model != empty(bytes32), "coordinator: initial model is zero"
    assert params.slash_bps <= 10000, "coordinator: slash above stake"
    assert params.reward_per_round <= packing.MASK128, "coordinator: reward too large"
    assert params.validator_fee_bps <= 10000, "coordinator: fee above reward"
    assert params.scored or params.validator_fee_bps == 0, "coordinator: fee needs scores"
    assert convert(params.min_reputation, uint256) <= jobs.SCORE_ONE, "coordinator: reputation above maximum"

    job_id: uint256 = jobs.job_count + 1
    jobs.job_count = job_id
    for v: address in params.committee:
        assert v != empty(address), "coordinator: validator is zero"
        assert jobs._validator[job_id][v] == 0, "coordinator: duplicate validator"
        jobs._validator[job_id][v] = 1
    jobs._committee[job_id] = params.committee
    for a: address in params.allowlist:
        jobs._allowed[job_id][a] = True

    jobs._config[job_id] = jobs.JobConfig(
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
        scored=params.scored,
        validator_fee_bps=params.validator_fee_bps,
        score_tolerance=params.score_tolerance,
        min_reputation=params.min_reputation,
        use_allowlist=len(params.allowlist) > 0,
        clients_per_round=params.clients_per_round,
        validators_per_round=params.validators_per_round,
        committee_size=convert(len(params.committee), uint16),
    )
    pool: uint256 = params.reward_per_round * convert(params.rounds, uint256)
    stakes._pool[job_id] = pool
    rounds._global_model[job_id] = params.initial_model
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
    rounds._open_round(job_id, job, 1, params.commit_window)
    return job_id


@external
def register(job_id: uint256, as_trainer: bool):
    """
    @notice Stakes `stake` tokens and joins a running job. A committee member is
            registered as validator too; `as_trainer` adds the trainer role.
    @param job_id The job.
    @param as_trainer Whether the caller will commit updates.
    """
    self._register(job_id, as_trainer)


@external
def register_with_key(job_id: uint256, public_key: bytes32):
    """
    @notice Joins a secure-aggregation job as a trainer (as `register` does) and
            publishes the caller's X25519 public key in the job's key directory,
            from which every participant derives its pairwise masks and share
            keys: the chain is the bulletin board, there is no key server.
    @dev    The directory closes at the job's first commit: masks are computed
            against the set of keys, so that set must not change under them. A
            round that fails with no commit at all (the organisations' nodes were
            still starting) leaves it open. A key cannot be replaced (registering
            twice reverts).
    @param job_id The job.
    @param public_key The trainer's 32-byte X25519 public key.
    """
    assert public_key != empty(bytes32), "coordinator: key is zero"
    job: packing.JobWord = packing._unpack_job(jobs._job[job_id])
    assert job.version == 0 and job.commits == 0 and not keys._keys_used[job_id], "coordinator: key directory closed"
    self._register(job_id, True)
    keys._public_key[job_id][msg.sender] = public_key
    log keys.KeyRegistered(job_id=job_id, trainer=msg.sender, public_key=public_key)


@internal
def _register(job_id: uint256, as_trainer: bool):
    """
    @dev Registration touches every part (the job and participant words, the
         allowlist, reputation across jobs, the stake), so it stays here rather
         than in a module. A committee member registers as validator; a trainer
         must pass the allowlist and the job's reputation floor.
    """
    job: packing.JobWord = packing._unpack_job(jobs._job[job_id])
    assert job.phase == jobs.PHASE_OPEN or job.phase == jobs.PHASE_AGGREGATING, "coordinator: job not running"
    vword: uint256 = jobs._validator[job_id][msg.sender]
    is_member: bool = (vword & 1) != 0
    assert as_trainer or is_member, "coordinator: not a committee member"
    t: packing.TrainerWord = packing._unpack_trainer(jobs._trainer[job_id][msg.sender])
    assert not t.ejected, "coordinator: trainer ejected"
    assert not t.registered and (vword & 2) == 0, "coordinator: already registered"
    cfg_stake: uint256 = jobs._config[job_id].stake
    if as_trainer:
        if jobs._config[job_id].use_allowlist:
            assert jobs._allowed[job_id][msg.sender], "coordinator: not on allowlist"
        min_reputation: uint16 = jobs._config[job_id].min_reputation
        if min_reputation > 0:
            rep: packing.Reputation = packing._unpack_reputation(rewards._reputation[msg.sender])
            assert rep.scored_rounds > 0 and rep.score >= min_reputation, "coordinator: reputation too low"
        t.registered = True
        t.sampled = jobs._config[job_id].clients_per_round > 0
        jobs._trainer[job_id][msg.sender] = packing._pack_trainer(t)
        job.trainers += 1
        jobs._job[job_id] = packing._pack_job(job)
    if is_member:
        jobs._validator[job_id][msg.sender] = vword | 2
    stakes._stake[job_id][msg.sender] = cfg_stake
    if cfg_stake > 0:
        assert extcall IERC20(jobs._config[job_id].token).transferFrom(msg.sender, self, cfg_stake), "coordinator: stake transfer failed"
    log Registered(job_id=job_id, account=msg.sender, trainer=as_trainer, validator=is_member, stake=cfg_stake)


@external
def commit(job_id: uint256, round: uint32, commitment: bytes32, num_examples: uint64, seat: uint256):
    """
    @notice Commits this trainer's update for the open round: the Merkle root of
            its quantised update blob and the number of examples it trained on.
            Closes the commit phase early once every registered trainer (in a
            job that samples trainers: every seat) has committed, provided
            that is at least `min_commits`.
    @param job_id The job.
    @param round The round the update was trained for.
    @param commitment Merkle root of the update blob in the blob store.
    @param num_examples FedAvg weight of the update.
    @param seat In a job that samples trainers, the caller's seat in the
           round's draw (0..clients_per_round-1), so the contract checks one
           seat, not the sample; ignored otherwise.
    """
    # The hot path of the protocol: it works on the packed words in place
    # (layout in packing.vy) instead of unpacking them, to stay cheap in gas
    # and in EVM steps.
    word: uint256 = jobs._job[job_id]
    assert word & packing.MASK8 == convert(jobs.PHASE_OPEN, uint256), "coordinator: round not open"
    assert (word >> packing.JOB_ROUND) & packing.MASK32 == convert(round, uint256), "coordinator: wrong round"
    assert block.timestamp <= (word >> packing.JOB_DEADLINE) & packing.MASK64, "coordinator: commit window closed"
    assert commitment != empty(bytes32), "coordinator: empty commitment"
    assert num_examples > 0, "coordinator: no examples"
    tword: uint256 = jobs._trainer[job_id][msg.sender]
    if tword & 1 == 0:
        assert (tword >> packing.TRAINER_EJECTED) & 1 == 0, "coordinator: trainer ejected"
        raise "coordinator: not a registered trainer"
    last_round: uint256 = (tword >> packing.TRAINER_LAST_ROUND) & packing.MASK32
    assert last_round != convert(round, uint256), "coordinator: already committed"
    # the trainers to wait for before closing early: all registered, or the seats
    expected: uint256 = (word >> packing.JOB_TRAINERS) & packing.MASK32
    if (tword >> packing.TRAINER_SAMPLED) & 1 != 0:
        # the sampler reverts unless the caller holds the seat; it returns the seats
        expected = staticcall rounds.Sampler(rounds._sampler).check(job_id, round, msg.sender, False, seat)
    slot: uint256 = (word >> packing.JOB_COMMITS) & packing.MASK32
    assert slot < jobs.MAX_COMMITS, "coordinator: round is full"

    if tword & 4 == 0 and last_round != 0:
        share: uint256 = 0
        tword, share = rewards._settled(job_id, tword)
        if share > 0:
            accrued: uint256 = ((tword >> packing.TRAINER_ACCRUED) & packing.MASK96) + share
            assert accrued <= packing.MASK96, "coordinator: reward overflow"
            tword = (tword & ~(packing.MASK96 << packing.TRAINER_ACCRUED)) | (accrued << packing.TRAINER_ACCRUED)
    # registered, not excluded, not settled, this round, these examples, this
    # slot, the accrued reward, and the record (flags, score, rounds) kept
    jobs._trainer[job_id][msg.sender] = (
        1
        | (convert(round, uint256) << packing.TRAINER_LAST_ROUND)
        | (convert(num_examples, uint256) << packing.TRAINER_EXAMPLES)
        | (slot << packing.TRAINER_SLOT)
        | ((tword >> packing.TRAINER_ACCRUED) << packing.TRAINER_ACCRUED)
    )

    # at most MAX_COMMITS commits of 48 bits each: the job word's 64-bit sum cannot overflow
    assert convert(num_examples, uint256) <= packing.MASK48, "coordinator: too many examples"
    word = word + (1 << packing.JOB_COMMITS) + (convert(num_examples, uint256) << packing.JOB_EXAMPLES)
    log UpdateCommitted(job_id=job_id, trainer=msg.sender, round=round, commitment=commitment, num_examples=num_examples)
    commits: uint256 = (word >> packing.JOB_COMMITS) & packing.MASK32
    if commits == expected:
        # every registered (or sampled) trainer has committed: close early, if that is enough commits
        # (the config is read only here, to keep the common commit cheap)
        if commits >= convert(jobs._config[job_id].min_commits, uint256):
            rounds._close_commits(job_id, packing._unpack_job(word))
            return
    jobs._job[job_id] = word


@external
def propose(
    job_id: uint256,
    round: uint32,
    aggregate: bytes32,
    excluded: DynArray[address, jobs.MAX_EXCLUDED],
    flags: uint256,
    scores: DynArray[uint256, jobs.MAX_SCORE_WORDS],
    micro_epsilon: uint64,
    seat: uint256,
):
    """
    @notice A committee validator proposes the round's result: the Merkle root of
            the new global model, the committers whose updates it left out
            (sorted ascending) and which of those it flags as misbehaving. The
            round finalises as soon as `quorum` validators propose the
            identical result; a flag set that differs is a different proposal.
            In a scored job it also posts its contribution score for every
            committer. Scores are not part of the proposal: honest validators
            may measure slightly differently, and the stake-weighted median
            over the quorum settles them.
    @param job_id The job.
    @param round The aggregating round.
    @param aggregate Merkle root of the new global model blob.
    @param excluded Committers left out of the aggregate, strictly ascending.
    @param flags Bit i set: `excluded[i]` is flagged, to be slashed.
    @param scores 16 bits per committer in commit order (lane i of word k is
           the committer in slot 16k+i), each 0..SCORE_ONE, zero for excluded
           updates; empty unless the job is scored.
    @param micro_epsilon In a differentially private job, the privacy loss ε spent
           once this round's noisy aggregate is released, in micro-ε (10^-6),
           cumulative over the job, as the spec's accountant computes it from
           public values; part of the proposal, so the quorum must agree on it.
           Zero in a job without differential privacy.
    @param seat In a job that draws its committee, the caller's seat in the
           round's draw (0..validators_per_round-1); ignored otherwise.
    """
    # checks read the packed job word in place; it is unpacked only to finalise
    word: uint256 = jobs._job[job_id]
    assert word & packing.MASK8 == convert(jobs.PHASE_AGGREGATING, uint256), "coordinator: round not aggregating"
    assert (word >> packing.JOB_ROUND) & packing.MASK32 == convert(round, uint256), "coordinator: wrong round"
    assert block.timestamp <= (word >> packing.JOB_DEADLINE) & packing.MASK64, "coordinator: aggregation window closed"
    assert aggregate != empty(bytes32), "coordinator: empty aggregate"
    vword: uint256 = jobs._validator[job_id][msg.sender]
    # not a member of a fixed committee: of the round's drawn one, if it holds the seat
    assert (vword & 2) != 0 or staticcall rounds.Sampler(rounds._sampler).check(job_id, round, msg.sender, True, seat) > 0, "coordinator: not a registered validator"
    assert convert(vword >> 2, uint32) != round, "coordinator: already proposed"
    jobs._validator[job_id][msg.sender] = (vword & 3) | (convert(round, uint256) << 2)

    scored: bool = jobs._config[job_id].scored
    if scored:
        commits: uint256 = (word >> packing.JOB_COMMITS) & packing.MASK32
        assert len(scores) == (commits + 15) // 16, "coordinator: wrong number of scores"
        tail: uint256 = commits % 16
        if tail != 0:
            assert scores[len(scores) - 1] >> (16 * tail) == 0, "coordinator: score for a non-committer"
        for k: uint256 in range(len(scores), bound=jobs.MAX_SCORE_WORDS):
            w: uint256 = scores[k]
            for lane: uint256 in range(16):
                assert (w >> (16 * lane)) & packing.MASK16 <= jobs.SCORE_ONE, "coordinator: score out of range"
            rewards._scores[job_id][msg.sender][k] = w
    else:
        assert len(scores) == 0, "coordinator: job is not scored"

    previous: address = empty(address)
    for trainer: address in excluded:
        assert convert(trainer, uint256) > convert(previous, uint256), "coordinator: excluded not sorted"
        previous = trainer
        tword: uint256 = jobs._trainer[job_id][trainer]
        last_round: uint256 = (tword >> packing.TRAINER_LAST_ROUND) & packing.MASK32
        assert last_round == convert(round, uint256), "coordinator: excluded not a committer"
        if scored:
            slot: uint256 = (tword >> packing.TRAINER_SLOT) & packing.MASK12
            assert (scores[slot >> 4] >> ((slot & 15) << 4)) & packing.MASK16 == 0, "coordinator: score for an excluded update"
    assert flags >> len(excluded) == 0, "coordinator: flag outside excluded"

    proposal: bytes32 = keccak256(abi_encode(aggregate, excluded, flags, micro_epsilon))
    votes: uint32 = jobs._votes[job_id][round][proposal] + 1
    jobs._votes[job_id][round][proposal] = votes
    jobs._proposal_of[job_id][round][msg.sender] = proposal
    log AggregateProposed(
        job_id=job_id, validator=msg.sender, round=round, aggregate=aggregate,
        proposal=proposal, excluded=excluded, flags=flags, scores=scores, votes=votes,
    )
    if votes == jobs._config[job_id].quorum:
        if micro_epsilon != 0:
            # the quorum released a noisy aggregate: record the privacy spent so far
            assert micro_epsilon >= rounds._epsilon[job_id], "coordinator: epsilon decreased"
            rounds._epsilon[job_id] = micro_epsilon
            log rounds.PrivacySpent(job_id=job_id, round=round, micro_epsilon=micro_epsilon)
        rounds._finalize(job_id, packing._unpack_job(word), aggregate, proposal, excluded, flags, scored)


@external
def withdraw(job_id: uint256):
    """
    @notice Pays the caller its settled rewards and, once the job has ended,
            returns its stake.
    @param job_id The job.
    """
    job: packing.JobWord = packing._unpack_job(jobs._job[job_id])
    ended: bool = job.phase == jobs.PHASE_DONE or job.phase == jobs.PHASE_ABORTED
    reward: uint256 = 0
    folded: bool = False
    word: uint256 = jobs._trainer[job_id][msg.sender]
    if word != 0:
        # pay in 256 bits: the accrued field is 96 bits, the payout is not limited by it
        share: uint256 = 0
        word, share = rewards._settled(job_id, word)
        reward = ((word >> packing.TRAINER_ACCRUED) & packing.MASK96) + share
        # accrued is paid: clear it, keep everything else (record, ejection)
        word &= ~(packing.MASK96 << packing.TRAINER_ACCRUED)
        if ended and (word >> packing.TRAINER_FOLDED) & 1 == 0:
            rewards._fold(job_id, msg.sender, word)
            word |= 1 << packing.TRAINER_FOLDED
            folded = True
        jobs._trainer[job_id][msg.sender] = word
    fees: uint256 = rewards._fees[job_id][msg.sender]
    rewards._fees[job_id][msg.sender] = 0
    stake: uint256 = 0
    if ended:
        stake = stakes._stake[job_id][msg.sender]
        stakes._stake[job_id][msg.sender] = 0
    amount: uint256 = reward + fees + stake
    assert amount > 0 or folded, "coordinator: nothing to withdraw"
    if amount > 0:
        assert extcall IERC20(jobs._config[job_id].token).transfer(msg.sender, amount), "coordinator: transfer failed"
    log Withdrawn(job_id=job_id, account=msg.sender, reward=reward, fees=fees, stake=stake)


