"""The schema of an organisation's own data: part of the job spec, so hashed on chain.

A consortium agrees on the columns before anyone trains: the feature columns with
their types (numeric, or categorical with a fixed vocabulary), the label and its
classes, and the preprocessing. Every node checks its own source against this
schema before it commits anything, so a bank whose table has a renamed column or a
new category finds out at start, in one line, not as a silently wrong model.

The encoded feature vector every party builds from a row is fixed by the schema
alone: numeric features in schema order first, then one one-hot block per
categorical feature in schema order, each in vocabulary order. A model therefore
sees `encoded_width` inputs whatever the organisation's table looked like.

Standardisation statistics must not come from one party's data: with
`standardise = "federated"` the job's first round is a statistics round whose
aggregate (integer count, sum and sum of squares per numeric feature) is
committed and audited like any update; see `data/stats.py`.

This module is pure pydantic with no heavy imports: `spec.py` embeds it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: column names and category values are short text; bounded so a spec stays small
NAME_MAX = 128
VOCABULARY_MAX = 4096


class Feature(BaseModel):
    """One feature column: numeric (any real, finite) or categorical (one of `vocabulary`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX)
    type: Literal["numeric", "categorical"] = "numeric"
    vocabulary: tuple[str, ...] = Field(
        (), max_length=VOCABULARY_MAX, description="categorical: the allowed values, in one-hot order"
    )

    @model_validator(mode="after")
    def _check_vocabulary(self) -> Feature:
        if self.type == "categorical":
            if not self.vocabulary:
                raise ValueError(f"categorical feature {self.name!r} needs a vocabulary")
            if len(set(self.vocabulary)) != len(self.vocabulary):
                raise ValueError(f"categorical feature {self.name!r} repeats a vocabulary value")
        elif self.vocabulary:
            raise ValueError(f"numeric feature {self.name!r} takes no vocabulary")
        return self


class TableSchema(BaseModel):
    """A table (CSV, Parquet, SQL query result): feature columns, a label column, its classes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["table"] = "table"
    features: tuple[Feature, ...] = Field(min_length=1, max_length=4096)
    label: str = Field(min_length=1, max_length=NAME_MAX)
    #: label values as text, in class-index order (a label 1 in a CSV is the class "1")
    classes: tuple[str, ...] = Field(min_length=2, max_length=VOCABULARY_MAX)
    standardise: Literal["federated", "none"] = Field(
        "federated",
        description="numeric features: z-score with statistics aggregated by a first statistics round",
    )

    @model_validator(mode="after")
    def _check_columns(self) -> TableSchema:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("a feature column is named twice")
        if self.label in names:
            raise ValueError(f"the label column {self.label!r} is also a feature")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("a class is named twice")
        return self

    @property
    def numeric(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.type == "numeric")

    @property
    def categorical(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.type == "categorical")

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column a source must provide: the features, then the label."""
        return (*(f.name for f in self.features), self.label)

    @property
    def encoded_width(self) -> int:
        return len(self.numeric) + sum(len(f.vocabulary) for f in self.categorical)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.encoded_width,)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def federated_stats(self) -> bool:
        """Whether the job opens with a statistics round (there is something to standardise)."""
        return self.standardise == "federated" and bool(self.numeric)


class ImageSchema(BaseModel):
    """An image folder with one subfolder per class; every image is resized to (height, width)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["images"] = "images"
    height: int = Field(ge=4, le=1024)
    width: int = Field(ge=4, le=1024)
    channels: Literal[1, 3] = 1
    #: subfolder names, in class-index order
    classes: tuple[str, ...] = Field(min_length=2, max_length=VOCABULARY_MAX)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.channels, self.height, self.width)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def federated_stats(self) -> bool:
        return False  # pixels are scaled to [0, 1]; nothing is learnt from any party's data


DataSchema = Annotated[TableSchema | ImageSchema, Field(discriminator="kind")]
