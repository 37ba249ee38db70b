# pragma version ~=0.4.3
# rewards.vy alone: its state is written directly, its internals are called as the coordinator calls them
import jobs
import stakes
import rewards

initializes: jobs
initializes: stakes[jobs := jobs]
initializes: rewards[jobs := jobs, stakes := stakes]

exports: (rewards.consensus_score, rewards.fees_of, rewards.reputation)


@external
def setup(job_id: uint256, round: uint32, proposal: bytes32, committee: DynArray[address, 128], votes: DynArray[bool, 128], stakes_: DynArray[uint256, 128], tolerance: uint16, scored: bool):
    jobs._committee[job_id] = committee
    cfg: jobs.JobConfig = empty(jobs.JobConfig)
    cfg.score_tolerance = tolerance
    cfg.scored = scored
    jobs._config[job_id] = cfg
    for i: uint256 in range(len(committee), bound=128):
        stakes._stake[job_id][committee[i]] = stakes_[i]
        if votes[i]:
            jobs._proposal_of[job_id][round][committee[i]] = proposal


@external
def post(job_id: uint256, validator: address, scores: DynArray[uint256, 256]):
    for k: uint256 in range(len(scores), bound=256):
        rewards._scores[job_id][validator][k] = scores[k]


@external
def settle_scores(job_id: uint256, round: uint32, commits: uint256, proposal: bytes32, fee: uint256) -> (uint256, uint256):
    return rewards._settle_scores(job_id, round, commits, proposal, fee)


@external
def set_round(job_id: uint256, round: uint32, word: uint256):
    jobs._round[job_id][round] = word


@external
@view
def settled(job_id: uint256, tword: uint256) -> (uint256, uint256):
    return rewards._settled(job_id, tword)


@external
def fold(job_id: uint256, account: address, tword: uint256):
    rewards._fold(job_id, account, tword)
