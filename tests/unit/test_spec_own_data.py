"""The job spec names the organisations' own data by its schema, which the spec hash covers."""

from __future__ import annotations

from typing import Any

import pytest

from fedledger.data.schema import Feature, TableSchema
from fedledger.errors import SpecError
from fedledger.spec import JobSpec

SCHEMA = TableSchema(
    features=(Feature(name="amount"), Feature(name="term", type="categorical", vocabulary=("36", "60"))),
    label="Class",
    classes=("bad", "good"),
)


def own(**fields: Any) -> JobSpec:
    data = {"dataset": "loans", "data_schema": SCHEMA.model_dump(), "partition": "organisation",
            "model": "logreg", "trainers": 4, **fields}  # fmt: skip
    return JobSpec.from_dict(data)


def test_the_schema_is_part_of_the_spec_hash() -> None:
    a = own()
    other = SCHEMA.model_copy(update={"classes": ("good", "bad")})
    b = own(data_schema=other.model_dump())
    assert a.spec_hash() != b.spec_hash()
    assert JobSpec.from_dict(a.model_dump(mode="json")).spec_hash() == a.spec_hash()  # round trip


def test_a_bundled_spec_hashes_the_same_whatever_the_key_order() -> None:
    assert JobSpec.from_dict({"rounds": 3, "dataset": "digits"}).spec_hash() == JobSpec.from_dict(
        {"dataset": "digits", "rounds": 3}
    ).spec_hash()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"data_schema": None}, "dataset 'loans' is not bundled"),
        ({"dataset": "mnist"}, "dataset 'mnist' names a bundled dataset"),
        ({"partition": "key"}, "partition=key on own data needs partition_key"),
        ({"partition_key": "state"}, "partition_key is only used with partition=key"),
        ({"aggregation": "fltrust"}, "fltrust needs the sponsor's root dataset"),
        ({"scoring": "loo"}, "contribution scoring needs a validation set every validator holds"),
        ({"dp_epsilon": 8.0}, "federated standardisation releases feature sums without DP noise"),
        ({"client": "my_app.app:client_fn"}, "a Flower client [(]client[)] loads and preprocesses"),
        ({"model": "not a ref"}, "String should match pattern"),
        ({"code_digest": "0x12"}, "String should match pattern"),
    ],
)
def test_own_data_rules_name_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        own(**fields)


def test_partition_organisation_needs_own_data() -> None:
    with pytest.raises(SpecError, match="partition=organisation needs the organisations' own data"):
        JobSpec.from_dict({"dataset": "digits", "partition": "organisation"})


def test_a_schema_without_numeric_features_has_no_statistics_round() -> None:
    only_categories = TableSchema(
        features=(Feature(name="term", type="categorical", vocabulary=("36", "60")),),
        label="Class",
        classes=("bad", "good"),
    )
    spec = own(data_schema=only_categories.model_dump())
    assert not spec.federated_stats and spec.chain_rounds == spec.rounds
    assert own(data_schema=SCHEMA.model_copy(update={"standardise": "none"}).model_dump()).chain_rounds == 20


def test_schema_checks_its_own_consistency() -> None:
    with pytest.raises(ValueError, match="categorical feature 'term' needs a vocabulary"):
        Feature(name="term", type="categorical")
    with pytest.raises(ValueError, match="the label column 'amount' is also a feature"):
        TableSchema(features=(Feature(name="amount"),), label="amount", classes=("a", "b"))
    assert SCHEMA.encoded_width == 3 and SCHEMA.input_shape == (3,)
