"""The lattice search: optimal against brute force, pruning changes nothing, monotonicity holds, and a policy
too strong for the data fails with a reason instead of releasing."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict

import numpy as np
import polars as pl
import pytest

from anonymise.anonymiser import anonymise_table
from anonymise.hierarchy import Hierarchy, flat_hierarchy, interval_hierarchy, make_hierarchy
from anonymise.lattice import PrivacyModel, encode_table, evaluate_node, search_lattice
from anonymise.policy import load_policy
from anonymise.process import anonymise_records, prepare_records
from anonymise.quality import QualityModel
from anonymise.synthetic import CARE_LEVELS, generate_care_records

AREAS = {"北1": "北部", "北2": "北部", "北3": "北部", "南1": "南部", "南2": "南部", "東1": "東部"}


def small_table(seed: int, rows: int = 150) -> tuple[pl.DataFrame, dict[str, Hierarchy]]:
    rng = np.random.default_rng(seed)
    ages = rng.integers(70, 90, rows)
    table = pl.DataFrame(
        {
            "age": [str(age) for age in ages],
            "sex": rng.choice(["男", "女"], rows).tolist(),
            "area": rng.choice(list(AREAS), rows).tolist(),
            "level": rng.choice(CARE_LEVELS, rows, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05]).tolist(),
        }
    )
    hierarchies = {
        "age": interval_hierarchy("age", ages.tolist(), (5, 10)),
        "sex": flat_hierarchy("sex", ["男", "女"]),
        "area": make_hierarchy("area", [[leaf, parent] for leaf, parent in AREAS.items()]),
    }
    return table, hierarchies


def brute_force(
    table: pl.DataFrame, hierarchies: dict[str, Hierarchy], model: PrivacyModel, sensitive: str
) -> tuple[tuple[int, ...], float] | None:
    """Every node, with plain dictionaries: generalise, group, suppress, measure ARX Loss; keep the best."""
    qis = list(hierarchies)
    rows = table.to_dicts()
    maps, loss_of = {}, {}
    for qi, hierarchy in hierarchies.items():
        leaves = hierarchy.table.rows()
        maps[qi] = {leaf[0]: leaf for leaf in leaves}
        covered = [Counter(leaf[level] for leaf in leaves) for level in range(hierarchy.height)]
        loss_of[qi] = [
            {label: (count - 1) / (len(leaves) - 1) for label, count in covered[level].items()}
            for level in range(hierarchy.height)
        ]
    overall = Counter(row[sensitive] for row in rows)
    limit = math.floor(model.max_suppression * len(rows) + 1e-9)
    best = None
    for node in itertools.product(*(range(hierarchies[qi].height) for qi in qis)):
        classes = defaultdict(list)
        for row in rows:
            classes[tuple(maps[qi][row[qi]][level] for qi, level in zip(qis, node, strict=True))].append(row[sensitive])
        suppressed, kept_loss = 0, 0.0
        for key, values in classes.items():
            if _breaks(values, model, overall, len(rows)):
                suppressed += len(values)
            else:
                kept_loss += len(values) * sum(
                    loss_of[qi][level][label] for qi, level, label in zip(qis, node, key, strict=True)
                )
        if suppressed > limit:
            continue
        loss = (kept_loss + suppressed * len(qis)) / (len(rows) * len(qis))
        candidate = (round(loss, 12), sum(node), node)
        if best is None or candidate < best:
            best = candidate
    return None if best is None else (best[2], best[0])


def _breaks(values: list[str], model: PrivacyModel, overall: Counter, total: int) -> bool:
    if len(values) < model.k:
        return True
    counts = Counter(values)
    if model.l is not None and model.l_variant == "distinct" and len(counts) < model.l:
        return True
    if model.l is not None and model.l_variant == "entropy":
        entropy = -sum(c / len(values) * math.log(c / len(values)) for c in counts.values())
        if entropy < math.log(model.l) - 1e-12:
            return True
    if model.t is not None:
        # ordered distance over CARE_LEVELS
        cumulative, distance = 0.0, 0.0
        for level in CARE_LEVELS[:-1]:
            cumulative += counts[level] / len(values) - overall[level] / total
            distance += abs(cumulative)
        if distance / (len(CARE_LEVELS) - 1) > model.t + 1e-12:
            return True
    return False


# The brute force below measures ARX Loss averaged over the QIs (arithmetic mean).
ARITHMETIC_LOSS = QualityModel("loss", aggregate="arithmetic")
MODELS = [
    PrivacyModel(k=3, max_suppression=0.0, quality=ARITHMETIC_LOSS),
    PrivacyModel(k=4, max_suppression=0.1, quality=ARITHMETIC_LOSS),
    PrivacyModel(k=3, l=2, max_suppression=0.05, quality=ARITHMETIC_LOSS),
    PrivacyModel(k=5, l=3, max_suppression=0.2, quality=ARITHMETIC_LOSS),
    PrivacyModel(k=3, l=2, l_variant="entropy", max_suppression=0.1, quality=ARITHMETIC_LOSS),
    PrivacyModel(k=2, t=0.25, max_suppression=0.1, quality=ARITHMETIC_LOSS),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"k{m.k}-l{m.l}{m.l_variant[0]}-t{m.t}-s{m.max_suppression}")
def test_search_finds_the_brute_force_optimum(seed: int, model: PrivacyModel) -> None:
    table, hierarchies = small_table(seed)
    expected = brute_force(table, hierarchies, model, "level")
    encoded = encode_table(table, hierarchies, ["level"], {"level": CARE_LEVELS})
    found = search_lattice(encoded, model)
    if expected is None:
        assert found.best is None
        return
    assert found.best is not None
    assert found.best.levels == expected[0]
    assert found.best.score == pytest.approx(expected[1], abs=1e-9)


@pytest.mark.parametrize(
    "model",
    [
        PrivacyModel(k=5, l=2, max_suppression=0.05),
        PrivacyModel(k=10, max_suppression=0.01),
        PrivacyModel(k=5, l=3, l_variant="entropy", max_suppression=0.05),
        PrivacyModel(k=5, t=0.15, max_suppression=0.05),
    ],
    ids=["k5-l2", "k10", "k5-entropy3", "k5-t0.15"],
)
def test_pruning_gives_the_same_answer_as_evaluating_every_node(model: PrivacyModel) -> None:
    records = generate_care_records("132195", 5_000, seed=8)
    prepared = prepare_records(records, load_policy("care_certification"))
    encoded = encode_table(prepared.table, prepared.hierarchies, ["要介護度"], {"要介護度": CARE_LEVELS})
    pruned = search_lattice(encoded, model, prune=True)
    exhaustive = search_lattice(encoded, model, prune=False)
    assert len(exhaustive.evaluations) == exhaustive.lattice_size
    assert pruned.best is not None and exhaustive.best is not None
    assert pruned.best.levels == exhaustive.best.levels
    assert pruned.best.score == pytest.approx(exhaustive.best.score, abs=1e-12)
    if model.monotone:
        assert len(pruned.evaluations) < exhaustive.lattice_size


def test_suppression_needed_never_grows_when_generalising() -> None:
    """The property pruning relies on, for k-anonymity and distinct l-diversity with suppression."""
    records = generate_care_records("222127", 3_000, seed=4)
    prepared = prepare_records(records, load_policy("care_certification"))
    encoded = encode_table(prepared.table, prepared.hierarchies, ["要介護度"])
    model = PrivacyModel(k=5, l=2, max_suppression=0.05)
    nodes = list(itertools.product(*(range(h) for h in encoded.heights)))
    suppressed = {node: evaluate_node(encoded, node, model).suppressed for node in nodes}
    for node in nodes:
        for qi in range(len(node)):
            if node[qi] + 1 < encoded.heights[qi]:
                parent = (*node[:qi], node[qi] + 1, *node[qi + 1 :])
                assert suppressed[parent] <= suppressed[node]


def test_release_has_k_sized_l_diverse_classes_and_only_policy_columns() -> None:
    records = generate_care_records("122033", 10_000, seed=21)
    policy = load_policy("care_certification")
    result = anonymise_records(records, policy)
    release = result.release
    assert release is not None
    assert set(release.columns) == set(policy.released_columns)
    classes = release.group_by(list(policy.qi_columns)).agg(pl.len(), pl.col("要介護度").n_unique().alias("d"))
    assert classes["len"].to_numpy().min() >= policy.model.k
    assert classes["d"].to_numpy().min() >= (policy.model.l or 1)
    suppressed = records.height - release.height
    assert suppressed == result.outcome.metrics["records_suppressed"]
    assert suppressed <= policy.model.max_suppression * records.height
    # Generalised labels come from the chosen hierarchy level.
    for qi, level in result.outcome.levels.items():
        assert set(release[qi].unique()) <= set(result.prepared.hierarchies[qi].level_labels(level))
    assert release["年齢"].is_in(["100", "101", "102", "103", "104", "105"]).sum() == 0


def test_too_strong_a_policy_is_refused_with_a_reason() -> None:
    records = generate_care_records("132195", 40, seed=5)
    policy = load_policy("care_certification")
    strong = type(policy)(**{**policy.__dict__, "model": PrivacyModel(k=60, l=2, max_suppression=0.05)})
    result = anonymise_records(records, strong)
    assert result.release is None
    failure = result.outcome.failure
    assert failure is not None and failure.code == "model_not_achievable"
    assert "k=60" in failure.ja and "公開は行いません" in failure.ja
    assert "k=60" in failure.en and "40 of 40" in failure.en
    assert result.processing_information["released"] is False


def test_no_sensitive_attribute_with_l_is_an_error() -> None:
    table, hierarchies = small_table(1)
    with pytest.raises(ValueError, match="sensitive"):
        anonymise_table(table, hierarchies, PrivacyModel(k=2, l=2))
