"""The pydantic model of an anonymisation policy file (``config/anonymisation/<name>.yaml``).

It says once which keys a policy may hold, which are required, their types and choices, and what each kind of
hierarchy, derived column and 特異な記述 rule needs; :func:`anonymise.policy.load_policy` words its first error as
one line naming the file, the line and the key. A hierarchy's own parameters (``widths``, ``level_names`` …) are
read by :mod:`anonymise.hierarchy`, which checks them against the data.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from anonymise.lattice import PrivacyModel
from anonymise.quality import QualityModel
from kouiki.yaml_source import as_text

Text = Annotated[str, BeforeValidator(as_text)]


def _listed(value: Any) -> Any:
    return [] if value is None else value


def _mapped(value: Any) -> Any:
    return {} if value is None else value


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HierarchySpec(BaseModel):
    """How a quasi-identifier generalises; the kind's own parameters are kept as written."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["interval", "date", "parents", "arx_csv", "flat"]
    path: Text | None = None          # arx_csv: the CSV file beside the policy
    columns: list[Text] | None = None   # parents: the columns holding each value's parent

    @model_validator(mode="after")
    def _what_the_kind_needs(self) -> HierarchySpec:
        if self.kind == "arx_csv" and not self.path:
            raise ValueError("arx_csv hierarchy needs a 'path' — ARX 形式の CSV を指定してください / give the CSV file")
        if self.kind == "parents" and not self.columns:
            raise ValueError("parents hierarchy needs 'columns' — 上位の列を指定してください / name the parent columns")
        return self


class DeriveSpec(_Part):
    kind: Literal["age"]
    from_: Text = Field(alias="from")


class QuasiIdentifierSpec(_Part):
    hierarchy: HierarchySpec
    derive: DeriveSpec | None = None


class SensitiveSpec(_Part):
    order: list[Text] | None = None


class TopCodingSpec(_Part):
    at: float | None = None
    percentile: float | None = None


class KeepSpec(_Part):
    top_coding: TopCodingSpec | None = None
    rounding: int | None = None


class SpecialRuleSpec(BaseModel):
    """A 特異な記述 rule: ``at_least`` (column, threshold) or ``rare_values`` (columns, min_count)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["at_least", "rare_values"]
    column: Text | None = None
    threshold: int | float | None = None
    columns: list[Text] | None = None
    min_count: int | None = None

    @model_validator(mode="after")
    def _what_the_kind_needs(self) -> SpecialRuleSpec:
        needed = ("column", "threshold") if self.kind == "at_least" else ("columns", "min_count")
        missing = [key for key in needed if getattr(self, key) is None]
        if missing:
            raise ValueError(f"{self.kind}: missing {missing} — 書き足してください / add them")
        return self


class PrivacySpec(_Part):
    k: int
    l: int | None = None  # noqa: E741 - the model's own name
    l_variant: Text = "distinct"
    t: float | None = None
    max_suppression: float = 0.0
    quality_model: Text = "loss"
    gs_factor: float = 0.5
    quality_aggregate: Text | None = None
    suppression: Text = "records"

    def model(self) -> PrivacyModel:
        """The privacy model (its own checks: k ≥ 1, shares in [0, 1], known quality and suppression models)."""
        return PrivacyModel(
            k=self.k, l=self.l, l_variant=self.l_variant, t=self.t, max_suppression=self.max_suppression,
            quality=QualityModel(name=self.quality_model, gs_factor=self.gs_factor,
                                 aggregate=self.quality_aggregate or ""),
            suppression=self.suppression)

    @model_validator(mode="after")
    def _a_valid_model(self) -> PrivacySpec:
        self.model()   # its ValueError is this key's error
        return self


class AggregateTableSpec(_Part):
    name: Text
    dims: dict[Text, int]             # quasi-identifier → hierarchy level


class AggregateSpec(_Part):
    min_cell: int = 3
    protection: dict[str, Any] | None = None   # read by anonymise.protection
    tables: Annotated[list[AggregateTableSpec], BeforeValidator(_listed)] = []


class PolicyFile(_Part):
    name: Text
    title: Text | None = None
    reference_date: dt.date | None = None
    direct_identifiers: list[Text]
    quasi_identifiers: dict[Text, QuasiIdentifierSpec]
    sensitive: Annotated[dict[Text, SensitiveSpec | None], BeforeValidator(_mapped)] = {}
    keep: Annotated[dict[Text, KeepSpec | None], BeforeValidator(_mapped)] = {}
    special_descriptions: Annotated[list[SpecialRuleSpec], BeforeValidator(_listed)] = []
    privacy: PrivacySpec
    risk_threshold: float = 0.2
    aggregate: AggregateSpec | None = None
    publication: dict[str, Any] | None = None   # read by assets.anonymise (titles, licence)
