"""One upload through intake: read → detect dataset and variant → map headers → normalise values.

The result keeps both the raw cells and the normalised ones (same rows, same canonical column names) so that
every report can show the raw value beside the normalised one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from expectations.model import Column, Dataset
from expectations.registry import Registry
from intake.headers import HeaderMatch, detect, header_score, match_dataset, no_match_error
from intake.problems import Notice
from intake.read import RawTable, read_file
from intake.values import normalise_column


@dataclass
class StagedUpload:
    """An upload mapped onto its dataset's canonical columns."""

    dataset: Dataset
    match: HeaderMatch
    raw_table: RawTable
    values: pl.DataFrame      # canonical columns, normalised text; + _row, _source_line
    raw: pl.DataFrame         # canonical columns, raw text; + _row, _source_line
    normalisations: dict[str, dict[str, int]] = field(default_factory=dict)   # column → rule → count
    invalid_cells: dict[str, int] = field(default_factory=dict)               # column → cells unreadable
    staging_notices: list[Notice] = field(default_factory=list)               # found after reading

    @property
    def notices(self) -> list[Notice]:
        return [*self.raw_table.notices, *self.staging_notices]


# A dataset named by the uploader or by the file name may match with fewer columns than an unnamed one,
# provided every required column is there and most of the file's columns are understood.
HINTED_MIN_PRECISION = 0.5


def choose_dataset(raw: RawTable, registry: Registry, *, dataset_hint: str | None = None,
                   file_name: str | None = None) -> HeaderMatch:
    """The dataset and variant a table is; a clear error when nothing matches well enough."""
    candidates = detect(raw.header, registry, dataset_hint=dataset_hint, file_name=file_name)
    if candidates and candidates[0].good:
        return candidates[0]
    hinted = _hinted_match(raw.header, registry, dataset_hint, file_name)
    if hinted is not None:
        return hinted
    raise no_match_error(candidates, registry)


def _hinted_match(header: list[str], registry: Registry, dataset_hint: str | None,
                  file_name: str | None) -> HeaderMatch | None:
    """A city's own layout (few columns, or other names) of a dataset the uploader or the file name names."""
    if dataset_hint:
        datasets = [registry.get(dataset_hint)]
    else:
        datasets = [m_ds for m_ds in registry if any(
            slug and slug in (file_name or "").lower() for slug in m_ds.file_slugs)]
    best: HeaderMatch | None = None
    for ds in datasets:
        for variant in ds.variants:
            match = match_dataset(header, replace(ds, variants=(variant,)), registry.aliases, file_name=file_name)
            if match.missing_required or match.precision < HINTED_MIN_PRECISION:
                continue
            if best is None or match.precision > best.precision:
                best = match
    return best


def canonical_sources(match: HeaderMatch, dataset: Dataset, header: list[str]) -> dict[str, int]:
    """Canonical column → position of the file column that feeds it."""
    variant = dataset.variant(match.variant)
    positions: dict[str, int] = {}
    for pos, name in enumerate(header):
        target = match.declared.get(name) or match.mapping.get(name)
        if target is None:
            continue
        declared = variant.column(target)
        if declared is not None and declared.maps_to:
            target = declared.maps_to
        if dataset.canonical.column(target) is not None and target not in positions:
            positions[target] = pos
    return positions


def column_type(dataset: Dataset, variant_name: str, canonical: Column) -> str:
    """The declared type of the file's column (the variant may be more specific than the canonical)."""
    variant = dataset.variant(variant_name)
    for col in variant.columns:
        if col.name == canonical.name or col.maps_to == canonical.name:
            return col.type
    return canonical.type


def stage_table(raw: RawTable, dataset: Dataset, match: HeaderMatch) -> StagedUpload:
    """Map a read table onto the dataset's canonical columns and normalise every value by its type."""
    n = raw.data.height
    sources = canonical_sources(match, dataset, raw.header)
    data_columns = [c for c in raw.data.columns if c != "_source_line"]
    base = pl.DataFrame({"_row": pl.int_range(0, n, eager=True, dtype=pl.Int64),
                         "_source_line": raw.data["_source_line"].cast(pl.Int64)})
    raw_cols: list[pl.Series] = []
    norm_cols: list[pl.Series] = []
    normalisations: dict[str, dict[str, int]] = {}
    invalid: dict[str, int] = {}
    for col in dataset.canonical.columns:
        pos = sources.get(col.name)
        if pos is None:
            series = pl.Series(col.name, [None] * n, dtype=pl.String)
            raw_cols.append(series)
            norm_cols.append(series)
            continue
        series = raw.data[data_columns[pos]].cast(pl.String).alias(col.name)
        result = normalise_column(series, column_type(dataset, match.variant, col), column_name=col.name)
        raw_cols.append(series)
        norm_cols.append(result.values.alias(col.name))
        if result.rule_counts:
            normalisations[col.name] = dict(result.rule_counts)
        bad = int(result.invalid.sum())
        if bad:
            invalid[col.name] = bad
    staged = StagedUpload(
        dataset=dataset,
        match=match,
        raw_table=raw,
        values=base.hstack(norm_cols),
        raw=base.hstack(raw_cols),
        normalisations=normalisations,
        invalid_cells=invalid,
    )
    split_combined_coordinates(staged, sources, data_columns)
    check_swapped_coordinates(staged)
    if not match.good:
        staged.staging_notices.append(Notice(
            code="low-header-coverage",
            message_ja=(f"見出しの一致率が低いため、指定またはファイル名から「{dataset.name_ja}」として読み込みました"
                        f"（一致した列: {', '.join(match.mapping) or 'なし'}）。"),
            message_en=(f"Few columns match; read as {dataset.name_en} because the uploader or the file name "
                        f"said so (matched: {', '.join(match.mapping) or 'none'})."),
            details={"score": round(match.score, 3), "precision": round(match.precision, 3)},
        ))
    return staged


