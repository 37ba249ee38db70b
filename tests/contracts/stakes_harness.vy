# pragma version ~=0.4.3
# stakes.vy with the job state it reads: stakes, votes and round outcomes are written directly
import jobs
import stakes

initializes: jobs
initializes: stakes[jobs := jobs]

exports: (stakes.report_dissent, stakes.stake_of, stakes.pool)


@external
def setup(job_id: uint256, quorum: uint32, stake: uint256, slash_bps: uint16):
    cfg: jobs.JobConfig = empty(jobs.JobConfig)
    cfg.quorum = quorum
    cfg.stake = stake
    cfg.slash_bps = slash_bps
    jobs._config[job_id] = cfg


@external
def deposit(job_id: uint256, account: address, amount: uint256):
    stakes._stake[job_id][account] = amount


@external
def vote(job_id: uint256, round: uint32, validator: address, proposal: bytes32):
    jobs._proposal_of[job_id][round][validator] = proposal
    jobs._votes[job_id][round][proposal] += 1


@external
def set_round(job_id: uint256, round: uint32, word: uint256):
    jobs._round[job_id][round] = word
