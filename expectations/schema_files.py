"""The pydantic models of a schema registry file (``expectations/schemas/<dataset_id>.yaml``, ``_aliases.yaml``).

They say once which keys each level of a file may hold, which are required, and the type and choices of each
value; pydantic checks them and :mod:`expectations.registry` words its first error as one line naming the file,
the line and the key. What needs the whole file (a column name that must be one of the canonical variant's,
``maps_to``, duplicate headers) is checked by the registry after this. Imported only when the registry is built
(a cache miss in ``kouiki.file_cache``): ``kouiki inspect`` never imports pydantic.

Keys that are for people (``number``, ``source``, ``notes``, ``example``, ``standard``, ``confidence``) are
accepted and not loaded.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StrictBool, field_validator

from kouiki.model import ColumnType, Level
from kouiki.yaml_source import as_text

DATASET_ID = re.compile(r"^[a-z][a-z0-9_]*$")
# a choice error's words by field name (others: "'hide': use one of publish, withhold")
CHOICE_WORDS = {
    "type": "unknown type {input!r}; use one of {choices}",
    "level": "unknown level {input!r}; use one of {choices}",
    "licence": "{input!r}: choose one of {choices}",
}


def _not_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


Text = Annotated[str, BeforeValidator(as_text)]                               # may be empty
Name = Annotated[str, BeforeValidator(as_text), AfterValidator(_not_empty)]   # must not be empty


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnFile(_File):
    name: Name
    type: ColumnType = "string"
    required: StrictBool = False
    level: Level = "unknown"
    format: Name | None = None
    enum: list[Text] | None = None        # '' = the cell may be empty
    description: Text | None = None
    maps_to: Name | None = None
    aliases: list[Name] = []
    example: Any = None


class VariantFile(_File):
    variant: Name
    columns: list[ColumnFile]
    standard: Any = None
    confidence: Any = None
    notes: Any = None

    @field_validator("columns")
    @classmethod
    def _some_columns(cls, columns: list[ColumnFile]) -> list[ColumnFile]:
        if not columns:
            raise ValueError("expected a non-empty list of columns")
        return columns


class PolicyFile(_File):
    on_error: Literal["quarantine", "reject"] = "quarantine"
    on_warning: Literal["publish", "withhold"] = "publish"
    reject_above: Any = 0.5
    fix_swapped_coordinates: StrictBool = True
    strict_columns: list[Name] = []

    @field_validator("reject_above")
    @classmethod
    def _a_share(cls, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"{value!r}: use a share between 0 and 1, e.g. 0.5")
        return float(value)


class CoordinatesFile(_File):
    lat: Name
    lon: Name


class DatasetFile(_File):
    dataset_id: Name
    version: Name
    name_ja: Name
    name_en: Name
    variants: list[VariantFile]           # [] = no columns defined yet: the dataset is skipped
    description_ja: Text | None = None
    description_en: Text | None = None
    file_slugs: list[Name] | None = None
    id_column: Name = "ID"
    code_column: Name = "全国地方公共団体コード"
    key_columns: list[Name] | None = None
    coordinates: CoordinatesFile | None = None
    policy: PolicyFile = PolicyFile()
    licence: Literal["CC-BY-4.0", "PDL-1.0"] = "CC-BY-4.0"   # publish.release.LICENCES describes them
    number: Any = None
    source: Any = None
    notes: Any = None

    @field_validator("dataset_id")
    @classmethod
    def _an_id(cls, value: str) -> str:
        if not DATASET_ID.match(value):
            raise ValueError(f"{value!r}: use lower-case letters, digits and _ only")
        return value


class AliasesFile(_File):
    aliases: dict[Name, Name] | None = None   # spelling → column name
    version: Any = None
