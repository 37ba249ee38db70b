# pragma version ~=0.4.3
"""
@title Stakes, the reward pool and slashing
@custom:contract-name stakes
@license MIT
@notice Holds what the coordinator holds in tokens for a job: each participant's
        stake and the sponsor's reward pool. Slashing moves stake into the pool,
        so a slashed amount pays honest trainers of later rounds or goes back to
        the sponsor; it is never burnt and never paid to the reporter, which
        leaves no profit in reporting falsely.
@dev    A module of coordinator.vy. The trainer slash for a flagged update is
        applied inline where the quorum's result is applied (rounds.vy, which
        logs this module's slashing events); a dissenting validator is slashed
        here on report. Revert strings keep the `coordinator:` prefix: the
        deployed contract is the coordinator.
"""

from ethereum.ercs import IERC20

import jobs
import packing

uses: jobs


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


event PoolReclaimed:
    job_id: indexed(uint256)
    sponsor: indexed(address)
    amount: uint256


_stake: HashMap[uint256, HashMap[address, uint256]]
_pool: HashMap[uint256, uint256]


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
    assert jobs._round[job_id][round] & packing.MASK8 == convert(jobs.ROUND_FINALIZED, uint256), "coordinator: round not finalized"
    proposal: bytes32 = jobs._proposal_of[job_id][round][validator]
    assert proposal != empty(bytes32), "coordinator: no proposal to dispute"
    assert jobs._votes[job_id][round][proposal] < jobs._config[job_id].quorum, "coordinator: proposal agreed with quorum"
    jobs._proposal_of[job_id][round][validator] = empty(bytes32)
    amount: uint256 = min(
        jobs._config[job_id].stake * convert(jobs._config[job_id].slash_bps, uint256) // 10000,
        self._stake[job_id][validator],
    )
    self._stake[job_id][validator] -= amount
    self._pool[job_id] += amount
    log ValidatorSlashed(job_id=job_id, validator=validator, round=round, proposal=proposal, amount=amount)


@external
def reclaim(job_id: uint256):
    """
    @notice Returns the unspent reward pool (failed rounds, excluded updates) to
            the sponsor once the job has ended.
    @param job_id The job.
    """
    assert msg.sender == jobs._config[job_id].sponsor, "coordinator: caller is not the sponsor"
    phase: uint8 = packing._unpack_job(jobs._job[job_id]).phase
    assert phase == jobs.PHASE_DONE or phase == jobs.PHASE_ABORTED, "coordinator: job not ended"
    amount: uint256 = self._pool[job_id]
    assert amount > 0, "coordinator: pool is empty"
    self._pool[job_id] = 0
    assert extcall IERC20(jobs._config[job_id].token).transfer(msg.sender, amount), "coordinator: transfer failed"
    log PoolReclaimed(job_id=job_id, sponsor=msg.sender, amount=amount)


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
