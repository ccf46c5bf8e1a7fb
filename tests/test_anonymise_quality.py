"""ARX's quality models: values on a table small enough to check by hand, the search's optimum against brute
force for every model and gs-factor, the released table meets the model, the policy fields, and (when the
bench has fetched ARX's Adult data) one of ARX's own test-suite results reproduced exactly."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anonymise.anonymiser import anonymise_table
from anonymise.hierarchy import Hierarchy, hierarchy_from_arx_csv, make_hierarchy
from anonymise.lattice import PrivacyModel, encode_table, evaluate_node, node_report, search_lattice
from anonymise.policy import PolicyError, policy_from_dict
from anonymise.quality import QualityModel

# A: four leaves a1 a2 | a3 a4 under A12 | A34, then "*" (levels 0, 1, 2). B: b1 b2 under "*" (levels 0, 1).
HIERARCHIES = {
    "A": make_hierarchy("A", [["a1", "A12"], ["a2", "A12"], ["a3", "A34"], ["a4", "A34"]]),
    "B": make_hierarchy("B", [["b1"], ["b2"]]),
}
TINY = pl.DataFrame(
    {
        "A": ["a1", "a1", "a2", "a3", "a3", "a4"],
        "B": ["b1", "b1", "b1", "b2", "b2", "b2"],
    }
)


def score(levels: tuple[int, ...], model: PrivacyModel) -> float:
    return evaluate_node(encode_table(TINY, HIERARCHIES), levels, model).score


def test_generalised_node_by_hand() -> None:
    """Node (A at level 1, B at 0), k=2: classes (A12, b1) and (A34, b2) of 3 records, nothing suppressed."""
    k2 = PrivacyModel(k=2, max_suppression=0.2)
    # Precision: A at level 1 of top level 2 → 1/2 per cell, B at 0 → 0; mean over the QIs 1/4.
    assert score((1, 0), PrivacyModel(k=2, quality=QualityModel("precision"))) == pytest.approx(0.25)
    # Loss: each A label covers 2 of 4 leaves → (2 − 1)/(4 − 1) = 1/3; B 0.
    #   arithmetic mean 1/6; geometric (ARX's default) √((1 + 1/3)(1 + 0)) − 1 = √(4/3) − 1.
    assert score((1, 0), PrivacyModel(k=2, quality=QualityModel("loss", aggregate="arithmetic"))) == pytest.approx(
        1 / 6
    )
    assert score((1, 0), k2) == pytest.approx(math.sqrt(4 / 3) - 1)
    # Non-uniform entropy, Σ a·log2(b/a): a1 2·log2(3/2), a2 1·log2(3), a3 2·log2(3/2), a4 1·log2(3);
    #   B untouched 0 → 4·log2(1.5) + 2·log2(3) = 5.5097750… bits.
    expected_entropy = 4 * math.log2(1.5) + 2 * math.log2(3)
    assert score((1, 0), PrivacyModel(k=2, quality=QualityModel("nu_entropy"))) == pytest.approx(expected_entropy)
    report = node_report(encode_table(TINY, HIERARCHIES), (1, 0), k2)
    assert report["precision"] == pytest.approx(0.25)
    assert report["loss_arithmetic_mean"] == pytest.approx(1 / 6)
    assert report["nu_entropy_bits"] == pytest.approx(expected_entropy)
    # Normalised by ARX's maximum, Σ a·log2(N/a): A 2·log2(3)·2 + 1·log2(6)·2, B 3·log2(2)·2 = 6.
    maximum = 4 * math.log2(3) + 2 * math.log2(6) + 6
    assert report["nu_entropy"] == pytest.approx(expected_entropy / maximum)


def test_suppressed_node_by_hand() -> None:
    """Node (0, 0), k=2, limit 2 records: (a2, b1) and (a4, b2) are single records and are suppressed."""
    model = PrivacyModel(k=2, max_suppression=0.34)  # floor(0.34 · 6) = 2
    evaluation = evaluate_node(encode_table(TINY, HIERARCHIES), (0, 0), model)
    assert (evaluation.suppressed, evaluation.satisfies) == (2, True)
    # Precision: 4 kept cells at level 0 cost 0, 2 suppressed cost 1 → 2/6 per QI.
    assert score((0, 0), PrivacyModel(k=2, max_suppression=0.34, quality=QualityModel("precision"))) == (
        pytest.approx(1 / 3)
    )
    # Loss, ARX's normalisation: A (4·¼ + 2 − 6/4)/(6 − 6/4) = 1/3; B (4·½ + 2 − 3)/(6 − 3) = 1/3.
    assert score((0, 0), model) == pytest.approx(1 / 3)
    # Entropy: no generalisation; the suppressed labels a2, a4 (and b1, b2) once each of S = 2 → 2·log2(2) each.
    assert score((0, 0), PrivacyModel(k=2, max_suppression=0.34, quality=QualityModel("nu_entropy"))) == (
        pytest.approx(4.0)
    )


def test_gs_factor_by_hand() -> None:
    # gs 0.25 → g = 1, s = 0.5. Precision at (0, 0): 2 suppressed · 0.5 / 6 = 1/6 per QI.
    low = QualityModel("precision", gs_factor=0.25)
    assert score((0, 0), PrivacyModel(k=2, max_suppression=0.34, quality=low)) == pytest.approx(1 / 6)
    # Loss at (0, 0), A: kept 1, suppressed shares 2·¼ = ½ → ½ + 0.5·(2 − ½) = 1.25; (2.25 − 1.5)/4.5 = 1/6;
    #   B: kept 2, suppressed 1 + 0.5·1 = 1.5; (3.5 − 3)/3 = 1/6.
    loss_low = QualityModel("loss", gs_factor=0.25, aggregate="arithmetic")
    assert score((0, 0), PrivacyModel(k=2, max_suppression=0.34, quality=loss_low)) == pytest.approx(1 / 6)
    # gs 0.75 → g = 0.5, s = 1. Precision at (1, 0): A 0.5·½ = ¼, B 0 → 1/8.
    high = QualityModel("precision", gs_factor=0.75)
    assert score((1, 0), PrivacyModel(k=2, quality=high)) == pytest.approx(1 / 8)
    # Loss at (1, 0), A: (0.5·6·½ − 0.5·6/4)/(6 − 0.75) = 0.75/5.25 = 1/7; B: (1.5 − 1.5)/… = 0.
    loss_high = QualityModel("loss", gs_factor=0.75, aggregate="arithmetic")
    assert score((1, 0), PrivacyModel(k=2, quality=loss_high)) == pytest.approx(1 / 14)


def random_hierarchy(name: str, rng: np.random.Generator, leaves: int) -> Hierarchy:
    """Leaves grouped into random blocks, the blocks into random groups, then "*": an uneven tree."""
    labels = [f"{name}{i}" for i in range(leaves)]
    cuts = sorted(rng.choice(np.arange(1, leaves), size=min(3, leaves - 1), replace=False).tolist())
    block_of = np.searchsorted(cuts, np.arange(leaves), side="right")
    group_of = block_of // 2
    rows = [[label, f"{name}-b{block_of[i]}", f"{name}-g{group_of[i]}"] for i, label in enumerate(labels)]
    return make_hierarchy(name, rows)


def random_table(seed: int, rows: int = 120) -> tuple[pl.DataFrame, dict[str, Hierarchy]]:
    rng = np.random.default_rng(seed)
    hierarchies = {"x": random_hierarchy("x", rng, 7), "y": random_hierarchy("y", rng, 5)}
    hierarchies["z"] = make_hierarchy("z", [["m"], ["f"]])
    weights = rng.dirichlet(np.ones(7))
    table = pl.DataFrame(
        {
            "x": rng.choice([f"x{i}" for i in range(7)], rows, p=weights).tolist(),
            "y": rng.choice([f"y{i}" for i in range(5)], rows).tolist(),
            "z": rng.choice(["m", "f"], rows).tolist(),
            "s": rng.choice(["s0", "s1", "s2", "s3"], rows, p=[0.55, 0.25, 0.15, 0.05]).tolist(),
        }
    )
    return table, hierarchies


def brute_force(
    table: pl.DataFrame, hierarchies: dict[str, Hierarchy], model: PrivacyModel
) -> tuple[tuple[int, ...], float] | None:
    """Every node from the definitions in quality.py, with plain dictionaries over the records' labels."""
    quality = model.quality
    g, s = quality.generalisation_factor, quality.suppression_factor
    qis = list(hierarchies)
    rows = table.to_dicts()
    n = len(rows)
    limit = math.floor(model.max_suppression * n + 1e-9)
    paths = {qi: {leaf[0]: leaf for leaf in h.table.rows()} for qi, h in hierarchies.items()}
    covered = {
        qi: [Counter(leaf[level] for leaf in h.table.rows()) for level in range(h.height)]
        for qi, h in hierarchies.items()
    }
    best = None
    for node in itertools.product(*(range(hierarchies[qi].height) for qi in qis)):
        classes = defaultdict(list)
        for row in rows:
            classes[tuple(paths[qi][row[qi]][level] for qi, level in zip(qis, node, strict=True))].append(row)
        bad = [
            key
            for key, members in classes.items()
            if len(members) < model.k or (model.l and len({m["s"] for m in members}) < model.l)
        ]
        suppressed = [row for key in bad for row in classes[key]]
        if len(suppressed) > limit:
            continue
        kept = [row for key in classes if key not in bad for row in classes[key]]
        values = []
        for qi, level in zip(qis, node, strict=True):
            h = hierarchies[qi]
            top = h.height - 1
            label = [paths[qi][row[qi]][level] for row in rows]
            if quality.name == "precision":
                values.append((len(kept) * g * level / top + len(suppressed) * s) / n)
            elif quality.name == "loss":
                share = {lab: c / h.leaves for lab, c in covered[qi][level].items()}
                total = sum(g * share[paths[qi][r[qi]][level]] for r in kept)
                total += sum(
                    share[paths[qi][r[qi]][level]] + s * (1 - share[paths[qi][r[qi]][level]]) for r in suppressed
                )
                floor = g * n / h.leaves
                values.append(max((total - floor) / (n - floor), 0.0))
            else:
                leaf_count = Counter(row[qi] for row in rows)
                label_count = Counter(label)
                pairs = zip(rows, label, strict=True)
                value = g * sum(math.log2(label_count[lab] / leaf_count[row[qi]]) for row, lab in pairs)
                out = Counter(paths[qi][r[qi]][level] for r in suppressed)
                value += s * sum(c * math.log2(len(suppressed) / c) for c in out.values())
                values.append(value)
        candidate = (quality.combine(np.array(values)), sum(node), node)
        if best is None or (round(candidate[0], 9), candidate[1], candidate[2]) < (
            round(best[0], 9),
            best[1],
            best[2],
        ):
            best = candidate
    return None if best is None else (best[2], best[0])


