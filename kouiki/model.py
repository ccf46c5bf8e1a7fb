"""The schema registry's data model: what a dataset definition says once loaded from YAML.

The YAML files under ``expectations/schemas/`` are the source of truth; these classes are only their
typed, validated form. ``expectations.registry`` loads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["string", "integer", "number", "date", "time", "url", "phone", "code", "postal_code",
                     "flag", "kana", "email"]
Level = Literal["required", "recommended", "optional", "unknown"]


@dataclass(frozen=True)
class Column:
    """One column of one variant of a dataset."""

    name: str                      # exact header as written in the definition
    type: ColumnType = "string"
    required: bool = False         # 必須: a missing or empty cell is an error
    level: Level = "unknown"
    format: str | None = None
    enum: tuple[str, ...] | None = None   # allowed values after normalisation ('' = empty allowed)
    description: str = ""
    maps_to: str | None = None     # legacy variants: the canonical (current) column this one becomes
    aliases: tuple[str, ...] = ()  # other spellings seen in real files


@dataclass(frozen=True)
class Variant:
    """A layout of a dataset: ``current`` (正式版) or ``legacy`` (推奨データセット) or a city's own."""

    name: str
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None


@dataclass(frozen=True)
class Policy:
    """What to do with an upload's findings (docs/schemas.md, 取扱方針).

    The defaults are a shared data office's: only an *error* (a duplicate ID, coordinates outside Japan, another
    municipality's row, a key that cannot be read) withholds a row; a *warning* (an empty 必須 cell, a value in a
    non-standard form) publishes it and is counted. A dataset tightens this in its YAML."""

    on_error: Literal["quarantine", "reject"] = "quarantine"   # withhold the failing rows, or refuse the upload
    on_warning: Literal["publish", "withhold"] = "publish"     # withhold: every row-level warning is an error
    # refuse the upload when more than this share of its rows would be withheld (the previous data stays)
    reject_above: float = 0.5
    fix_swapped_coordinates: bool = True
    strict_columns: tuple[str, ...] = ()   # columns whose every problem is an error (withholds the row)


@dataclass(frozen=True)
class Dataset:
    """A standard dataset with its variants. The canonical lake layout is the ``current`` variant."""

    id: str                        # e.g. "aed"
    name_ja: str
    name_en: str
    version: str
    variants: tuple[Variant, ...]
    id_column: str = "ID"          # canonical record-ID column (unique per city)
    # キー項目: a row whose key is empty or unreadable is withheld (default: the ID and the name column)
    key_columns: tuple[str, ...] = ()
    code_column: str = "全国地方公共団体コード"
    lat_column: str | None = None
    lon_column: str | None = None
    policy: Policy = field(default_factory=Policy)
    file_slugs: tuple[str, ...] = ()   # file-name hints, e.g. ("aed",)
    description_ja: str = ""
    description_en: str = ""
    licence: str = "CC-BY-4.0"     # licence of the published data: CC-BY-4.0 or PDL-1.0 (公共データ利用規約)

    @property
    def canonical(self) -> Variant:
        """The variant whose column names the lake uses (``current`` if present, else the first)."""
        for v in self.variants:
            if v.name == "current":
                return v
        return self.variants[0]

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"dataset {self.id!r} has no variant {name!r}")
