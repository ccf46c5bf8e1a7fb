"""The synthetic 要介護認定 generator: reproducible, realistic in shape, valid identifiers, canaries planted."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from anonymise.identifiers import is_valid_mynumber, mynumber_check_digit, mynumbers_from_bases
from anonymise.synthetic import CARE_LEVELS, chouaza_weights, generate_care_records


@pytest.fixture(scope="module")
def yaizu() -> pl.DataFrame:
    return generate_care_records("222127", 20_000, seed=11)


def _ages(frame: pl.DataFrame) -> np.ndarray:
    reference = date(2025, 4, 1)
    born = frame["生年月日"]
    month_day = born.dt.month().cast(pl.Int32) * 100 + born.dt.day().cast(pl.Int32)
    before_birthday = month_day > (reference.month * 100 + reference.day)
    return (reference.year - born.dt.year() - before_birthday.cast(pl.Int32)).to_numpy()


def test_same_seed_same_table_other_seed_other_table() -> None:
    first = generate_care_records("132195", 500, seed=3)
    assert first.equals(generate_care_records("132195", 500, seed=3))
    assert not first.equals(generate_care_records("132195", 500, seed=4))


@pytest.mark.parametrize("number", ["123456789018", "023456789013", "548836529885", "983205673214", "465281266333"])
def test_published_valid_mynumbers_are_accepted(number: str) -> None:
    assert is_valid_mynumber(number)
    for wrong in range(10):
        if wrong != int(number[-1]):
            assert not is_valid_mynumber(number[:11] + str(wrong))


def test_vectorised_check_digits_match_the_scalar_rule() -> None:
    bases = np.random.default_rng(5).integers(0, 10**11, 2_000)
    numbers = mynumbers_from_bases(bases).to_list()
    assert all(len(number) == 12 for number in numbers)
    assert all(int(number[11]) == mynumber_check_digit(number[:11]) for number in numbers)


def test_identifiers_are_valid_and_unique(yaizu: pl.DataFrame) -> None:
    assert yaizu["個人番号"].n_unique() == yaizu.height
    assert yaizu["被保険者番号"].n_unique() == yaizu.height
    assert all(is_valid_mynumber(number) for number in yaizu["個人番号"].to_list())
    assert yaizu["被保険者番号"].str.contains(r"^\d{10}$").all()


def test_ages_are_mostly_65_plus_peaking_in_the_80s_with_some_centenarians(yaizu: pl.DataFrame) -> None:
    ages = _ages(yaizu)
    assert (ages >= 65).mean() > 0.95
    decades = np.bincount(ages // 10)
    assert int(np.argmax(decades)) == 8
    assert 0 < (ages >= 100).sum() < 0.03 * len(ages)


def test_care_level_rises_with_age(yaizu: pl.DataFrame) -> None:
    ages = _ages(yaizu)
    level = yaizu["要介護度"].replace_strict({name: index for index, name in enumerate(CARE_LEVELS)}).to_numpy()
    assert set(yaizu["要介護度"].unique()) == set(CARE_LEVELS)
    assert level[ages >= 90].mean() > level[(ages >= 65) & (ages < 75)].mean() + 0.5


def test_addresses_use_the_city_list(yaizu: pl.DataFrame) -> None:
    names, _ = chouaza_weights("222127")
    assert set(yaizu["町字"].unique()) <= set(names)
    assert (yaizu["住所"] == "静岡県焼津市" + yaizu["町字"] + yaizu["番地"]).all()
    assert yaizu["番地"].str.contains(r"^\d+-\d+$").all()


def test_each_city_differs(yaizu: pl.DataFrame) -> None:
    ichikawa = generate_care_records("122033", 20_000, seed=11)
    assert set(ichikawa["町字"].unique()).isdisjoint(set(yaizu["町字"].unique()))
    assert ichikawa["電話番号"].drop_nulls().str.starts_with("054").sum() == 0
    assert _ages(yaizu).mean() > _ages(ichikawa).mean()


def test_canaries_are_planted_once() -> None:
    canaries = [
        {"氏名": "試験　漏洩太郎", "個人番号": "123456789018"},
        {"氏名": "試験　漏洩花子", "個人番号": "548836529885", "町字": "田尻"},
    ]
    frame = generate_care_records("222127", 1_000, seed=2, canaries=canaries)
    for canary in canaries:
        rows = frame.filter(pl.col("氏名") == canary["氏名"])
        assert rows.height == 1
        assert rows.row(0, named=True)["個人番号"] == canary["個人番号"]
    assert frame.filter(pl.col("氏名") == "試験　漏洩花子")["町字"].item() == "田尻"


def test_canary_with_a_bad_check_digit_is_refused() -> None:
    with pytest.raises(ValueError, match="check digit"):
        generate_care_records("222127", 100, seed=2, canaries=[{"個人番号": "123456789019"}])


def test_unknown_city_is_refused() -> None:
    with pytest.raises(ValueError, match="町字"):
        generate_care_records("011002", 10, seed=1)
