"""model_card.json and MODEL_CARD.md against the chain, the spec and the audit's own figures.

Every field of the JSON card that states a fact is compared with the fact: the job, its
chain, its outcome and rounds, the final commitment, who contributed, was flagged, ejected
and paid, the spec's settings, the privacy mode and the ε recorded on chain, an own-data
job's schema, data commitments and committed row counts. The card's remaining fields state
what the chain cannot (attack, contribution shares, secure-aggregation faults, the
sponsor's test rows); they are taken from the card.

The final test accuracy is written three times (the last row of metrics.json, the card, the
model file's metadata), each the same float. The audit recomputes it; a copy must equal the
value the others agree on, and that value must be within tolerance of the recomputation.
So one edited copy is named, whichever it is.

MODEL_CARD.md is re-rendered (`roles.model_card.card_markdown`) from the verified card and
compared line for line: a title, a quorum or a closing sentence edited is named too.

Organisation names are the export's participants map; a card that disagrees on a name may
be right where chain.json's map was edited, so such a finding names both.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fedledger.audit.facts import RunFacts
from fedledger.audit.replay import EventSource
from fedledger.codec.commitment import commitment_hex
from fedledger.roles.model_card import VERIFY_PREFIX, VERIFY_SUFFIX, card_markdown
from fedledger.spec import JobSpec

#: sections of the card whose facts are a part of it: compared key by key
SECTIONS = ("privacy", "data")
#: fields the card states that the chain cannot: taken from the card (per section: its own such keys)
TAKEN = ("final_test_accuracy", "chain", "contribution", "attack")
TAKEN_IN = {"privacy": ("secagg_faults",), "data": ("test_rows",)}
#: fields holding organisation names (taken from chain.json's participants)
NAMED = ("contributing_organisations", "flagged", "ejected", "payouts", "data.data_commitments", "data.rows")
NAMES_NOTE = " (names as chain.json participants gives them; one of the two was edited)"
#: MODEL_CARD.md lines that hold organisation names
NAMED_LINES = ("- Contributing organisations", "- Flagged and slashed", "- Data commitment of", "- Rows per")

Settle = Callable[[str, str, list[str]], None]


def card_facts(
    f: RunFacts,
    *,
    source: EventSource,
    spec: JobSpec,
    chain: Mapping[str, Any] | None,
    privacy: Mapping[str, Any],
    names: Mapping[str, str],
) -> dict[str, Any]:
    """The card's fields as the chain, the spec and the audit state them (sections: partial dicts).

    `chain`: the export's description of its chain when re-execution vouched for it (in-process),
    else None: an RPC export's description is its own claim, so the card's is taken as given.
    """

    def name(address: str) -> str:
        return names.get(address, address)

    flagged: dict[str, list[int]] = defaultdict(list)
    for trainer, amount in (x for r in sorted(f.slashed) for x in f.slashed[r]):
        flagged[name(trainer)].append(amount)
    want: dict[str, Any] = {
        "job_id": source.job_id,
        "coordinator": source.coordinator,
        "spec_hash": "0x" + f.spec_hash.hex(),
        "outcome": f.outcome,
        "rounds_finalized": len(f.finalized),
        "rounds_failed": len(f.failed),
        "final_model_commitment": commitment_hex(f.final),
        "contributing_organisations": sorted(name(t) for t in f.contributors),
        "flagged": {o: {"flags": len(a), "slashed": str(sum(a))} for o, a in flagged.items()},
        "ejected": [name(t) for t in f.ejected],
        "payouts": {name(a): str(v) for a, v in f.paid.items() if a != f.sponsor},
        **{k: getattr(spec, k) for k in ("dataset", "partition", "model", "aggregation", "scale_bits")},
        "client": spec.client or None,
        "code_digest": spec.code_digest or None,
        "committee": spec.committee_size,
        "quorum": spec.effective_quorum,
        "min_commits": spec.effective_min_commits,
        "privacy": {
            "mode": spec.privacy,
            "dp": spec.dp,
            "epsilon_spent": float(privacy.get("epsilon_spent", 0.0)),
            "epsilon_budget": spec.dp_epsilon,
            "delta": spec.dp_delta if spec.dp or spec.record_dp else None,
            "level": spec.dp_level if spec.dp or spec.record_dp else None,
            "epsilon_by_organisation": {
                org: o["epsilon_recorded"] for org, o in sorted(privacy.get("organisations", {}).items())
            },
        },
    }
    if chain is not None:
        want["chain"] = chain.get("description")
    schema = spec.data_schema
    if schema is None:
        want["data"] = None
    else:
        data: dict[str, Any] = {
            "kind": schema.kind,
            "classes": list(schema.classes),
            "data_commitments": {name(t): root for t, root in f.data_roots.items()},
            "rows": {name(t): n for t, n in f.data_rows.items()},
        }
        if schema.kind == "table":
            data |= {
                "label": schema.label,
                "features": [x.name for x in schema.features],
                "standardise": schema.standardise,
            }
        else:
            data["input_shape"] = list(schema.input_shape)
        want["data"] = data
    return want


def disagreements(card: Mapping[str, Any], want: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, stated, fact) for each fact the card states otherwise; a section's fields by name."""
    wrong = []
    for k, fact in want.items():
        stated = card.get(k)
        if k in SECTIONS and isinstance(fact, dict):
            part = stated if isinstance(stated, dict) else {}
            wrong += [(f"{k}.{j}", part.get(j), v) for j, v in fact.items() if part.get(j) != v]
        elif stated != fact or type(stated) is not type(fact):
            wrong.append((k, stated, fact))
    return wrong


