"""The audit of what a user deploys and reads: final model, model card, metrics, export decoding.

The round checks prove the chain and the store; a user, though, loads `final_model.safetensors`
and reads `model_card.json`, `MODEL_CARD.md` and `metrics.json`. Each is re-derived here from the
trusted (re-executed) events and the store, so an edited or swapped file is an error naming it.

Fixed point → float32, as `codec.fixedpoint.dequantize` (which the run writer calls) defines it:
each int64 q becomes float64(q) · 2**-scale_bits, exact (a pure exponent change), then one IEEE
round-half-to-even to float32. An own-data job's committed statistics (`stats.*`) are not
dequantised: `data.stats.standardiser` turns their exact sums into float64 (mean, std), rounded
once to float32 as `standardise.mean` / `standardise.std`.

Recorded accuracy is recomputed on a bundled dataset's test split (`load_dataset` of the spec)
with each round's model in force on chain; an own-data job's test rows stay with its sponsor.
Not checked: card fields stating no chain or spec fact (chain, attack, contribution, privacy)
and metrics columns other than status, model commitment, counts, accuracy and loss.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fedledger.audit.card import card_facts, card_md_problems, card_problems, final_accuracy, verified
from fedledger.audit.export_file import parse_json
from fedledger.audit.facts import RunFacts
from fedledger.audit.replay import EventSource
from fedledger.chain.abi import ContractABI
from fedledger.chain.artifacts import load_artifact
from fedledger.chain.contracts import Coordinator, DataRegistry, RewardToken, Sampler, jsonable
from fedledger.chain.optimistic import Disputes, Optimistic
from fedledger.codec.commitment import commitment_hex
from fedledger.errors import FedledgerError
from fedledger.roles.model import final_model_tensors
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore

Report = Callable[..., None]  # (severity, check, artefact, message, round=, org=)

FINAL, CARD, CARD_MD = "final_model.safetensors", "model_card.json", "MODEL_CARD.md"
METRICS, METRICS_CSV = "metrics.json", "metrics.csv"
#: checked by replay.py and verify.py (spec hash, re-execution, referenced blobs); the audit's own report
CHECKED_ELSEWHERE = ("spec.json", "chain.json", "store/", "audit.json")
ACCURACY_ATOL = 1e-6  # absolute: accuracy is a count over the test rows
LOSS_RTOL = 1e-5  # relative: a float32 sum may differ by ulps with the thread count


def _evaluator(spec: JobSpec, store: BlobStore) -> Callable[[bytes], tuple[float, float]]:
    """Test (accuracy, loss) of a committed model on a bundled dataset's held-out split."""
    from fedledger.roles.model import float_weights
    from fedledger.training.datasets import load_dataset
    from fedledger.training.models import build_model
    from fedledger.training.torch_client import evaluate, set_weights, weight_names

    ds = load_dataset(spec.dataset, test_fraction=spec.test_fraction, seed=spec.seed)
    model = build_model(spec.model, ds.input_shape, ds.num_classes, seed=spec.seed)

    @functools.cache
    def accuracy_loss(commitment: bytes) -> tuple[float, float]:
        set_weights(model, float_weights(weight_names(model), store.get_tensors(commitment), spec.scale_bits))
        loss, acc = evaluate(model, ds.x_test, ds.y_test)
        return acc, loss

    return accuracy_loss


