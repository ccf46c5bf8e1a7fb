"""Verification (the separate DuckDB path): it passes a good release and catches leaked canaries, k and l
violations and identifier columns; its k and l agree with pycanon."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from anonymise.policy import Policy, load_policy
from anonymise.process import anonymise_records
from anonymise.synthetic import generate_care_records
from anonymise.verify import VerificationResult, verify_policy_release, verify_release

REPO = Path(__file__).parents[1]
CANARIES = [
    {"氏名": "検証　漏洩一郎", "氏名カナ": "ケンショウ　ロウエイイチロウ", "個人番号": "123456789018"},
    {"氏名": "検証　漏洩花子", "個人番号": "548836529885"},
]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy("care_certification")


@pytest.fixture(scope="module")
def source() -> pl.DataFrame:
    return generate_care_records("122033", 8_000, seed=17, canaries=CANARIES)


@pytest.fixture(scope="module")
def release(source: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    released = anonymise_records(source, policy).release
    assert released is not None
    return released


def codes(result: VerificationResult) -> set[str]:
    return {reason.code for reason in result.reasons}


def test_a_good_release_passes(release: pl.DataFrame, source: pl.DataFrame, policy: Policy) -> None:
    result = verify_policy_release(release, source, policy, forbidden_values=[c["氏名"] for c in CANARIES])
    assert result.passed, result.reasons
    assert result.k is not None and result.k >= policy.model.k
    assert result.l_distinct["要介護度"] >= 2
    sizes = release.group_by(list(policy.qi_columns)).len()["len"].to_numpy()
    assert result.classes == len(sizes)
    assert result.risk["max"] == pytest.approx(1 / sizes.min())
    assert result.risk["average"] == pytest.approx(len(sizes) / release.height)
    assert result.risk["share_above_threshold"] == 0.0


def test_a_canary_name_in_any_cell_is_caught(release: pl.DataFrame, source: pl.DataFrame, policy: Policy) -> None:
    leaked = release.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("検証　漏洩花子")).otherwise(pl.col("町字")).alias("町字")
    )
    result = verify_policy_release(leaked, source, policy)
    assert not result.passed
    assert "identifier_value_found" in codes(result)
    assert result.leaks[0]["column"] == "氏名"
    assert "漏洩花子" not in json.dumps(result.as_dict(), ensure_ascii=False)  # the report itself does not leak it


def test_a_canary_mynumber_inside_a_longer_cell_is_caught(
    release: pl.DataFrame, source: pl.DataFrame, policy: Policy
) -> None:
    leaked = release.with_columns(pl.lit("").alias("備考")).with_columns(
        pl.when(pl.int_range(pl.len()) == 3)
        .then(pl.lit("No.123456789018 確認済"))
        .otherwise(pl.col("備考"))
        .alias("備考")
    )
    result = verify_policy_release(leaked, source, policy)
    assert "identifier_value_found" in codes(result)
    assert {leak["column"] for leak in result.leaks} == {"個人番号"}


def test_short_identifier_values_only_match_whole_cells(
    release: pl.DataFrame, source: pl.DataFrame, policy: Policy
) -> None:
    """番地 "1-12" must not be found inside a published "2021-12-30", but must be found as a whole cell."""
    banchi = source["番地"][0]
    assert verify_policy_release(release, source, policy).passed
    whole = release.with_columns(pl.lit(banchi).alias("備考"))
    assert "identifier_value_found" in codes(verify_policy_release(whole, source, policy))
    inside = release.with_columns(pl.lit(f"2020{banchi}9").alias("備考"))
    assert "identifier_value_found" not in codes(verify_policy_release(inside, source, policy))


def test_a_short_value_equal_to_a_generalised_label_is_a_coincidence_not_a_leak() -> None:
    """番地 "2023-10" (地番 2023, 号 10) equals the month label of 認定日; inside a k-anonymous QI column it
    cannot single anyone out, elsewhere it counts."""
    source = pl.DataFrame({"番地": ["2023-10", "5-3"], "個人番号": ["123456789018", "548836529885"]})
    release = pl.DataFrame({"認定日": ["2023-10"] * 5, "性別": ["女"] * 5})
    clean = verify_release(release, ["認定日", "性別"], k=5, source=source, direct_identifiers=["番地", "個人番号"])
    assert clean.passed, clean.reasons
    extra = release.with_columns(pl.col("認定日").alias("備考"))
    leaked = verify_release(extra, ["認定日", "性別"], k=5, source=source, direct_identifiers=["番地", "個人番号"])
    assert codes(leaked) == {"identifier_value_found"}
    header = release.rename({"性別": "123456789018"})
    named = verify_release(header, ["認定日"], k=5, source=source, direct_identifiers=["番地", "個人番号"])
    assert {leak["column"] for leak in named.leaks} == {"個人番号"}


def test_a_canary_in_the_published_file_is_caught(
    tmp_path: Path, release: pl.DataFrame, source: pl.DataFrame, policy: Policy
) -> None:
    published = tmp_path / "release.csv"
    release.write_csv(published)
    assert verify_policy_release(published, source, policy).passed
    with published.open("a", encoding="utf-8") as handle:
        handle.write("男,国府台1丁目,要介護1,2024-05,12000,ケンショウ　ロウエイイチロウ\n")
    result = verify_policy_release(published, source, policy)
    assert "identifier_value_found" in codes(result)
    assert result.leaks[0]["column"] == "氏名カナ"


def test_a_k_violation_is_caught(release: pl.DataFrame, source: pl.DataFrame, policy: Policy) -> None:
    # a class of two records with two different care levels: l=2 holds, k=5 does not
    pair = pl.concat([release.head(1)] * 2).with_columns(
        pl.lit("101～").alias("年齢"), pl.Series("要介護度", ["要介護1", "要介護2"])
    )
    result = verify_policy_release(pl.concat([release, pair]), source, policy)
    assert not result.passed
    assert codes(result) == {"k_violation"}
    assert result.k == 2 and result.risk["max"] == 0.5
    assert result.risk["share_above_threshold"] == pytest.approx(2 / (release.height + 2))
    assert "k=5" in result.reasons[0].ja and "k=5" in result.reasons[0].en


def test_an_l_violation_is_caught(release: pl.DataFrame, source: pl.DataFrame, policy: Policy) -> None:
    first_class = release.select(policy.qi_columns).row(0)
    in_class = pl.all_horizontal([pl.col(c) == v for c, v in zip(policy.qi_columns, first_class, strict=True)])
    uniform = release.with_columns(
        pl.when(in_class).then(pl.lit("要介護2")).otherwise(pl.col("要介護度")).alias("要介護度")
    )
    result = verify_policy_release(uniform, source, policy)
    assert codes(result) == {"l_violation"}
    assert result.l_distinct["要介護度"] == 1


def test_a_direct_identifier_column_left_in_is_caught(
    release: pl.DataFrame, source: pl.DataFrame, policy: Policy
) -> None:
    with_phone = release.with_columns(pl.lit(None, dtype=pl.String).alias("電話番号"))
    result = verify_policy_release(with_phone, source, policy)
    assert "direct_identifier_column" in codes(result)
    with_birth = release.with_columns(pl.lit("1940-01-01").alias("生年月日"))
    assert "direct_identifier_column" in codes(verify_policy_release(with_birth, source, policy))


def test_a_near_unique_column_is_caught(release: pl.DataFrame, source: pl.DataFrame, policy: Policy) -> None:
    numbered = release.with_columns(pl.int_range(pl.len()).cast(pl.String).alias("整理番号"))
    result = verify_policy_release(numbered, source, policy)
    assert codes(result) == {"near_unique_column"}
    assert "整理番号" in result.reasons[0].ja


def test_an_empty_release_does_not_pass(release: pl.DataFrame, source: pl.DataFrame, policy: Policy) -> None:
    result = verify_policy_release(release.head(0), source, policy)
    assert not result.passed and "empty_release" in codes(result)


def test_entropy_l_is_measured(release: pl.DataFrame) -> None:
    qis = ["年齢", "町字", "認定日", "性別"]
    result = verify_release(release, qis, k=5, sensitive=["要介護度"], l=50, l_variant="entropy")
    assert codes(result) == {"l_violation"}
    assert 1.0 <= result.l_entropy["要介護度"] <= result.l_distinct["要介護度"]


# -- cross-check against pycanon -----------------------------------------------------------------------------
# pycanon 1.3.6 pins exact versions (numpy 2.0.2, scipy 1.15.3, typer 0.23.2 …) that conflict with the
# project's, so it cannot be a dev dependency: the test gives it a virtual environment of its own
# (tests/.venv-pycanon, made once with the project's uv from the lock-pinned version below).
PYCANON = "pycanon==1.3.6"
PYCANON_VENV = REPO / "tests" / ".venv-pycanon"

_PYCANON_SCRIPT = """
import json, sys
import pandas as pd
from pycanon import anonymity
data = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False).reset_index(drop=True)
qis = json.loads(sys.argv[2])
print(json.dumps({"k": int(anonymity.k_anonymity(data, qis)),
                  "l": int(anonymity.l_diversity(data, qis, [sys.argv[3]]))}))