def unknown(card: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    """Fields no fedledger card has (a section's as `section.key`): claims nothing vouches for."""
    extra = [k for k in card if k not in want and k not in TAKEN]
    for k in SECTIONS:
        if isinstance(want.get(k), dict) and isinstance(card.get(k), dict):
            extra += [f"{k}.{j}" for j in card[k] if j not in want[k] and j not in TAKEN_IN[k]]
    return extra


def verified(card: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, Any]:
    """The card with every fact put in and unknown fields left out: what the card should have said
    (an equal value keeps the card's own, so a dict's order as written survives)."""
    out = {k: v for k, v in card.items() if k in want or k in TAKEN}
    for k, fact in want.items():
        if k in SECTIONS and isinstance(fact, dict) and isinstance(out.get(k), dict):
            part = {j: v for j, v in out[k].items() if j in fact or j in TAKEN_IN[k]}
            part.update({j: v for j, v in fact.items() if part.get(j) != v})
            out[k] = part
        elif out.get(k) != fact or type(out.get(k)) is not type(fact):
            out[k] = fact
    return out


def card_problems(card: Any, want: Mapping[str, Any]) -> list[str]:
    if not isinstance(card, dict):
        return ["is not a JSON object"]
    return [
        f"{k} = {stated!r}, the chain says {fact!r}" + (NAMES_NOTE if k in NAMED else "")
        for k, stated, fact in disagreements(card, want)
    ] + [f"states {k!r}, which no fedledger model card has" for k in unknown(card, want)]


def card_md_problems(path: Path, truth: Mapping[str, Any], spec: JobSpec) -> list[str] | None:
    """MODEL_CARD.md against its re-rendering from the verified card; None if it cannot be rendered."""
    # split on "\n" alone: str.splitlines() also breaks at U+2028, \x0c and the like, which Markdown
    # does not, so a file laid out otherwise would pass (reading folds CRLF and CR into "\n")
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    last = lines[-1] if lines else ""
    out = last[len(VERIFY_PREFIX) : -len(VERIFY_SUFFIX)] if _is_verify_line(last) else str(path.parent)
    try:
        want = card_markdown(truth, spec, out=out).splitlines()
    except (KeyError, TypeError, ValueError, AttributeError):  # a card too broken to render from
        return None
    problems = []
    for i in range(max(len(want), len(lines))):
        got, expected = lines[i : i + 1], want[i : i + 1]
        if got != expected:
            stated, fact = (got[0] if got else "nothing"), (expected[0] if expected else "no such line")
            note = NAMES_NOTE if expected and fact.startswith(NAMED_LINES) else ""
            item = _item(expected[0] if expected else got[0])
            problems.append(f"{item}: line {i + 1} states {stated!r}, the facts give {fact!r}{note}")
    return problems[:3]


#: what the prose card's lines state, to name in a finding
ITEMS = (
    "Job id", "Spec hash", "Outcome", "Quorum", "Final model commitment", "Final test accuracy",
    "Data commitment", "Data", "Rows per organisation", "Label", "Contributing organisations",
    "Flagged and slashed", "Secure aggregation", "Differential privacy",
)  # fmt: skip


def _item(line: str) -> str:
    if line.startswith("# "):
        return "Title"
    text = line.removeprefix("- ")
    item = next((i for i in ITEMS if line.startswith("- ") and text.startswith(i)), "")
    return item or ("Closing text" if line else "Layout")


def _is_verify_line(line: str) -> bool:
    return line.startswith(VERIFY_PREFIX) and line.endswith(VERIFY_SUFFIX) and len(line) > len(VERIFY_PREFIX)


def final_accuracy(recomputed: float | None, copies: Mapping[str, Any], *, atol: float) -> float | None:
    """The final test accuracy the copies should all state.

    The value most copies agree on exactly, among those within `atol` of the recomputation
    (all of them, if nothing was recomputed); the recomputation itself if no copy is near it.
    A tie goes to the copy nearest the recomputation.
    """
    values = [v for v in copies.values() if isinstance(v, float)]
    if recomputed is not None:
        values = [v for v in values if abs(v - recomputed) <= atol]
    if not values:
        return recomputed
    counts = Counter(values)
    best = max(counts.values())
    tied = [v for v, n in counts.items() if n == best]
    return min(tied, key=lambda v: abs(v - recomputed)) if recomputed is not None else tied[0]
