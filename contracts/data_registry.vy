# pragma version ~=0.4.3
"""
@title fedledger data registry
@custom:contract-name data_registry
@license MIT
@notice What each trainer's own records went through: its data commitment, and
        under record-level differential privacy the ε it has spent on them.

        Each trainer of a job commits, once, to the local dataset it trains
        on: a salted Merkle root over its canonical rows, the row count and the
        schema hash. The salt stays with the organisation, so the commitment
        reveals nothing about the rows, yet it binds them: later the organisation
        can open it for one auditor by handing over the file and the salt
        (`fedledger data prove`), and nothing about any other party's data.
        Only a registered trainer of a running job may commit, and only before
        its first update, so every update it contributes was trained after its
        data was fixed. The audit lineage reads model version -> contributors ->
        these commitments -> the job's code digest.

        In a record-level DP job (DP-SGD inside each trainer) a trainer posts,
        after each update it commits, the cumulative ε its records have spent,
        as micro-ε rounded up. The value depends only on public parameters and
        on how many rounds the trainer took part in, so the audit recomputes it;
        this contract makes it never decrease and binds it to a committed round.
@dev    A separate contract because the coordinator is at the EIP-170 code size
        limit. The coordinator binds itself here once, from its constructor, and
        keeps this address as `data_registry`; this contract reads the
        coordinator's job and trainer words to check each caller, so the rules
        of who is a trainer live in one place.
"""

import packing


interface Coordinator:
    def job_state(job_id: uint256) -> packing.JobWord: view
    def trainer_state(job_id: uint256, account: address) -> packing.TrainerWord: view


# The coordinator's phases in which a job is running (see coordinator.vy).
PHASE_OPEN: constant(uint8) = 1
PHASE_AGGREGATING: constant(uint8) = 2


struct DataCommitment:
    root: bytes32
    rows: uint64
    schema_hash: bytes32


struct PrivacySpend:
    round: uint32
    micro_epsilon: uint64


event CoordinatorBound:
    coordinator: indexed(address)


event DataCommitted:
    job_id: indexed(uint256)
    trainer: indexed(address)
    root: bytes32
    rows: uint64
    schema_hash: bytes32


event TrainerPrivacySpent:
    job_id: indexed(uint256)
    trainer: indexed(address)
    round: uint32
    micro_epsilon: uint64


## @notice The coordinator whose jobs and trainers this registry serves.
coordinator: public(address)
_commitment: HashMap[uint256, HashMap[address, DataCommitment]]
_spend: HashMap[uint256, HashMap[address, PrivacySpend]]


@deploy
def __init__():
    """
    @dev Unbound until a coordinator calls `bind` from its constructor.
    """
    pass


@external
def bind():
    """
    @notice Makes the caller this registry's coordinator; callable once.
    @dev The coordinator calls it while it is being deployed, so if anyone bound
         the registry first, that deployment reverts instead of silently using a
         registry that trusts another contract.
    """
    assert self.coordinator == empty(address), "data_registry: already bound"
    self.coordinator = msg.sender
    log CoordinatorBound(coordinator=msg.sender)


@external
def commit_data(job_id: uint256, root: bytes32, rows: uint64, schema_hash: bytes32):
    """
    @notice Commits the caller's local dataset for `job_id`, once.
    @param job_id The job.
    @param root Merkle root over the salted canonical rows (see data/commitment.py).
    @param rows How many rows the dataset has.
    @param schema_hash keccak256 of the job's data schema the rows were encoded under.
    """
    coordinator: address = self.coordinator
    assert coordinator != empty(address), "data_registry: not bound"
    assert root != empty(bytes32), "data_registry: data root is zero"
    assert schema_hash != empty(bytes32), "data_registry: schema hash is zero"
    assert rows > 0, "data_registry: no rows"
    job: packing.JobWord = staticcall Coordinator(coordinator).job_state(job_id)
    assert job.phase == PHASE_OPEN or job.phase == PHASE_AGGREGATING, "data_registry: job not running"
    t: packing.TrainerWord = staticcall Coordinator(coordinator).trainer_state(job_id, msg.sender)
    # an ejected trainer is no longer registered, and it was ejected for updates it committed
    assert t.registered, "data_registry: not a registered trainer"
    assert self._commitment[job_id][msg.sender].rows == 0, "data_registry: data already committed"
    assert t.last_round == 0, "data_registry: updates already committed"
    self._commitment[job_id][msg.sender] = DataCommitment(root=root, rows=rows, schema_hash=schema_hash)
    log DataCommitted(job_id=job_id, trainer=msg.sender, root=root, rows=rows, schema_hash=schema_hash)


@external
@view
def data_commitment(job_id: uint256, trainer: address) -> DataCommitment:
    """
    @notice A trainer's data commitment for a job (all zero if it has none).
    @param job_id The job.
    @param trainer The trainer.
    @return DataCommitment Its root, row count and schema hash.
    """
    return self._commitment[job_id][trainer]


@external
def spend_privacy(job_id: uint256, round: uint32, micro_epsilon: uint64):
    """
    @notice Records the ε the caller's own records have spent in `job_id` so far,
            after its update for `round` (record-level DP).
    @dev The round must be the caller's last committed one, so a spend is posted
         with its commit; one spend per round, and it never decreases. Whether
         it is the right value is the audit's to recompute from the spec.
    @param job_id The job.
    @param round The round whose update the caller has just committed.
    @param micro_epsilon Cumulative ε over the caller's records, in units of 1e-6, rounded up.
    """
    coordinator: address = self.coordinator
    assert coordinator != empty(address), "data_registry: not bound"
    assert micro_epsilon > 0, "data_registry: epsilon is zero"
    job: packing.JobWord = staticcall Coordinator(coordinator).job_state(job_id)
    assert job.phase == PHASE_OPEN or job.phase == PHASE_AGGREGATING, "data_registry: job not running"
    t: packing.TrainerWord = staticcall Coordinator(coordinator).trainer_state(job_id, msg.sender)
    assert t.registered, "data_registry: not a registered trainer"
    assert t.last_round == round, "data_registry: round not committed"
    last: PrivacySpend = self._spend[job_id][msg.sender]
    assert last.round < round, "data_registry: round already spent"
    assert micro_epsilon >= last.micro_epsilon, "data_registry: epsilon decreased"
    self._spend[job_id][msg.sender] = PrivacySpend(round=round, micro_epsilon=micro_epsilon)
    log TrainerPrivacySpent(job_id=job_id, trainer=msg.sender, round=round, micro_epsilon=micro_epsilon)


@external
@view
def privacy_spent(job_id: uint256, trainer: address) -> PrivacySpend:
    """
    @notice The last ε a trainer recorded for a job (all zero if none).
    @param job_id The job.
    @param trainer The trainer.
    @return PrivacySpend The round it was posted after, and the cumulative micro-ε.
    """
    return self._spend[job_id][trainer]
