"""Figures of the demo count table (as `make run` stages it for 狛江市): cells, hidden, primary, secondary, the
audit under three attackers, the exact smallest primary interval under attacker a, and CPU / wall seconds.

    .venv/bin/python bench/count_suppression.py
    .venv/bin/python bench/count_suppression.py --large   # a 4-way table of ~16k cells (町字 × band × sex × 要介護度)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import polars as pl

from anonymise.aggregate import PRIMARY, SECONDARY, SuppressedTable, publication_table, released_tables
from anonymise.personal import DEMO_CANARIES
from anonymise.policy import load_policy
from anonymise.process import anonymise_records, prepare_records
from anonymise.protection import protection_spec
from anonymise.synthetic import generate_care_records
from anonymise.verify_counts import AuditSettings, attack_intervals, verify_count_table

KOMAE, ROWS = "132195", 5_000


def timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, round(time.perf_counter() - wall, 2), round(time.process_time() - cpu, 2)


def large_table(rows: int) -> tuple[SuppressedTable, float, float]:
    """町字 × 5-year band × sex × 要介護度 of `rows` synthetic records of 焼津市 (with all margins)."""
    policy = load_policy("care_certification")
    prepared = prepare_records(generate_care_records("222127", rows, seed=7), policy)
    age = prepared.hierarchies["年齢"].generalise(prepared.table["年齢"], 1)
    frame = prepared.table.select("町字", "性別", "要介護度").with_columns(age.alias("年齢"))
    dims = ["町字", "年齢", "性別", "要介護度"]
    categories = {"年齢": prepared.hierarchies["年齢"].level_labels(1)}
    frame = frame.with_columns(pl.col(dim).cast(pl.String) for dim in dims)
    return timed(publication_table, frame, dims, policy.min_cell, categories, protection_spec(policy))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", type=int, nargs="?", const=20_000, help="records of the 4-way table")
    options = parser.parse_args()
    policy = load_policy("care_certification")
    if options.large:
        table, suppress_wall, suppress_cpu = large_table(options.large)
    else:
        records = generate_care_records(KOMAE, ROWS, seed=int(KOMAE), canaries=[dict(c) for c in DEMO_CANARIES])
        outcome = anonymise_records(records, policy)
        tables, suppress_wall, suppress_cpu = timed(released_tables, outcome)
        [table] = tables.values()
    spec = protection_spec(policy)
    settings = AuditSettings(spec.min_cell, spec.upper, spec.lower)
    frame, truth = table.to_frame(), table.truth_frame()
    result, audit_wall, audit_cpu = timed(verify_count_table, frame, list(table.dims), settings, truth)
    primary = table.status == PRIMARY
    interior = tuple(slice(0, -1) for _ in table.dims)
    exact = attack_intervals(frame, list(table.dims), "a", spec.min_cell, truth)
    true_hidden = table.counts.ravel()[table.status.ravel() != 0]
    widths = (exact["high"] - exact["low"]).to_numpy()[(true_hidden >= 1) & (true_hidden < spec.min_cell)]
    figures = {
        "cells": int(table.counts.size),
        "hidden": int((table.status != 0).sum()),
        "primary": int(primary.sum()),
        "secondary": int((table.status == SECONDARY).sum()),
        "hidden_zero": table.protection.get("hidden_zero"),
        "people_in_hidden_interior_cells": int(table.counts[interior][table.status[interior] != 0].sum()),
        "suppression": {**table.protection, "wall_s": suppress_wall, "cpu_s": suppress_cpu},
        "audit": {key: result.figures[key] for key in ("pinned", "below_protection", "pinned_by_labels_alone")}
        | {"reasons": [reason.code for reason in result.reasons]}
        | {"passed": result.passed, "wall_s": audit_wall, "cpu_s": audit_cpu},
        "attacker_a_exact_min_primary_interval_width": float(np.min(widths)),
    }
    print(json.dumps(figures, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
