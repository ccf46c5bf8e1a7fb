"""Apply a policy to source records: delete, derive, code, generalise, suppress; describe every step.

`anonymise_records` returns the release and, separately, the 加工方法等情報 (what was done, with parameters),
which must be kept with the city and never published with the release.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from anonymise.anonymiser import AnonymisationOutcome, anonymise_table, shuffle_order
from anonymise.floors import Floors, column_kinds, load_floors
from anonymise.hierarchy import (
    Hierarchy,
    date_hierarchy,
    flat_hierarchy,
    hierarchy_from_arx_csv,
    interval_hierarchy,
    parent_hierarchy,
)
from anonymise.policy import KeepRule, Policy, PolicyError, QuasiIdentifierRule


@dataclass
class PreparedTable:
    """The source after deletion, derivation, coding and 特異な記述 rules, ready for the lattice search."""

    table: pl.DataFrame
    hierarchies: dict[str, Hierarchy]
    steps: dict[str, list[dict[str, Any]]]


@dataclass
class PolicyOutcome:
    policy: Policy
    outcome: AnonymisationOutcome
    processing_information: dict[str, Any]
    prepared: PreparedTable

    @property
    def release(self) -> pl.DataFrame | None:
        return self.outcome.release


def anonymise_records(
    records: pl.DataFrame,
    policy: Policy,
    prune: bool = True,
    prefer_levels: dict[str, str] | None = None,
    seed: int | None = None,
) -> PolicyOutcome:
    """Anonymise source records under `policy`; the release is None when the privacy model cannot be met.

    `prefer_levels` (level names by QI) keeps an earlier release's generalisation when it still meets the model;
    with `seed` the released rows are shuffled (the seed goes into the 加工方法等情報 only)."""
    prepared = prepare_records(records, policy)
    preferred = _level_indexes(prepared.hierarchies, prefer_levels) if prefer_levels else None
    outcome = anonymise_table(
        prepared.table,
        prepared.hierarchies,
        policy.model,
        sensitive=list(policy.sensitive),
        keep=[rule.column for rule in policy.keep],
        sensitive_order=_sensitive_orders(policy),
        prune=prune,
        prefer_levels=preferred,
    )
    if seed is not None and outcome.release is not None:
        order = shuffle_order(outcome.release.height, seed)
        outcome.release = outcome.release[order]
        outcome.release_rows = [(outcome.release_rows or [])[i] for i in order.tolist()]
    info = processing_information(records, policy, prepared, outcome, seed=seed)
    return PolicyOutcome(policy, outcome, info, prepared)


def _level_indexes(hierarchies: dict[str, Hierarchy], names: dict[str, str]) -> dict[str, int] | None:
    """Level names (as recorded for an earlier release) → level numbers of these hierarchies, if all exist."""
    levels = {}
    for column, hierarchy in hierarchies.items():
        if names.get(column) not in hierarchy.level_names:
            return None
        levels[column] = list(hierarchy.level_names).index(names[column])
    return levels


def _sensitive_orders(policy: Policy) -> dict[str, tuple[str, ...]]:
    """Declared orders, with a rare-value replacement label (e.g. その他) appended last where it applies."""
    orders = {column: order for column, order in policy.sensitive.items() if order}
    for rule in policy.special_descriptions:
        if rule["kind"] != "rare_values":
            continue
        replacement = str(rule.get("replacement", "その他"))
        for column in rule["columns"]:
            if column in orders and replacement not in orders[column]:
                orders[column] = (*orders[column], replacement)
    return orders


def prepare_records(records: pl.DataFrame, policy: Policy) -> PreparedTable:
    """Everything before the lattice search; only the released columns survive."""
    _check_columns(records, policy)
    steps: dict[str, list[dict[str, Any]]] = {
        "derived": [],
        "special_descriptions": [],
        "top_coding": [],
        "rounding": [],
    }
    table = records
    top_codes = _top_codes_from_special_rules(policy)
    hierarchies: dict[str, Hierarchy] = {}
    for rule in policy.quasi_identifiers:
        table, hierarchy = _prepare_quasi_identifier(table, rule, policy, top_codes, steps)
        hierarchies[rule.column] = hierarchy
    for keep in policy.keep:
        table = _prepare_kept(table, keep, top_codes.get(keep.column), steps)
    table = _apply_rare_value_rules(table, policy, steps)
    return PreparedTable(table.select(policy.released_columns), hierarchies, steps)


def _check_columns(records: pl.DataFrame, policy: Policy) -> None:
    needed = {rule.source_column for rule in policy.quasi_identifiers}
    needed |= {column for rule in policy.quasi_identifiers for column in rule.hierarchy.get("columns", [])}
    needed |= set(policy.sensitive) | {rule.column for rule in policy.keep}
    missing = sorted(needed - set(records.columns))
    if missing:
        raise PolicyError(f"入力に必要な列がありません / the records lack columns the policy needs: {missing}",
                          code="policy-input-error")


def _top_codes_from_special_rules(policy: Policy) -> dict[str, float]:
    """特異な記述 'at_least' rules: values at or above the threshold are top-coded to it."""
    return {
        str(rule["column"]): float(rule["threshold"])
        for rule in policy.special_descriptions
        if rule["kind"] == "at_least"
    }


def _prepare_quasi_identifier(
    table: pl.DataFrame,
    rule: QuasiIdentifierRule,
    policy: Policy,
    top_codes: dict[str, float],
    steps: dict[str, list[dict[str, Any]]],
) -> tuple[pl.DataFrame, Hierarchy]:
    if rule.derive:
        table = table.with_columns(_age_at(pl.col(rule.source_column), policy).alias(rule.column))
        steps["derived"].append({**rule.derive, "column": rule.column, "reference_date": str(policy.reference_date)})
    spec = rule.hierarchy
    kind = spec["kind"]
    column = table[rule.column]
    if kind == "interval":
        return _prepare_interval(table, rule.column, spec, top_codes.get(rule.column), steps)
    if kind == "date":
        text = column.cast(pl.String)
        return table.with_columns(text), date_hierarchy(rule.column, text.drop_nulls().unique().to_list())
    if kind == "parents":
        parents = [str(name) for name in spec["columns"]]
        pairs = table.select([pl.col(name).cast(pl.String) for name in [rule.column, *parents]])
        hierarchy = parent_hierarchy(rule.column, pairs, spec.get("level_names"))
        return table.with_columns(pairs[rule.column]), hierarchy
    if kind == "arx_csv":
        hierarchy = hierarchy_from_arx_csv(policy.base_dir / str(spec["path"]), rule.column)
        return table.with_columns(column.cast(pl.String)), hierarchy
    return table.with_columns(column.cast(pl.String)), flat_hierarchy(
        rule.column, column.cast(pl.String).unique().to_list()
    )


def _age_at(birth: pl.Expr, policy: Policy) -> pl.Expr:
    """Completed years at the policy's reference date."""
    reference = policy.reference_date
    born = birth.cast(pl.Date)
    # Int32 first: dt.month() is Int8, and month * 100 would silently wrap.
    month_day = born.dt.month().cast(pl.Int32) * 100 + born.dt.day().cast(pl.Int32)
    before_birthday = month_day > (reference.month * 100 + reference.day)
    return (pl.lit(reference.year) - born.dt.year() - before_birthday.cast(pl.Int32)).cast(pl.Int32)


