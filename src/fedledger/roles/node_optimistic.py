"""A node's part in an optimistic-mode job: bond, post when drawn, watch the others, settle, vote.

The job's committee on the coordinator is optimistic.vy alone, with quorum 1; the
organisations' nodes are its bonded proposers. Each pass in an aggregating round reads
optimistic.vy's record of the round and does the one thing it asks of this node, as the
simulation does in turn (sim/optimistic_round.py):

- nothing posted: the drawn proposer computes the round and posts its claim; any other
  bonded node posts instead once the drawn one has had `proposal_window_s` (at once when
  the drawn one has lost its bond, as after a strike);
- a claim inside its window: every other node computes the round itself, judges the claim
  (`roles/optimistic.judge`) and proves it wrong, which slashes the proposer and reopens the
  round, or escalates what one chunk cannot show;
- a claim past its window: its proposer settles it, which finalises the round on the
  coordinator; any other node does after a short grace, in case the proposer is gone;
- escalated: every bonded node but the two parties votes its own result.

Nodes race each other (two posting when the drawn one is out, two proving one lie, two
settling): the contract decides, and the loser's revert is expected, logged at info.
"""

from __future__ import annotations

import logging
import time

from eth_account.signers.local import LocalAccount

from fedledger.chain.contracts import Coordinator, JobState, RewardToken
from fedledger.chain.optimistic import Optimistic, RoundRecord
from fedledger.codec.commitment import commitment_hex
from fedledger.errors import ChainError, TransactionReverted
from fedledger.roles.job import JobReader
from fedledger.roles.node_faults import faulty_posting, honest_posting
from fedledger.roles.node_validation import NodeValidation
from fedledger.roles.optimistic import Posted, Watcher, claim_for, flag_bits, judge
from fedledger.spec import JobSpec
from fedledger.store.cached import VerifiedCache

log = logging.getLogger("fedledger.node")

#: seconds past a claim's window before a node other than its proposer settles it
SETTLE_GRACE_S = 2
#: gas for what is sent without estimation (`Optimistic.settle`), as the node's `advance` is:
#: (base, per excluded update). A settle finalises the round on the coordinator: measured
#: ~0.21M with nothing excluded (tests/integration/test_optimistic_nodes.py), and the
#: coordinator's finalisation loops over the excluded, slashing each. A late post measured
#: ~0.15M; each excluded address adds to its event and its result hash.
SETTLE_GAS = (600_000, 80_000)
LATE_POST_GAS = (500_000, 10_000)


def gas_for(limits: tuple[int, int], excluded: int) -> int:
    base, each = limits
    return base + each * excluded


#: reverts that mean another node got there first (or the round moved on): nothing is wrong
RACES = frozenset(
    {
        "optimistic: round already proposed",
        "optimistic: round not aggregating",
        "optimistic: not the drawn proposer",
        "optimistic: no proposal",
        "optimistic: round escalated",
        "optimistic: round not escalated",
        "optimistic: not the live claim",
        "optimistic: already voted",
        "optimistic: already bonded",
        "disputes: claim already struck",
        "coordinator: nothing to withdraw",
    }
)


def find_optimistic(coordinator: Coordinator, reader: JobReader, job: int) -> Optimistic | None:
    """The job's optimistic contract: its one registered committee validator (None: not delegated yet).

    Read from the coordinator's `Registered` event, not from a config key or a deployment
    record: `delegate` is what registers the contract, so the event names exactly the contract
    this job delegated to (docs/design.md, "Nodes in optimistic mode"). It must be bound to
    this coordinator and hold terms for the job, or the node refuses to act on it.
    """
    reader.poll()
    members = [e.args["account"] for e in reader.events if e.name == "Registered" and e.args["validator"]]
    if not members:
        return None
    found = Optimistic(coordinator.chain, str(members[0]))
    try:
        bound = str(found.read("coordinator"))
        terms = found.terms(job)
    except ChainError:
        bound, terms = "", None
    if bound.lower() != coordinator.address.lower() or terms is None or not terms.bond:
        raise ChainError(
            f"job {job}'s committee validator {found.address} is not an optimistic contract holding "
            f"this job's terms for coordinator {coordinator.address}: the job was not delegated"
        )
    return found


