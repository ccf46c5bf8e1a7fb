"""Apply a policy to source records: delete, derive, code, generalise, suppress; describe every step.

`anonymise_records` returns the release and, separately, the 加工方法等情報 (what was done, with parameters),
which must be kept with the city and never published with the release.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from anonymise.anonymiser import AnonymisationOutcome, anonymise_table
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


def anonymise_records(records: pl.DataFrame, policy: Policy, prune: bool = True) -> PolicyOutcome:
    """Anonymise source records under `policy`; the release is None when the privacy model cannot be met."""
    prepared = prepare_records(records, policy)
    outcome = anonymise_table(
        prepared.table,
        prepared.hierarchies,
        policy.model,
        sensitive=list(policy.sensitive),
        keep=[rule.column for rule in policy.keep],
        sensitive_order=_sensitive_orders(policy),
        prune=prune,
    )
    info = processing_information(records, policy, prepared, outcome)
    return PolicyOutcome(policy, outcome, info, prepared)


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
        raise PolicyError(f"入力に必要な列がありません / the records lack columns the policy needs: {missing}")


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
    records: pl.DataFrame, policy: Policy, prepared: PreparedTable, outcome: AnonymisationOutcome
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
    }
