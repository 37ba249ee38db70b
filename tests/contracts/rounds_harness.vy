# pragma version ~=0.4.3
# rounds.vy with the modules it uses and a stub sampler: a job's state is written directly,
# the phase transitions are called as coordinator.vy calls them
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
    rounds.advance,
    rounds.round_result,
    rounds.global_model,
    jobs.job_state,
    jobs.trainer_state,
    stakes.pool,
    stakes.stake_of,
    stakes.report_dissent,
)


@deploy
def __init__(sampler: address):
    rounds._sampler = sampler


@external
def start(job_id: uint256, cfg: jobs.JobConfig, pool: uint256, model: bytes32):
    jobs._config[job_id] = cfg
    stakes._pool[job_id] = pool
    rounds._global_model[job_id] = model
    rounds._open_round(job_id, empty(packing.JobWord), 1, cfg.commit_window)


@external
def join(job_id: uint256, trainer: address, stake: uint256):
    t: packing.TrainerWord = empty(packing.TrainerWord)
    t.registered = True
    jobs._trainer[job_id][trainer] = packing._pack_trainer(t)
    stakes._stake[job_id][trainer] = stake
    job: packing.JobWord = packing._unpack_job(jobs._job[job_id])
    job.trainers += 1
    jobs._job[job_id] = packing._pack_job(job)


@external
def commit(job_id: uint256, trainer: address, examples: uint64):
    job: packing.JobWord = packing._unpack_job(jobs._job[job_id])
    t: packing.TrainerWord = packing._unpack_trainer(jobs._trainer[job_id][trainer])
    t.last_round = job.round
    t.examples = examples
    t.excluded = False
    t.settled = False
    jobs._trainer[job_id][trainer] = packing._pack_trainer(t)
    job.commits += 1
    job.examples += examples
    jobs._job[job_id] = packing._pack_job(job)


@external
def close(job_id: uint256):
    rounds._close_commits(job_id, packing._unpack_job(jobs._job[job_id]))


@external
def fail(job_id: uint256, reason: String[32]):
    rounds._fail(job_id, packing._unpack_job(jobs._job[job_id]), reason)


@external
def finalize(job_id: uint256, aggregate: bytes32, excluded: DynArray[address, jobs.MAX_EXCLUDED], flags: uint256):
    rounds._finalize(job_id, packing._unpack_job(jobs._job[job_id]), aggregate, keccak256(aggregate), excluded, flags, False)


@external
@view
def keys_used(job_id: uint256) -> bool:
    return keys._keys_used[job_id]