QUALITIES = [
    QualityModel("precision"),
    QualityModel("precision", gs_factor=0.2),
    QualityModel("loss"),
    QualityModel("loss", gs_factor=0.8, aggregate="arithmetic"),
    QualityModel("loss", gs_factor=0.1, aggregate="sum"),
    QualityModel("nu_entropy"),
    QualityModel("nu_entropy", gs_factor=0.7, aggregate="geometric"),
]


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("quality", QUALITIES, ids=lambda q: f"{q.name}-gs{q.gs_factor}-{q.aggregate}")
@pytest.mark.parametrize(("k", "l", "suppression"), [(3, None, 0.1), (4, 2, 0.08), (2, None, 0.0)])
def test_search_finds_the_brute_force_optimum_for_every_quality_model(
    seed: int, quality: QualityModel, k: int, l: int | None, suppression: float  # noqa: E741
) -> None:
    table, hierarchies = random_table(seed)
    model = PrivacyModel(k=k, l=l, max_suppression=suppression, quality=quality)
    expected = brute_force(table, hierarchies, model)
    found = search_lattice(encode_table(table, hierarchies, ["s"] if l else []), model).best
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert found.score == pytest.approx(expected[1], rel=1e-9, abs=1e-9)
    assert found.levels == expected[0]


