# pragma version ~=0.4.3
"""
@title fedledger round sampler
@custom:contract-name sampler
@license MIT
@notice Draws each round's trainers (`clients_per_round`) and committee
        (`validators_per_round`) from everyone registered in a job, without
        ever looping over them. Each registered trainer enrols here once (index
        i is the i-th to enrol); the coordinator has the round drawn as it
        opens (a seed and how many it draws from); a trainer or validator then
        names its seat, and a keyed permutation maps that one seat to an
        enrolment index, so a check costs the same for ten enrolments or ten
        thousand. A drawn committee is drawn from the same enrolments: in such
        a job every staker is a trainer (the fixed committee is empty).
@dev    A separate contract because the coordinator is at the EIP-170 code
        size limit (as `data_registry.vy` is). The coordinator binds itself here
        once, from its constructor; only it may draw an opening round.
        The permutation: a 4-round Feistel network over mixed radices on
        a * b values, a = ceil(sqrt(n)) and b = ceil(n / a) (so fewer than
        n + 2 sqrt(n) + 1 values): x = left * b + right (left < a, right < b)
        maps to right * a + (left + F(right)) mod a, and the next round swaps
        the radices; F = keccak256((seed << 8) | lane * 4 + round, right).
        Walked until it lands below n. Each round is a bijection, so distinct
        seats get distinct enrolments; as a * b is close to n, a walk takes one
        step nearly always, whatever n is, and so does the gas; a walk longer
        than MAX_WALK leaves the seat empty. `fedledger.chain.sampling`
        mirrors it bit for bit.
        Draw word: round 0..31 | enrolled 32..63 | a 64..87 | b 88..111 |
        clients 112..127 | validators 128..143 | seed 144..255 (the top 112
        bits of the keccak).
"""

import packing


interface Coordinator:
    def job_state(job_id: uint256) -> packing.JobWord: view
    def trainer_state(job_id: uint256, account: address) -> packing.TrainerWord: view
    def job_config(job_id: uint256) -> JobConfig: view
    def global_model(job_id: uint256) -> bytes32: view


# the coordinator's JobConfig, as its `job_config` returns it
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


FEISTEL_ROUNDS: constant(uint256) = 4
MAX_WALK: constant(uint256) = 64
MASK24: constant(uint256) = 2**24 - 1
LANE_TRAINERS: constant(uint256) = 0
LANE_COMMITTEE: constant(uint256) = 1
PHASE_OPEN: constant(uint8) = 1


event CoordinatorBound:
    coordinator: indexed(address)


event Enrolled:
    job_id: indexed(uint256)
    trainer: indexed(address)
    index: uint32


event SampleDrawn:
    job_id: indexed(uint256)
    round: uint32
    global_model: bytes32
    randomness: bytes32
    seed: uint256
    enrolled: uint32
    clients: uint16
    validators: uint16


## @notice The coordinator whose jobs this sampler draws for.
coordinator: public(address)
_trainer_at: HashMap[uint256, HashMap[uint256, address]]
_enrolled: HashMap[uint256, HashMap[address, bool]]
# per job: enrolled 0..31 | clients 32..47 | validators 48..63
_job: HashMap[uint256, uint256]
_draw: HashMap[uint256, uint256]


@deploy
def __init__():
    """
    @dev Unbound until a coordinator calls `bind` from its constructor.
    """
    pass


@external
def bind():
    """
    @notice Makes the caller this sampler's coordinator; callable once.
    @dev The coordinator calls it while it is being deployed, so a sampler
         someone else bound first makes that deployment revert.
    """
    assert self.coordinator == empty(address), "sampler: already bound"
    self.coordinator = msg.sender
    log CoordinatorBound(coordinator=msg.sender)


@external
def enrol(job_id: uint256):
    """
    @notice Puts the caller, a registered trainer of a job that samples
            trainers or draws its committee, in the order draws choose from.
            An enrolment counts from the next draw, so enrolling after seeing
            a seed cannot steer it.
    @param job_id The job.
    """
    assert not self._enrolled[job_id][msg.sender], "sampler: already enrolled"
    assert (staticcall Coordinator(self.coordinator).trainer_state(job_id, msg.sender)).registered, "sampler: not a registered trainer"
    word: uint256 = self._job[job_id]
    if word == 0:
        cfg: JobConfig = staticcall Coordinator(self.coordinator).job_config(job_id)
        assert cfg.clients_per_round > 0 or cfg.validators_per_round > 0, "sampler: job draws nobody"
        word = (convert(cfg.clients_per_round, uint256) << 32) | (convert(cfg.validators_per_round, uint256) << 48)
    index: uint256 = word & packing.MASK32
    self._enrolled[job_id][msg.sender] = True
    self._trainer_at[job_id][index] = msg.sender
    self._job[job_id] = word + 1
    log Enrolled(job_id=job_id, trainer=msg.sender, index=convert(index, uint32))


