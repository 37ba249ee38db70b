"""The coordinator's typed client: one method per contract function, same names.

The contract, this client, the CLI and the docs use one name per concept, so a
method here reads as the contract's function of that name (`coordinator.vy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from fedledger.chain.base import PendingReceipt, Receipt
from fedledger.chain.contract import Contract, DataRegistry, Sampler
from fedledger.chain.types import (
    JobParams,
    JobState,
    Phase,
    Reputation,
    RoundResult,
    RoundStatus,
    TrainerState,
    flag_mask,
    pack_scores,
)
from fedledger.errors import ChainError, TransactionReverted

#: the storage slot of the coordinator's `rounds._sampler` (vyper 0.4.3 lays the modules out in
#: the order coordinator.vy initializes them; `tests/integration/test_sampler_lookup.py` checks it
#: against the compiler's)
SAMPLER_SLOT = 23


class Coordinator(Contract):
    artifact_name = "coordinator"

    @classmethod
    def connect(cls, rpc_url: str, address: str, *, ca_bundle: str | None = None) -> Coordinator:
        """The coordinator at `address` on the node at `rpc_url`; ChainError if no contract is there."""
        from eth_abi.exceptions import DecodingError
        from eth_utils.address import is_address

        from fedledger.chain.rpc import RpcChain

        if not is_address(address):
            raise ChainError(f"{address!r} is not a contract address (0x followed by 40 hex digits)")
        chain = RpcChain(rpc_url, ca_bundle=ca_bundle)
        if not chain.code_at(address):
            raise ChainError(
                f"no contract at {address} on the node at {rpc_url} (chain id {chain.chain_id}): "
                "wrong address or wrong chain?"
            )
        coordinator = cls(chain, address)
        try:
            coordinator.job_count()
        except (TransactionReverted, DecodingError):
            raise ChainError(
                f"the contract at {address} on chain id {chain.chain_id} is not a fedledger coordinator "
                "(is it the token's address?)"
            ) from None
        return coordinator

    def check_job(self, job_id: int) -> None:
        """ChainError unless job `job_id` exists here."""
        count = self.job_count()
        if not 1 <= job_id <= count:
            raise ChainError(f"job {job_id} does not exist on {self.address} ({count} jobs)")

    # -- transactions ----------------------------------------------------------------------

    def create_job(self, sponsor: LocalAccount, params: JobParams) -> tuple[int, Receipt]:
        receipt = self.transact(sponsor, "create_job", params.__dict__)
        created = [e for e in self.events_in(receipt) if e.name == "JobCreated"]
        return int(created[0].args["job_id"]), receipt

    def register(self, account: LocalAccount, job_id: int, *, as_trainer: bool) -> Receipt:
        return self.transact(account, "register", job_id, as_trainer)

    def register_with_key(self, account: LocalAccount, job_id: int, public_key: bytes) -> Receipt:
        """Joins a secure-aggregation job as a trainer and publishes its X25519 key."""
        return self.transact(account, "register_with_key", job_id, public_key)

    def reveal(self, trainer: LocalAccount, job_id: int, round: int, commitment: bytes) -> Receipt:
        """Posts the commitment of this committer's revealed shares for the aggregating round."""
        return self.reveal_later(trainer, job_id, round, commitment).result()

    def reveal_later(
        self, trainer: LocalAccount, job_id: int, round: int, commitment: bytes
    ) -> PendingReceipt:
        """`reveal` without waiting: a simulation's committers reveal in a row."""
        return self.transact_later(trainer, "reveal", job_id, round, commitment)

    def commit(
        self,
        trainer: LocalAccount,
        job_id: int,
        round: int,
        commitment: bytes,
        num_examples: int,
        seat: int = 0,
    ) -> Receipt:
        """`seat`: the trainer's seat in the round's draw, in a job that samples trainers."""
        return self.commit_later(trainer, job_id, round, commitment, num_examples, seat).result()

    def commit_later(
        self,
        trainer: LocalAccount,
        job_id: int,
        round: int,
        commitment: bytes,
        num_examples: int,
        seat: int = 0,
    ) -> PendingReceipt:
        """`commit` without waiting for the receipt: the trainer goes on while it executes."""
        return self.transact_later(trainer, "commit", job_id, round, commitment, num_examples, seat)

    def propose(
        self,
        validator: LocalAccount,
        job_id: int,
        round: int,
        aggregate: bytes,
        excluded: list[str],
        flagged: Sequence[str] = (),
        scores: Sequence[int] = (),
        micro_epsilon: int = 0,
        seat: int = 0,
    ) -> Receipt:
        """`flagged` must be a subset of `excluded`; it becomes the bitmask over sorted `excluded`.
        `scores` are one per committer in commit order (scored jobs only), packed here.
        `micro_epsilon`: a DP job's cumulative ε after this round, in 10⁻⁶ (0 without DP).
        `seat`: the validator's seat in the round's draw, in a job that draws its committee."""
        return self.propose_later(
            validator, job_id, round, aggregate, excluded, flagged, scores, micro_epsilon, seat
        ).result()

    def propose_later(
        self,
        validator: LocalAccount,
        job_id: int,
        round: int,
        aggregate: bytes,
        excluded: list[str],
        flagged: Sequence[str] = (),
        scores: Sequence[int] = (),
        micro_epsilon: int = 0,
        seat: int = 0,
    ) -> PendingReceipt:
        """`propose` without waiting for the receipt: a simulated committee sends its members'
        proposals in a row while the chain executes them."""
        ordered = sorted(excluded, key=lambda a: int(a, 16))
        mask = flag_mask(ordered, flagged)
        words = pack_scores(scores)
        return self.transact_later(
            validator, "propose", job_id, round, aggregate, ordered, mask, words, micro_epsilon, seat
        )

    def report_dissent(self, caller: LocalAccount, job_id: int, round: int, validator: str) -> Receipt:
        return self.transact(caller, "report_dissent", job_id, round, validator)

    def advance(self, caller: LocalAccount, job_id: int, *, gas: int | None = None) -> Receipt:
        """`gas` skips estimation: a node that mines only on demand estimates against its last
        block, whose timestamp may not yet be past the deadline that the new block will be."""
        return self.transact(caller, "advance", job_id, gas=gas)

    def withdraw(self, account: LocalAccount, job_id: int) -> Receipt:
        return self.withdraw_later(account, job_id).result()

    def withdraw_later(self, account: LocalAccount, job_id: int) -> PendingReceipt:
        """`withdraw` without waiting: a simulation settles every organisation in a row."""
        return self.transact_later(account, "withdraw", job_id)

    def reclaim(self, sponsor: LocalAccount, job_id: int) -> Receipt:
        return self.transact(sponsor, "reclaim", job_id)

    # -- views -----------------------------------------------------------------------------

    def job_count(self) -> int:
        return int(self.read("job_count"))

    def job_state(self, job_id: int) -> JobState:
        s = self.read("job_state", job_id)
        return JobState(phase=Phase(s["phase"]), **{k: int(v) for k, v in s.items() if k != "phase"})

    def epsilon_spent(self, job_id: int) -> int:
        """Micro-ε (10⁻⁶) the job has spent so far, as its last quorum recorded it."""
        return int(self.read("epsilon_spent", job_id))

    def public_key(self, job_id: int, account: str) -> bytes:
        """The account's X25519 key in the job's key directory (32 zero bytes if none)."""
        return bytes(self.read("public_key", job_id, account))

    def job_config(self, job_id: int) -> dict[str, Any]:
        return dict(self.read("job_config", job_id))

    def global_model(self, job_id: int) -> bytes:
        return bytes(self.read("global_model", job_id))

    def trainer_state(self, job_id: int, account: str) -> TrainerState:
        return TrainerState(**self.read("trainer_state", job_id, account))

    def round_result(self, job_id: int, round: int) -> RoundResult:
        word, aggregate = self.read("round_result", job_id, round)
        return RoundResult(
            status=RoundStatus(word["status"]),
            accepted_commits=int(word["accepted_commits"]),
            accepted_weight=int(word["accepted_weight"]),
            reward=int(word["reward"]),
            scored=bool(word["scored"]),
            aggregate=bytes(aggregate),
        )

    def claimable(self, job_id: int, account: str) -> int:
        return int(self.read("claimable", job_id, account))

    def fees_of(self, job_id: int, account: str) -> int:
        return int(self.read("fees_of", job_id, account))

    def consensus_score(self, job_id: int, round: int, slot: int) -> int:
        return int(self.read("consensus_score", job_id, round, slot))

    def reputation(self, account: str) -> Reputation:
        return Reputation(**{k: int(v) for k, v in self.read("reputation", account).items()})

    def stake_of(self, job_id: int, account: str) -> int:
        return int(self.read("stake_of", job_id, account))

    def pool(self, job_id: int) -> int:
        return int(self.read("pool", job_id))

    def is_validator(self, job_id: int, account: str) -> bool:
        return bool(self.read("is_validator", job_id, account))

    def data_registry(self) -> DataRegistry:
        """The registry this coordinator's trainers commit their data to (bound at deployment)."""
        return DataRegistry(self.chain, str(self.read("data_registry")))

    def sampler(self) -> Sampler | None:
        """The sampler bound at deployment, read from the coordinator's own storage; None if unset.

        EIP-170 left no room for a getter, so this reads the `_sampler` slot directly: it needs
        nothing but the coordinator's address, and trusts no config or event anyone could forge.
        """
        word = self.chain.storage_at(self.address, SAMPLER_SLOT)
        if not word:
            return None
        return Sampler(self.chain, to_checksum_address(word.to_bytes(20, "big")))