@pytest.mark.parametrize("quality", ["precision", "loss", "nu_entropy"])
def test_released_table_meets_the_model_and_its_reported_precision(quality: str) -> None:
    table, hierarchies = random_table(11, rows=400)
    model = PrivacyModel(k=4, l=2, max_suppression=0.05, quality=QualityModel(quality))
    outcome = anonymise_table(table, hierarchies, model, sensitive=["s"])
    release = outcome.release
    assert release is not None
    classes = release.group_by(list(hierarchies)).agg(pl.len(), pl.col("s").n_unique().alias("distinct"))
    assert classes["len"].to_numpy().min() >= 4 and classes["distinct"].to_numpy().min() >= 2
    suppressed = table.height - release.height
    assert suppressed == outcome.metrics["records_suppressed"] <= math.floor(0.05 * table.height)
    # Precision recomputed from the released labels: each QI sits at one level of its hierarchy.
    per_qi = []
    for qi, hierarchy in hierarchies.items():
        level = hierarchy.level_of(release[qi].unique().to_list())
        assert level == outcome.levels[qi]
        per_qi.append((release.height * level / (hierarchy.height - 1) + suppressed) / table.height)
    assert outcome.metrics["quality"]["precision"] == pytest.approx(float(np.mean(per_qi)))
    assert outcome.metrics["quality"]["optimised"]["model"] == quality


