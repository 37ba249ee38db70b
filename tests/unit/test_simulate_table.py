"""The per-round table `fedledger simulate` prints (cli/simulate.py)."""

from __future__ import annotations

from fedledger.cli.simulate import HEADER, format_row
from fedledger.sim.results import RoundMetrics


def _row(**over: object) -> RoundMetrics:
    fields: dict[str, object] = dict(
        round=1, version=1, status="finalized", commits=10, accepted=10, rejected=0, flagged=0,
        test_accuracy=0.0609, test_loss=0.815, train_loss=0.0, gas_used=1_000_000, transactions=21,
        chain_seconds=0.1, train_seconds=0.0, round_seconds=0.5, model_commitment="0x00",
    )  # fmt: skip
    fields.update(over)
    return RoundMetrics(**fields)  # type: ignore[arg-type]


def test_the_statistics_round_shows_no_accuracy_and_keeps_the_columns() -> None:
    stats = format_row(_row(), statistics=True)
    trained = format_row(_row(round=2, version=2, test_accuracy=0.9512, test_loss=0.171))
    assert "stats" in stats and "6.09%" not in stats and "0.815" not in stats and "—" in stats
    assert "95.12%" in trained and "0.171" in trained

    def plain(text: str) -> str:  # without rich's markup
        for tag in ("[cyan]", "[green]", "[red]", "[yellow]", "[/]"):
            text = text.replace(tag, "")
        return text

    assert len(plain(stats)) == len(plain(trained)) == len(HEADER)
