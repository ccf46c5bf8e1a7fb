"""One upload through intake: read → detect dataset and variant → map headers → normalise values.

The result keeps both the raw cells and the normalised ones (same rows, same canonical column names) so that
every report can show the raw value beside the normalised one. Columns without a standard counterpart are kept
after the canonical ones as *extra columns* (:func:`extra_columns`): as written in ``raw``, and in ``values``
normalised as text (half-width kana widened; addresses' digits and hyphens made half-width).

A file with a header but no data row is refused here (``no-data-rows``), before anything is validated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from expectations.registry import Registry
from intake.headers import (
    HeaderMatch,
    detect,
    header_key,
    header_score,
    match_dataset,
    no_match_error,
    normalise_header,
)
from intake.read import RawTable, read_file
from intake.values import ADDRESS_PREFIX_ADDED, normalise_column, prefix_full_addresses
from kouiki.model import Column, Dataset
from kouiki.problems import IntakeError, Notice, Problem, Where

CELL_PROBLEM_SCHEMA = pl.Schema({
    "row": pl.Int64(), "source_line": pl.Int64(), "column": pl.String(), "raw_value": pl.String(),
    "value": pl.String(), "error_code": pl.String(), "rule": pl.String()})


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
    # per-cell problems intake found or repaired (swapped coordinates): CELL_PROBLEM_SCHEMA; validation adds
    # them to the upload's findings
    cell_problems: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CELL_PROBLEM_SCHEMA))
    extra_columns: dict[str, str] = field(default_factory=dict)               # lake column → file header

    @property
    def notices(self) -> list[Notice]:
        return [*self.raw_table.notices, *self.staging_notices]


# A dataset named by the uploader or by the file name may match with fewer columns than an unnamed one,
# provided every required column is there and most of the file's columns are understood.
HINTED_MIN_PRECISION = 0.5


def choose_dataset(raw: RawTable, registry: Registry, *, dataset_hint: str | None = None,
                   file_name: str | None = None) -> HeaderMatch:
    """The dataset and variant a table is; a clear error when nothing matches well enough, or when the table
    has no data row (header only)."""
    refuse_without_rows(raw, file_name)
    candidates = detect(raw.header, registry, dataset_hint=dataset_hint, file_name=file_name)
    if candidates and candidates[0].good:
        return candidates[0]
    hinted = _hinted_match(raw.header, registry, dataset_hint, file_name)
    if hinted is not None:
        return hinted
    raise no_match_error(candidates, registry)


def refuse_without_rows(raw: RawTable, file_name: str | None = None) -> None:
    """A header with no data row below it is nothing to publish: refuse it with a message, not a failed check."""
    if raw.data.height:
        return
    where = Where(line=len(raw.preamble) + 1)
    if file_name:
        raise IntakeError(Problem.of("no-data-rows", name=file_name, where=where))
    raise IntakeError(Problem.of("no-data-rows", "unnamed", where=where))


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


def stage_table(raw: RawTable, dataset: Dataset, match: HeaderMatch, city_code: str | None = None) -> StagedUpload:
    """Map a read table onto the dataset's canonical columns and normalise every value by its type.

    ``city_code`` (the uploader) completes 所在地_連結表記 in rows that carry no local-government code."""
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
    extras = extra_columns(raw.header, sources, dataset)
    for pos, name in extras.items():   # a city's own columns are text: kana widened, addresses' digits too
        series = raw.data[data_columns[pos]].cast(pl.String).alias(name)
        raw_cols.append(series)
        norm_cols.append(_as_text(series, normalisations))
    staged = StagedUpload(
        dataset=dataset,
        match=match,
        raw_table=raw,
        values=base.hstack(norm_cols),
        raw=base.hstack(raw_cols),
        normalisations=normalisations,
        invalid_cells=invalid,
        extra_columns={name: raw.header[pos] for pos, name in extras.items()},
    )
    staged.values, address_column, prefixed = prefix_full_addresses(
        staged.values, ["所在地_全国地方公共団体コード", dataset.code_column], city_code)
    if prefixed:
        staged.normalisations.setdefault(address_column, {})[ADDRESS_PREFIX_ADDED] = prefixed
    split_combined_coordinates(staged, sources, data_columns)
    check_swapped_coordinates(staged)
    if not match.good:
        staged.staging_notices.append(_low_coverage_notice(dataset, match))
    return staged


def _low_coverage_notice(dataset: Dataset, match: HeaderMatch) -> Notice:
    """Read as the dataset the uploader (or the file name) named, although few of its columns match."""
    details = {"score": round(match.score, 3), "precision": round(match.precision, 3)}
    if not match.mapping:
        return Notice.of("low-header-coverage", "nothing-matched", name_ja=dataset.name_ja,
                         name_en=dataset.name_en, details=details)
    return Notice.of("low-header-coverage", name_ja=dataset.name_ja, name_en=dataset.name_en,
                     matched=", ".join(match.mapping), details=details)


def _as_text(series: pl.Series, normalisations: dict[str, dict[str, int]]) -> pl.Series:
    """An extra column as written, except half-width kana (and an address's digits), which are normalised."""
    result = normalise_column(series, "string", column_name=series.name)
    repaired = result.values != series.str.strip_chars()   # more than surrounding spaces changed
    rules = {rule: n for rule, n in result.rule_counts.items() if rule != "whitespace-stripped"}
    if rules:
        normalisations[series.name] = rules
    return pl.select(pl.when(repaired).then(result.values).otherwise(series)).to_series().alias(series.name)


def extra_columns(header: list[str], sources: dict[str, int], dataset: Dataset) -> dict[int, str]:
    """File position → lake name of every column that feeds no canonical column (a city's own column, a legacy
    column without counterpart such as 都道府県名, a second 名称): kept as written, never dropped.

    The name is the file's header, normalised (NFKC, no spaces); ``列<n>`` (1-based position) when blank; with
    ``_列<n>`` appended when it would collide with a canonical column, an earlier extra column or the lake's
    own ``_`` columns."""
    used = set(sources.values())
    taken = {header_key(c.name) for c in dataset.canonical.columns}
    out: dict[int, str] = {}
    for pos, text in enumerate(header):
        if pos in used:
            continue
        name = normalise_header(text) or f"列{pos + 1}"
        if header_key(name) in taken or name.startswith("_"):
            name = f"{name.lstrip('_')}_列{pos + 1}"
        taken.add(header_key(name))
        out[pos] = name
    return out


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
        staged.staging_notices.append(Notice.of("combined-coordinates", column=staged.raw_table.header[pos],
                                                count=int(filled.len())))
        return


# Japan's extent in decimal degrees (the same bounds validation uses).
LAT_RANGE, LON_RANGE = (20.0, 46.0), (122.0, 154.0)
SWAPPED_SHARE = 0.9


def check_swapped_coordinates(staged: StagedUpload) -> None:
    """Latitude and longitude written the wrong way round (沖縄県 published a file swapped in all 272 rows).

    A row is *swapped* when its 緯度 lies in Japan's longitudes and its 経度 in Japan's latitudes. When (nearly)
    every row with coordinates is (SWAPPED_SHARE), the file was written the wrong way round: the rows are swapped
    back (unless the policy says ``fix_swapped_coordinates: false``) and each fixed row gets a warning
    ``swapped-coordinates-fixed``. When only some rows are, a per-row guess would not be safe: their coordinates
    are emptied, with a warning ``swapped-coordinates`` each (the row is published without a position). Either way
    the city is told in a notice. Rows outside Japan either way are left to validation (coordinate-error)."""
    ds = staged.dataset
    if not ds.lat_column or not ds.lon_column:
        return
    lat_col, lon_col = ds.lat_column, ds.lon_column
    lat = staged.values[lat_col].cast(pl.Float64, strict=False)
    lon = staged.values[lon_col].cast(pl.Float64, strict=False)
    both = lat.is_not_null() & lon.is_not_null()
    n = int(both.sum())
    swapped = both & lat.is_between(*LON_RANGE) & lon.is_between(*LAT_RANGE)
    n_swapped = int(swapped.sum())
    if n_swapped == 0:
        return
    consistent = n_swapped >= SWAPPED_SHARE * n
    if consistent and not ds.policy.fix_swapped_coordinates:
        staged.staging_notices.append(_swap_notice(ds, n_swapped, n, "kept"))
        return    # left as written: validation withholds them (outside Japan)
    lat_text, lon_text = staged.values[lat_col], staged.values[lon_col]
    if consistent:
        new_lat = pl.select(pl.when(swapped).then(lon_text).otherwise(lat_text)).to_series()
        new_lon = pl.select(pl.when(swapped).then(lat_text).otherwise(lon_text)).to_series()
        code, rule = "swapped-coordinates-fixed", "swapped-coordinates"
    else:
        new_lat = pl.select(pl.when(swapped).then(None).otherwise(lat_text)).to_series()
        new_lon = pl.select(pl.when(swapped).then(None).otherwise(lon_text)).to_series()
        code, rule = "swapped-coordinates", "swapped-coordinates-emptied"
    staged.values = staged.values.with_columns(new_lat.alias(lat_col), new_lon.alias(lon_col))
    for col in (lat_col, lon_col):
        staged.normalisations.setdefault(col, {})[rule] = n_swapped
    staged.cell_problems = pl.concat([staged.cell_problems, *(
        _cell_problems(staged, swapped, col, code) for col in (lat_col, lon_col))], how="vertical")
    staged.staging_notices.append(_swap_notice(ds, n_swapped, n, "fixed" if consistent else "emptied"))


def _cell_problems(staged: StagedUpload, rows: pl.Series, column: str, code: str) -> pl.DataFrame:
    """One cell problem per selected row of ``column``: raw text as written, value as it will be published."""
    return pl.DataFrame({
        "row": staged.values["_row"].filter(rows), "source_line": staged.values["_source_line"].filter(rows),
        "column": pl.Series([column] * int(rows.sum()), dtype=pl.String),
        "raw_value": staged.raw[column].filter(rows), "value": staged.values[column].filter(rows),
    }).with_columns(pl.lit(code).alias("error_code"), pl.lit(None, dtype=pl.String).alias("rule")) \
        .select(list(CELL_PROBLEM_SCHEMA)).cast(CELL_PROBLEM_SCHEMA)


def _swap_notice(ds: Dataset, n_swapped: int, n: int, outcome: str) -> Notice:
    """The notice for the whole file; ``outcome`` (fixed, emptied, kept) names the catalogue's words for it."""
    return Notice.of(
        "swapped-coordinates", outcome,
        total=n,
        column=f"{ds.lat_column}/{ds.lon_column}",
        count=n_swapped,
        details={"fixed": outcome == "fixed", "outcome": outcome, "rows_with_coordinates": n},
    )


def stage_file(path: Path, registry: Registry, *, original_name: str | None = None,
               dataset_hint: str | None = None,
               reader: Callable[..., RawTable] = read_file, city_code: str | None = None) -> StagedUpload:
    """Read any supported file and stage it onto the dataset it is (or the one hinted). With ``city_code``, a
    column mapping the office accepted for this city's layout comes first (:mod:`intake.mapping`); a file in
    the uploader's own layout that names its dataset (``dataset_hint``) is read through the proposed mapping."""
    name = original_name or path.name
    raw = reader(path, original_name=name, header_scorer=lambda h: header_score(h, registry))
    layout = choose_layout(raw, registry, city_code, dataset_hint=dataset_hint, file_name=name)
    staged = stage_table(raw, layout.dataset, layout.match, city_code=city_code)
    if layout.notice is not None:
        staged.staging_notices.append(layout.notice)
        number_rows_without_id(staged)
    return staged


@dataclass(frozen=True)
class Layout:
    """The dataset a table is read as, how its header maps, and why (a notice when a mapping decided it)."""

    dataset: Dataset
    match: HeaderMatch
    notice: Notice | None = None


def choose_layout(raw: RawTable, registry: Registry, city_code: str | None, *, dataset_hint: str | None = None,
                  file_name: str | None = None) -> Layout:
    """In order: the city's accepted mapping of this exact header row; the standard layouts
    (:func:`choose_dataset`); for a hinted dataset, the mapping :func:`intake.mapping.propose_mapping` proposes
    when it maps the dataset's key columns and most of the file. Otherwise the no-match error."""
    from intake.mapping import accepted_match, find_mapping, mapped_notice, propose_mapping, proposed_for_hint
    from intake.own import find_own_dataset, own_datasets_allowed, standard_only

    mapping = find_mapping(city_code, raw.header)
    if mapping is not None and mapping.dataset_id in registry:
        refuse_without_rows(raw, file_name)
        dataset, match = accepted_match(mapping, registry, raw.header)
        return Layout(dataset, match, mapped_notice(mapping, dataset))
    own = find_own_dataset(city_code, raw.header) if city_code else None
    if own is not None and own_datasets_allowed(own.dataset_id_city):
        return own_layout(raw, registry, own, file_name)
    standard = standard_only(registry)   # one city's own datasets never decide another file's dataset
    hint = dataset_hint if dataset_hint in standard else None
    try:
        match = choose_dataset(raw, standard, dataset_hint=hint, file_name=file_name)
    except IntakeError as err:
        if err.code != "no-dataset-match":
            raise
        proposed = proposed_for_hint(raw, standard, hint)
        if proposed is not None:
            dataset, match, notice = proposed
            return Layout(dataset, match, notice)
        proposals = propose_mapping(raw.header, raw.data, standard, file_name=file_name, limit=1)
        if proposals:   # a standard dataset is close: the office decides (kouiki mappings accept)
            raise proposal_error(err, proposals[0]) from None
        layout = own_layout_if_nothing_fits(raw, standard, city_code, file_name, hint)
        if layout is None:
            raise
        return layout
    return Layout(registry.get(match.dataset_id), match)


def proposal_error(err: IntakeError, proposal: Any) -> IntakeError:
    """The no-match error, telling the city which dataset its layout could be mapped onto and what happens next."""
    return IntakeError(Problem.of("no-dataset-match", "proposed", message_ja=err.message_ja, message_en=err.message_en,
                                  name_ja=proposal.name_ja, dataset=proposal.dataset_id, score=proposal.score,
                                  where=err.problem.where))


def own_layout_if_nothing_fits(raw: RawTable, standard: Registry, city_code: str | None, file_name: str | None,
                               dataset_hint: str | None) -> Layout | None:
    """The city's own dataset for a file no standard dataset fits and no mapping can be proposed for (unless
    the uploader named a dataset, or the file's name does (``aed.csv`` that is no AED list is more likely the
    wrong file than a new list), or the office turned own datasets off for the member)."""
    from intake.mapping import names_dataset
    from intake.own import own_dataset_for, own_datasets_allowed

    if not city_code or dataset_hint or any(names_dataset(ds, file_name) for ds in standard):
        return None
    if not own_datasets_allowed(city_code):
        return None
    refuse_without_rows(raw, file_name)
    own = own_dataset_for(raw, city_code, file_name or "list.csv")
    return own_layout(raw, standard, own, file_name)


def own_layout(raw: RawTable, registry: Registry, own: Any, file_name: str | None) -> Layout:
    """How a file is read as the city's own dataset: its columns are the dataset's (exact names)."""
    from intake.own import own_notice

    refuse_without_rows(raw, file_name)
    match = match_dataset(raw.header, own.dataset, registry.aliases)
    return Layout(own.dataset, replace(match, score=1.0), own_notice(own))


def choose_for_city(raw: RawTable, registry: Registry, city_code: str | None, *,
                    dataset_hint: str | None = None, file_name: str | None = None) -> HeaderMatch:
    """The header match of :func:`choose_layout` (what detection records: dataset and variant)."""
    return choose_layout(raw, registry, city_code, dataset_hint=dataset_hint, file_name=file_name).match


def number_rows_without_id(staged: StagedUpload) -> None:
    """A city's own layout often has no ID column; its rows are then numbered 1, 2, … in file order (the
    standard's ID is only unique per city), so that no row is withheld for an empty key. The city is told."""
    id_column = staged.dataset.id_column
    if id_column in staged.match.mapping.values() or id_column not in staged.values.columns:
        return
    ids = (staged.values["_row"] + 1).cast(pl.String).alias(id_column)
    staged.values = staged.values.with_columns(ids)
    staged.raw = staged.raw.with_columns(ids)
    staged.normalisations.setdefault(id_column, {})["row-number-id"] = staged.values.height
    staged.staging_notices.append(Notice.of("row-number-id", column=id_column, count=staged.values.height))