@external
def draw(job_id: uint256, round: uint32, global_model: bytes32):
    """
    @notice Called by the coordinator as a round opens: fixes the round's draw
            (a no-op for a job nobody has enrolled in).
    @param job_id The job.
    @param round The round opening.
    @param global_model The model it trains from.
    """
    assert msg.sender == self.coordinator, "sampler: caller is not the coordinator"
    if self._job[job_id] & packing.MASK32 != 0:
        self._draw_round(job_id, round, global_model)


@external
def start(job_id: uint256):
    """
    @notice Draws the open round for a job whose round opened before anyone
            had enrolled (the first): the sponsor calls it once the consortium
            has enrolled. Should the sponsor never call it, the round fails
            when its window ends and the next one is drawn as it opens.
    @param job_id The job.
    """
    assert msg.sender == (staticcall Coordinator(self.coordinator).job_config(job_id)).sponsor, "sampler: caller is not the sponsor"
    job: packing.JobWord = staticcall Coordinator(self.coordinator).job_state(job_id)
    assert job.phase == PHASE_OPEN, "sampler: round not open"
    assert self._draw[job_id] & packing.MASK32 != convert(job.round, uint256), "sampler: round already drawn"
    assert self._job[job_id] & packing.MASK32 != 0, "sampler: nobody to draw"
    self._draw_round(job_id, job.round, staticcall Coordinator(self.coordinator).global_model(job_id))


@external
@view
def check(job_id: uint256, round: uint32, account: address, committee: bool, seat: uint256) -> uint256:
    """
    @notice What the coordinator asks on a commit (trainers' seats) or a
            proposal (the committee's): does `account` hold `seat` in the
            round's draw? Returns the lane's number of seats if it does. A
            trainer that does not is refused here; for the committee the
            answer is 0 and the coordinator refuses, as it is for a seated
            member no longer registered (ejected).
    @param job_id The job.
    @param round The round (only the latest draw is kept).
    @param account The caller of the coordinator.
    @param committee The committee's seats, else the trainers'.
    @param seat The seat named.
    @return uint256 The lane's seats: min(seats asked for, enrolled).
    """
    who: address = empty(address)
    seats: uint256 = 0
    who, seats = self._seat(job_id, round, committee, seat)
    if who != account or who == empty(address):
        assert committee, "sampler: not in the sample"
        return 0
    # an enrolment outlives an ejection: a trainer ejected for its updates keeps its
    # index, but may no longer vote on aggregates (a trainer's commit is refused by
    # the coordinator itself)
    if committee and not (staticcall Coordinator(self.coordinator).trainer_state(job_id, account)).registered:
        return 0
    return seats


@external
@view
def seat(job_id: uint256, round: uint32, committee: bool, seat: uint256) -> address:
    """
    @notice Who sits in a seat of the round's draw (zero: nobody, or the round
            is not the latest drawn).
    @param job_id The job.
    @param round The round.
    @param committee The committee's seats, else the trainers'.
    @param seat The seat, from 0.
    @return address The trainer.
    """
    who: address = empty(address)
    seats: uint256 = 0
    who, seats = self._seat(job_id, round, committee, seat)
    return who


@external
@view
def draw_state(job_id: uint256) -> (uint32, uint256, uint32, uint16, uint16):
    """
    @notice The job's latest draw.
    @param job_id The job.
    @return uint32 The round drawn (0: none yet).
    @return uint256 The seed.
    @return uint32 Enrolled trainers it drew from.
    @return uint16 Trainer seats asked for.
    @return uint16 Committee seats asked for.
    """
    d: uint256 = self._draw[job_id]
    return (
        convert(d & packing.MASK32, uint32),
        d >> 144,
        convert((d >> 32) & packing.MASK32, uint32),
        convert((d >> 112) & packing.MASK16, uint16),
        convert((d >> 128) & packing.MASK16, uint16),
    )