_PAIR = r"^\s*-?\d{1,3}(\.\d+)?\s*[,、，]\s*-?\d{1,3}(\.\d+)?\s*$"
PAIR_SHARE = 0.9


def split_combined_coordinates(staged: StagedUpload, sources: dict[str, int], data_columns: list[str]) -> None:
    """Fill 緯度 and 経度 from one unmapped column holding both ('34.342924,134.016856', 高松市's own format)."""
    ds = staged.dataset
    if not ds.lat_column or not ds.lon_column or ds.lat_column in sources or ds.lon_column in sources:
        return
    used = set(sources.values())
    for pos, name in enumerate(data_columns):
        if pos in used:
            continue
        cells = staged.raw_table.data[name].cast(pl.String).str.strip_chars()
        filled = cells.filter(cells.is_not_null() & (cells != ""))
        if filled.len() == 0 or filled.str.contains(_PAIR).mean() < PAIR_SHARE:  # type: ignore[operator]
            continue
        parts = cells.str.replace_all(r"[、，]", ",").str.split(",")
        lat = parts.list.get(0, null_on_oob=True).str.strip_chars().alias(ds.lat_column)
        lon = parts.list.get(1, null_on_oob=True).str.strip_chars().alias(ds.lon_column)
        staged.values = staged.values.with_columns(lat, lon)
        staged.raw = staged.raw.with_columns(cells.alias(ds.lat_column), cells.alias(ds.lon_column))
        for col in (ds.lat_column, ds.lon_column):
            staged.normalisations.setdefault(col, {})["split-coordinates"] = int(filled.len())
        staged.staging_notices.append(Notice(
            code="combined-coordinates",
            message_ja=f"列「{staged.raw_table.header[pos]}」の「緯度,経度」を緯度と経度に分けて取り込みました。",
            message_en=f"Column {staged.raw_table.header[pos]!r} holds 'latitude,longitude'; it was split into two.",
            column=staged.raw_table.header[pos], count=int(filled.len()),
        ))
        return


# Japan's extent in decimal degrees (the same bounds validation uses).
LAT_RANGE, LON_RANGE = (20.0, 46.0), (122.0, 154.0)
SWAPPED_SHARE = 0.9


def check_swapped_coordinates(staged: StagedUpload) -> None:
    """Detect a file whose latitude and longitude are swapped in (nearly) every row (沖縄県 published one).

    Always reported; swapped back only when the dataset's policy says so, since a guess must not be silent."""
    ds = staged.dataset
    if not ds.lat_column or not ds.lon_column:
        return
    lat = staged.values[ds.lat_column].cast(pl.Float64, strict=False)
    lon = staged.values[ds.lon_column].cast(pl.Float64, strict=False)
    both = lat.is_not_null() & lon.is_not_null()
    n = int(both.sum())
    swapped = both & lat.is_between(*LON_RANGE) & lon.is_between(*LAT_RANGE)
    n_swapped = int(swapped.sum())
    if n < 3 or n_swapped < SWAPPED_SHARE * n:
        return
    fixed = ds.policy.fix_swapped_coordinates
    staged.staging_notices.append(Notice(
        code="swapped-coordinates",
        message_ja=(f"緯度と経度が入れ替わっています（{n_swapped}/{n}行）。"
                    + ("データセットの方針により入れ替えて取り込みました。" if fixed
                       else "列「緯度」と「経度」を入れ替えて登録し直してください。")),
        message_en=(f"Latitude and longitude are swapped in {n_swapped} of {n} rows. "
                    + ("They were swapped back, as the dataset's policy says." if fixed
                       else "Swap the 緯度 and 経度 columns and upload again.")),
        column=f"{ds.lat_column}/{ds.lon_column}",
        count=n_swapped,
        details={"fixed": fixed},
    ))
    if fixed:
        lat_text, lon_text = staged.values[ds.lat_column], staged.values[ds.lon_column]
        staged.values = staged.values.with_columns(
            pl.when(swapped).then(lon_text).otherwise(lat_text).alias(ds.lat_column),
            pl.when(swapped).then(lat_text).otherwise(lon_text).alias(ds.lon_column),
        )
        for col in (ds.lat_column, ds.lon_column):
            staged.normalisations.setdefault(col, {})["swapped-coordinates"] = n_swapped


def stage_file(path: Path, registry: Registry, *, original_name: str | None = None,
               dataset_hint: str | None = None,
               reader: Callable[..., RawTable] = read_file) -> StagedUpload:
    """Read any supported file and stage it onto the dataset it is (or the one hinted)."""
    name = original_name or path.name
    raw = reader(path, original_name=name, header_scorer=lambda h: header_score(h, registry))
    match = choose_dataset(raw, registry, dataset_hint=dataset_hint, file_name=name)
    return stage_table(raw, registry.get(match.dataset_id), match)