class _Checker:
    """One run directory's derived files against the trusted events, the store and the spec."""

    def __init__(self, run: Path, spec: JobSpec, source: EventSource, store: BlobStore, report: Report):
        self.run, self.spec, self.src, self.store, self.report = run, spec, source, store, report
        self.f = RunFacts(source)
        self.metrics_last: Any = None  # metrics.json's last test_accuracy, as stated

    def final_accuracy(self, card: dict[str, Any], recomputed: float | None) -> Any:
        """The final accuracy all three copies should state (`card.final_accuracy`); names metrics.json
        if its copy is the odd one out."""
        meta = _metadata(self.run / FINAL).get("final_test_accuracy")
        try:
            in_model = float(meta) if meta is not None else None
        except ValueError:
            in_model = None
        stated = card.get("final_test_accuracy")
        copies = {METRICS: self.metrics_last, CARD: stated, FINAL: in_model}
        truth = final_accuracy(recomputed, copies, atol=ACCURACY_ATOL)
        if truth is None:
            return stated
        if isinstance(self.metrics_last, float) and self.metrics_last != truth:
            self.report(
                "error", "metrics", METRICS,
                f"the last round's test_accuracy = {self.metrics_last!r}, the audit finds {truth!r}",
            )  # fmt: skip
        return truth

    def settle(self, check: str, artefact: str, problems: list[str], **where: Any) -> None:
        for p in problems:
            self.report("error", check, artefact, p, **where)
        if not problems:
            self.report("passed", check)

    def final_model(self, card: dict[str, Any] | None) -> bool:
        """The file's tensors byte for byte, its metadata as the true card's scalars; False if unchecked."""
        from safetensors import safe_open

        final = commitment_hex(self.f.final)
        try:
            want = final_model_tensors(self.store.get_tensors(self.f.final), self.spec.scale_bits)
        except (FedledgerError, ValueError) as exc:
            self.report("warning", "final-model", FINAL, f"cannot recompute from {final}: {exc}")
            return False
        try:
            with safe_open(str(self.run / FINAL), framework="numpy") as fh:
                got, meta = {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})  # noqa: SIM118
        except Exception as exc:  # safetensors raises several unrelated types on bad bytes
            self.settle("final-model", FINAL, [f"unreadable as safetensors: {exc}"])
            return True
        problems = []
        for k in sorted(set(want) | set(got)):
            g, w = got.get(k), want.get(k)
            if g is None or w is None:
                problems.append(f"tensor {k!r} {'is missing' if g is None else 'is not in the model'}")
            elif (g.dtype, g.shape) != (w.dtype, w.shape):
                problems.append(
                    f"tensor {k!r} is {g.dtype}{list(g.shape)}, the model's {w.dtype}{list(w.shape)}"
                )
            elif (n := int(np.count_nonzero(g.view(np.uint8) != w.view(np.uint8)))) > 0:
                problems.append(f"tensor {k!r} differs from the dequantised committed model in {n} byte(s)")
        if card is not None:
            stated = {k: str(v) for k, v in card.items() if not isinstance(v, list | dict)}
            diff = [k for k in sorted(set(stated) | set(meta)) if stated.get(k) != meta.get(k)]
            problems += [f"metadata {k} = {meta.get(k)!r}, the facts give {stated.get(k)!r}" for k in diff]
        self.settle("final-model", FINAL, [f"{p} (committed model {final})" for p in problems])
        return True

    def metrics(self, *, recompute: bool) -> float | None:
        """Each row against the chain, accuracy and loss recomputed; the last round's accuracy."""
        f, rows = self.f, parse_json((self.run / METRICS).read_text())
        self.metrics_last = rows[-1].get("test_accuracy") if rows and isinstance(rows[-1], dict) else None
        by_round = {int(m["round"]): m for m in rows}
        if sorted(by_round) != f.rounds or len(rows) != len(by_round):
            self.settle("metrics", METRICS, [f"rounds {[m['round'] for m in rows]}, the chain's {f.rounds}"])
        evaluate = _evaluator(self.spec, self.store) if recompute else None
        current, acc = f.initial, None
        for r in f.rounds:
            current = f.finalized[r].args["aggregate"] if r in f.finalized else current
            if (m := by_round.get(r)) is None:
                continue
            want: dict[str, Any] = {
                "status": "finalized" if r in f.finalized else "failed",
                "model_commitment": commitment_hex(current),
                "commits": len(f.commits[r]),
                "accepted": len(f.commits[r]) - len(f.excluded[r]),
                "rejected": len(f.excluded[r]),
                "flagged": len(f.slashed[r]),
            }
            wrong = [k for k, v in want.items() if m.get(k) != v]
            if evaluate is not None:
                acc, loss = want["test_accuracy"], want["test_loss"] = evaluate(current)
                wrong += [] if abs(float(m["test_accuracy"]) - acc) <= ACCURACY_ATOL else ["test_accuracy"]
                wrong += [] if math.isclose(float(m["test_loss"]), loss, rel_tol=LOSS_RTOL) else ["test_loss"]
            problems = [f"{k} = {m.get(k)!r}, re-derived {want[k]!r}" for k in wrong]
            self.settle("metrics", METRICS, problems, round=r)
        return acc

    def metrics_csv(self) -> None:
        """metrics.csv must be metrics.json's rows exactly as the run writes them."""
        rows, out = parse_json((self.run / METRICS).read_text()), io.StringIO(newline="")
        if rows:
            csv.DictWriter(out, fieldnames=list(rows[0])).writeheader()
            csv.DictWriter(out, fieldnames=list(rows[0])).writerows(rows)
        want, got = out.getvalue().splitlines(), (self.run / METRICS_CSV).read_text().splitlines()
        diff = [i for i in range(max(len(want), len(got))) if want[i : i + 1] != got[i : i + 1]][:1]
        problems = [f"line {i + 1} is not {METRICS}'s row as the run writes it" for i in diff]
        self.settle("metrics", METRICS_CSV, problems)

    def transactions(self, export: dict[str, Any]) -> list[dict[str, Any]]:
        """Each transaction's contract, function and args against its raw input; the decodings."""
        s = self.src
        kinds = {
            s.coordinator: Coordinator,
            s.data_registry: DataRegistry,
            s.token: RewardToken,
            s.sampler: Sampler,
            s.optimistic: Optimistic,
            s.disputes: Disputes,
        }
        abis = {
            a: (k.__name__, ContractABI(load_artifact(k.artifact_name).abi)) for a, k in kinds.items() if a
        }
        decoded = []
        for tx in export.get("transactions", []):
            where = f"chain.json transaction {tx.get('tx_hash')}"
            want: dict[str, Any] = {"contract": "", "function": "<create>", "args": {}}
            target = abis.get(str(tx.get("to") or ""))
            try:
                if target is not None:
                    fn, args = target[1].decode_calldata(bytes.fromhex(str(tx["input"])[2:]))
                    want = {"contract": target[0], "function": fn, "args": jsonable(args)}
            except Exception as exc:  # eth_abi raises several unrelated types on bad calldata
                decoded.append(want)
                self.settle("tx-decoding", where, [f"input does not decode: {exc}"])
                continue
            decoded.append(want)
            got = dict(tx["args"]) if isinstance(tx.get("args"), dict) else {}
            wrong = [(k, tx.get(k), want[k]) for k in ("contract", "function") if tx.get(k) != want[k]]
            wrong += [
                (f"args.{k}", got.get(k), want["args"].get(k))
                for k in sorted(set(got) | set(want["args"]))
                if got.get(k) != want["args"].get(k)
            ]
            problems = [f"{k} = {stated!r}, its input decodes to {real!r}" for k, stated, real in wrong]
            self.settle("tx-decoding", where, problems)
        return decoded

    def participants(self, export: dict[str, Any], decoded: list[dict[str, Any]], dup: list[str]) -> None:
        """One name per account and one account per name; every sender of this job named."""
        problems = [f"key {k!r} appears twice in one object" for k in dup]
        accounts: dict[str, list[str]] = defaultdict(list)
        spellings: dict[str, list[str]] = defaultdict(list)
        for addr, org in self.src.participants.items():
            accounts[org].append(addr)
            spellings[addr.lower()].append(addr)
        problems += [f"{o!r} names accounts {', '.join(a)}" for o, a in accounts.items() if len(a) > 1]
        problems += [f"account {a[0]} is named {len(a)} times" for a in spellings.values() if len(a) > 1]
        senders = {self.f.sponsor: "is the job's sponsor"} if self.f.sponsor else {}
        setup = self.src.job_id if export["chain"].get("kind") == "inprocess" else None  # a node's: shared
        for tx, d in zip(export.get("transactions", []), decoded, strict=True):
            if d["args"].get("job_id", setup) == self.src.job_id:  # this job's, or its chain's setup
                senders.setdefault(str(tx.get("from")), f"sent {d['function']} ({tx.get('tx_hash')})")
        problems += [f"{a} {why} but has no name" for a, why in senders.items() if a.lower() not in spellings]
        self.settle("participants", "chain.json participants", problems)


