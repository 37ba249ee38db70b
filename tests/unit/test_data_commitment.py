"""Salted data commitments: canonical rows, the Merkle root over them, openings.

Design point (documented in data/commitment.py): the root hides the rows. Every leaf mixes in
a secret 256-bit salt, so without the opening nobody can confirm a guessed dataset against the
root, nor tell that two commitments are to the same rows; the tests below check the
mechanics that point rests on (the salt enters every leaf; equal rows under different salts
give unrelated roots; the opening is the only place the salt is kept).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest
from eth_utils.crypto import keccak

from fedledger.codec.commitment import _next_level
from fedledger.data.commitment import (
    DataCommitment,
    Opening,
    canonical_rows,
    commit_rows,
    differences,
    find_data_commitment,
    new_salt,
    schema_hash,
    verify_opening,
)
from fedledger.data.schema import Feature, ImageSchema, TableSchema
from fedledger.errors import DataError

SCHEMA = TableSchema(
    features=(Feature(name="amount"), Feature(name="term", type="categorical", vocabulary=("36", "60"))),
    label="Class",
    classes=("bad", "good"),
)
SALT = bytes(range(32))
SH = schema_hash(SCHEMA)


def rows(n: int = 37, width: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, width)).astype(np.float32)  # (N, F)
    y = rng.integers(0, 2, n).astype(np.int64)  # (N,)
    return x, y


def test_canonical_rows_are_little_endian_float32_then_int64() -> None:
    x = np.array([[1.0, -2.5]], dtype=np.float32)
    y = np.array([3], dtype=np.int64)
    out = canonical_rows(x, y)
    assert out.shape == (1, 16) and out.dtype == np.uint8
    assert out[0].tobytes() == np.array([1.0, -2.5], "<f4").tobytes() + (3).to_bytes(8, "little")
    # big-endian or wider inputs give the same bytes: the layout is fixed, not the input's
    same = canonical_rows(x.astype(">f4"), y.astype(">i8"))
    assert same.tobytes() == out.tobytes()
    # images flatten per row
    img = np.zeros((2, 1, 4, 4), np.float32)
    assert canonical_rows(img, np.zeros(2, np.int64)).shape == (2, 16 * 4 + 8)


def test_canonical_rows_refuse_mismatched_or_mistyped_arrays() -> None:
    x, y = rows(5)
    with pytest.raises(ValueError, match="one row per label"):
        canonical_rows(x, y[:4])
    with pytest.raises(ValueError, match="floating and y integer"):
        canonical_rows(x, y.astype(np.float32))


def test_the_root_is_the_documented_tree() -> None:
    """Leaf_i = keccak(0x00 || salt || be64(i) || row_i), nodes as codec/commitment.py: recomputed by hand."""
    x, y = rows(5)
    canon = canonical_rows(x, y)
    leaves = [bytes(keccak(b"\x00" + SALT + i.to_bytes(8, "big") + canon[i].tobytes())) for i in range(5)]
    level = leaves
    while len(level) > 1:
        level = _next_level(level)
    assert commit_rows(x, y, salt=SALT, schema_hash=SH) == DataCommitment(
        root=level[0], rows=5, schema_hash=SH
    )
    # 5 leaves: ((l0 l1)(l2 l3)) then l4 promoted
    n01 = bytes(keccak(b"\x01" + leaves[0] + leaves[1]))
    n23 = bytes(keccak(b"\x01" + leaves[2] + leaves[3]))
    assert level[0] == bytes(keccak(b"\x01" + bytes(keccak(b"\x01" + n01 + n23)) + leaves[4]))


def test_one_row_commits_to_its_leaf() -> None:
    x, y = rows(1)
    leaf = bytes(keccak(b"\x00" + SALT + bytes(8) + canonical_rows(x, y)[0].tobytes()))
    assert commit_rows(x, y, salt=SALT, schema_hash=SH).root == leaf


def test_two_independent_computations_give_identical_bytes() -> None:
    x, y = rows(100_003, seed=4)  # crosses a block boundary of the leaf buffer
    a = commit_rows(x, y, salt=SALT, schema_hash=SH)
    b = commit_rows(x.copy(order="F"), y.copy(), salt=bytes(SALT), schema_hash=schema_hash(SCHEMA))
    assert a == b and a.root == b.root and a.rows == 100_003


@pytest.mark.parametrize("change", ["row", "label", "reorder", "drop", "salt", "schema"])
def test_any_change_changes_the_commitment(change: str) -> None:
    x, y = rows(64)
    base = commit_rows(x, y, salt=SALT, schema_hash=SH)
    salt, sh = SALT, SH
    if change == "row":
        x = x.copy()
        x[17, 1] = np.nextafter(x[17, 1], np.float32(np.inf))  # one ulp in one value
    elif change == "label":
        y = y.copy()
        y[0] = 1 - y[0]
    elif change == "reorder":
        order = np.arange(64)
        order[[3, 40]] = order[[40, 3]]
        x, y = x[order], y[order]
    elif change == "drop":
        x, y = x[:-1], y[:-1]
    elif change == "salt":
        salt = bytes(31) + b"\x01"
    else:
        sh = schema_hash(SCHEMA.model_copy(update={"classes": ("good", "bad")}))
    other = commit_rows(x, y, salt=salt, schema_hash=sh)
    expected = {"row": ["root"], "label": ["root"], "reorder": ["root"], "drop": ["rows", "root"],
                "salt": ["root"], "schema": ["schema"]}[change]  # fmt: skip
    assert differences(base, other) == expected


def test_equal_rows_under_fresh_salts_have_unrelated_roots() -> None:
    """What makes the root hiding: the same data committed twice shares no leaf and no root."""
    x, y = rows(8)
    s1, s2 = new_salt(), new_salt()
    assert len(s1) == 32 and s1 != s2
    assert commit_rows(x, y, salt=s1, schema_hash=SH).root != commit_rows(x, y, salt=s2, schema_hash=SH).root


def test_schema_hash_is_keccak_of_canonical_json() -> None:
    text = json.dumps(SCHEMA.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    assert bytes(keccak(text.encode())) == SH and len(SH) == 32
    # parsing the same schema from JSON in another key order hashes the same
    dumped = SCHEMA.model_dump(mode="json")
    again = TableSchema.model_validate({k: dumped[k] for k in reversed(list(dumped))})
    assert schema_hash(again) == SH
    images = ImageSchema(height=8, width=8, classes=("cat", "dog"))
    assert schema_hash(images) != SH


def test_empty_data_and_bad_salt_are_refused() -> None:
    with pytest.raises(DataError, match="no rows to commit"):
        commit_rows(np.zeros((0, 3), np.float32), np.zeros(0, np.int64), salt=SALT, schema_hash=SH)
    x, y = rows(2)
    with pytest.raises(ValueError, match="salt must be 32 bytes"):
        commit_rows(x, y, salt=b"short", schema_hash=SH)


def test_verify_opening() -> None:
    x, y = rows(50)
    opening = Opening(
        organisation="bank-a",
        source="loans.csv",
        salt=SALT,
        commitment=commit_rows(x, y, salt=SALT, schema_hash=SH),
    )
    assert verify_opening(x, y, opening)
    x2 = x.copy()
    x2[49, 0] += 1
    assert not verify_opening(x2, y, opening)
    assert not verify_opening(x[:49], y[:49], opening)
    wrong_salt = Opening(
        organisation="bank-a", source="loans.csv", salt=bytes(32), commitment=opening.commitment
    )
    assert not verify_opening(x, y, wrong_salt)


def test_opening_round_trips_and_is_written_once_owner_only(tmp_path: Path) -> None:
    x, y = rows(10)
    opening = Opening(
        organisation="bank-a",
        source="postgresql://db/loans",
        salt=new_salt(),
        commitment=commit_rows(x, y, salt=SALT, schema_hash=SH),
        query="SELECT * FROM loans",
    )
    assert Opening.from_json(opening.to_json()) == opening
    path = tmp_path / "opening.json"
    opening.write(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Opening.read(path) == opening
    with pytest.raises(DataError, match="already exists: an opening is never overwritten"):
        opening.write(path)
    assert Opening.read(path) == opening  # untouched


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "fedledger-data-opening/1", "salt": "0x', "not valid JSON"),
        ("[1, 2]", "not a data opening"),
        ('{"format": "other"}', "not a data opening"),
        ('{"format": "fedledger-data-opening/1"}', "lacks the field 'salt'"),
    ],
)
def test_malformed_openings_are_one_line_data_errors(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as e:
        Opening.from_json(text)
    assert "\n" not in str(e.value)


def test_a_malformed_field_is_named() -> None:
    x, y = rows(3)
    good = json.loads(
        Opening(
            organisation="o", source="s", salt=SALT, commitment=commit_rows(x, y, salt=SALT, schema_hash=SH)
        ).to_json()
    )
    for field, value in (("salt", "0x12"), ("root", "zz"), ("rows", 0), ("rows", "many")):
        bad = dict(good, **{field: value})
        with pytest.raises(DataError, match="malformed field"):
            Opening.from_json(json.dumps(bad))


def test_find_data_commitment_reads_exports_and_live_events() -> None:
    c = DataCommitment(root=b"\x11" * 32, rows=7, schema_hash=b"\x22" * 32)
    trainer = "0x" + "ab" * 20
    exported = [
        {"name": "Registered", "args": {"job_id": 1, "account": trainer}},
        {"name": "DataCommitted", "args": {"job_id": 2, "trainer": trainer, "root": "0x" + "33" * 32,
                                           "rows": 1, "schema_hash": "0x" + "22" * 32}},
        {"name": "DataCommitted", "args": {"job_id": 1, "trainer": "0x" + "AB" * 20, "root": "0x" + "11" * 32,
                                           "rows": 7, "schema_hash": "0x" + "22" * 32}},
    ]  # fmt: skip
    assert find_data_commitment(exported, job_id=1, trainer=trainer) == c
    live = [{"name": "DataCommitted", "args": {"job_id": 1, "trainer": trainer, "root": c.root, "rows": 7,
                                               "schema_hash": c.schema_hash}}]  # fmt: skip
    assert find_data_commitment(live, job_id=1, trainer=trainer) == c
    assert find_data_commitment(exported, job_id=3, trainer=trainer) is None
    assert find_data_commitment(exported, job_id=1, trainer="0x" + "cd" * 20) is None