@external
@view
def enrolled(job_id: uint256) -> uint256:
    """
    @notice How many trainers have enrolled in the job.
    @param job_id The job.
    @return uint256 The count.
    """
    return self._job[job_id] & packing.MASK32


@external
@view
def trainer_at(job_id: uint256, index: uint256) -> address:
    """
    @notice The `index`-th trainer to enrol (from 0; zero beyond them).
    @param job_id The job.
    @param index The enrolment index.
    @return address The trainer.
    """
    return self._trainer_at[job_id][index]


@external
@pure
def seat_index(seed: uint256, committee: bool, n: uint256, seat: uint256) -> uint256:
    """
    @notice The permutation on its own, for checking the Python mirror.
    @param seed A draw's seed.
    @param committee The committee's lane, else the trainers'.
    @param n Enrolments drawn from.
    @param seat The seat.
    @return uint256 The enrolment index, or n if the walk ran out.
    """
    lane: uint256 = LANE_TRAINERS
    if committee:
        lane = LANE_COMMITTEE
    a: uint256 = self._radix(n)
    return self._seat_index(seed, lane, a, (n + a - 1) // max(a, 1), n, seat)


@internal
def _draw_round(job_id: uint256, round: uint32, global_model: bytes32):
    """
    @dev Fixes the round's draw from the enrolments so far and a seed nobody
         sets alone: keccak256(job, round, the last finalised model,
         block.prevrandao). See docs/design.md for who can bias it and how.
    """
    word: uint256 = self._job[job_id]
    n: uint256 = word & packing.MASK32
    seed: uint256 = convert(keccak256(abi_encode(job_id, round, global_model, block.prevrandao)), uint256) >> 144
    a: uint256 = self._radix(n)
    self._draw[job_id] = (
        convert(round, uint256)
        | (n << 32)
        | (a << 64)
        | (((n + a - 1) // a) << 88)
        | (((word >> 32) & packing.MASK32) << 112)
        | (seed << 144)
    )
    log SampleDrawn(
        job_id=job_id, round=round, global_model=global_model, randomness=block.prevrandao, seed=seed,
        enrolled=convert(n, uint32), clients=convert((word >> 32) & packing.MASK16, uint16),
        validators=convert((word >> 48) & packing.MASK16, uint16),
    )


@internal
@view
def _seat(job_id: uint256, round: uint32, committee: bool, seat: uint256) -> (address, uint256):
    """
    @dev Who sits in `seat` of the round's draw in a lane, and the lane's seats.
    """
    d: uint256 = self._draw[job_id]
    if d & packing.MASK32 != convert(round, uint256):
        return empty(address), 0
    n: uint256 = (d >> 32) & packing.MASK32
    size: uint256 = (d >> 112) & packing.MASK16
    lane: uint256 = LANE_TRAINERS
    if committee:
        size = (d >> 128) & packing.MASK16
        lane = LANE_COMMITTEE
    size = min(size, n)
    if seat >= size:
        return empty(address), size
    index: uint256 = self._seat_index(d >> 144, lane, (d >> 64) & MASK24, (d >> 88) & MASK24, n, seat)
    if index >= n:
        return empty(address), size
    return self._trainer_at[job_id][index], size


@internal
@pure
def _radix(n: uint256) -> uint256:
    """
    @dev ceil(sqrt(n)), at least 1: the first radix of the permutation's domain.
    """
    a: uint256 = isqrt(n)
    if a * a < n:
        a += 1
    return max(a, 1)


@internal
@pure
def _seat_index(seed: uint256, lane: uint256, a: uint256, b: uint256, n: uint256, seat: uint256) -> uint256:
    """
    @dev The enrolment index in `seat`, or n when the walk ran out.
    """
    x: uint256 = seat
    for _w: uint256 in range(MAX_WALK):
        for i: uint256 in range(FEISTEL_ROUNDS):
            m_left: uint256 = a
            m_right: uint256 = b
            if i % 2 == 1:
                m_left = b
                m_right = a
            right: uint256 = x % m_right
            f: uint256 = convert(keccak256(abi_encode((seed << 8) | (lane * FEISTEL_ROUNDS + i), right)), uint256)
            x = right * m_left + (x // m_right + f % m_left) % m_left
        if x < n:
            return x
    return n
