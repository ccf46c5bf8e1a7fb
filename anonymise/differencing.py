"""Releases over time: a new extract must not isolate anyone when it is compared with an earlier release.

An attacker who keeps every release of the extract can take the difference of two of them. Rows carry no
identifier and are shuffled, so the attacker matches them by content: within each equivalence class (same
published quasi-identifier values, in the same city's part) the new release's rows split, as multisets, into

    added    rows in the new release and not in the earlier one
    removed  rows in the earlier release and not in the new one
    kept     rows in both

and each of the three groups is a release of its own to the attacker ("the person who moved in", "the one
who died", "the ones who stayed"). So for every class each group must be empty or hold at least k records
with at least l distinct values of every sensitive attribute. This is checked against EVERY earlier release of
the dataset, from the published files themselves (what the attacker has) and the staged files.

Groups only mean something when both releases use the same generalisation; when the levels differ the
release is held (the staging keeps the previous levels whenever they still meet the model).

When the check fails the release is held with its reason and the previous one stays latest. The office may
decide to publish this exact staged extract anyway by writing
``$KOUIKI_HOME/private/decisions/<policy>_differencing.json``::

    {"approve_extract_sha256": "<sha256 of the staged extract CSV>", "decided_by": "...", "reason": "..."}

which is honoured for that exact file only and recorded in the verdict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from anonymise.documents import file_sha256
from anonymise.reasons import Reason

if TYPE_CHECKING:
    from anonymise.policy import Policy

EXTRACT_LOG = "extract_log.jsonl"
GROUPS = ("added", "removed", "kept")


@dataclass
class DifferencingResult:
    compared_with: list[int] = field(default_factory=list)
    unsafe_classes: dict[int, int] = field(default_factory=dict)  # earlier release → classes that isolate
    smallest_group: int | None = None
    reasons: list[Reason] = field(default_factory=list)
    approved_by: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "compared_with_releases": self.compared_with,
            "unsafe_classes": {str(number): count for number, count in self.unsafe_classes.items()},
            "smallest_unsafe_group": self.smallest_group,
            "held": bool(self.reasons),
            "office_decision": self.approved_by,
        }


def check_against_earlier_releases(
    policy: Policy, staged: Path, releases_root: Path | None, private_root: Path
) -> DifferencingResult:
    """Compare the staged extract (each city's part) with every earlier published release of the dataset."""
    result = DifferencingResult()
    dataset_id = f"{policy.name}_anonymised"
    dataset_root = releases_root / dataset_id if releases_root else None
    if dataset_root is None or not dataset_root.is_dir():
        return result
    numbers = sorted(int(p.name) for p in dataset_root.iterdir() if p.is_dir() and p.name.isdigit())
    staged_record = json.loads((staged / "staged.json").read_text(encoding="utf-8"))
    staged_levels = {code: city.get("levels") for code, city in staged_record["cities"].items()}
    earlier_levels = published_levels(private_root, dataset_id)
    new_parts = {path.stem: _read(path) for path in sorted((staged / "cities").glob("*.csv"))}
    reasons: list[Reason] = []
    for number in numbers:
        result.compared_with.append(number)
        changed = [code for code, levels in (earlier_levels.get(number) or {}).items()
                   if code in staged_levels and levels != staged_levels[code]]
        if changed:
            reasons.append(_generalisation_changed(number, changed))
            continue
        unsafe, smallest = 0, None
        for code, new in new_parts.items():
            old_path = dataset_root / str(number) / "cities" / f"{code}_{dataset_id}.csv"
            old = _read(old_path) if old_path.is_file() else new.clear()
            count, size = unsafe_classes(old, new, policy.qi_columns, list(policy.sensitive), policy.model.k,
                                         policy.model.l)
            unsafe += count
            smallest = size if smallest is None or (size is not None and size < smallest) else smallest
        if unsafe:
            result.unsafe_classes[number] = unsafe
            result.smallest_group = smallest if result.smallest_group is None else min(result.smallest_group,
                                                                                       smallest or 0)
    if result.unsafe_classes:
        reasons.append(_isolates(result.unsafe_classes, result.smallest_group, policy))
    decision = _office_decision(private_root, policy, staged / f"{dataset_id}.csv")
    if reasons and decision is not None:
        result.approved_by = decision
        return result
    result.reasons = reasons
    return result


def unsafe_classes(
    old: pl.DataFrame,
    new: pl.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str],
    k: int,
    l: int | None,  # noqa: E741
) -> tuple[int, int | None]:
    """How many classes have an added, removed or kept group of 1..k-1 rows (or fewer than l distinct sensitive
    values), and the smallest such group. Rows are compared whole, as multisets."""
    if set(old.columns) != set(new.columns):
        return max(new.height, old.height), 1  # another layout: every class differs
    flagged = unsafe_class_keys(old, new, quasi_identifiers, sensitive, k, l)
    if flagged.is_empty():
        return 0, None
    return flagged.height, int(flagged["smallest"].min())  # type: ignore[arg-type]