class NodeOptimistic:
    """One bonded proposer's passes over an optimistic-mode job's aggregating rounds."""

    def __init__(
        self,
        *,
        name: str,
        job: int,
        spec: JobSpec,
        account: LocalAccount,
        coordinator: Coordinator,
        store: VerifiedCache,
        validation: NodeValidation,
        reader: JobReader,
        fault: tuple[str, int] | None = None,
    ) -> None:
        self.name, self.job, self.spec, self.account = name, job, spec, account
        self.me = account.address.lower()
        self.coordinator, self.chain, self.store = coordinator, coordinator.chain, store
        self.validation, self.reader = validation, reader
        #: a testing fault and its first round (node_config.py's `testing_fault`; node_faults.py)
        self.fault = fault
        self.contract: Optimistic | None = None
        self.watcher: Watcher | None = None
        self.bonded = False
        self.said_waiting = False
        self._next_block = 0
        self.posted: dict[tuple[int, int], Posted] = {}  # (round, attempt) -> its claim
        self.done: set[tuple[str, int, int]] = set()  # (judged | settled | voted, round, attempt)
        self.unposted_since: dict[tuple[int, int], float] = {}

    # -- joining -----------------------------------------------------------------------------

    def ready(self) -> Optimistic | None:
        """The job's optimistic contract once delegated, with this node bonded on it."""
        if self.contract is None:
            self.contract = find_optimistic(self.coordinator, self.reader, self.job)
            if self.contract is None:
                if not self.said_waiting:
                    log.info(
                        "%s: job %d not delegated to an optimistic contract yet; waiting", self.name, self.job
                    )
                    self.said_waiting = True
                return None
            self.watcher = Watcher(
                name=self.name, account=self.account, optimistic=self.contract, store=self.store
            )
            log.info(
                "%s: job %d is verified optimistically by %s", self.name, self.job, self.contract.address
            )
        if not self.bonded:
            self.bond(self.contract)
        return self.contract

    def bond(self, o: Optimistic) -> None:
        """Posts this node's proposer bond once; a bond slashed later is not topped up by itself."""
        need, held = o.terms(self.job).bond, o.bond_of(self.job, self.me)
        self.bonded = True
        if held >= need:
            return
        if any(p.lower() == self.me for p in o.proposers(self.job)):
            log.warning(
                "%s: its proposer bond was slashed; it posts no more claims in job %d", self.name, self.job
            )
            return
        token = RewardToken(self.chain, str(self.coordinator.job_config(self.job)["token"]))
        if token.balance_of(self.me) < need:
            raise ChainError(
                f"{self.account.address} cannot bond as a proposer of job {self.job}: it holds "
                f"{token.balance_of(self.me)} of the {need} token units; fund the account first"
            )
        token.approve(self.account, o.address, need)
        try:
            o.bond(self.account, self.job)
        except TransactionReverted as exc:
            self.race(exc, 0, "bond")
            return
        log.info("%s: bonded %d as a proposer of job %d", self.name, need, self.job)

    # -- one pass ----------------------------------------------------------------------------

    def step(self, s: JobState, global_model: bytes) -> bool:
        """Does what the aggregating round asks of this node; whether it did anything."""
        o = self.ready()
        if o is None:
            return False
        self.poll(o)
        rec = o.round_record(self.job, s.round)
        if rec.escalated:
            return self.vote(o, s, rec, global_model)
        if not rec.posted:
            return self.propose(o, s, rec, global_model)
        posted = self.posted.get((s.round, rec.attempt))
        if posted is None:
            return False  # its event is not read yet
        if self.chain.now() <= posted.final_at:
            return self.watch(s, posted, global_model)
        return self.settle(o, posted)

    def poll(self, o: Optimistic) -> None:
        """Reads optimistic.vy's new events for this job: the claims, and what befell them."""
        head = self.chain.block_number()
        if head < self._next_block:
            return
        events = [e for e in o.events(self._next_block, head) if e.args.get("job_id") == self.job]
        self._next_block = head + 1
        for e in events:
            a = e.args
            if e.name == "ProposalPosted":
                p = Posted.of(e)
                self.posted[(p.round, p.attempt)] = p
            elif e.name == "ProposalStruck":
                log.warning(
                    "%s: round %d: the claim of %s (attempt %d) was proven wrong by %s; %d slashed",
                    self.name,
                    a["round"],
                    a["proposer"],
                    a["attempt"],
                    a["by"],
                    a["slashed"],
                )
            elif e.name == "EscalationDecided":
                upheld = "upheld" if a["upheld"] else "overturned"
                log.warning("%s: round %d: the vote %s the claim", self.name, a["round"], upheld)

    def propose(self, o: Optimistic, s: JobState, rec: RoundRecord, global_model: bytes) -> bool:
        """Posts the round's claim if this node is drawn, or the drawn one has had its turn."""
        bond = o.terms(self.job).bond
        if o.bond_of(self.job, self.me) < bond or self.faulty("silent-proposer", s.round):
            return False
        drawn = o.drawn(self.job, s.round, rec.attempt)
        late = False
        if drawn.lower() != self.me and o.bond_of(self.job, drawn) >= bond:
            since = self.unposted_since.setdefault((s.round, rec.attempt), time.monotonic())
            if time.monotonic() - since <= self.spec.proposal_window_s + 1:
                return False  # the drawn proposer's turn
            late = True  # allowed by the clock: an estimate on an old block would refuse it
        outcome = self.validation.compute(s, global_model)
        if outcome is None:
            return False  # a committed blob is late
        previous = self.store.get(global_model)
        post = honest_posting(self.spec, outcome, previous, self.store)
        if self.fault is not None and self.faulty(self.fault[0], s.round):
            post = faulty_posting(
                self.fault[0],
                name=self.name,
                s=s,
                spec=self.spec,
                honest=post,
                outcome=outcome,
                validation=self.validation,
                previous=previous,
                global_model=global_model,
                store=self.store,
            )
        try:
            o.propose(
                self.account,
                self.job,
                s.round,
                post.claim,
                excluded=post.excluded,
                flags=post.flags,
                gas=gas_for(LATE_POST_GAS, len(post.excluded)) if late else None,
            )
        except TransactionReverted as exc:
            self.race(exc, s.round, "post")
            return True
        log.info(
            "%s: round %d: posted its claim %s (attempt %d); final after %d s unless proven wrong",
            self.name,
            s.round,
            commitment_hex(post.claim.aggregate_root)[:14],
            rec.attempt,
            self.spec.challenge_window_s,
        )
        return True

    def watch(self, s: JobState, posted: Posted, global_model: bytes) -> bool:
        """Checks another node's claim against this node's own computation, once; proves a wrong one."""
        key = ("judged", posted.round, posted.attempt)
        if posted.proposer.lower() == self.me or key in self.done:
            return False
        outcome = self.validation.compute(s, global_model)
        if outcome is None:
            return False
        previous = self.store.get(global_model)
        honest = claim_for(self.spec, outcome, previous=previous, store=self.store)
        verdict = judge(posted, honest, outcome, self.store)
        self.done.add(key)
        if verdict.kind == "right":
            log.info("%s: round %d: the claim of %s checks out", self.name, posted.round, posted.proposer)
            return True
        assert self.watcher is not None and self.contract is not None
        if verdict.kind == "escalate":  # the escalator bonds as much as a proposer
            token = RewardToken(self.chain, str(self.coordinator.job_config(self.job)["token"]))
            token.approve(self.account, self.contract.address, self.spec.proposer_bond)
        try:
            self.watcher.act(posted, verdict, outcome, previous, honest)
        except TransactionReverted as exc:
            self.race(exc, posted.round, "prove")
        return True

    def settle(self, o: Optimistic, posted: Posted) -> bool:
        """Hands a claim that stood its window to the coordinator: the proposer first, then anyone."""
        key = ("settled", posted.round, posted.attempt)
        now = self.chain.now()
        grace = 1 if posted.proposer.lower() == self.me else SETTLE_GRACE_S + 1
        if key in self.done or now <= posted.final_at + grace:
            return False  # the next block's timestamp must be past final_at
        try:
            receipt = o.settle(
                self.account,
                self.job,
                posted.round,
                posted.claim.aggregate_root,
                excluded=list(posted.excluded),
                flags=posted.flags,
                gas=gas_for(SETTLE_GAS, len(posted.excluded)),
            )
        except TransactionReverted as exc:
            if exc.reason == "optimistic: challenge window open":
                return False  # the chain's clock is behind this host's: try again
            self.race(exc, posted.round, "settle")
        else:
            log.info(
                "%s: round %d: settled the claim of %s (gas %d)",
                self.name,
                posted.round,
                posted.proposer,
                receipt.gas_used,
            )
        self.done.add(key)
        return True

    def vote(self, o: Optimistic, s: JobState, rec: RoundRecord, global_model: bytes) -> bool:
        """Votes an escalated round's result with this node's own computation, once."""
        key = ("voted", s.round, rec.attempt)
        parties = {rec.proposer.lower(), rec.escalator.lower()}
        if key in self.done or self.me in parties or o.bond_of(self.job, self.me) < o.terms(self.job).bond:
            return False
        outcome = self.validation.compute(s, global_model)
        if outcome is None:
            return False
        self.done.add(key)
        try:
            o.vote(
                self.account,
                self.job,
                s.round,
                outcome.aggregate,
                excluded=outcome.excluded,
                flags=flag_bits(outcome.excluded, outcome.flagged),
            )
        except TransactionReverted as exc:
            self.race(exc, s.round, "vote")
            return True
        log.info("%s: round %d: voted %s", self.name, s.round, commitment_hex(outcome.aggregate)[:14])
        return True

    def faulty(self, kind: str, round: int) -> bool:
        """Whether the testing fault `kind` applies to this round."""
        return self.fault is not None and self.fault[0] == kind and round >= self.fault[1]

    def race(self, exc: TransactionReverted, round: int, what: str) -> None:
        """A revert from losing a race is expected; any other is logged, and the node goes on."""
        where = f"round {round}" if round > 0 else f"job {self.job}"
        if exc.reason in RACES:
            log.info("%s: %s: another node was first to %s (%s)", self.name, where, what, exc.reason)
        else:
            log.warning("%s: %s: could not %s: %s", self.name, where, what, exc.reason)

    # -- after the job -----------------------------------------------------------------------

    def finish(self) -> None:
        """Takes this node's bond and what optimistic.vy owes it back, and releases the contract's stake."""
        o = self.contract
        if o is None:
            return
        me, job = self.account.address, self.job
        token = str(self.coordinator.job_config(job)["token"])
        if self.coordinator.stake_of(job, o.address) or self.coordinator.claimable(job, o.address):
            try:  # anyone may: it credits the sponsor, who collects it
                o.release(self.account, job)
            except TransactionReverted as exc:
                self.race(exc, 0, "release the contract's stake")
        if o.bond_of(job, me):
            o.unbond(self.account, job)
        owed = o.owed(token, me)
        if owed:
            o.collect(self.account, token)
            log.info("%s: job %d ended; bond and bounties (%d) collected", self.name, job, owed)
