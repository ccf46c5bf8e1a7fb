"""Local government codes: check digit, repairs of real-world forms, the shipped reference list."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl
import pytest
import yaml

from kouiki import localgov
from kouiki.localgov import (
    LocalGovernment,
    all_local_governments,
    check_digit,
    is_valid_code,
    lookup,
    normalise_code,
)

REPO = Path(__file__).resolve().parents[1]
COMMON_YAML = REPO / "expectations" / "standards" / "_common.yaml"
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"   # shared/ beside the clone (CI)
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/samples")
REFERENCE_CODES = [gov.code for gov in all_local_governments()]


def test_reference_list_is_complete_and_unique() -> None:
    assert len(REFERENCE_CODES) == 1788
    assert len(set(REFERENCE_CODES)) == 1788
    assert sum(gov.is_prefecture for gov in all_local_governments()) == 47


def test_every_reference_code_has_a_correct_check_digit() -> None:
    wrong = [code for code in REFERENCE_CODES if check_digit(code[:5]) != code[5] or not is_valid_code(code)]
    assert wrong == []


def test_exactly_one_sixth_digit_is_valid_for_every_reference_code() -> None:
    for code in REFERENCE_CODES:
        valid = [d for d in "0123456789" if is_valid_code(code[:5] + d)]
        assert valid == [code[5]]


def test_verified_examples_from_the_common_rules() -> None:
    rules = yaml.safe_load(COMMON_YAML.read_text(encoding="utf-8"))
    examples = rules["local_government_code"]["check_digit"]["verified_examples"]
    assert len(examples) >= 10
    assert all(is_valid_code(code) for code in examples)


def test_local_government_code_columns_match_the_common_rules() -> None:
    rules = yaml.safe_load(COMMON_YAML.read_text(encoding="utf-8"))
    assert set(rules["local_government_code"]["columns"]) == localgov.LOCAL_GOVERNMENT_CODE_COLUMNS


def test_the_check_digit_formula_as_a_polars_expression_agrees_with_the_scalar_one() -> None:
    five = pl.Series("code5", [code[:5] for code in REFERENCE_CODES] + ["00000", "99999", "47999"])
    digits = [pl.col("code5").str.slice(i, 1).cast(pl.Int32) for i in range(5)]
    computed = pl.DataFrame([five]).select(localgov.check_digit_of(digits)).to_series().to_list()
    assert computed == [int(check_digit(code5)) for code5 in five.to_list()]


@pytest.mark.parametrize("bad", ["122034", "12203", "１２２０３３", "12203a", "1220330", "", "0", 122033])
def test_is_valid_code_rejects_anything_but_six_correct_half_width_digits(bad: object) -> None:
    assert not is_valid_code(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["1220", "12a03", "１２３", "123456"])
def test_check_digit_needs_five_half_width_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        check_digit(bad)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("122033", ("122033", None)),
        ("122033.0", ("122033", "numeric-text")),                # numeric Excel cell written as text
        ("１２２０３３", ("122033", "fullwidth-digits")),
        (" 132195\u3000", ("132195", "whitespace-stripped")),
        ("92011", ("092011", "leading-zero-restored")),           # 宇都宮市 (observed)
        ("92011.0", ("092011", "leading-zero-restored")),
        ("37201", ("372013", "check-digit-added")),               # 高松市 (observed)
        ("12203", ("122033", "check-digit-added")),               # ambiguous with 012203: JIS reading wins
        ("1100", ("011002", "check-digit-added")),                # 5-digit JIS of 札幌市 that lost its zero
        ("11011", ("011011", "leading-zero-restored")),           # 札幌市中央区: a ward, not in the list
        ("14101", ("141011", "check-digit-added")),               # 横浜市鶴見区
        ("122034", (None, None)),                                 # wrong check digit
        ("99999", (None, None)),                                  # prefecture 99 / 09 readings both fail
        ("なし", (None, None)),
        ("", (None, None)),
        ("1234567", (None, None)),
    ],
)
def test_normalise_code_examples(raw: str, expected: tuple[str | None, str | None]) -> None:
    assert normalise_code(raw) == expected


def test_five_digit_jis_code_is_completed_to_the_reference_code() -> None:
    wrong = [code for code in REFERENCE_CODES if normalise_code(code[:5]) != (code, "check-digit-added")]
    assert wrong == []


def test_lost_leading_zero_is_restored_unless_the_jis_reading_is_also_listed() -> None:
    listed = set(REFERENCE_CODES)
    restored = ambiguous = 0
    for code in (c for c in REFERENCE_CODES if c.startswith("0")):
        digits = code[1:]
        jis_reading = digits + check_digit(digits)
        value, rule = normalise_code(digits)
        if jis_reading in listed:
            assert (value, rule) == (jis_reading, "check-digit-added")
            ambiguous += 1
        else:
            assert (value, rule) == (code, "leading-zero-restored")
            restored += 1
    assert restored > 400
    assert ambiguous == 12   # e.g. 12203 = 市川市 122033 or 012203


def test_normalised_codes_are_always_valid() -> None:
    for raw in ("0", "12", "123", "1234", "12345", "123456", "54321", "47000", "48000", "00001", "99000"):
        value, rule = normalise_code(raw)
        assert (value is None and rule is None) or is_valid_code(value or "")


def test_lookup_returns_the_reference_entry_with_full_width_kana() -> None:
    ichikawa = lookup("122033")
    assert ichikawa == LocalGovernment("122033", "千葉県", "市川市", "チバケン", "イチカワシ")
    assert ichikawa.name == "千葉県市川市"
    hokkaido = lookup("010006")
    assert hokkaido is not None and hokkaido.is_prefecture and hokkaido.name == "北海道"
    assert lookup("092011") is not None and lookup("092011").city == "宇都宮市"  # type: ignore[union-attr]
    assert lookup("122034") is None
    assert lookup("92011") is None   # lookup is exact; normalise_code repairs


def test_reference_kana_match_the_shipped_csv_after_width_conversion() -> None:
    shipped = (REPO / "kouiki" / "data" / "local_governments.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(shipped)))
    assert [row["code"] for row in rows] == REFERENCE_CODES
    komae = next(row for row in rows if row["code"] == "132195")
    assert komae["city_kana"] == "ｺﾏｴｼ"
    assert lookup("132195").city_kana == "コマエシ"  # type: ignore[union-attr]
    assert not any("\uff61" <= ch <= "\uff9f" for gov in all_local_governments()
                   for ch in gov.prefecture_kana + gov.city_kana)


def test_all_local_governments_returns_a_fresh_list() -> None:
    first = all_local_governments()
    first.clear()
    assert len(all_local_governments()) == 1788
    assert localgov.lookup("011002") is not None


def _sample_code_values() -> set[str]:
    values: set[str] = set()
    for path in SAMPLES.glob("*.csv"):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("cp932")
        rows = list(csv.reader(io.StringIO(text)))
        header = rows[0]
        for index, name in enumerate(header):
            if "コ" in name and "ド" in name and ("公共団体" in name or "市区町村" in name):
                values.update(row[index] for row in rows[1:] if len(row) > index and row[index].strip())
    return values


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared samples not available")
def test_codes_in_the_real_sample_files_are_valid_and_listed() -> None:
    values = _sample_code_values()
    assert {"122033", "132195", "222127"} <= values
    for value in values:
        code, _ = normalise_code(value)
        assert code is not None and lookup(code) is not None, value