def _prepare_interval(
    table: pl.DataFrame,
    column: str,
    spec: dict[str, Any],
    special_top: float | None,
    steps: dict[str, list[dict[str, Any]]],
) -> tuple[pl.DataFrame, Hierarchy]:
    top = spec.get("top_code")
    if special_top is not None:
        top = int(special_top) if top is None else min(int(top), int(special_top))
    bottom = spec.get("bottom_code")
    values = table[column].cast(pl.Int64)
    hierarchy = interval_hierarchy(
        column, values.drop_nulls().unique().to_list(), spec.get("widths", (5, 10)), bottom, top
    )
    label = pl.col(column).cast(pl.Int64).cast(pl.String)
    affected = {"top": 0, "bottom": 0}
    if top is not None:
        affected["top"] = int((values >= top).sum())
        label = pl.when(pl.col(column) >= top).then(pl.lit(f"{top}～")).otherwise(label)
    if bottom is not None:
        affected["bottom"] = int((values < bottom).sum())
        label = pl.when(pl.col(column) < bottom).then(pl.lit(f"～{bottom - 1}")).otherwise(label)
    steps["top_coding"].append(
        {
            "column": column,
            "top_code": top,
            "bottom_code": bottom,
            "records_top_coded": affected["top"],
            "records_bottom_coded": affected["bottom"],
        }
    )
    if special_top is not None:
        steps["special_descriptions"].append(
            {
                "kind": "at_least",
                "column": column,
                "threshold": special_top,
                "action": f"top-coded at {top}",
                "records_affected": int((values >= special_top).sum()),
            }
        )
    return table.with_columns(label.alias(column)), hierarchy