def _metadata(path: Path) -> dict[str, str]:
    """A safetensors file's metadata; {} if there is no such file or it does not read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            return dict(fh.metadata() or {})
    except Exception:  # safetensors raises several unrelated types on bad bytes
        return {}


def _load_export(path: Path) -> tuple[dict[str, Any], list[str]]:
    """chain.json, and every key that appears twice in one of its objects (JSON keeps the last)."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        duplicates.extend(k for k, n in Counter(k for k, _ in items).items() if n > 1)
        return dict(items)

    return dict(parse_json(path.read_text(), object_pairs_hook=pairs)), duplicates


def check_outputs(
    run: Path,
    *,
    spec: JobSpec,
    source: EventSource,
    store: BlobStore,
    report: Report,
    privacy: dict[str, Any] | None = None,
    recompute_accuracy: bool = True,
) -> list[str]:
    """Checks every derived file of the run directory; returns the files it does not cover.

    `report` is the auditor's `record`, `privacy` its re-derived ε (`AuditReport.privacy`); with
    `recompute_accuracy=False` metrics.json is not covered.
    """
    c, covered = _Checker(run, spec, source, store, report), set(CHECKED_ELSEWHERE)
    export, duplicates = _load_export(run / "chain.json")
    c.participants(export, c.transactions(export), duplicates)
    card: Any = None
    if (run / CARD).is_file():
        try:
            card = parse_json((run / CARD).read_text())
        except ValueError as exc:
            c.settle("model-card", CARD, [f"is not valid JSON: {exc}"])
    accuracy, recompute = None, recompute_accuracy and spec.data_schema is None
    if (run / METRICS).is_file():  # an own-data job's test rows stay with its sponsor: not covered
        try:
            accuracy = c.metrics(recompute=recompute)
            if (run / METRICS_CSV).is_file():
                c.metrics_csv()  # the same rows as metrics.json: vouched for only as far as it is
                if recompute:
                    covered.add(METRICS_CSV)
        except (ValueError, KeyError, TypeError, FedledgerError) as exc:
            c.settle("metrics", METRICS, [f"cannot be checked: {exc}"])
        if recompute:
            covered.add(METRICS)
    chain = export["chain"] if export["chain"].get("kind") == "inprocess" else None  # re-executed: vouched
    want = card_facts(
        c.f, source=source, spec=spec, chain=chain, privacy=privacy or {}, names=source.participants
    )
    truth = verified(card, want) if isinstance(card, dict) else None
    if truth is not None:  # the accuracy the three copies should state, judged by the recomputation
        truth["final_test_accuracy"] = c.final_accuracy(card, accuracy)
    if (run / FINAL).is_file() and c.final_model(truth):
        covered.add(FINAL)
    if card is not None:
        problems = card_problems(card, want)
        if truth is not None and card.get("final_test_accuracy") != truth["final_test_accuracy"]:
            problems.append(
                f"final_test_accuracy = {card.get('final_test_accuracy')!r}, the audit finds "
                f"{truth['final_test_accuracy']!r}"
            )
        c.settle("model-card", CARD, problems)
        covered.add(CARD)
    if (run / CARD_MD).is_file() and truth is not None:
        md = card_md_problems(run / CARD_MD, truth, spec)
        if md is None:
            report("warning", "model-card", CARD_MD, f"cannot be re-rendered from {CARD}, which is malformed")
        else:
            c.settle("model-card", CARD_MD, md)
            covered.add(CARD_MD)
    present = [p.name + ("/" if p.is_dir() else "") for p in sorted(run.iterdir())]
    return [p for p in present if p not in covered]
