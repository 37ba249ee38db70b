"""Many organisations on one machine: the whole protocol, round by round.

Every organisation is a real trainer (its own data partition, its own model
copy, its own key) and, by default, a validator that independently recomputes
each round. The chain is the in-process EVM by default or any JSON-RPC node;
the blob store is a local directory inside the run directory. Nothing here
is simulated away: the contracts enforce the rounds, the validators agree by
quorum on identical bytes, and the run directory is auditable afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from eth_utils.crypto import keccak

from fedledger.chain.base import Chain, dev_accounts
from fedledger.chain.contracts import SCORE_ONE, Deployment, Phase, deploy_contracts
from fedledger.chain.inprocess import InProcessChain
from fedledger.codec.blob import encode_tensors
from fedledger.codec.commitment import commitment_hex
from fedledger.data.stats import SUM as STATS_SUM
from fedledger.data.stats import split_stats, standardise_in_place, standardiser
from fedledger.errors import SpecError
from fedledger.roles.job import CommitRecord, JobReader
from fedledger.roles.model import float_weights, quantize_model
from fedledger.roles.outcome import model_metadata
from fedledger.roles.scorer import RoundScores, scorer_for
from fedledger.roles.secure import SecureInputs
from fedledger.roles.sponsor import create_job
from fedledger.roles.trainer import Trainer
from fedledger.roles.validator import Validator
from fedledger.sim.attacks import Attack, add_trigger, apply_attack, apply_profiles, backdoor_success
from fedledger.sim.faults import CONDUCT_FAULTS, VALIDATOR_FAULTS, Fault, NaNClient, blob_hook
from fedledger.sim.outputs import write_run
from fedledger.sim.timing import TimedChain
from fedledger.spec import JobSpec
from fedledger.store.cached import VerifiedCache
from fedledger.store.local import LocalStore
from fedledger.training.client import NumPyClient
from fedledger.training.consortium import build_consortium
from fedledger.training.datasets import Dataset
from fedledger.training.torch_client import (
    evaluate,
    get_weights,
    predict,
    set_weights,
)

if TYPE_CHECKING:  # own-data jobs import Arrow and the SQL drivers only when they run
    from eth_account.signers.local import LocalAccount

    from fedledger.training.own import LocalTrainer, OwnSources

log = logging.getLogger("fedledger.sim")


@dataclass
class RoundMetrics:
    """One row of the per-round table, metrics.json and metrics.csv."""

    round: int
    version: int
    status: str  # "finalized" | "failed"
    commits: int
    accepted: int
    rejected: int
    flagged: int
    test_accuracy: float
    test_loss: float
    train_loss: float
    gas_used: int
    transactions: int
    chain_seconds: float
    train_seconds: float
    round_seconds: float
    model_commitment: str
    backdoor_success: float = float("nan")  # only computed under the backdoor attack
    scoring_seconds: float = 0.0  # contribution scoring of the round (one validator's)
    epsilon: float = 0.0  # differential privacy: the job's ε on chain after this round


@dataclass
class SimulationResult:
    out_dir: Path
    job_id: int
    rounds: list[RoundMetrics]
    final_accuracy: float
    final_commitment: bytes
    wall_seconds: float
    chain_seconds: float
    outcome: str = "completed"  # "completed" (every round finalised) or "aborted" (too many failures)
    participants: dict[str, str] = field(default_factory=dict)
    payouts: dict[str, int] = field(default_factory=dict)
    malicious: list[str] = field(default_factory=list)  # organisation names
    flags: dict[str, int] = field(default_factory=dict)  # organisation -> times flagged
    slashed: dict[str, int] = field(default_factory=dict)  # organisation -> stake units slashed
    ejected: list[str] = field(default_factory=list)
    backdoor_success: float = float("nan")  # of the final model, whatever the attack
    scores: list[RoundScores] = field(default_factory=list)  # per finalised round, if scoring
    earnings: dict[str, Earnings] = field(default_factory=dict)  # organisation -> what it withdrew
    epsilon_spent: float = 0.0  # differential privacy: ε recorded on chain (PrivacySpent)
    secagg_faults: list[tuple[int, str, str]] = field(default_factory=list)  # (round, org, fault)


@dataclass(frozen=True)
class Earnings:
    """One organisation's withdrawal at the end of the job, from its Withdrawn event."""

    reward: int  # as a trainer: its shares of the round rewards
    fees: int  # as a validator: fees for scores near consensus
    stake: int  # its deposit back, less slashes
    reputation: int  # its reputation score after this job (0..SCORE_ONE)


