"""Platform floors (共通の下限): what no policy and no `kouiki anonymise` call can lower.

The office sets them in ONE place, config/anonymisation/_platform.yaml (or the file named by
``KOUIKI_ANONYMISATION_FLOORS``). Two kinds of rule, each named in the reason that blocks:

- floor.k, floor.l, floor.min_cell, floor.max_suppression: the privacy model's parameters;
- qi.outsider_knowable, identifier.published, qi.near_unique: every released column that is not a
  quasi-identifier is classified by its name and by its values (measured on the data), so a policy cannot
  publish a date, an age, an area, sex or a postal code as "sensitive" or "kept", nor a 個人番号, a
  被保険者番号, a phone number or a name, whatever it calls them.

This module only judges; it never changes data. The staging, the independent verification and the CLI all
call it, so a weak policy is blocked even if one of them were bypassed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import yaml

from anonymise.identifiers import is_valid_mynumber
from anonymise.reasons import Reason
from kouiki.settings import Settings

if TYPE_CHECKING:
    from anonymise.policy import Policy

# Values measured on the data: a column is of a kind when at least this share of its non-empty values looks so.
VALUE_SHARE = 0.8
_DATE = re.compile(
    r"^(\d{4}[-/.年]\d{1,2}([-/.月]\d{1,2}日?)?|(令和|平成|昭和|大正|[RHSTrhst])\s?\d{1,2}[-/.年]\d{1,2}.*)$"
)
_POSTAL = re.compile(r"^〒?\s?\d{3}-\d{4}$")
_PHONE = re.compile(r"^\(?0\d{1,4}\)?[-\s]?\d{1,4}[-\s]?\d{3,4}$")
_TEN_DIGITS = re.compile(r"^\d{10}$")
_PLACE = re.compile(r"(丁目|番地|[都道府県市区町村郡字])")
_SEXES = {"男", "女", "男性", "女性", "m", "f", "male", "female"}
_ASCII_WORD = re.compile(r"[a-z0-9]+")
# Sensible bounds for the floors themselves: a floors file outside them is an error, not a weaker platform.
_BOUNDS = {"k": (2, 1000), "min_cell": (2, 1000), "l": (2, 100)}


class FloorsError(ValueError):
    """The floors file cannot be used as written (every anonymisation stops until it is fixed)."""


@dataclass(frozen=True)
class Floors:
    k: int
    min_cell: int
    l: int  # noqa: E741 - the model's own name
    max_suppression: float
    outsider_knowable: Mapping[str, tuple[str, ...]]
    identifying_codes: Mapping[str, tuple[str, ...]]
    near_unique_share: float
    near_unique_min: int
    path: Path

    def as_dict(self) -> dict[str, Any]:
        return {"k": self.k, "min_cell": self.min_cell, "l": self.l, "max_suppression": self.max_suppression,
                "file": str(self.path)}


def floors_path() -> Path:
    """KOUIKI_ANONYMISATION_FLOORS, default config/anonymisation/_platform.yaml (kouiki.settings)."""
    return Settings.from_env().floors


def load_floors(path: Path | None = None) -> Floors:
    """Read and check the platform floors; FloorsError names the file and the entry that is wrong."""
    path = path or floors_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FloorsError(f"共通の下限ファイルがありません / platform floors file not found: {path}") from error
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise FloorsError(f"{path}: 共通の下限ファイルを読めません / cannot read the platform floors: {error}") \
            from error
    if not isinstance(data, dict) or not isinstance(data.get("floors"), dict):
        raise FloorsError(f"{path}: 'floors:' の対応表が必要です / needs a 'floors:' mapping")
    floors = data["floors"]
    values: dict[str, Any] = {}
    for key, (low, high) in _BOUNDS.items():
        values[key] = _bounded_int(path, floors, key, low, high)
    cap = floors.get("max_suppression")
    if not isinstance(cap, int | float) or isinstance(cap, bool) or not 0 <= cap <= 0.5:
        raise FloorsError(f"{path}: floors.max_suppression は 0〜0.5 の割合です / must be a share in [0, 0.5], "
                          f"got {cap!r}")
    near = data.get("near_unique") or {}
    share, minimum = near.get("share", 0.5), near.get("min_distinct", 10)
    if not isinstance(share, int | float) or not 0 < share <= 1 or not isinstance(minimum, int) or minimum < 1:
        raise FloorsError(f"{path}: near_unique needs share in (0, 1] and min_distinct ≥ 1")
    return Floors(
        k=values["k"],
        min_cell=values["min_cell"],
        l=values["l"],
        max_suppression=float(cap),
        outsider_knowable=_pattern_lists(path, data, "outsider_knowable"),
        identifying_codes=_pattern_lists(path, data, "identifying_codes"),
        near_unique_share=float(share),
        near_unique_min=int(minimum),
        path=path,
    )


def _bounded_int(path: Path, floors: dict[str, Any], key: str, low: int, high: int) -> int:
    value = floors.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise FloorsError(f"{path}: floors.{key} は {low}〜{high} の整数です / must be an integer in [{low}, {high}], "
                          f"got {value!r}")
    return value


def _pattern_lists(path: Path, data: dict[str, Any], key: str) -> dict[str, tuple[str, ...]]:
    section = data.get(key)
    if not isinstance(section, dict) or not all(isinstance(v, list) and v for v in section.values()):
        raise FloorsError(f"{path}: '{key}:' は 種類: [列名の一部, …] の対応表です / must map kinds to name lists")
    return {str(kind): tuple(str(p).lower() for p in patterns) for kind, patterns in section.items()}


# ---------------------------------------------------------------------------------------------- model floors


def check_model(
    floors: Floors,
    k: int,
    l: int | None,  # noqa: E741
    max_suppression: float,
    has_sensitive: bool,
    min_cell: int | None = None,
) -> list[Reason]:
    """The privacy model's parameters against the floors (max_suppression as a share)."""
    reasons = []
    if k < floors.k:
        reasons.append(_floor("floor.k", f"k={k}", f"k ≥ {floors.k}"))
    if has_sensitive and (l is None or l < floors.l):
        needed = f"l ≥ {floors.l}（機微な項目があるため / a sensitive column exists）"
        reasons.append(_floor("floor.l", f"l={l}", needed))
    if max_suppression > floors.max_suppression + 1e-12:
        reasons.append(_floor("floor.max_suppression", f"max_suppression={max_suppression:.1%}",
                              f"max_suppression ≤ {floors.max_suppression:.1%}"))
    if min_cell is not None and min_cell < floors.min_cell:
        reasons.append(_floor("floor.min_cell", f"min_cell={min_cell}", f"min_cell ≥ {floors.min_cell}"))
    return reasons