def _prepare_kept(
    table: pl.DataFrame, rule: KeepRule, special_top: float | None, steps: dict[str, list[dict[str, Any]]]
) -> pl.DataFrame:
    column = rule.column
    values = table[column]
    thresholds = [value for value in (rule.top_at, special_top) if value is not None]
    if rule.top_percentile is not None:
        thresholds.append(float(values.cast(pl.Float64).quantile(rule.top_percentile / 100, "higher") or 0.0))
    if thresholds:
        threshold = min(thresholds)
        if rule.rounding:
            threshold = float(int(threshold // rule.rounding) * rule.rounding)
        affected = int((values > threshold).sum())
        table = table.with_columns(pl.min_horizontal(pl.col(column), pl.lit(threshold)).cast(values.dtype))
        steps["top_coding"].append(
            {
                "column": column,
                "top_code": threshold,
                "percentile": rule.top_percentile,
                "records_top_coded": affected,
            }
        )
    if rule.rounding:
        step = rule.rounding
        table = table.with_columns(((pl.col(column) / step).round(0) * step).cast(values.dtype))
        steps["rounding"].append({"column": column, "unit": step})
    return table


def _apply_rare_value_rules(
    table: pl.DataFrame, policy: Policy, steps: dict[str, list[dict[str, Any]]]
) -> pl.DataFrame:
    for rule in policy.special_descriptions:
        if rule["kind"] != "rare_values":
            continue
        replacement = str(rule.get("replacement", "その他"))
        for column in rule["columns"]:
            counts = table[column].cast(pl.String).value_counts()
            rare = counts.filter(pl.col("count") < int(rule["min_count"]))[column].to_list()
            affected = int(counts.filter(pl.col("count") < int(rule["min_count"]))["count"].sum())
            if rare:
                table = table.with_columns(
                    pl.when(pl.col(column).cast(pl.String).is_in(rare))
                    .then(pl.lit(replacement))
                    .otherwise(pl.col(column).cast(pl.String))
                    .alias(column)
                )
            steps["special_descriptions"].append(
                {
                    "kind": "rare_values",
                    "column": column,
                    "min_count": int(rule["min_count"]),
                    "replacement": replacement,
                    "categories_replaced": len(rare),
                    "records_affected": affected,
                }
            )
    return table


def processing_information(
    records: pl.DataFrame,
    policy: Policy,
    prepared: PreparedTable,
    outcome: AnonymisationOutcome,
    seed: int | None = None,
    floors: Floors | None = None,
) -> dict[str, Any]:
    """加工方法等情報: the deletions, derivations, codings, generalisation levels and suppression, with their
    parameters. It describes how to reverse nothing, but it must still be kept apart from the release."""
    present_identifiers = [column for column in policy.direct_identifiers if column in records.columns]
    dropped = [
        column
        for column in records.columns
        if column not in policy.released_columns and column not in policy.direct_identifiers
    ]
    generalisation = {
        column: {
            "level": outcome.levels.get(column),
            "level_name": outcome.level_names.get(column),
            "hierarchy": prepared.hierarchies[column].describe(),
            "rule": policy_rule,
        }
        for column, policy_rule in ((rule.column, rule.hierarchy) for rule in policy.quasi_identifiers)
    }
    search = outcome.search
    return {
        "document": "加工方法等情報 / anonymisation method information",
        "notice": "公開しないこと。匿名加工情報と分けて安全に管理する。 / Never publish; keep apart from the release.",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "policy": {"name": policy.name, "title": policy.title, "sha256": policy.sha256},
        "input": {"records": records.height, "columns": records.columns},
        "deleted": {
            "direct_identifiers": present_identifiers,
            "not_published": dropped,
        },
        "derived": prepared.steps["derived"],
        "special_descriptions": prepared.steps["special_descriptions"],
        "top_coding": prepared.steps["top_coding"],
        "rounding": prepared.steps["rounding"],
        "generalisation": generalisation,
        "privacy_model": {
            "k": policy.model.k,
            "l": policy.model.l,
            "l_variant": policy.model.l_variant,
            "t": policy.model.t,
            "max_suppression": policy.model.max_suppression,
        },
        "suppression": {
            "records_suppressed": outcome.metrics.get("records_suppressed"),
            "share": outcome.metrics.get("suppressed_share"),
            "limit_records": policy.model.suppression_limit(records.height),
            "method": "局所的削除: k未満・l多様性を満たさない同値クラスのレコードを削除 / "
            "records of classes that break "
            "the model are removed",
        },
        "information_loss": {key: value for key, value in outcome.metrics.items() if key != "equivalence_classes"},
        "equivalence_classes": outcome.metrics.get("equivalence_classes"),
        "search": {
            "lattice_size": search.lattice_size if search else None,
            "nodes_evaluated": len(search.evaluations) if search else None,
        },
        "released": outcome.ok,
        "failure": outcome.failure.as_dict() if outcome.failure else None,
        "row_order": {
            "method": "released rows shuffled (numpy default_rng permutation); source order is not kept",
            "seed": seed,
        },
        "suppressed_records": {
            "reference": "0-based row positions in the stored source file (private)",
            "rows": outcome.suppressed_rows or [],
        },
        "processing_standards": processing_standards(records, policy, prepared, outcome, seed, floors or load_floors()),
    }


PROCESSING_BASIS = (
    "個人情報の保護に関する法律施行規則 第31条（行政機関等匿名加工情報の作成の方法に関する基準: 第34条各号と同じ）"
)


def processing_standards(
    records: pl.DataFrame,
    policy: Policy,
    prepared: PreparedTable,
    outcome: AnonymisationOutcome,
    seed: int | None,
    floors: Floors,
) -> list[dict[str, Any]]:
    """The five 加工基準 as explicit steps: what was done, to which columns, how many records."""
    released = set(policy.released_columns)
    deleted = [column for column in records.columns if column not in released]
    kinds = {column: set(column_kinds(column, records[column], records.height, floors)) for column in deleted}
    codes = [c for c in deleted if kinds[c] & {"individual_code"}]
    describing = {"name_or_contact", "date", "age", "area", "sex", "postal"}
    linking = [c for c in deleted if c not in codes and kinds[c] & {"linking_code", "near_unique"}
               and not kinds[c] & describing]
    descriptive = [c for c in deleted if c not in codes and c not in linking]
    generalised = {column: outcome.level_names.get(column) for column in policy.qi_columns}
    suppressed = len(outcome.suppressed_rows or [])
    special = prepared.steps["special_descriptions"]

    def filled(columns: list[str]) -> int:
        return int(sum(records[column].is_not_null().sum() for column in columns))

    return [
        _standard(1, "特定の個人を識別することができる記述等の全部又は一部を削除（置換を含む）",
                  "identifying descriptions deleted in whole or in part (replacement included)",
                  {"deleted_columns": descriptive, "derived": prepared.steps["derived"],
                   "generalised_to": generalised},
                  [*descriptive, *policy.qi_columns], filled(descriptive) + records.height * len(generalised)),
        _standard(2, "個人識別符号の全部を削除", "every 個人識別符号 (individual identification code) deleted",
                  {"deleted_columns": codes, "released_scan": "12-digit 個人番号 (check digit), 被保険者番号-like, "
                   "phone-like values and every source identifier are searched in every released file"},
                  codes, filled(codes)),
        _standard(3, "個人情報と他の情報とを連結する符号を削除", "codes linking to other information deleted",
                  {"deleted_columns": linking, "row_identifier_released": False,
                   "row_order": "shuffled with a private seed" if seed is not None else "not shuffled"},
                  linking, filled(linking)),
        _standard(4, "特異な記述等を削除（置換を含む）", "unusual descriptions deleted (replacement included)",
                  {"rules": special, "local_suppression": {"records": suppressed,
                                                         "rows": "suppressed_records.rows"}},
                  sorted({str(step["column"]) for step in special}),
                  suppressed + sum(int(step.get("records_affected", 0)) for step in special)),
        _standard(5, "個人情報データベース等の性質を勘案し、適切な措置", "other measures suited to the database",
                  {"privacy_model": {"k": policy.model.k, "l": policy.model.l, "t": policy.model.t,
                                     "max_suppression": policy.model.max_suppression},
                   "platform_floors": floors.as_dict(),
                   "top_coding": prepared.steps["top_coding"], "rounding": prepared.steps["rounding"],
                   "releases_over_time": "each new extract is compared with every earlier release (differencing); "
                                         "it is held when a difference would isolate someone"},
                  [str(step["column"]) for step in prepared.steps["top_coding"]],
                  int(sum(int(step.get("records_top_coded", 0)) for step in prepared.steps["top_coding"]))),
    ]


def _standard(number: int, ja: str, en: str, done: dict[str, Any], columns: list[str], records: int) -> dict[str, Any]:
    return {"standard": number, "basis": f"{PROCESSING_BASIS} 第{number}号", "title_ja": ja, "title_en": en,
            "done": done, "columns": columns, "values_affected": records}
