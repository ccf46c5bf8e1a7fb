"""Generalisation hierarchies: one row per leaf value, the value itself at level 0, "*" at the top.

A hierarchy is a polars table whose columns "0", "1", … hold the label of every leaf at each level, which is
exactly ARX's CSV format (`value;level1;level2;…;*`). Builders make the hierarchies used by the policies
(age bands, dates, 町字 → 市区町村, flat); `hierarchy_from_arx_csv` reads ARX files.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

TOP = "*"


class HierarchyError(ValueError):
    """A hierarchy that cannot be used: not a tree, ragged rows, or values missing from it."""


@dataclass(frozen=True)
class EncodedAttribute:
    """One quasi-identifier column as integer codes at every level of its hierarchy."""

    codes: tuple[np.ndarray, ...]  # per level: uint32 code of each row
    labels: tuple[tuple[str, ...], ...]  # per level: label of each code
    loss: tuple[np.ndarray, ...]  # per level: ARX "Loss" of each code, (leaves covered − 1) / (leaves − 1)
    parents: tuple[np.ndarray, ...] = ()  # per level: the code at that level of each leaf (level-0 code)
    shares: tuple[np.ndarray, ...] = ()  # per level: share of the hierarchy's leaves each code covers

    @property
    def height(self) -> int:
        return len(self.codes)

    @property
    def leaves(self) -> int:
        return len(self.labels[0])

    def roll_up(self, source: int, target: int) -> np.ndarray:
        """Code at level `target` of every code at level `source` (source ≤ target)."""
        mapping = np.zeros(len(self.labels[source]), dtype=np.int32)
        mapping[self.parents[source]] = self.parents[target]
        return mapping


@dataclass(frozen=True)
class Hierarchy:
    """A generalisation hierarchy for one attribute."""

    attribute: str
    table: pl.DataFrame  # String columns "0" … str(height − 1); column "0" holds each leaf once
    level_names: tuple[str, ...]

    @property
    def height(self) -> int:
        """Number of levels, the original values (level 0) and "*" included."""
        return self.table.width

    @property
    def leaves(self) -> int:
        return self.table.height

    def level_labels(self, level: int) -> list[str]:
        return self.table[str(level)].unique(maintain_order=True).to_list()

    def encode(self, values: pl.Series) -> EncodedAttribute:
        """Codes of `values` at every level; raises HierarchyError for values the hierarchy lacks."""
        coded = self.table.with_columns(
            [(pl.col(str(level)).rank("dense") - 1).cast(pl.UInt32).alias(f"c{level}") for level in range(self.height)]
        )
        text = values.cast(pl.String).fill_null("")
        joined = pl.DataFrame({"0": text}).join(coded, on="0", how="left", maintain_order="left")
        missing = joined.filter(pl.col("c0").is_null())["0"].unique().sort().head(5).to_list()
        if missing:
            raise HierarchyError(
                f"{self.attribute}: 階層に無い値があります / values missing from the hierarchy: {missing}"
            )
        codes, labels, losses, parents, shares = [], [], [], [], []
        by_leaf = coded.sort("c0")
        for level in range(self.height):
            per_code = coded.group_by(f"c{level}").agg(pl.first(str(level)), pl.len()).sort(f"c{level}")
            codes.append(joined[f"c{level}"].to_numpy())
            labels.append(tuple(per_code[str(level)].to_list()))
            covered = per_code["len"].to_numpy().astype(np.float64)
            losses.append((covered - 1) / (self.leaves - 1) if self.leaves > 1 else np.zeros_like(covered))
            parents.append(by_leaf[f"c{level}"].to_numpy().astype(np.int64))
            shares.append(covered / self.leaves)
        return EncodedAttribute(tuple(codes), tuple(labels), tuple(losses), tuple(parents), tuple(shares))

    def generalise(self, values: pl.Series, level: int) -> pl.Series:
        """`values` replaced by their labels at `level`."""
        mapping = self.table.select(pl.col("0"), pl.col(str(level)).alias("label"))
        text = pl.DataFrame({"0": values.cast(pl.String).fill_null("")})
        return text.join(mapping, on="0", how="left", maintain_order="left")["label"].alias(values.name)

    def level_of(self, values: Iterable[str]) -> int | None:
        """The lowest level whose labels contain every value, or None (to read another tool's output)."""
        wanted = set(values)
        for level in range(self.height):
            if wanted <= set(self.table[str(level)].to_list()):
                return level
        return None

    def to_arx_csv(self, path: Path, delimiter: str = ";") -> None:
        """Write in ARX's format: no header, one row per leaf, levels left to right."""
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
            writer.writerows(self.table.iter_rows())

    def describe(self) -> dict[str, object]:
        """Levels with a few example labels, for the 加工方法等情報."""
        return {
            "attribute": self.attribute,
            "levels": [
                {"level": level, "name": name, "labels": len(self.level_labels(level))}
                for level, name in enumerate(self.level_names)
            ],
        }


def make_hierarchy(
    attribute: str, rows: Sequence[Sequence[str]], level_names: Sequence[str] | None = None
) -> Hierarchy:
    """A checked hierarchy from rows (leaf, level1, …).

    A "*" level is added on top unless the last level already is "*"."""
    if not rows:
        raise HierarchyError(f"{attribute}: 階層が空です / the hierarchy is empty")
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise HierarchyError(
            f"{attribute}: 行ごとに階層の段数が異なります / rows have different lengths {sorted(widths)}"
        )
    columns = list(zip(*rows, strict=True))
    if set(columns[-1]) != {TOP}:
        columns.append(tuple(TOP for _ in rows))
    table = pl.DataFrame(
        {str(level): list(values) for level, values in enumerate(columns)},
        schema_overrides={str(level): pl.String for level in range(len(columns))},
    )
    _check_tree(attribute, table)
    default = ("値", *(f"段{level}" for level in range(1, table.width - 1)), TOP)
    names = tuple(level_names) if level_names else default
    if len(names) == table.width - 1:
        names = (*names, TOP)
    if len(names) != table.width:
        raise HierarchyError(f"{attribute}: level names {names} do not match {table.width} levels")
    return Hierarchy(attribute, table, names)


def _check_tree(attribute: str, table: pl.DataFrame) -> None:
    duplicated = table.filter(pl.col("0").is_duplicated())["0"].unique().head(5).to_list()
    if duplicated:
        raise HierarchyError(f"{attribute}: 値が重複しています / leaf values listed twice: {duplicated}")
    for level in range(1, table.width - 1):
        parents = table.group_by(str(level)).agg(pl.col(str(level + 1)).n_unique().alias("parents"))
        bad = parents.filter(pl.col("parents") > 1)[str(level)].head(5).to_list()
        if bad:
            raise HierarchyError(
                f"{attribute}: 段{level}の値が複数の上位値を持ちます / level {level} labels with several parents: {bad}"
            )


def hierarchy_from_arx_csv(path: Path, attribute: str | None = None) -> Hierarchy:
    """Read an ARX hierarchy CSV (`value;level1;…;*`, delimiter ';' or ',', UTF-8 with or without BOM)."""
    text = path.read_text(encoding="utf-8-sig")
    delimiter = detect_delimiter(text)
    rows = [row for row in csv.reader(text.splitlines(), delimiter=delimiter) if row and any(cell for cell in row)]
    return make_hierarchy(attribute or path.stem, rows)


def detect_delimiter(text: str) -> str:
    """';' or ',', whichever splits the first non-empty line (outside quotes) more often."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {}
    for candidate in (";", ","):
        counts[candidate] = max((len(row) for row in csv.reader([first], delimiter=candidate)), default=1)
    return ";" if counts[";"] > counts[","] else ","


def interval_hierarchy(
    attribute: str,
    values: Iterable[int],
    widths: Sequence[int] = (5, 10),
    bottom_code: int | None = None,
    top_code: int | None = None,
) -> Hierarchy:
    """Integer values → bands of each width → "*", with bottom and top coding.

    Values below `bottom_code` and at or above `top_code` become one leaf each.

    Leaves are the coded labels ("83", "95～", "～64"); bands read "80～84", "90～", "～69". Widths must nest
    (each a multiple of the previous one) so that every band has one parent.
    """
    for smaller, larger in itertools.pairwise(widths):
        if larger % smaller:
            raise HierarchyError(f"{attribute}: band widths must nest, got {list(widths)}")
    leaves = sorted({code_value(v, bottom_code, top_code) for v in values})
    rows = []
    for representative in leaves:
        row = [value_label(representative, bottom_code, top_code)]
        row += [band_label(representative, width, bottom_code, top_code) for width in widths]
        rows.append(row)
    return make_hierarchy(attribute, rows, ["値", *(f"{width}刻み" for width in widths)])


def code_value(value: int, bottom_code: int | None, top_code: int | None) -> int:
    """Clamp a value into the coded range (bottom_code − 1 stands for everything below)."""
    if top_code is not None and value >= top_code:
        return top_code
    if bottom_code is not None and value < bottom_code:
        return bottom_code - 1
    return int(value)


def value_label(value: int, bottom_code: int | None, top_code: int | None) -> str:
    if top_code is not None and value >= top_code:
        return f"{top_code}～"
    if bottom_code is not None and value < bottom_code:
        return f"～{bottom_code - 1}"
    return str(value)


def band_label(value: int, width: int, bottom_code: int | None, top_code: int | None) -> str:
    low = (value // width) * width
    high = low + width - 1
    if bottom_code is not None and low < bottom_code:
        return f"～{high}"
    if top_code is not None and high >= top_code:
        return f"{low}～"
    return f"{low}～{high}"


def date_hierarchy(attribute: str, values: Iterable[date | str]) -> Hierarchy:
    """ISO dates → year-month → year → "*"."""
    days = sorted({value if isinstance(value, str) else value.isoformat() for value in values})
    rows = [[day, day[:7], day[:4]] for day in days]
    return make_hierarchy(attribute, rows, ["年月日", "年月", "年"])


def parent_hierarchy(attribute: str, pairs: pl.DataFrame, level_names: Sequence[str] | None = None) -> Hierarchy:
    """Leaf column followed by parent columns (e.g. 町字, 市区町村名), one row per distinct leaf.

    Sorted top level first, so the order of the categories (and which neighbours a count table merges) depends on
    the values only, never on the order of the records: two releases of the same people must be grouped alike."""
    distinct = pairs.cast(pl.String).fill_null("").unique()
    distinct = distinct.sort(list(reversed(distinct.columns)))
    rows = [list(row) for row in distinct.iter_rows()]
    return make_hierarchy(attribute, rows, level_names)


def flat_hierarchy(attribute: str, values: Iterable[str]) -> Hierarchy:
    """value → "*"."""
    return make_hierarchy(attribute, [[value] for value in sorted(set(values))], ["値"])