"""


def _pycanon_python() -> str | None:
    """A Python that can import pycanon: its own venv, created on first use (None if that is impossible)."""
    python = PYCANON_VENV / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import pycanon"], capture_output=True).returncode == 0:
        return str(python)
    uv = REPO / ".tools" / "bin" / "uv"
    uv_cmd = str(uv) if uv.exists() else shutil.which("uv")
    if uv_cmd is None:
        return None
    made = subprocess.run([uv_cmd, "venv", "--quiet", "--python", sys.executable, str(PYCANON_VENV)],
                          capture_output=True, timeout=300)
    if made.returncode == 0:
        made = subprocess.run([uv_cmd, "pip", "install", "--quiet", "--python", str(python), PYCANON],
                              capture_output=True, timeout=600)
    return str(python) if made.returncode == 0 else None


def test_k_and_l_agree_with_pycanon(
    tmp_path: Path, release: pl.DataFrame, source: pl.DataFrame, policy: Policy
) -> None:
    python = _pycanon_python()
    if python is None:
        pytest.skip(f"could not install {PYCANON} into {PYCANON_VENV} (no package index reachable?)")
    qis = list(policy.qi_columns)
    weakened = pl.concat([release.head(3000), release.head(1).with_columns(pl.lit("101～").alias("年齢"))])
    for table in (release.head(3000), weakened):
        path = tmp_path / "table.csv"
        table.write_csv(path)
        output = subprocess.run(
            [python, "-c", _PYCANON_SCRIPT, str(path), json.dumps(qis, ensure_ascii=False), "要介護度"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        theirs = json.loads(output.stdout.strip().splitlines()[-1])
        ours = verify_release(path, qis, k=1, sensitive=["要介護度"], l=1)
        assert (ours.k, ours.l_distinct["要介護度"]) == (theirs["k"], theirs["l"])
