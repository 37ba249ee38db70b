# pragma version ~=0.4.3
"""
@title The key directory of secure aggregation
@custom:contract-name keys
@license MIT
@notice In a secure-aggregation job every trainer publishes an X25519 public key
        here, and every participant derives its pairwise masks and share keys
        from this directory: the chain is the bulletin board, there is no key
        server. After the commit phase each committer reveals the shares the
        validators need to unmask the committers' sum; the commitment of those
        shares is posted here, once per trainer and round.
@dev    A module of coordinator.vy. The directory closes at a job's first
        commit (masks are computed against the set of keys, which must not
        change under them), or when a round that had commits fails before any
        round was finalised (`_keys_used`, set by rounds.vy). Registration with
        a key is `coordinator.register_with_key`, since it also stakes and
        registers. Revert strings keep the `coordinator:` prefix.
"""

import jobs
import packing

uses: jobs


event KeyRegistered:
    job_id: indexed(uint256)
    trainer: indexed(address)
    public_key: bytes32


event SharesRevealed:
    job_id: indexed(uint256)
    trainer: indexed(address)
    round: uint32
    commitment: bytes32


# each trainer's X25519 public key (the key directory), and the last round it
# revealed its shares for
_public_key: HashMap[uint256, HashMap[address, bytes32]]
_revealed: HashMap[uint256, HashMap[address, uint32]]
# set when a round that had commits fails before any round was finalised: the key
# directory has been used for masks even though the job has no version yet
_keys_used: HashMap[uint256, bool]


@external
def reveal(job_id: uint256, round: uint32, commitment: bytes32):
    """
    @notice Posts the commitment of the caller's revealed shares for the round
            (a blob in the store): once the commit phase has closed, the chain
            has fixed who committed, and each committer reveals exactly the
            shares the validators need to unmask the committers' sum. The event
            is how validators find the reveals and how the audit replays them.
    @param job_id The job.
    @param round The aggregating round; the caller must have committed to it.
    @param commitment Merkle root of the reveal blob.
    """
    word: uint256 = jobs._job[job_id]
    assert word & packing.MASK8 == convert(jobs.PHASE_AGGREGATING, uint256), "coordinator: round not aggregating"
    assert (word >> packing.JOB_ROUND) & packing.MASK32 == convert(round, uint256), "coordinator: wrong round"
    assert commitment != empty(bytes32), "coordinator: empty commitment"
    tword: uint256 = jobs._trainer[job_id][msg.sender]
    assert tword & 1 != 0 and (tword >> packing.TRAINER_LAST_ROUND) & packing.MASK32 == convert(round, uint256), "coordinator: not a committer"
    assert self._revealed[job_id][msg.sender] != round, "coordinator: already revealed"
    self._revealed[job_id][msg.sender] = round
    log SharesRevealed(job_id=job_id, trainer=msg.sender, round=round, commitment=commitment)


@external
@view
def public_key(job_id: uint256, account: address) -> bytes32:
    """
    @notice A trainer's X25519 key in the job's key directory (zero if none).
    @param job_id The job.
    @param account The trainer.
    @return bytes32 The public key.
    """
    return self._public_key[job_id][account]
