"""Figures of the demo count table (as `make run` stages it for 狛江市): cells, hidden, primary, secondary, the
audit under three attackers, the exact smallest primary interval under attacker a, and CPU / wall seconds.

    .venv/bin/python bench/count_suppression.py
"""

from __future__ import annotations

import json
import time

import numpy as np

from anonymise.aggregate import PRIMARY, SECONDARY, released_tables
from anonymise.personal import DEMO_CANARIES
from anonymise.policy import load_policy
from anonymise.process import anonymise_records
from anonymise.protection import protection_spec
from anonymise.synthetic import generate_care_records
from anonymise.verify_counts import AuditSettings, attack_intervals, verify_count_table

KOMAE, ROWS = "132195", 5_000


def timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, round(time.perf_counter() - wall, 2), round(time.process_time() - cpu, 2)


def main() -> None:
    policy = load_policy("care_certification")
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
        "people_in_hidden_interior_cells": int(table.counts[interior][table.status[interior] != 0].sum()),
        "suppression": {**table.protection, "wall_s": suppress_wall, "cpu_s": suppress_cpu},
        "audit": {key: result.figures[key] for key in ("pinned", "below_protection", "pinned_by_labels_alone")}
        | {"passed": result.passed, "wall_s": audit_wall, "cpu_s": audit_cpu},
        "attacker_a_exact_min_primary_interval_width": float(np.min(widths)),
    }
    print(json.dumps(figures, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
