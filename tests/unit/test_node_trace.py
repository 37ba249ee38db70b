"""A deployed round's critical path from the nodes' traces and the chain's events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedledger.roles.node_trace import PHASES, NodeTrace, node_costs, phase_breakdown, read_traces, summarise


def _trace(tmp_path: Path) -> list[dict[str, object]]:
    a, b = NodeTrace(tmp_path / "t.jsonl", "A"), NodeTrace(tmp_path / "t.jsonl", "B")
    steps = [  # (t, node, step, round): B finalises round 1; A closes and B finalises round 2
        (10.0, b, "proposed", 1),
        (10.02, a, "open_seen", 2),
        (10.05, a, "train_start", 2),
        (11.05, a, "trained", 2),
        (11.10, a, "committed", 2),
        (11.13, b, "aggregating_seen", 2),
        (11.20, b, "computed", 2),
        (11.26, b, "proposed", 2),
    ]
    lines = []
    for t, node, step, r in steps:
        lines.append({"t": t, "node": node.node, "step": step, "round": r})
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(x) + "\n" for x in reversed(lines)))
    return read_traces([tmp_path / "t.jsonl", tmp_path / "absent.jsonl"])


def test_phases_sum_to_the_round_and_name_who_was_on_the_critical_path(tmp_path: Path) -> None:
    trace = _trace(tmp_path)
    assert [x["t"] for x in trace] == sorted(x["t"] for x in trace)
    (r,) = phase_breakdown(trace, opened={2: "B"}, closed={2: "A"}, finalised={2: "B"})
    assert (r.round, r.closer, r.finaliser, r.speculated) == (2, "A", "B", False)
    assert list(r.seconds) == list(PHASES)
    expected = [0.05, 1.0, 0.05, 0.03, 0.07, 0.06]
    assert [round(r.seconds[p], 6) for p in PHASES] == expected
    assert r.wall == pytest.approx(1.26)
    summary = summarise([r])
    assert summary["round"] == {
        "median": pytest.approx(1.26),
        "min": pytest.approx(1.26),
        "max": pytest.approx(1.26),
    }


def test_training_done_ahead_costs_the_round_nothing(tmp_path: Path) -> None:
    trace = [x for x in _trace(tmp_path) if x["step"] not in ("train_start", "trained")]
    trace += [
        {"t": 9.0, "node": "A", "step": "spec_start", "round": 2},
        {"t": 9.9, "node": "A", "step": "spec_done", "round": 2},
    ]
    (r,) = phase_breakdown(trace, opened={2: "B"}, closed={2: "A"}, finalised={2: "B"})
    assert r.speculated
    assert r.seconds["training"] == 0.0
    assert r.seconds["open→trainer starts"] == pytest.approx(0.02)  # noticing the round only
    assert r.wall == pytest.approx(1.26)


def test_a_round_with_missing_steps_is_left_out(tmp_path: Path) -> None:
    trace = [x for x in _trace(tmp_path) if x["step"] != "computed"]
    assert phase_breakdown(trace, opened={2: "B"}, closed={2: "A"}, finalised={2: "B"}) == []


def test_no_path_no_file(tmp_path: Path) -> None:
    NodeTrace(None, "A").mark("proposed", 1)
    NodeTrace(None, "A").first("open_seen", 1)
    assert list(tmp_path.iterdir()) == []
    t = NodeTrace(tmp_path / "t.jsonl", "A")
    t.first("open_seen", 3)
    t.first("open_seen", 3)
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 1


def test_node_costs_leave_out_training_and_start_up() -> None:
    def line(t: float, step: str, r: int, rpc: int, cpu: float) -> dict[str, object]:
        return {"t": t, "node": "A", "step": step, "round": r, "rpc": rpc, "cpu": cpu}

    trace = [
        line(0.0, "open_seen", 1, 5, 3.0),  # start-up: before the first proposal
        line(1.0, "proposed", 1, 40, 4.0),
        line(1.1, "train_start", 2, 42, 4.1),
        line(2.1, "trained", 2, 42, 5.0),  # 0.9 s of training CPU
        line(2.5, "proposed", 2, 60, 5.3),
        line(2.6, "spec_start", 3, 61, 5.35),
        line(3.6, "spec_done", 3, 61, 6.25),  # 0.9 s more
        line(4.0, "proposed", 3, 80, 6.6),
    ]
    costs = node_costs(trace)["A"]
    assert costs["rounds"] == 2
    assert costs["rpc_per_round"] == 20
    assert costs["cpu_s_per_round"] == pytest.approx((6.6 - 4.0 - 1.8) / 2)
    assert costs["training_cpu_s_per_round"] == pytest.approx(0.9)
    assert node_costs(trace[:2]) == {}