def unsafe_class_keys(
    old: pl.DataFrame,
    new: pl.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str],
    k: int,
    l: int | None,  # noqa: E741
) -> pl.DataFrame:
    """The quasi-identifier values of every class whose added, removed or kept group isolates (column
    `smallest`: the size of its smallest such group). Both tables hold the published text, same columns."""
    columns = list(new.columns)
    counted_old = old.select(columns).group_by(columns).len("n_old")
    counted_new = new.group_by(columns).len("n_new")
    rows = counted_old.join(counted_new, on=columns, how="full", coalesce=True, nulls_equal=True).with_columns(
        # signed: n_new - n_old on polars' unsigned counts would wrap round instead of going negative
        pl.col("n_old").fill_null(0).cast(pl.Int64), pl.col("n_new").fill_null(0).cast(pl.Int64)
    )
    rows = rows.with_columns(
        added=(pl.col("n_new") - pl.col("n_old")).clip(lower_bound=0),
        removed=(pl.col("n_old") - pl.col("n_new")).clip(lower_bound=0),
        kept=pl.min_horizontal("n_old", "n_new"),
    )
    aggregations = []
    for group in GROUPS:
        aggregations.append(pl.col(group).sum().alias(group))
        for attribute in sensitive:
            aggregations.append(pl.col(attribute).filter(pl.col(group) > 0).n_unique().alias(f"{group}:{attribute}"))
    classes = rows.group_by(list(quasi_identifiers)).agg(aggregations)
    bad = pl.lit(False)
    smallest: list[pl.Expr] = []
    for group in GROUPS:
        size = pl.col(group)
        group_bad = (size > 0) & (size < k)
        if l is not None:
            for attribute in sensitive:
                group_bad = group_bad | ((size > 0) & (pl.col(f"{group}:{attribute}") < l))
        bad = bad | group_bad
        smallest.append(pl.when(group_bad).then(size))
    flagged = classes.with_columns(bad=bad, smallest=pl.min_horizontal(smallest)).filter(pl.col("bad"))
    return flagged.select([*quasi_identifiers, "smallest"])


def earlier_parts(releases_root: Path | None, dataset_id: str, city_code: str) -> dict[int, pl.DataFrame]:
    """Every earlier published release's part for one city, as published text (release number → table)."""
    dataset_root = releases_root / dataset_id if releases_root else None
    if dataset_root is None or not dataset_root.is_dir():
        return {}
    parts = {}
    for folder in sorted(p for p in dataset_root.iterdir() if p.is_dir() and p.name.isdigit()):
        path = folder / "cities" / f"{city_code}_{dataset_id}.csv"
        if path.is_file():
            parts[int(folder.name)] = _read(path)
    return parts


def published_levels(private_root: Path, dataset_id: str) -> dict[int, dict[str, Any]]:
    """The generalisation levels of each earlier release, per city, from the private extract log."""
    log = private_root / EXTRACT_LOG
    levels: dict[int, dict[str, Any]] = {}
    if not log.is_file():
        return levels
    for line in log.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line) if line.strip() else {}
        if entry.get("dataset_id") == dataset_id and entry.get("release_number") and entry.get("levels"):
            levels[int(entry["release_number"])] = dict(entry["levels"])
    return levels


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def _office_decision(private_root: Path, policy: Policy, extract_csv: Path) -> dict[str, Any] | None:
    """The office's written decision to publish this exact staged extract despite the difference, if any."""
    path = private_root / "decisions" / f"{policy.name}_differencing.json"
    if not path.is_file() or not extract_csv.is_file():
        return None
    decision = json.loads(path.read_text(encoding="utf-8"))
    if decision.get("approve_extract_sha256") != file_sha256(extract_csv):
        return None
    return {"file": str(path), "decided_by": decision.get("decided_by"), "reason": decision.get("reason")}


def office_decision_for_counts(private_root: Path, policy: Policy, counts_csv: Path) -> dict[str, Any] | None:
    """The office's written decision to publish this exact staged count table although, with an earlier
    release, it shows a small change (``private/decisions/<policy>_counts.json``, the same form as the extract's:
    ``approve_counts_sha256`` is one sha256 or a list, one per table). Only that hold can be decided away: a
    table that fails its own audit is never published."""
    path = private_root / "decisions" / f"{policy.name}_counts.json"
    if not path.is_file():
        return None
    decision = json.loads(path.read_text(encoding="utf-8"))
    approved = decision.get("approve_counts_sha256")
    approved = approved if isinstance(approved, list) else [approved]
    if file_sha256(counts_csv) not in approved or not decision.get("reason"):
        return None
    return {"file": str(path), "decided_by": decision.get("decided_by"), "reason": decision.get("reason")}


def _generalisation_changed(number: int, cities: list[str]) -> Reason:
    names = ", ".join(cities)
    return Reason(
        "history.generalisation_changed",
        f"規則 history.generalisation_changed: 第{number}版と一般化の水準が異なり（{names}）、差分から個人が"
        "特定されないことを確認できません。公開を保留し、前の版を最新のままにします。事務局が判断してください。",
        f"rule history.generalisation_changed: the generalisation differs from release {number} ({names}), so "
        "differencing the two cannot be ruled out. The release is held and the previous one stays latest; the "
        "office decides.",
    )


def _isolates(unsafe: dict[int, int], smallest: int | None, policy: Policy) -> Reason:
    which = ", ".join(f"第{number}版: {count}" for number, count in unsafe.items())
    which_en = ", ".join(f"release {number}: {count}" for number, count in unsafe.items())
    model = f"k={policy.model.k}" + (f", l={policy.model.l}" if policy.model.l else "")
    return Reason(
        "history.differencing",
        f"規則 history.differencing: 以前の版との差分で、追加・削除・変更されたレコードが {model} を満たさない"
        f"グループになる同値クラスがあります（{which}。最小 {smallest} 件）。差分から個人が特定され得るため、"
        "公開を保留し、前の版を最新のままにします。変更が積み重なるのを待つか、事務局が判断してください"
        "（private/decisions/）。",
        f"rule history.differencing: compared with earlier releases, records added, removed or changed form "
        f"groups that do not meet {model} in some classes ({which_en}; smallest group {smallest}). The "
        "difference could single someone out, so the release is held and the previous one stays latest. Wait "
        "for more changes to accumulate, or the office decides (private/decisions/).",
    )