def test_policy_selects_the_quality_and_suppression_models() -> None:
    base = {
        "name": "t",
        "direct_identifiers": [],
        "quasi_identifiers": {"x": {"hierarchy": {"kind": "flat"}}},
        "sensitive": {"s": None},
    }
    policy = policy_from_dict(
        {**base, "privacy": {"k": 5, "quality_model": "precision", "gs_factor": 0.3, "suppression": "records"}},
        Path("."),
    )
    assert policy.model.quality == QualityModel("precision", 0.3, "arithmetic")
    default = policy_from_dict({**base, "privacy": {"k": 5}}, Path("."))
    assert default.model.quality == QualityModel("loss", 0.5, "geometric")
    with pytest.raises(PolicyError, match="quality_model must be one of"):
        policy_from_dict({**base, "privacy": {"k": 5, "quality_model": "utility"}}, Path("."))
    with pytest.raises(PolicyError, match="gs_factor must be in"):
        policy_from_dict({**base, "privacy": {"k": 5, "gs_factor": 2}}, Path("."))
    with pytest.raises(PolicyError, match="suppression must be one of"):
        policy_from_dict({**base, "privacy": {"k": 5, "suppression": "cells"}}, Path("."))


ADULT = Path(__file__).resolve().parents[1] / "bench" / ".data" / "arx-adult"


@pytest.mark.skipif(not (ADULT / "adult.csv").is_file(), reason="run bench/arx_adult_data.py to fetch ARX's Adult")
def test_arx_test_suite_result_on_adult_is_reproduced() -> None:
    """TestAnonymizationKAnonymity: Adult, 9 QIs, k=5, 4 % suppression, Loss → node and 0.26611081915757495."""
    table = pl.read_csv(ADULT / "adult.csv", separator=";", infer_schema=False)
    hierarchies = {c: hierarchy_from_arx_csv(ADULT / f"adult_hierarchy_{c}.csv", c) for c in table.columns}
    best = search_lattice(encode_table(table, hierarchies), PrivacyModel(k=5, max_suppression=0.04)).best
    assert best is not None
    assert best.levels == (0, 3, 0, 1, 1, 1, 1, 2, 0)
    assert best.score == pytest.approx(0.26611081915757495, abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [6, 10])
def test_cheap_suppression_does_not_fool_the_pruning(seed: int, k: int) -> None:
    """gs 0.05: a suppressed cell costs 0.1 and a generalised one up to 1, so the best node may suppress half the
    records; its lower bound must allow for that (a bound that ignores suppression prunes the optimum away)."""
    table, hierarchies = random_table(seed)
    model = PrivacyModel(k=k, max_suppression=0.5, quality=QualityModel("precision", gs_factor=0.05))
    expected = brute_force(table, hierarchies, model)
    found = search_lattice(encode_table(table, hierarchies), model).best
    assert expected is not None and found is not None
    assert (found.levels, found.score) == (expected[0], pytest.approx(expected[1], abs=1e-9))


def test_command_line_optimises_the_chosen_model(tmp_path: Path) -> None:
    """`kouiki anonymise --quality-model precision`: the report names the model and its value is the optimum."""
    from typer.testing import CliRunner

    from commands.cli import app

    table, hierarchies = random_table(7, rows=300)
    data = tmp_path / "in.csv"
    table.write_csv(data)
    options = []
    for qi, hierarchy in hierarchies.items():
        hierarchy.to_arx_csv(tmp_path / f"{qi}.csv")
        options.append(f"--qi={qi}={tmp_path / f'{qi}.csv'}")
    report = tmp_path / "report.json"
    common = [str(data), *options, "--k", "4", "--max-suppression", "5", "--out", str(tmp_path / "out.csv")]
    run = CliRunner().invoke(app, ["anonymise", *common, "--report", str(report), "--quality-model", "precision"])
    assert run.exit_code == 0, run.output
    written = json.loads(report.read_text(encoding="utf-8"))
    assert written["model"]["quality"] == {"model": "precision", "gs_factor": 0.5, "aggregate": "arithmetic"}
    precision = PrivacyModel(k=4, max_suppression=0.05, quality=QualityModel("precision"))
    expected = brute_force(table, hierarchies, precision)
    assert expected is not None
    assert written["quality"]["optimised"]["value"] == pytest.approx(expected[1])
    wrong = CliRunner().invoke(app, ["anonymise", *common, "--report", str(report), "--quality-model", "utility"])
    assert wrong.exit_code == 2 and "quality_model must be one of" in wrong.output
