"""A job delegated to optimistic.vy, with real blobs for its first round (test_optimistic*.py).

The job's committee is the optimistic contract alone (quorum 1); its initial model is the
previous model of a `dispute_harness.random_round`, so a claim about that round can be proven
wrong on chain; its three trainers commit the round's update roots.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from coordinator_harness import World, job_params
from dispute_harness import RULES, Round, random_round

from fedledger.chain.base import Receipt
from fedledger.chain.optimistic import Disputes, Optimistic, Terms, claim_id
from fedledger.codec.commitment import merkle_root
from fedledger.errors import TransactionReverted

BOND = 5_000
BOUNTY_BPS = 5_000
WINDOW = 30


@contextmanager
def reverts(reason: str) -> Iterator[None]:
    """The block's transaction reverts with exactly `reason` (pytest's `match` is a regex search)."""
    with pytest.raises(TransactionReverted) as e:
        yield
    assert e.value.reason == reason, e.value.reason


def names(o: Optimistic, receipt: Receipt) -> list[str]:
    """Every optimistic.vy and coordinator event name in the receipt, in log order."""
    out = []
    for log in receipt.logs:
        for c in (o, o.disputes()):
            ev = c.decode(log)
            if ev is not None:
                out.append(ev.name)
    return out


@dataclass
class OptimisticJob:
    world: World
    rule: str = "fedavg"
    n: int = 3
    seed: int = 1
    #: the job's (and the terms') aggregation window
    aggregate_window: int = 100
    #: False: the job is created but not delegated (the delegate tests do it themselves)
    delegated: bool = True
    #: job_params overrides (committee, quorum, token, ...)
    params: dict[str, Any] = field(default_factory=dict)
    #: another optimistic.vy than the deployment's (one bound to a test double)
    instance: Optimistic | None = None
    #: the accounts that may bond (empty: anyone, as most contract tests want)
    named: tuple[str, ...] = ()
    round: Round = field(init=False)
    job_id: int = field(init=False)

    def __post_init__(self) -> None:
        self.round = random_round(random.Random(self.seed), RULES[self.rule], n=self.n, num_params=700)
        w = self.world
        overrides: dict[str, Any] = dict(
            committee=[self.o.address],
            quorum=1,
            min_commits=self.n,
            initial_model=merkle_root(self.round.previous),
            aggregate_window=self.aggregate_window,
        )
        overrides.update(self.params)
        token = overrides.pop("token", w.token.address)
        params = job_params(token, **overrides)
        self.job_id, _ = w.coord.create_job(w.sponsor, params)
        self.fund(w.sponsor)
        w.token.approve(w.sponsor, self.o.address, 10**9)
        if self.delegated:
            self.o.delegate(w.sponsor, self.job_id, self.terms(), named=self.named)

    @property
    def o(self) -> Optimistic:
        if self.instance is not None:
            return self.instance
        assert self.world.d.optimistic is not None
        return self.world.d.optimistic

    @property
    def disputes(self) -> Disputes:
        assert self.world.d.disputes is not None
        return self.world.d.disputes

    def terms(self, **overrides: Any) -> Terms:
        c = self.round.claim
        base: dict[str, Any] = dict(
            rule=c.rule,
            trim_num=c.trim_num,
            trim_den=c.trim_den,
            clip_q=c.clip_q,
            num_params=c.num_params,
            challenge_window=WINDOW,
            proposal_window=20,
            aggregate_window=self.aggregate_window,
            bond=BOND,
            bounty_bps=BOUNTY_BPS,
            escalation_quorum=2,
        )
        base.update(overrides)
        return Terms(**base)

    def fund(self, account: Any, amount: int = 10**9) -> None:
        self.world.token.mint(self.world.sponsor, account.address, amount)

    def bond(self, *accounts: Any) -> None:
        for a in accounts:
            self.fund(a)
            self.world.token.approve(a, self.o.address, 10**9)
            self.o.bond(a, self.job_id)

    def commit_all(self) -> None:
        """The trainers register and commit the round's updates; the phase closes at min_commits."""
        w = self.world
        for t in w.trainers[: self.n]:
            w.coord.register(t, self.job_id, as_trainer=True)
        for t, e in zip(w.trainers[: self.n], self.round.entries, strict=True):
            w.coord.commit(t, self.job_id, 1, e.root, e.weight)

    def drawn(self, attempt: int = 0) -> Any:
        address = self.o.drawn(self.job_id, 1, attempt)
        return next(a for a in self.world.accounts if a.address.lower() == address.lower())

    def cid(self, attempt: int = 0) -> int:
        return claim_id(self.job_id, 1, attempt)

    def challenge(self, by: Any, r: Round, coordinate: int, attempt: int = 0) -> Receipt:
        coord, previous, aggregate, low, high = r.opening(coordinate)
        return self.disputes.transact(
            by,
            "challenge",
            self.cid(attempt),
            r.claim.as_tuple(),
            coord,
            previous,
            aggregate,
            low,
            high,
            r.inputs(coordinate),
        )
