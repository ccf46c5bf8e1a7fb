"""Synthetic 介護保険 要介護認定 lists: realistic in shape, describing no real person.

Everything is drawn column-wise with numpy from one seeded generator, so 1,000,000 rows take a few
seconds and the same (city_code, n, seed) always gives the same table.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from anonymise.identifiers import is_valid_mynumber, mynumbers_from_bases

DATA_DIR = Path(__file__).parent / "data"
LOCAL_GOVERNMENTS_CSV = Path(__file__).parents[1] / "kouiki" / "data" / "local_governments.csv"

# The date the list was extracted; ages and 認定日 are drawn relative to it.
REFERENCE_DATE = date(2025, 4, 1)

CARE_LEVELS = ("要支援1", "要支援2", "要介護1", "要介護2", "要介護3", "要介護4", "要介護5")
# 区分支給限度基準額 (2019 onwards), in yen at 10 yen a 単位.
_MONTHLY_LIMIT_YEN = np.array([50_320, 105_310, 167_650, 197_050, 270_480, 309_380, 362_170])
# Care level mix at 65 and at 95: the younger are more often 要支援, the oldest more often 要介護4–5.
_CARE_MIX_YOUNG = np.array([0.18, 0.17, 0.21, 0.16, 0.11, 0.09, 0.08])
_CARE_MIX_OLD = np.array([0.05, 0.07, 0.18, 0.18, 0.17, 0.19, 0.16])

# Age bands (lower bound, upper bound inclusive) and their share among 認定者; 40–64 are 第2号被保険者.
_AGE_BANDS = np.array([[40, 64], [65, 69], [70, 74], [75, 79], [80, 84], [85, 89], [90, 94], [95, 99], [100, 106]])
_BASE_AGE_SHARES = np.array([0.018, 0.035, 0.075, 0.125, 0.215, 0.260, 0.190, 0.072, 0.010])

COLUMNS = (
    "市区町村コード",
    "市区町村名",
    "被保険者番号",
    "個人番号",
    "氏名",
    "氏名カナ",
    "生年月日",
    "性別",
    "住所",
    "町字",
    "番地",
    "電話番号",
    "要介護度",
    "認定日",
    "月額サービス利用額",
)


@dataclass(frozen=True)
class CityProfile:
    """What differs between cities: names, phone numbering, and how old the 認定者 are."""

    code: str
    prefecture: str
    city: str
    area_phone_formats: tuple[str, ...]  # '#' is a random digit
    older_shift: float  # >0 moves weight from the 60s–70s to the 90s


_PROFILE_TUNING: dict[str, tuple[tuple[str, ...], float]] = {
    "122033": (("047-3##-####", "047-7##-####"), -0.10),
    "222127": (("054-6##-####", "054-62#-####"), 0.15),
    "132195": (("03-34##-####", "03-54##-####"), 0.0),
}


def city_profile(city_code: str) -> CityProfile:
    """The profile of a city that has a 町字 list in anonymise/data/chouaza/."""
    if city_code not in _PROFILE_TUNING:
        known = ", ".join(sorted(_PROFILE_TUNING))
        raise ValueError(f"no 町字 list for city {city_code!r} (have: {known})")
    prefecture, city = _local_government_names(city_code)
    phone_formats, shift = _PROFILE_TUNING[city_code]
    return CityProfile(city_code, prefecture, city, phone_formats, shift)


def generate_care_records(city_code: str, n: int, seed: int, canaries: list[dict] | None = None) -> pl.DataFrame:
    """A synthetic 要介護認定 list of `n` rows for one city, reproducible from `seed`.

    `canaries` are partial records (e.g. {"氏名": …, "個人番号": …}) written over seeded random
    rows, so that a leak test can look for their values in a release.
    """
    if n < 0:
        raise ValueError("n must be ≥ 0")
    profile = city_profile(city_code)
    rng = np.random.default_rng(seed)
    ages = _draw_ages(rng, n, profile.older_shift)
    female = rng.random(n) < np.clip(0.45 + 0.010 * (ages - 60), 0.40, 0.78)
    care_index = _draw_care_levels(rng, ages)
    surname, surname_kana = _draw_names(rng, "surname", np.zeros(n, dtype=bool))
    given, given_kana = _draw_given_names(rng, female)
    chouaza = _draw_chouaza(rng, city_code, n)
    banchi = _draw_banchi(rng, chouaza)
    frame = pl.DataFrame(
        {
            "市区町村コード": pl.Series([profile.code] * n, dtype=pl.String),
            "市区町村名": pl.Series([profile.city] * n, dtype=pl.String),
            "被保険者番号": _unique_digit_strings(rng, n, 10),
            "個人番号": mynumbers_from_bases(_unique_ints(rng, n, 10**11)),
            "氏名": surname + "\u3000" + given,
            "氏名カナ": surname_kana + "\u3000" + given_kana,
            "生年月日": _birth_dates(rng, ages),
            "性別": pl.Series(["男", "女"]).gather(female.astype(np.int64)),
            "町字": chouaza,
            "番地": banchi,
            "電話番号": _draw_phones(rng, n, profile.area_phone_formats),
            "要介護度": pl.Series(CARE_LEVELS).gather(care_index),
            "認定日": _certification_dates(rng, n),
            "月額サービス利用額": _monthly_amounts(rng, care_index),
        }
    )
    frame = frame.with_columns(
        住所=pl.lit(profile.prefecture + profile.city) + pl.col("町字") + pl.col("番地"),
        電話番号=pl.when(pl.Series(rng.random(n) < 0.04)).then(None).otherwise(pl.col("電話番号")),
    ).select(COLUMNS)
    if canaries:
        frame = plant_canaries(frame, canaries, seed)
    return frame


def plant_canaries(frame: pl.DataFrame, canaries: list[dict[str, Any]], seed: int) -> pl.DataFrame:
    """Overwrite seeded random rows with the given partial records (one row per canary)."""
    if len(canaries) > frame.height:
        raise ValueError("more canaries than rows")
    for canary in canaries:
        unknown = set(canary) - set(frame.columns)
        if unknown:
            raise ValueError(f"canary has unknown columns: {sorted(unknown)}")
        number = canary.get("個人番号")
        if number is not None and not is_valid_mynumber(str(number)):
            raise ValueError(f"canary 個人番号 {number!r} is not 12 digits with a valid check digit")
    rows = np.random.default_rng([seed, 0xCA7A]).choice(frame.height, size=len(canaries), replace=False)
    replaced = frame
    for name in sorted({key for canary in canaries for key in canary}):
        positions = [int(row) for row, canary in zip(rows, canaries, strict=True) if name in canary]
        values = pl.Series([canary[name] for canary in canaries if name in canary], dtype=frame.schema[name])
        replaced = replaced.with_columns(replaced[name].clone().scatter(positions, values))
    _check_unique_numbers(replaced)
    return replaced


def _check_unique_numbers(frame: pl.DataFrame) -> None:
    for name in ("個人番号", "被保険者番号"):
        if frame[name].n_unique() != frame.height:
            raise ValueError(f"a canary's {name} collides with a generated one; pick another value")


@cache
def _local_government_names(city_code: str) -> tuple[str, str]:
    with LOCAL_GOVERNMENTS_CSV.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["code"] == city_code:
                return row["prefecture"], row["city"]
    raise ValueError(f"unknown 全国地方公共団体コード {city_code!r}")


@cache
def chouaza_weights(city_code: str) -> tuple[tuple[str, ...], np.ndarray]:
    """The 町字 names of a city and their (normalised) weights."""
    table = pl.read_csv(DATA_DIR / "chouaza" / f"{city_code}.csv", schema_overrides={"高齢者数": pl.Float64})
    weights = table["高齢者数"].to_numpy()
    return tuple(table["町字"].to_list()), weights / weights.sum()


@cache
def _name_table() -> pl.DataFrame:
    return pl.read_csv(DATA_DIR / "names.csv", schema_overrides={"weight": pl.Float64})


def _draw_ages(rng: np.random.Generator, n: int, older_shift: float) -> np.ndarray:
    # Tilt the band shares towards older (shift > 0) or younger bands, then draw uniformly inside a band.
    tilt = np.exp(older_shift * np.linspace(-2.0, 2.0, len(_BASE_AGE_SHARES)))
    shares = _BASE_AGE_SHARES * tilt
    band = rng.choice(len(shares), size=n, p=shares / shares.sum())
    low, high = _AGE_BANDS[band, 0], _AGE_BANDS[band, 1]
    # Inside the 100+ band, ages fall off quickly (most are 100–101).
    within = np.where(band == len(shares) - 1, np.minimum(rng.geometric(0.55, n) - 1, high - low), -1)
    uniform = low + (rng.random(n) * (high - low + 1)).astype(np.int64)
    return np.where(within >= 0, low + within, uniform)


def _draw_care_levels(rng: np.random.Generator, ages: np.ndarray) -> np.ndarray:
    weight_old = np.clip((ages - 65) / 30.0, 0.0, 1.0)[:, None]
    mix = (1.0 - weight_old) * _CARE_MIX_YOUNG[None, :] + weight_old * _CARE_MIX_OLD[None, :]
    cumulative = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((rng.random(len(ages))[:, None] > cumulative).sum(axis=1), len(CARE_LEVELS) - 1)


def _draw_names(rng: np.random.Generator, kind: str, mask: np.ndarray) -> tuple[pl.Series, pl.Series]:
    table = _name_table().filter(pl.col("kind") == kind)
    weights = table["weight"].to_numpy()
    index = rng.choice(table.height, size=len(mask), p=weights / weights.sum())
    return table["表記"].gather(index), table["カナ"].gather(index)


def _draw_given_names(rng: np.random.Generator, female: np.ndarray) -> tuple[pl.Series, pl.Series]:
    male_name, male_kana = _draw_names(rng, "male", female)
    female_name, female_kana = _draw_names(rng, "female", female)
    chooser = pl.Series(female)
    given = pl.select(pl.when(chooser).then(female_name).otherwise(male_name)).to_series()
    kana = pl.select(pl.when(chooser).then(female_kana).otherwise(male_kana)).to_series()
    return given, kana


def _draw_chouaza(rng: np.random.Generator, city_code: str, n: int) -> pl.Series:
    names, weights = chouaza_weights(city_code)
    return pl.Series(names).gather(rng.choice(len(names), size=n, p=weights))


def _draw_banchi(rng: np.random.Generator, chouaza: pl.Series) -> pl.Series:
    # 丁目 areas use 番-号 ("12-5"); areas without 丁目 use large 地番 ("1234-5"). Always hyphenated.
    n = len(chouaza)
    has_choume = chouaza.str.ends_with("丁目").to_numpy()
    ban = np.where(has_choume, rng.integers(1, 30, n), rng.integers(1, 2500, n))
    gou = rng.integers(1, 25, n)
    return pl.Series(ban).cast(pl.String) + "-" + pl.Series(gou).cast(pl.String)


def _draw_phones(rng: np.random.Generator, n: int, area_formats: tuple[str, ...]) -> pl.Series:
    formats = [*area_formats, "090-####-####", "080-####-####"]
    shares = np.array([0.6 / len(area_formats)] * len(area_formats) + [0.25, 0.15])
    chosen = pl.Series(rng.choice(len(formats), size=n, p=shares))
    filled = [_fill_digits(rng, template, n) for template in formats]
    expression: pl.Expr = pl.lit(filled[-1])
    for index in range(len(formats) - 2, -1, -1):
        expression = pl.when(chosen == index).then(filled[index]).otherwise(expression)
    return pl.select(expression).to_series()


def _fill_digits(rng: np.random.Generator, template: str, n: int) -> pl.Series:
    """n strings shaped like `template`, each '#' run replaced by random digits."""
    parts: list[pl.Expr] = []
    for literal, hashes in re.findall(r"([^#]*)(#*)", template):
        if literal:
            parts.append(pl.lit(literal))
        if hashes:
            digits = pl.Series(rng.integers(0, 10 ** len(hashes), n)).cast(pl.String).str.zfill(len(hashes))
            parts.append(pl.lit(digits))
    return pl.select(pl.concat_str(parts)).to_series()


def _birth_dates(rng: np.random.Generator, ages: np.ndarray) -> pl.Series:
    # A birthday between (age + 1) years and age years before the reference date.
    reference = np.datetime64(REFERENCE_DATE, "D")
    days_back = (ages * 365.2425).astype(np.int64) + rng.integers(1, 365, len(ages))
    return pl.Series((reference - days_back.astype("timedelta64[D]")).astype("datetime64[D]"))


def _certification_dates(rng: np.random.Generator, n: int) -> pl.Series:
    reference = np.datetime64(REFERENCE_DATE, "D")
    return pl.Series((reference - rng.integers(1, 3 * 365, n).astype("timedelta64[D]")).astype("datetime64[D]"))


def _monthly_amounts(rng: np.random.Generator, care_index: np.ndarray) -> np.ndarray:
    # Usage as a share of the monthly limit; a few use nothing, a few exceed the limit (paid in full).
    n = len(care_index)
    share = rng.beta(2.2, 1.8, n)
    share = np.where(rng.random(n) < 0.02, 1.0 + 0.3 * rng.random(n), share)
    share = np.where(rng.random(n) < 0.03, 0.0, share)
    return (np.round(_MONTHLY_LIMIT_YEN[care_index] * share / 10) * 10).astype(np.int64)


def _unique_ints(rng: np.random.Generator, n: int, high: int) -> np.ndarray:
    """n distinct integers in [0, high), drawn by redrawing the few duplicates."""
    values = rng.integers(0, high, n, dtype=np.int64)
    while True:
        _, first = np.unique(values, return_index=True)
        duplicate = np.ones(n, dtype=bool)
        duplicate[first] = False
        if not duplicate.any():
            return values
        values[duplicate] = rng.integers(0, high, int(duplicate.sum()), dtype=np.int64)


def _unique_digit_strings(rng: np.random.Generator, n: int, width: int) -> pl.Series:
    return pl.Series(_unique_ints(rng, n, 10**width)).cast(pl.String).str.zfill(width)