def _floor(rule: str, asked: str, needed: str) -> Reason:
    return Reason(
        rule,
        f"規則 {rule}: {asked} は共通の下限を下回ります（{needed} が必要）。公開しません。",
        f"rule {rule}: {asked} is below the platform floor ({needed} required). Nothing is released.",
    )


# ------------------------------------------------------------------------------------------- column roles


def column_kinds(name: str, values: pl.Series | None, records: int, floors: Floors) -> list[str]:
    """What an outsider could know about a column, from its name and its values: 'date', 'age', 'area', 'sex',
    'postal', 'individual_code', 'linking_code', 'name_or_contact', 'near_unique'."""
    kinds = [kind for kind, patterns in floors.outsider_knowable.items() if _name_matches(name, patterns)]
    kinds += [kind for kind, patterns in floors.identifying_codes.items() if _name_matches(name, patterns)]
    if values is not None:
        kinds += _value_kinds(values, records, floors)
    return list(dict.fromkeys(kinds))


def _name_matches(name: str, patterns: Sequence[str]) -> bool:
    folded = unicodedata.normalize("NFKC", name).lower()
    words = set(_ASCII_WORD.findall(folded))
    return any(p in words if p.isascii() else p in folded for p in patterns)


def _value_kinds(values: pl.Series, records: int, floors: Floors) -> list[str]:
    raw = values.cast(pl.String).drop_nulls()
    distinct = raw.n_unique()
    # the shape of the values is judged on a sample of distinct ones (a million-row file stays fast): the first
    # 5,000 in file order, so the same file always gets the same floors (an unordered unique() drew another
    # sample on each run once a column had more distinct values than that)
    sample = [v for v in (_normalise(value) for value in raw.unique(maintain_order=True).head(5000).to_list()) if v]
    if not sample:
        return []
    kinds = []

    def share(test: Any) -> float:
        return sum(1 for value in sample if test(value)) / len(sample)

    if share(_DATE.match) >= VALUE_SHARE:
        kinds.append("date")
    if share(_POSTAL.match) >= VALUE_SHARE:
        kinds.append("postal")
    if share(_PLACE.search) >= 0.5:  # many 町字 have no suffix (東野川, 猪方): half is enough
        kinds.append("area")
    if share(lambda v: v.lower() in _SEXES) >= VALUE_SHARE:
        kinds.append("sex")
    if share(lambda v: is_valid_mynumber(re.sub(r"[\s-]", "", v))) >= 0.5:
        kinds.append("individual_code")
    if share(_TEN_DIGITS.match) >= VALUE_SHARE:
        kinds.append("individual_code")
    if share(_PHONE.match) >= VALUE_SHARE and share(lambda v: v.startswith("0")) >= VALUE_SHARE:
        kinds.append("name_or_contact")
    if distinct >= floors.near_unique_min and distinct > floors.near_unique_share * max(records, 1):
        kinds.append("near_unique")
    return kinds


