"""The audit's checks: every blob, every round, every payout, re-derived from the events.

Given trusted events (see `replay.py`), a store and the spec, the auditor
recomputes each finalised round with the validators' own `compute_round` and
compares the result with what the quorum finalised, byte for byte via the
commitment. A check that cannot be made (a missing blob) is itself a finding.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedledger.audit.data import check_data_commitments, code_lineage
from fedledger.audit.replay import EventSource, Finding
from fedledger.audit.scores import SettledRound, check_round_scores
from fedledger.chain.contracts import Event
from fedledger.codec.blob import decode_tensors
from fedledger.codec.commitment import commitment_hex
from fedledger.errors import (
    BlobIntegrityError,
    BlobNotFound,
    CodecError,
    DatasetError,
    SpecError,
    StoreError,
)
from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import Rejection, RoundOutcome
from fedledger.roles.scorer import RoundScorer, scorer_for
from fedledger.roles.secure import SecureInputs
from fedledger.roles.validator import compute_round
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore


@dataclass
class LineageEntry:
    """One model version and what made it."""

    version: int
    round: int
    commitment: str
    parent: str
    contributors: list[dict[str, Any]]
    excluded: list[dict[str, Any]]


@dataclass
class AuditReport:
    job_id: int
    provenance: str
    checks: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    findings: list[Finding] = field(default_factory=list)
    lineage: list[LineageEntry] = field(default_factory=list)
    payouts: dict[str, dict[str, str]] = field(default_factory=dict)
    #: differential privacy: ε the chain recorded (PrivacySpent), re-derived by the audit
    privacy: dict[str, Any] = field(default_factory=dict)
    #: own data: each committer's data commitment (organisation, root, rows, schema hash, block)
    data: list[dict[str, Any]] = field(default_factory=list)
    #: the code every party ran: model, Flower client and their digest, as the spec binds them
    code: dict[str, Any] = field(default_factory=dict)
    #: files of the run directory that no check reads (run.log, accuracy.png, private/ …)
    not_covered: list[str] = field(default_factory=list)

    def record(
        self,
        severity: str,
        check: str,
        artefact: str = "",
        message: str = "",
        *,
        round: int | None = None,
        org: str | None = None,
    ) -> None:
        """One outcome from a check module: `passed`, `warning` or `error`."""
        if severity == "passed":
            self.checks[check] += 1
        else:
            self.findings.append(Finding(severity, check, artefact, message, round, org))

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "ok": self.ok,
            "provenance": self.provenance,
            "checks": dict(self.checks),
            "findings": [f.__dict__ for f in self.findings],
            "lineage": [e.__dict__ for e in self.lineage],
            "payouts": self.payouts,
            "privacy": self.privacy,
            "data": self.data,
            "code": self.code,
            "not_covered": self.not_covered,
        }


class _Auditor:
    def __init__(self, source: EventSource, spec: JobSpec, store: BlobStore) -> None:
        self.src = source
        self.spec = spec
        self.store = store
        self.names = source.participants
        self.report = AuditReport(
            job_id=source.job_id, provenance=source.provenance, findings=list(source.findings)
        )
        self.sponsor = ""  # FLTrust's root trainer; set from JobCreated
        self.stakes: dict[str, int] = {}  # stake each account holds after slashes so far
        self.slashed_total = 0
        self.flag_counts: dict[str, int] = defaultdict(int)
        self.events: list[Event] = []
        self.settled: dict[int, SettledRound] = {}  # scored jobs: consensus per finalised round
        self.data_commitments: dict[str, dict[str, Any]] = {}  # own data: by trainer, lower case
        self.scorer: RoundScorer | None = None
        if spec.scored:
            try:
                self.scorer = scorer_for(spec)
            except (SpecError, DatasetError) as exc:
                self.warn("scores", "validation set", f"cannot re-score the rounds: {exc}")

    def name(self, address: str) -> str:
        return self.names.get(address, address)

    def error(self, check: str, artefact: str, message: str, **where: Any) -> None:
        self._find("error", check, artefact, message, **where)

    def warn(self, check: str, artefact: str, message: str, **where: Any) -> None:
        self._find("warning", check, artefact, message, **where)

    def _find(
        self,
        severity: str,
        check: str,
        artefact: str,
        message: str,
        *,
        round: int | None = None,
        org: str | None = None,
    ) -> None:
        self.report.findings.append(Finding(severity, check, artefact, message, round, org))

    def passed(self, check: str) -> None:
        self.report.checks[check] += 1

    def record(self, severity: str, check: str, artefact: str = "", message: str = "", **where: Any) -> None:
        """One outcome from a check module: `passed`, `warning` or `error`."""
        self.report.record(severity, check, artefact, message, **where)

    # -- blobs -------------------------------------------------------------------------------

    def load_model(self, commitment: bytes, what: str, round: int | None) -> dict[str, np.ndarray] | None:
        artefact = f"{what} blob {commitment_hex(commitment)}"
        try:
            model = decode_tensors(self.store.get(commitment))
        except BlobNotFound:
            self.error("blob", artefact, "missing from the store", round=round)
            return None
        except BlobIntegrityError:
            self.error("blob", artefact, "fails its hash: the stored bytes were altered", round=round)
            return None
        except (CodecError, StoreError) as exc:
            self.error("blob", artefact, f"unreadable: {exc}", round=round)
            return None
        self.passed("blob")
        return model

    # -- the job -----------------------------------------------------------------------------

    def run(self) -> AuditReport:
        job = self.src.job_id
        events = [
            e for e in self.src.events if e.address == self.src.coordinator and e.args.get("job_id") == job
        ]
        created = [e for e in events if e.name == "JobCreated"]
        if not created:
            self.error("job", "chain", f"no JobCreated event for job {job}")
            return self.report
        c = created[0].args
        self.events = events
        self.sponsor = str(c["sponsor"])
        self.stakes = {e.args["account"]: int(e.args["stake"]) for e in events if e.name == "Registered"}
        if c["spec_hash"] != self.spec.spec_hash():
            self.error(
                "spec",
                "spec.json",
                f"spec hash 0x{self.spec.spec_hash().hex()} != on-chain "
                f"0x{c['spec_hash'].hex()}: this is not the spec the job was created with",
            )
        else:
            self.passed("spec")
        self.report.code = code_lineage(self.spec)
        self.data_commitments = check_data_commitments(
            spec=self.spec,
            events=[e for e in self.src.events if e.args.get("job_id") == job],
            registry=self.src.data_registry,
            job_id=job,
            report=self.record,
            name=self.name,
        )
        self.report.data = list(self.data_commitments.values())
        current = c["initial_model"]
        model = self.load_model(current, "initial model", None)

        by_round: dict[int, list[Event]] = defaultdict(list)
        for e in events:
            if "round" in e.args:
                by_round[int(e.args["round"])].append(e)
        finalized_rounds: list[tuple[int, Event, list[CommitRecord]]] = []
        for r in sorted(by_round):
            evs = by_round[r]
            opened = next((e for e in evs if e.name == "RoundOpened"), None)
            if opened is not None:
                if opened.args["global_model"] != current:
                    self.error(
                        "lineage",
                        f"RoundOpened event (block {opened.block_number})",
                        f"round opened on model {commitment_hex(opened.args['global_model'])}, "
                        f"but the last finalised model is {commitment_hex(current)}",
                        round=r,
                    )
                else:
                    self.passed("lineage")
            commits = [
                CommitRecord(
                    trainer=e.args["trainer"],
                    round=r,
                    commitment=e.args["commitment"],
                    num_examples=e.args["num_examples"],
                    block_number=e.block_number,
                    log_index=e.log_index,
                )
                for e in evs
                if e.name == "UpdateCommitted"
            ]
            fin = next((e for e in evs if e.name == "RoundFinalized"), None)
            excluded = [e.args["trainer"] for e in evs if e.name == "UpdateExcluded"]
            if fin is None and not excluded:
                continue  # failed before any quorum: nothing was judged
            outcome = None
            if model is not None:
                version = int(opened.args["version"]) if opened is not None else 0
                outcome = self.check_round(r, fin, commits, excluded, evs, model, current, version)
            if fin is not None and self.spec.scored:
                self.settled[r] = check_round_scores(
                    spec=self.spec,
                    r=r,
                    fin=fin,
                    commits=commits,
                    evs=evs,
                    events=events,
                    outcome=outcome,
                    model=model,
                    scorer=self.scorer,
                    report=self.record,
                    name=self.name,
                )
            if fin is not None:
                finalized_rounds.append((r, fin, commits))
                new = fin.args["aggregate"]
                model = self.load_model(new, f"model version {fin.args['version']}", r)
                current = new
        self.check_payouts(created[0], finalized_rounds, events)
        self.check_privacy(events)
        return self.report

    def check_privacy(self, events: list[Event]) -> None:
        """Each PrivacySpent figure is the accountant's ε after that many releases, within budget."""
        spent = [e for e in events if e.name == "PrivacySpent"]
        if not self.spec.dp:
            for e in spent:
                self.error(
                    "privacy", f"PrivacySpent (block {e.block_number})", "ε recorded in a job without DP"
                )
            return
        from fedledger.roles.dp import micro_epsilon_after

        budget = self.spec.dp_epsilon
        for k, e in enumerate(spent, start=1):
            r, got = int(e.args["round"]), int(e.args["micro_epsilon"])
            want = micro_epsilon_after(self.spec, k)
            where = f"PrivacySpent (block {e.block_number})"
            if got != want:
                self.error(
                    "privacy",
                    where,
                    f"ε {got / 1e6:.6f} recorded; release {k} spends {want / 1e6:.6f}",
                    round=r,
                )
            elif got > math.ceil(budget * 1e6):
                self.error("privacy", where, f"ε {got / 1e6:.6f} exceeds the budget {budget:g}", round=r)
            else:
                self.passed("privacy")
        last = int(spent[-1].args["micro_epsilon"]) if spent else 0
        self.report.privacy = {
            "epsilon_spent": last / 1e6,
            "epsilon_budget": budget,
            "delta": self.spec.dp_delta,
            "noise_multiplier": self.spec.noise_multiplier,
            "accountant": self.spec.dp_accountant,
            "releases": len(spent),
        }

    def check_round(
        self,
        r: int,
        fin: Event | None,
        commits: list[CommitRecord],
        excluded: list[str],
        evs: list[Event],
        model: dict[str, np.ndarray],
        parent: bytes,
        version_before: int,
    ) -> RoundOutcome:
        """Re-derives the round's exclusions, flags and penalties, and if it finalised, its model."""
        releases = sum(1 for e in self.events if e.name == "PrivacySpent" and int(e.args["round"]) < r)
        secure = None
        if self.spec.secure:  # the key directory and this round's reveals, from the re-executed events
            secure = SecureInputs.from_events(self.src.coordinator, self.events, self.src.job_id, r, parent)

        def recompute(store: BlobStore) -> RoundOutcome:
            return compute_round(
                store=store,
                spec=self.spec,
                job_id=self.src.job_id,
                round=r,
                version=version_before,
                global_model=model,
                commits=commits,
                root_trainer=self.sponsor,
                secure=secure,
                releases_before=releases,
            )

        outcome = recompute(self.store)
        for who, why in outcome.faults.items():
            self.warn(
                "secagg",
                "share reveals",
                f"fault recorded, round recovered: {why}",
                round=r,
                org=self.name(who),
            )
        rejected = {x.trainer: x.reason for x in outcome.rejected}
        chain_excluded = set(excluded)
        revived = {
            cm.commitment for cm in commits if cm.trainer in chain_excluded and cm.trainer not in rejected
        }
        if revived:
            # Excluded on chain, valid now. If the validators could not fetch it during the round
            # (a data-availability fault: its store was down), the chain's result is what they
            # had to compute; availability at the time cannot be re-derived, so say so.
            unavailable = recompute(_Without(self.store, revived))
            if fin is None or unavailable.aggregate == fin.args["aggregate"]:
                for cm in commits:
                    if cm.commitment in revived:
                        self.warn(
                            "availability",
                            f"update blob {commitment_hex(cm.commitment)}",
                            "excluded on chain as unavailable (a data-availability fault); the blob is "
                            "available now, so whether it was during the round cannot be re-derived",
                            round=r,
                            org=self.name(cm.trainer),
                        )
                outcome = unavailable
                rejected = {x.trainer: x.reason for x in outcome.rejected}
        for cm in commits:
            org = self.name(cm.trainer)
            artefact = f"update blob {commitment_hex(cm.commitment)}"
            if cm.trainer in rejected and cm.trainer not in chain_excluded:
                self.error(
                    "update",
                    artefact,
                    f"accepted on chain but now invalid: {rejected[cm.trainer]}",
                    round=r,
                    org=org,
                )
            elif cm.trainer in chain_excluded and cm.trainer not in rejected:
                self.error(
                    "update",
                    artefact,
                    "excluded on chain but the update is valid",
                    round=r,
                    org=org,
                )
            elif cm.trainer in rejected:
                self.warn(
                    "update",
                    artefact,
                    f"excluded, as the audit confirms: {rejected[cm.trainer]}",
                    round=r,
                    org=org,
                )
                self.passed("update")
            else:
                self.passed("update")
        self.check_flags(r, outcome.rejected, evs)
        self.check_dissent(r, fin, evs)
        flagged_on_chain = {e.args["trainer"] for e in evs if e.name == "TrainerSlashed"}
        if fin is None:
            return outcome
        version = int(fin.args["version"])
        if outcome.aggregate != fin.args["aggregate"]:
            self.error(
                "aggregate",
                f"model version {version}",
                f"recomputed aggregate {commitment_hex(outcome.aggregate)} != finalised "
                f"{commitment_hex(fin.args['aggregate'])}",
                round=r,
            )
        else:
            self.passed("aggregate")
        # the weight is examples, or in a scored job the consensus scores (checked in scores.py)
        accepted_examples = sum(c.num_examples for c in outcome.accepted)
        weight = accepted_examples if not self.spec.scored else fin.args["accepted_weight"]
        if (fin.args["accepted_commits"], fin.args["accepted_weight"]) != (len(outcome.accepted), weight):
            self.error(
                "aggregate",
                f"RoundFinalized event (block {fin.block_number})",
                f"records {fin.args['accepted_commits']} updates / {fin.args['accepted_weight']} "
                f"examples, recomputed {len(outcome.accepted)} / {accepted_examples}",
                round=r,
            )
        self.report.lineage.append(
            LineageEntry(
                version=version,
                round=r,
                commitment=commitment_hex(fin.args["aggregate"]),
                parent=commitment_hex(parent),
                contributors=[
                    {
                        "organisation": self.name(c.trainer),
                        "trainer": c.trainer,
                        "update": commitment_hex(c.commitment),
                        "num_examples": c.num_examples,
                        **(
                            {"data_commitment": self.data_commitments[c.trainer.lower()]["root"]}
                            if c.trainer.lower() in self.data_commitments
                            else {}
                        ),
                    }
                    for c in commits
                    if c.trainer not in chain_excluded
                ],
                excluded=[
                    {
                        "organisation": self.name(t),
                        "trainer": t,
                        "reason": rejected.get(t, ""),
                        "flagged": t in flagged_on_chain,
                    }
                    for t in sorted(chain_excluded)
                ],
            )
        )
        return outcome

    def check_flags(self, r: int, rejected: list[Rejection], evs: list[Event]) -> None:
        """Flags as the audit derives them, slash amounts by the spec, ejection at max_flags."""
        derived = {x.trainer: x.reason for x in rejected if x.flagged}
        slashed = {e.args["trainer"]: e for e in evs if e.name == "TrainerSlashed"}
        ejected = {e.args["trainer"] for e in evs if e.name == "TrainerEjected"}
        for trainer in sorted(set(derived) | set(slashed), key=lambda a: int(a, 16)):
            org = self.name(trainer)
            if trainer not in slashed:
                self.error(
                    "flag",
                    "AggregateProposed flags",
                    f"not flagged on chain, but: {derived[trainer]}",
                    round=r,
                    org=org,
                )
                continue
            if trainer not in derived:
                self.error(
                    "flag",
                    "TrainerSlashed event",
                    "flagged and slashed, but the audit finds nothing wrong with its update",
                    round=r,
                    org=org,
                )
            else:
                self.passed("flag")
            self.check_slash("slash", slashed[trainer], trainer, r)
            self.flag_counts[trainer] += 1
            must_eject = self.spec.max_flags > 0 and self.flag_counts[trainer] == self.spec.max_flags
            if must_eject != (trainer in ejected):
                what = "not ejected" if must_eject else "ejected"
                self.error(
                    "eject",
                    "TrainerEjected events",
                    f"{what} after {self.flag_counts[trainer]} flags (max_flags {self.spec.max_flags})",
                    round=r,
                    org=org,
                )
            elif must_eject:
                self.passed("eject")

    def check_slash(self, check: str, ev: Event, account: str, r: int) -> None:
        """The spec's share of the deposit, capped at the stake left; then books it."""
        held = self.stakes.get(account, 0)
        due = min(self.spec.stake * self.spec.slash_bps // 10_000, held)
        amount = int(ev.args["amount"])
        if amount != due:
            self.error(
                check,
                f"{ev.name} event (block {ev.block_number})",
                f"slashed {amount}, the spec's fraction of the stake left is {due}",
                round=r,
                org=self.name(account),
            )
        else:
            self.passed(check)
        self.stakes[account] = held - amount
        self.slashed_total += amount

    def check_dissent(self, r: int, fin: Event | None, evs: list[Event]) -> None:
        """A slashed validator must have proposed something other than the quorum's result."""
        winner = fin.args["proposal"] if fin is not None else None
        proposed = {e.args["validator"]: e.args["proposal"] for e in evs if e.name == "AggregateProposed"}
        slashed = {e.args["validator"]: e for e in evs if e.name == "ValidatorSlashed"}
        for v, ev in slashed.items():
            org = self.name(v)
            if winner is None or proposed.get(v) in (None, winner):
                self.error(
                    "dissent",
                    f"ValidatorSlashed event (block {ev.block_number})",
                    "validator slashed, but it proposed the quorum's result",
                    round=r,
                    org=org,
                )
                continue
            self.check_slash("dissent", ev, v, r)
        for v, p in proposed.items():
            if winner is not None and p != winner and v not in slashed:
                self.warn(
                    "dissent",
                    "AggregateProposed events",
                    "proposed a result the quorum did not reach; nobody reported it",
                    round=r,
                    org=self.name(v),
                )

    def check_payouts(
        self,
        created: Event,
        rounds: list[tuple[int, Event, list[CommitRecord]]],
        events: list[Event],
    ) -> None:
        """Rewards by examples (or consensus scores) with floor rounding, validator fees,
        stakes back once, pool remainder to the sponsor."""
        expected: dict[str, int] = defaultdict(int)
        paid_out = 0
        for r, fin, commits in rounds:
            reward = int(fin.args["reward"])
            paid_out += reward
            excluded = {
                e.args["trainer"]
                for e in events
                if e.name == "UpdateExcluded" and e.args["round"] == fin.args["round"]
            }
            total = int(fin.args["accepted_weight"])
            if self.spec.scored:
                settled = self.settled.get(r)
                if settled is None:
                    continue
                weights = dict(zip(settled.trainers, settled.consensus, strict=True))
            else:
                weights = {cm.trainer: cm.num_examples for cm in commits}
            for cm in commits:
                if cm.trainer not in excluded and total > 0:
                    expected[cm.trainer] += reward * weights[cm.trainer] // total
        fees_due: dict[str, int] = defaultdict(int)
        for e in events:
            if e.name == "ValidatorRewarded":
                fees_due[e.args["validator"]] += int(e.args["amount"])
                paid_out += int(e.args["amount"])
        fees_paid: dict[str, int] = defaultdict(int)
        for e in events:
            if e.name == "Withdrawn":
                fees_paid[e.args["account"]] += int(e.args["fees"])
        for account in sorted(set(fees_due) | set(fees_paid)):
            if fees_paid[account] > fees_due[account]:
                self.error(
                    "fee",
                    "Withdrawn events",
                    f"paid {fees_paid[account]} in validator fees, earned {fees_due[account]}",
                    org=self.name(account),
                )
            else:
                self.passed("fee")
        withdrawn: dict[str, int] = defaultdict(int)
        stakes_back: dict[str, int] = defaultdict(int)
        for e in events:
            if e.name == "Withdrawn":
                withdrawn[e.args["account"]] += int(e.args["reward"])
                stakes_back[e.args["account"]] += int(e.args["stake"])
        staked = {e.args["account"]: int(e.args["stake"]) for e in events if e.name == "Registered"}
        for account in sorted(set(expected) | set(withdrawn)):
            org = self.name(account)
            got, due = withdrawn[account], expected[account]
            if got > due:
                self.error("payout", "Withdrawn events", f"paid {got} reward units, earned {due}", org=org)
            elif got < due:
                self.warn(
                    "payout",
                    "Withdrawn events",
                    f"{due - got} of {due} earned units not yet withdrawn",
                    org=org,
                )
                self.passed("payout")
            else:
                self.passed("payout")
            self.report.payouts[org] = {"earned": str(due), "withdrawn": str(got)}
        for account, back in stakes_back.items():
            left = self.stakes.get(account, staked.get(account, 0))
            if back > left:
                self.error(
                    "stake",
                    "Withdrawn events",
                    f"stake returned {back} > staked {staked.get(account, 0)} less slashes = {left}",
                    org=self.name(account),
                )
            else:
                self.passed("stake")
        pool = int(created.args["reward_pool"]) + self.slashed_total
        reclaimed = sum(int(e.args["amount"]) for e in events if e.name == "PoolReclaimed")
        if reclaimed and reclaimed != pool - paid_out:
            self.error(
                "pool",
                "PoolReclaimed event",
                f"sponsor reclaimed {reclaimed}, but pool {pool} (slashes included) − paid {paid_out} "
                f"= {pool - paid_out}",
            )
        else:
            self.passed("pool")


def audit_events(source: EventSource, spec: JobSpec, store: BlobStore) -> AuditReport:
    """Runs every check over trusted events; the report's `ok` says whether all passed."""
    return _Auditor(source, spec, store).run()


class _Without(BlobStore):
    """A store that has lost some blobs: how the round looked to validators who could not fetch them."""

    def __init__(self, store: BlobStore, hidden: set[bytes]) -> None:
        self.store, self.hidden = store, hidden

    def _read(self, commitment: bytes) -> bytes | None:
        return None if commitment in self.hidden else self.store._read(commitment)

    def _write(self, commitment: bytes, data: bytes) -> None:
        self.store._write(commitment, data)

    def _remove(self, commitment: bytes) -> bool:
        return self.store._remove(commitment)

    def _list(self) -> Iterator[bytes]:
        return (c for c in self.store._list() if c not in self.hidden)
