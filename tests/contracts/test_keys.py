"""keys.vy alone: a committer reveals its shares once per round, only while the round aggregates.

Validators unmask the committers' sum from these reveals, so a reveal from anyone but a
committer of that very round, or a second one that could replace the first, must not land.
"""

from __future__ import annotations

import boa
import pytest
from module_harness import load

OPEN, AGGREGATING = 1, 2
SHARES = b"\x5a" * 32


def job_word(phase: int, round: int) -> int:
    return phase | (round << 8)


def trainer_word(last_round: int, registered: bool = True) -> int:
    return int(registered) | (last_round << 3)


@pytest.fixture
def keys():
    return load("keys_harness")


def test_a_committer_reveals_once_per_round(keys) -> None:
    trainer = boa.env.generate_address()
    keys.set_trainer(1, trainer, trainer_word(1))
    keys.set_job(1, job_word(OPEN, 1))
    with boa.env.prank(trainer):
        with boa.reverts("coordinator: round not aggregating"):
            keys.reveal(1, 1, SHARES)
        keys.set_job(1, job_word(AGGREGATING, 1))
        with boa.reverts("coordinator: wrong round"):
            keys.reveal(1, 2, SHARES)
        with boa.reverts("coordinator: empty commitment"):
            keys.reveal(1, 1, b"\x00" * 32)
        keys.reveal(1, 1, SHARES)
        logs = keys.get_logs()
        assert [(type(e).__name__, e.trainer, e.round, e.commitment) for e in logs] == [
            ("SharesRevealed", trainer, 1, SHARES)
        ]
        with boa.reverts("coordinator: already revealed"):
            keys.reveal(1, 1, SHARES)
        # the next round it committed to, it reveals again
        keys.set_trainer(1, trainer, trainer_word(2))
        keys.set_job(1, job_word(AGGREGATING, 2))
        keys.reveal(1, 2, SHARES)


def test_only_a_registered_committer_of_the_round_reveals(keys) -> None:
    late, gone = boa.env.generate_address(), boa.env.generate_address()
    keys.set_job(1, job_word(AGGREGATING, 3))
    keys.set_trainer(1, late, trainer_word(2))  # committed to an earlier round only
    keys.set_trainer(1, gone, trainer_word(3, registered=False))  # ejected after committing
    for account in (late, gone, boa.env.generate_address()):
        with boa.env.prank(account), boa.reverts("coordinator: not a committer"):
            keys.reveal(1, 3, SHARES)