def _normalise(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


_OUTSIDER = {"date", "age", "area", "sex", "postal"}
_IDENTIFYING = {"individual_code", "linking_code", "name_or_contact"}


def check_published_columns(
    published: Mapping[str, str],
    table: pl.DataFrame | None,
    floors: Floors,
) -> list[Reason]:
    """`published` maps every released column that is NOT a quasi-identifier to its role ('sensitive', 'keep');
    `table` holds their released values (measured here). Each column an outsider could know, each identifying
    code and each near-unique column is a reason naming its rule."""
    reasons = []
    records = table.height if table is not None else 0
    for column, role in published.items():
        values = table[column] if table is not None and column in table.columns else None
        kinds = column_kinds(column, values, records, floors)
        identifying = [kind for kind in kinds if kind in _IDENTIFYING]
        outsider = [kind for kind in kinds if kind in _OUTSIDER]
        if identifying:
            reasons.append(_column_reason("identifier.published", column, role, identifying,
                                          "個人識別符号・連結符号・氏名等は削除してください",
                                          "delete it (個人識別符号, linking codes, names and contacts are never "
                                          "published)"))
        elif outsider:
            reasons.append(_column_reason("qi.outsider_knowable", column, role, outsider,
                                          "準識別子として一般化するか削除してください",
                                          "make it a quasi-identifier or delete it"))
        elif "near_unique" in kinds:
            reasons.append(_column_reason("qi.near_unique", column, role, ["near_unique"],
                                          "ほぼ1件ごとに値が異なるため、準識別子にするか削除してください",
                                          "it has nearly one value per record: make it a quasi-identifier or "
                                          "delete it"))
    return reasons


def _column_reason(rule: str, column: str, role: str, kinds: list[str], fix_ja: str, fix_en: str) -> Reason:
    what = ", ".join(kinds)
    return Reason(
        rule,
        f"規則 {rule}: 「{column}」（{role} として公開）は外部から知り得る・識別できる項目です（{what}）。{fix_ja}。",
        f"rule {rule}: column {column} (published as {role}) is one an outsider could know or that identifies "
        f"({what}); {fix_en}.",
    )


def unreadable_floors(error: Exception) -> Reason:
    return Reason("floors.unreadable", f"共通の下限を読めません: {error}", f"Platform floors unreadable: {error}")


def check_policy(policy: Policy, table: pl.DataFrame | None, floors: Floors) -> list[Reason]:
    """A policy against the floors: its model, its min_cell, and the role of every released non-QI column
    (measured on `table`, the released values, when given)."""
    model = policy.model
    reasons = check_model(floors, model.k, model.l, model.max_suppression, bool(policy.sensitive), policy.min_cell)
    roles = {column: "sensitive" for column in policy.sensitive}
    roles |= {rule.column: "keep" for rule in policy.keep}
    return reasons + check_published_columns(roles, table, floors)
