"""A simulated consortium, set up: contracts, the job, and every organisation's trainer and validator.

`SimulationSetup` does everything before the first round: binds the code, root and validation
datasets into the spec, deploys the contracts, funds and stakes every account, creates the job,
wires each organisation's faults into its trainer or validator, and (own data) posts each
organisation's data commitment. `Simulation` (simulate.py) runs the rounds on top of it; the run
writer (outputs.py) reads what it built.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from eth_utils.crypto import keccak

from fedledger.chain.base import Chain, PendingReceipt, dev_accounts
from fedledger.chain.contracts import SCORE_ONE, Deployment, deploy_contracts
from fedledger.chain.inprocess import InProcessChain
from fedledger.chain.pipelined import PipelinedChain
from fedledger.codec.blob import encode_tensors
from fedledger.codec.commitment import commitment_hex
from fedledger.errors import SpecError
from fedledger.roles.job import JobReader
from fedledger.roles.model import GlobalModels, quantize_model
from fedledger.roles.outcome import model_metadata
from fedledger.roles.scorer import RoundScores, scorer_for
from fedledger.roles.sponsor import create_job
from fedledger.roles.trainer import Trainer
from fedledger.roles.validator import Validator
from fedledger.sim.attacks import Attack, apply_attack, apply_profiles
from fedledger.sim.backend import Backend, InProcessBackend
from fedledger.sim.committee import SharedRound
from fedledger.sim.courier import Courier
from fedledger.sim.faults import CONDUCT_FAULTS, VALIDATOR_FAULTS, Fault, NaNClient, blob_hook
from fedledger.sim.results import OptimisticLedger, RoundMetrics
from fedledger.sim.timing import TimedChain
from fedledger.spec import JobSpec
from fedledger.store.cached import VerifiedCache
from fedledger.store.local import LocalStore
from fedledger.training.client import ClientWrapper, NumPyClient
from fedledger.training.consortium import build_consortium
from fedledger.training.datasets import Dataset
from fedledger.training.torch_client import TorchClient, get_weights

if TYPE_CHECKING:  # own-data jobs import Arrow and the SQL drivers only when they run
    from eth_account.signers.local import LocalAccount

    from fedledger.training.own import LocalTrainer, OwnSources

log = logging.getLogger("fedledger.sim")


@dataclass
class Organisation:
    name: str
    trainer: Trainer
    validator: Validator | None


def check_targets(spec: JobSpec, faults: Sequence[Fault], profiles: Sequence[tuple[str, int]] = ()) -> None:
    """Refuses a fault or profile aimed at a trainer the job does not have.

    Called by the CLI before anything is printed or written, and again here for callers of the API.
    """
    for f in faults:
        if not 1 <= f.trainer <= spec.trainers:
            raise SpecError("fault", f"trainer {f.trainer} is outside 1..{spec.trainers}")
        if f.kind in VALIDATOR_FAULTS and f.trainer > spec.committee_size:
            committee = f"the committee is 1..{spec.committee_size}"
            raise SpecError("fault", f"trainer {f.trainer} is not a validator ({committee})")
        if (f.kind == "lying-proposer") != spec.optimistic and f.kind in (
            "lying-proposer",
            "lying-validator",
        ):
            mode = "verification=optimistic" if f.kind == "lying-proposer" else "verification=quorum"
            raise SpecError("fault", f"{f.kind} needs {mode} (this job's is {spec.verification})")
    for kind, i in profiles:
        if not 1 <= i <= spec.trainers:
            raise SpecError("profile", f"{kind}@{i}: trainer {i} is outside 1..{spec.trainers}")


class SimulationSetup:
    """A consortium ready for its first round; its run directory and log already open."""

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
        backend: Backend | None = None,
    ) -> None:
        if spec.own_data and data is None:
            raise SpecError("data", f"job {spec.name!r} trains on own data: give each organisation's source")
        check_targets(spec, faults, profiles)  # refused before the run directory or its log exist
        self.own = data
        self.spec = spec
        #: where local training runs (sim/backend.py); the caller closes it
        self.backend: Backend = backend or InProcessBackend()
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
        # by default the in-process EVM runs in its own process, beside training (chain/pipelined.py),
        # and so does the committee's second computation (sim/committee.py); a daemonic process
        # (a multiprocessing.Pool worker) may not start processes, so there both run in turn
        self.helpers = not multiprocessing.current_process().daemon
        self.chain = TimedChain(chain or (PipelinedChain() if self.helpers else InProcessChain()))
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
            consortium = build_consortium(self.spec, lazy=self.backend.lazy)
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
        clients = self.backend.attach(clients)
        for c in clients:  # a simulation reruns bit for bit: DP-SGD noise from the public seed
            while isinstance(c, ClientWrapper):
                c = c.inner
            if isinstance(c, TorchClient):
                c.seeded_noise = True
        self.dataset: Dataset = consortium.dataset
        init = consortium.initial_model
        self.names = consortium.names
        self.eval_model = init
        self.scorer = scorer_for(self.spec, consortium) if self.validation is not None else None
        # the committee computes each round twice, independently, and shares it; the second
        # computation runs in a worker process, reading the blob directory itself (sim/committee.py)
        self.committee = SharedRound(check_store=self.disk if self.helpers else None)
        self.courier = Courier(hash_apart=self.helpers)  # uploads and commits beside training
        # the round's global model, decoded once for every trainer and the evaluation
        self.models = GlobalModels(self.store, self.names, spec.scale_bits)
        initial_q = quantize_model(self.names, get_weights(init), spec.scale_bits)
        self.initial_model = self.store.put(encode_tensors(initial_q, metadata=model_metadata(0, 0)))

        self.deployment: Deployment = deploy_contracts(self.chain, self.sponsor)
        token, coordinator = self.deployment.token, self.deployment.coordinator
        pool = spec.reward_per_round * spec.chain_rounds
        # the set-up's transactions go out in a row, their receipts read once all are sent
        funding = [token.transact_later(self.sponsor, "mint", self.sponsor.address, pool)]
        trainer_accounts = self.accounts[1:]
        for acct in trainer_accounts:
            funding.append(token.transact_later(self.sponsor, "mint", acct.address, spec.stake))
            funding.append(token.transact_later(acct, "approve", coordinator.address, spec.stake))
        for sent in funding:
            sent.result()
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
        #: optimistic mode: claims posted, settled, struck (sim/optimistic_round.py)
        self.optimistic_ledger = OptimisticLedger()
        if spec.optimistic:
            self._delegate(trainer_accounts[: spec.committee_size])
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
                models=self.models,
            )
            self.root_trainer.register()

        self.orgs: list[Organisation] = []
        registering: list[PendingReceipt] = []
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
                models=self.models,
            )
            validator = None
            liar = None
            if fault is not None and fault.kind == "lying-validator":
                start = fault.from_round

                def liar(aggregate: bytes, start: int = start) -> bytes:
                    r = coordinator.job_state(self.job_id).round
                    return bytes(keccak(b"forged" + aggregate)) if r >= start else aggregate

            if acct.address in committee or spec.validators_per_round:  # drawn: anyone may sit
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
                    compute=self.committee,
                )
            registering.append(trainer.register_later())
            if spec.sampled and self.deployment.sampler is not None:
                self.deployment.sampler.enrol(acct, self.job_id)  # the order the draws choose from
            if self.local:
                self._commit_data(i, name, acct)
            self.orgs.append(Organisation(name, trainer, validator))
        self._while_registering()
        for sent in registering:
            sent.result()
        if spec.sampled and self.deployment.sampler is not None:
            # round 1 opened before anyone enrolled: the sponsor draws it now that all have
            self.deployment.sampler.start(self.sponsor, self.job_id)
        self.participants: dict[str, str] = {str(o.trainer.account.address): o.name for o in self.orgs}
        self.participants[self.sponsor.address] = "sponsor"
        self.malicious_names = [self.orgs[i - 1].name for i in self.malicious]

    def _while_registering(self) -> None:
        """Runs while the chain executes the registrations (a run starts round 1's first training)."""

    def _delegate(self, proposers: Sequence[LocalAccount]) -> None:
        """Optimistic mode: the sponsor hands the job to optimistic.vy and the committee bonds."""
        from fedledger.roles.optimistic import delegate_job, num_params

        d, spec = self.deployment, self.spec
        assert d.optimistic is not None
        d.token.mint(self.sponsor, self.sponsor.address, spec.stake)
        params = num_params(self.store.get_tensors(self.initial_model))
        committee = [a.address for a in proposers]
        delegate_job(d, self.sponsor, spec, self.job_id, params, committee=committee)
        for acct in proposers:
            d.token.mint(self.sponsor, acct.address, spec.proposer_bond)
            d.token.approve(acct, d.optimistic.address, spec.proposer_bond)
            d.optimistic.bond(acct, self.job_id)

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

    def _detach_log(self) -> None:
        logging.getLogger("fedledger").removeHandler(self._log_handler)
        self._log_handler.close()