@dataclass
class Organisation:
    name: str
    trainer: Trainer
    validator: Validator | None


class Simulation:
    """Sets up a consortium, runs rounds until the job ends, and leaves the evidence."""

    def __init__(
        self,
        spec: JobSpec,
        *,
        out_dir: Path,
        chain: Chain | None = None,
        faults: Sequence[Fault] = (),
        attack: Attack | None = None,
        profiles: Sequence[tuple[str, int]] = (),
        data: OwnSources | None = None,
    ) -> None:
        if spec.own_data and data is None:
            raise SpecError("data", f"job {spec.name!r} trains on own data: give each organisation's source")
        for f in faults:  # refused before the run directory or its log exist
            if not 1 <= f.trainer <= spec.trainers:
                raise SpecError("fault", f"trainer {f.trainer} is outside 1..{spec.trainers}")
            if f.kind in VALIDATOR_FAULTS and f.trainer > spec.committee_size:
                committee = f"the committee is 1..{spec.committee_size}"
                raise SpecError("fault", f"trainer {f.trainer} is not a validator ({committee})")
        self.own = data
        self.spec = spec
        self.attack = attack
        self.profiles = list(profiles)
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # the run log is part of the evidence: rejections with their reasons
        self._log_handler = logging.FileHandler(self.out_dir / "run.log")
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._log_handler.setLevel(logging.INFO)
        pkg_log = logging.getLogger("fedledger")
        pkg_log.addHandler(self._log_handler)
        if pkg_log.getEffectiveLevel() > logging.INFO:
            pkg_log.setLevel(logging.INFO)
        self.chain = TimedChain(chain or InProcessChain())
        self.disk = LocalStore(self.out_dir / "store")
        # all parties share one process here: each blob is hash-checked by its first
        # reader, then served verified to the rest (see store/cached.py)
        self.store = VerifiedCache(self.disk)
        self.faults = {f.trainer: f for f in faults}
        self.accounts = dev_accounts(spec.trainers + 1)
        self.sponsor = self.accounts[0]
        self.metrics: list[RoundMetrics] = []
        self.data_commitments: dict[str, str] = {}  # organisation -> root of its DataCommitted
        self._test_key: bytes = b""
        self._test_x = np.zeros(0, dtype=np.float32)
        self.secagg_faults: list[tuple[int, str, str]] = []  # (round, organisation, fault)
        try:
            self._setup()
        except BaseException:  # a refused job keeps no log handler (the caller removes its directory)
            self._detach_log()
            raise

    # -- setup -------------------------------------------------------------------------------

    def _setup(self) -> None:
        from fedledger.training.code import check_code_digest, code_digest

        refs = [self.spec.model, self.spec.client]
        if not self.spec.code_digest:  # the sponsor approves the code it runs
            self.spec = self.spec.with_overrides(code_digest=code_digest(refs) or None)
        else:
            check_code_digest(refs, self.spec.code_digest, organisation="simulate")
        self.local: list[LocalTrainer] = []
        if self.own is not None:
            from fedledger.training.own import build_own_consortium

            consortium, self.local = build_own_consortium(
                self.spec, self.own.sources, test=self.own.test, organisations=self.own.organisations
            )
        else:
            consortium = build_consortium(self.spec)
        if consortium.root is not None:  # FLTrust: the spec binds the root dataset by hash
            if self.spec.root_dataset and self.spec.root_dataset != consortium.root_hash:
                raise SpecError(
                    "root_dataset",
                    f"{self.spec.root_dataset} is not the hash of this root dataset ({consortium.root_hash})",
                )
            self.spec = self.spec.with_overrides(root_dataset=consortium.root_hash)
        if consortium.validation is not None:  # scoring: the spec binds the validation set by hash
            if self.spec.validation_dataset and self.spec.validation_dataset != consortium.validation_hash:
                raise SpecError(
                    "validation_dataset",
                    f"{self.spec.validation_dataset} is not the hash of this validation set "
                    f"({consortium.validation_hash})",
                )
            self.spec = self.spec.with_overrides(validation_dataset=consortium.validation_hash)
        self.validation = consortium.validation
        self.scores: list[RoundScores] = []
        spec = self.spec
        clients: list[NumPyClient] = list(consortium.clients)
        self.malicious: list[int] = []
        if self.attack is not None:
            clients, self.malicious = apply_attack(consortium, spec, self.attack)
        if self.profiles:
            clients = apply_profiles(consortium, spec, clients, self.profiles)
        self.dataset: Dataset = consortium.dataset
        init = consortium.initial_model
        self.names = consortium.names
        self.eval_model = init
        self.scorer = scorer_for(self.spec, consortium) if self.validation is not None else None
        initial_q = quantize_model(self.names, get_weights(init), spec.scale_bits)
        self.initial_model = self.store.put(encode_tensors(initial_q, metadata=model_metadata(0, 0)))

        self.deployment: Deployment = deploy_contracts(self.chain, self.sponsor)
        token, coordinator = self.deployment.token, self.deployment.coordinator
        pool = spec.reward_per_round * spec.chain_rounds
        token.mint(self.sponsor, self.sponsor.address, pool)
        trainer_accounts = self.accounts[1:]
        for acct in trainer_accounts:
            token.mint(self.sponsor, acct.address, spec.stake)
            token.approve(acct, coordinator.address, spec.stake)
        committee = [a.address for a in trainer_accounts[: spec.committee_size]]
        self.job_id, _ = create_job(
            deployment=self.deployment,
            sponsor=self.sponsor,
            spec=spec,
            initial_model=self.initial_model,
            committee=committee,
        )
        self.reader = JobReader(coordinator, self.job_id)
        log.info("job %d created on %s", self.job_id, self.chain.description)
        self.root_trainer: Trainer | None = None
        if consortium.root is not None:
            # FLTrust's reference update: the sponsor trains on the root dataset and commits
            token.mint(self.sponsor, self.sponsor.address, spec.stake)
            token.approve(self.sponsor, coordinator.address, spec.stake)
            self.root_trainer = Trainer(
                name="sponsor",
                account=self.sponsor,
                coordinator=coordinator,
                store=self.store,
                client=consortium.root,
                names=self.names,
                spec=spec,
                job_id=self.job_id,
            )
            self.root_trainer.register()

        self.orgs: list[Organisation] = []
        org_names = list(self.own.organisations) if self.own and self.own.organisations else []
        for i, (acct, client) in enumerate(zip(trainer_accounts, clients, strict=True), start=1):
            name = org_names[i - 1] if org_names else f"org-{i:02d}"
            fault = self.faults.get(i)
            if fault is not None and fault.kind == "nan-weights":
                client = NaNClient(client, fault.from_round)
            hook = None
            if fault is not None and fault.kind == "withhold-reveal" and not spec.secure:
                raise SpecError("fault", "withhold-reveal needs privacy=secagg (there is nothing to reveal)")
            if fault is not None and fault.kind not in (
                "corrupt-blob",
                "nan-weights",
                *VALIDATOR_FAULTS,
                *CONDUCT_FAULTS,
            ):
                rewrite = blob_hook(fault.kind, spec.max_update_norm_q)
                start = fault.from_round

                def hook(
                    blob: bytes,
                    r: int,
                    rewrite: Callable[[bytes], bytes | None] = rewrite,
                    start: int = start,
                ) -> bytes | None:
                    return rewrite(blob) if r >= start else blob

            trainer = Trainer(
                name=name,
                account=acct,
                coordinator=coordinator,
                store=self.store,
                client=client,
                names=self.names,
                spec=spec,
                job_id=self.job_id,
                blob_hook=hook,
                features=self.local[i - 1].features if self.local else None,
            )
            validator = None
            liar = None
            if fault is not None and fault.kind == "lying-validator":
                start = fault.from_round

                def liar(aggregate: bytes, start: int = start) -> bytes:
                    r = coordinator.job_state(self.job_id).round
                    return bytes(keccak(b"forged" + aggregate)) if r >= start else aggregate

            if acct.address in committee:
                validator = Validator(
                    name=name,
                    account=acct,
                    coordinator=coordinator,
                    store=self.store,
                    spec=spec,
                    job_id=self.job_id,
                    root_trainer=self.sponsor.address if consortium.root is not None else "",
                    aggregate_hook=liar,
                    scorer=self.scorer,
                    score_hook=self._biased_scores(acct.address, fault),
                )
            trainer.register()
            if self.local:
                self._commit_data(i, name, acct)
            self.orgs.append(Organisation(name, trainer, validator))
        self.participants: dict[str, str] = {str(o.trainer.account.address): o.name for o in self.orgs}
        self.participants[self.sponsor.address] = "sponsor"
        self.malicious_names = [self.orgs[i - 1].name for i in self.malicious]

    def _commit_data(self, i: int, name: str, account: LocalAccount) -> None:
        """Organisation i commits to its rows; its opening goes to `private/`, never handed over."""
        from fedledger.roles.data_commitment import make_opening, post_data_commitment

        assert self.own is not None and self.spec.data_schema is not None
        sources, local = self.own.sources, self.local[i - 1]
        source = sources[i - 1] if len(sources) == len(self.local) else sources[0]
        private = self.out_dir / "private"
        private.mkdir(mode=0o700, exist_ok=True)
        schema = self.spec.data_schema
        if local.rows is not None and schema.kind == "table":  # a share of one table: its own file now
            import pyarrow.parquet as pq

            from fedledger.data.sources import DataSource, read_table

            table = read_table(source, organisation=name, columns=list(schema.columns))
            share = private / f"{name}.parquet"
            pq.write_table(table.take(local.rows), share)
            source = DataSource(str(share))
        opening = make_opening(local.data, self.spec, organisation=name, source=source)
        opening.write(private / f"{name}.opening.json")
        post_data_commitment(
            self.deployment.data_registry, account, self.job_id, opening.commitment, name=name
        )
        self.data_commitments[name] = commitment_hex(opening.commitment.root)

    # -- rounds ------------------------------------------------------------------------------

    def test_inputs(self, model_q: Mapping[str, np.ndarray]) -> np.ndarray:
        """The held-out inputs as a committed model sees them: z-scored by its committed statistics."""
        _, stats_q = split_stats(model_q)
        if not stats_q:
            return self.dataset.x_test
        key = stats_q[STATS_SUM].tobytes()
        if self._test_key != key:
            x = self.dataset.x_test.copy()
            standardise_in_place(x, *standardiser(stats_q, self.spec.scale_bits))
            self._test_key, self._test_x = key, x
        return self._test_x

    def evaluate(self, commitment: bytes) -> tuple[float, float]:
        """Test loss and accuracy of a committed model on the held-out split."""
        model_q = self.store.get_tensors(commitment)
        set_weights(self.eval_model, float_weights(self.names, model_q, self.spec.scale_bits))
        loss, acc = evaluate(self.eval_model, self.test_inputs(model_q), self.dataset.y_test)
        return acc, loss

    def backdoor_success(self, commitment: bytes) -> float:
        """Share of triggered non-target test images the model assigns the backdoor's label."""
        model_q = self.store.get_tensors(commitment)
        set_weights(self.eval_model, float_weights(self.names, model_q, self.spec.scale_bits))
        x, y = add_trigger(self.dataset.x_test), self.dataset.y_test
        return backdoor_success(predict(self.eval_model, x), y)

    def _biased_scores(self, me: str, fault: Fault | None) -> Callable[[list[int]], list[int]] | None:
        """The biased validator's score hook: full marks for its own commit, zero for the rest."""
        if fault is None or fault.kind != "biased-validator":
            return None
        start = fault.from_round

        def biased(posted: list[int]) -> list[int]:
            r = self.deployment.coordinator.job_state(self.job_id).round
            if r < start:
                return posted
            order = sorted(self.reader.commits(r), key=lambda c: (c.block_number, c.log_index))
            return [SCORE_ONE if c.trainer.lower() == me.lower() else 0 for c in order]

        return biased

    def run_round(self) -> RoundMetrics:
        coordinator = self.deployment.coordinator
        t_round = time.perf_counter()
        chain_s0, gas0, tx0 = self.chain.seconds, self.chain.gas, self.chain.transactions
        state = coordinator.job_state(self.job_id)
        r, version = state.round, state.version
        global_c = coordinator.global_model(self.job_id)

        train_s, losses = 0.0, []
        for i, org in enumerate(self.orgs, start=1):
            fault = self.faults.get(i)
            if fault and fault.kind == "drop-out" and r >= fault.from_round:
                log.info("round %d: %s is offline (drop-out fault)", r, org.name)
                continue
            result = org.trainer.run_round(r, global_c)
            train_s += result.train_seconds
            losses.append(result.loss)
            fault = self.faults.get(i)
            if fault and fault.kind == "corrupt-blob" and r >= fault.from_round and result.commitment:
                path = self.disk.path_for(result.commitment)
                data = bytearray(path.read_bytes())
                data[-1] ^= 0xFF
                path.write_bytes(bytes(data))
        if self.root_trainer is not None:
            self.root_trainer.run_round(r, global_c)

        state = coordinator.job_state(self.job_id)
        if state.phase == Phase.OPEN and state.round == r:
            # not every trainer committed: wait out the window, then anyone may advance
            self.chain.increase_time(self.spec.commit_window_s + 1)
            coordinator.advance(self.sponsor, self.job_id)
            state = coordinator.job_state(self.job_id)

        commits = self.reader.commits(r)
        secure = None
        if state.phase == Phase.AGGREGATING and state.round == r and self.spec.secure:
            secure = self.reveal_round(r, global_c, commits)
        releases = sum(1 for e in self.reader.events if e.name == "PrivacySpent")
        if state.phase == Phase.AGGREGATING and state.round == r:
            global_q = self.store.get_tensors(global_c)
            reported = False
            for org in self.orgs:
                if org.validator is None:
                    continue
                outcome, receipt = org.validator.process_round(
                    round=r,
                    version=version,
                    global_model=global_q,
                    commits=commits,
                    names=self.participants,
                    secure=secure,
                    releases_before=releases,
                )
                if not reported:  # every honest validator finds the same; say it once
                    for who, why in outcome.faults.items():
                        log.warning(
                            "round %d: secure aggregation fault of %s: %s",
                            r,
                            self.participants.get(who, who),
                            why,
                        )
                        self.secagg_faults.append((r, self.participants.get(who, who), why))
                    for rej in outcome.rejected:
                        log.warning(
                            "round %d: validators reject the update of %s: %s",
                            r,
                            self.participants.get(rej.trainer, rej.trainer),
                            rej.reason,
                        )
                    reported = True
                # the proposal's own receipt says whether it decided the round
                decided = receipt is None or any(
                    e.name in ("RoundFinalized", "RoundFailed") for e in coordinator.events_in(receipt)
                )
                if decided:
                    break
            state = coordinator.job_state(self.job_id)
            if state.phase == Phase.AGGREGATING and state.round == r:
                self.chain.increase_time(self.spec.aggregate_window_s + 1)
                coordinator.advance(self.sponsor, self.job_id)

        # anyone may report a validator that proposed what the quorum did not: the sponsor does
        for dissenter in self.reader.dissenters(r):
            log.warning(
                "round %d: reporting %s, whose proposal lost to the quorum's",
                r,
                self.participants.get(dissenter, dissenter),
            )
            coordinator.report_dissent(self.sponsor, self.job_id, r, dissenter)
        self.reader.poll()
        rec = self.reader.rounds[r]
        if rec.finalized is not None:
            status, model_c = "finalized", rec.finalized.args["aggregate"]
            version = rec.finalized.args["version"]
        else:
            status, model_c = "failed", global_c
        acc, loss = self.evaluate(model_c)
        m = RoundMetrics(
            round=r,
            version=version,
            status=status,
            commits=len(commits),
            accepted=len(commits) - len(rec.excluded),
            rejected=len(rec.excluded),
            flagged=len(rec.slashed),
            test_accuracy=acc,
            test_loss=loss,
            # the statistics round trains nothing: no loss to average
            train_loss=float(np.nanmean(losses)) if np.isfinite(losses).any() else float("nan"),
            gas_used=self.chain.gas - gas0,
            transactions=self.chain.transactions - tx0,
            chain_seconds=self.chain.seconds - chain_s0,
            train_seconds=train_s,
            round_seconds=time.perf_counter() - t_round,
            model_commitment=commitment_hex(model_c),
            epsilon=coordinator.epsilon_spent(self.job_id) / 1e6 if self.spec.dp else 0.0,
        )
        if self.attack is not None and self.attack.kind == "backdoor":
            m.backdoor_success = self.backdoor_success(model_c)
        if self.scorer is not None and rec.finalized is not None:
            # the scores the honest validators posted (one scorer serves them all here)
            assert self.scorer.last is not None and self.scorer.last.scores.round == r
            m.scoring_seconds = self.scorer.last.scores.seconds
            self.scores.append(self.scorer.last.scores)
        self.metrics.append(m)
        return m

    def reveal_round(self, r: int, global_c: bytes, commits: Sequence[CommitRecord]) -> SecureInputs:
        """Secure aggregation: every committer reveals (unless its fault withholds it); the inputs."""
        for i, org in enumerate(self.orgs, start=1):
            fault = self.faults.get(i)
            if fault and fault.kind == "withhold-reveal" and r >= fault.from_round:
                log.info("round %d: %s withholds its share reveal (withhold-reveal fault)", r, org.name)
                continue
            org.trainer.reveal(r, global_c, commits)
        self.reader.poll()
        coordinator = self.deployment.coordinator
        return SecureInputs.from_events(coordinator.address, self.reader.events, self.job_id, r, global_c)

    def running(self) -> bool:
        return self.deployment.coordinator.job_state(self.job_id).phase in (
            Phase.OPEN,
            Phase.AGGREGATING,
        )

    def settle(self) -> dict[str, int]:
        """Everyone withdraws rewards and stakes; the sponsor reclaims what is left."""
        coordinator, token = self.deployment.coordinator, self.deployment.token
        before = {o.name: token.balance_of(o.trainer.account.address) for o in self.orgs}
        self.earnings: dict[str, Earnings] = {}
        for org in self.orgs:
            receipt = coordinator.withdraw(org.trainer.account, self.job_id)
            w = next(e.args for e in coordinator.events_in(receipt) if e.name == "Withdrawn")
            rep = coordinator.reputation(org.trainer.account.address)
            self.earnings[org.name] = Earnings(int(w["reward"]), int(w["fees"]), int(w["stake"]), rep.score)
        if coordinator.pool(self.job_id) > 0:
            coordinator.reclaim(self.sponsor, self.job_id)
        return {o.name: token.balance_of(o.trainer.account.address) - before[o.name] for o in self.orgs}

    def run(self, on_round: Callable[[RoundMetrics], None] | None = None) -> SimulationResult:
        t0 = time.perf_counter()
        while self.running():
            m = self.run_round()
            if on_round is not None:
                on_round(m)
        payouts = self.settle()
        phase = self.deployment.coordinator.job_state(self.job_id).phase
        outcome = "completed" if phase == Phase.DONE else "aborted"
        final = self.deployment.coordinator.global_model(self.job_id)
        flags: dict[str, int] = {}
        slashed: dict[str, int] = {}
        ejected: list[str] = []
        for rec in self.reader.rounds.values():
            for e in rec.slashed:
                org = self.participants.get(e.args["trainer"], e.args["trainer"])
                flags[org] = flags.get(org, 0) + 1
                slashed[org] = slashed.get(org, 0) + int(e.args["amount"])
            ejected += [self.participants.get(t, t) for t in rec.ejected]
        result = SimulationResult(
            out_dir=self.out_dir,
            job_id=self.job_id,
            rounds=self.metrics,
            final_accuracy=self.metrics[-1].test_accuracy if self.metrics else float("nan"),
            final_commitment=final,
            wall_seconds=time.perf_counter() - t0,
            chain_seconds=self.chain.seconds,
            outcome=outcome,
            participants=self.participants,
            payouts=payouts,
            malicious=self.malicious_names,
            flags=flags,
            slashed=slashed,
            ejected=ejected,
            backdoor_success=float("nan") if self.spec.own_data else self.backdoor_success(final),
            scores=self.scores,
            earnings=self.earnings,
            epsilon_spent=self.deployment.coordinator.epsilon_spent(self.job_id) / 1e6,
            secagg_faults=list(self.secagg_faults),
        )
        write_run(self, result)
        self._detach_log()
        return result

    def _detach_log(self) -> None:
        logging.getLogger("fedledger").removeHandler(self._log_handler)
        self._log_handler.close()
