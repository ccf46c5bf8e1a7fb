"""Value normalisers: single-value rules on real-shaped values, and whole columns on the real sample files."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import io
import random
from collections.abc import Callable
from pathlib import Path

import jaconv
import polars as pl
import pytest
from openpyxl.utils.datetime import from_excel

from intake import values as V
from intake.values import (
    normalise_code_text,
    normalise_column,
    normalise_date,
    normalise_email,
    normalise_flag,
    normalise_integer,
    normalise_kana,
    normalise_number,
    normalise_phone,
    normalise_postal_code,
    normalise_time,
    normalise_url,
    to_fullwidth_kana,
    to_halfwidth_ascii,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"   # shared/ beside the clone (CI)
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/samples")
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared samples not available")
ALL_TYPES = ["string", "integer", "number", "date", "time", "url", "phone", "code", "postal_code", "flag",
             "kana", "email"]
Result = tuple[str | None, str | None]


def read_sample(name: str) -> pl.DataFrame:
    """A sample CSV as all-text columns (UTF-8 with or without BOM, else CP932; '#' preamble skipped)."""
    raw = (SAMPLES / name).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp932")
    rows = [row for row in csv.reader(io.StringIO(text)) if row and not row[0].startswith("#")]
    header, body = rows[0], [row for row in rows[1:] if any(cell.strip() for cell in row)]
    return pl.DataFrame([[row[i] if i < len(row) else None for row in body] for i in range(len(header))],
                        schema=[f"{i}:{name}" for i, name in enumerate(header)], orient="col")


def column(frame: pl.DataFrame, name: str) -> pl.Series:
    matches = [c for c in frame.columns if c.split(":", 1)[1] == name]
    assert len(matches) == 1, (name, frame.columns)
    return frame.get_column(matches[0]).alias(name)


# --- single values -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2023-03-31", ("2023-03-31", None)),
        (" 2023-03-31\u3000", ("2023-03-31", "whitespace-stripped")),
        ("2021/12/1", ("2021-12-01", "date-separators")),
        ("1947/4/1", ("1947-04-01", "date-separators")),
        ("2021.12.1", ("2021-12-01", "date-separators")),
        ("2021-1-5", ("2021-01-05", "date-separators")),
        ("2021年12月1日", ("2021-12-01", "kanji-date")),
        ("２０２１年１２月１日", ("2021-12-01", "kanji-date")),
        ("２０２３－０３－３１", ("2023-03-31", "fullwidth-digits")),
        ("令和4年2月28日", ("2022-02-28", "wareki-date")),
        ("令和４年２月２８日", ("2022-02-28", "wareki-date")),
        ("令和元年5月1日", ("2019-05-01", "wareki-date")),
        ("平成14年9月20日", ("2002-09-20", "wareki-date")),
        ("R02.07.21", ("2020-07-21", "wareki-date")),
        ("H14.9.20", ("2002-09-20", "wareki-date")),
        ("S47.4.1", ("1972-04-01", "wareki-date")),
        ("S63.7.5", ("1988-07-05", "wareki-date")),
        ("H 7.10.17", ("1995-10-17", "wareki-date")),
        ("h7/10/17", ("1995-10-17", "wareki-date")),
        ("平7.10.17", ("1995-10-17", "wareki-date")),
        ("昭和64年1月7日", ("1989-01-07", "wareki-date")),
        ("大正元年8月1日", ("1912-08-01", "wareki-date")),
        ("T15.12.24", ("1926-12-24", "wareki-date")),
        ("明治45年7月29日", ("1912-07-29", "wareki-date")),
        ("M45.7.29", ("1912-07-29", "wareki-date")),
        ("㍻14年9月20日", ("2002-09-20", "wareki-date")),
        ("平成31年5月1日", ("2019-05-01", "wareki-out-of-era")),   # real offices keep writing 平成
        ("平成元年1月7日", ("1989-01-07", "wareki-out-of-era")),   # before 平成 began (1989-01-08)
        ("45016", ("2023-03-31", "excel-serial-date")),            # ichikawa 104
        ("22196", ("1960-10-07", "excel-serial-date")),            # ichikawa 102
        ("45016.0", ("2023-03-31", "excel-serial-date")),
        ("20230331", ("2023-03-31", "compact-date")),
        ("7/13/2020", ("2020-07-13", "us-date")),
        ("2023/03/31 0:00:00", ("2023-03-31", "datetime-to-date")),
        ("2023-03-31 00:00:00.000000", ("2023-03-31", "datetime-to-date")),
        ("2023-03-31(金)", ("2023-03-31", "weekday-removed")),
        ("令和5年3月31日（金）", ("2023-03-31", "wareki-date")),
    ],
)
def test_normalise_date(raw: str, expected: Result) -> None:
    assert normalise_date(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["2023-02-30", "平成31年2月29日", "7/1/2020", "1/7/2020", "13/7/2020", "2021", "令和4年2月",
     "令和0年1月1日", "60", "80001", "2023-03-31 09:00", "2023-03-31(月)", "未定", "H14.9", "2021/12-1",
     "２０２１"],
)
def test_normalise_date_rejects_what_cannot_be_read_without_guessing(raw: str) -> None:
    assert normalise_date(raw) == (None, None)


@pytest.mark.parametrize("blank", ["", "   ", "\u3000", None])
def test_blank_is_none_for_every_helper(blank: str | None) -> None:
    helpers: list[Callable[[str], Result]] = [
        normalise_date, normalise_time, normalise_phone, normalise_postal_code, normalise_flag,
        normalise_number, normalise_integer, normalise_url, normalise_email, normalise_kana,
        normalise_code_text]
    for helper in helpers:
        assert helper(blank) == (None, None)  # type: ignore[arg-type]


def test_excel_serial_dates_agree_with_openpyxl() -> None:
    rng = random.Random(7)
    serials = [61, 100, 1867, 2101, 22196, 45016, 80000] + [rng.randrange(2101, 80001) for _ in range(300)]
    for serial in serials:
        assert normalise_date(str(serial)) == (from_excel(serial).date().isoformat(), "excel-serial-date")


def test_iso_dates_are_recognised_exactly_as_the_calendar_has_them() -> None:
    """The vectorised ISO test and Python's calendar agree on every day number of 200 years and more."""
    years = [1, 99, 400, 1600, 1700, 1800, 1900, 9999, *range(1896, 2105)]
    cells = [f"{y:04d}-{m:02d}-{d:02d}" for y in years for m in range(0, 14) for d in range(0, 33)]
    cells += ["0000-01-01", "0000-02-29", "2023-3-01", "+2023-3-01", "2023-03-1 ", "20230-3-01"]
    result = normalise_column(pl.Series(cells), "date")
    for text, value, invalid in zip(cells, result.values, result.invalid, strict=True):
        try:
            real = dt.date.fromisoformat(text.strip()).isoformat() == text.strip()
        except ValueError:
            real = False
        if real:
            assert value == text.strip() and not invalid, text
        else:   # never kept as if it were a real day: either unreadable or rewritten (2023-3-01)
            assert invalid or value != text, text


def test_four_digit_years_are_not_read_as_serials() -> None:
    assert [normalise_date(str(year))[0] for year in (1868, 1900, 1989, 2021, 2100)] == [None] * 5


# The eras' first days as published (元号法 / 改元の政令); 明治 from 慶応4年1月1日 = 1868-01-25.
ERA_STARTS = {"明治": dt.date(1868, 1, 25), "大正": dt.date(1912, 7, 30), "昭和": dt.date(1926, 12, 25),
              "平成": dt.date(1989, 1, 8), "令和": dt.date(2019, 5, 1)}


def _wareki_forms(day: dt.date) -> list[str]:
    era, start = max(((name, s) for name, s in ERA_STARTS.items() if s <= day), key=lambda item: item[1])
    year = day.year - start.year + 1
    letter = {"明治": "M", "大正": "T", "昭和": "S", "平成": "H", "令和": "R"}[era]
    year_kanji = "元" if year == 1 else str(year)
    wide = str.maketrans("0123456789", "０１２３４５６７８９")
    return [f"{era}{year_kanji}年{day.month}月{day.day}日",
            f"{era}{year}年{day.month}月{day.day}日".translate(wide),
            f"{letter}{year:02d}.{day.month:02d}.{day.day:02d}",
            f"{letter}{year}.{day.month}.{day.day}",
            f"{era[0]}{year}/{day.month}/{day.day}"]


def test_wareki_round_trip_for_random_days_of_every_era() -> None:
    rng = random.Random(11)
    days = [start for start in ERA_STARTS.values()] + [dt.date(1873, 1, 1) + dt.timedelta(days=rng.randrange(
        (dt.date(2040, 1, 1) - dt.date(1873, 1, 1)).days)) for _ in range(400)]
    for day in days:
        for text in _wareki_forms(day):
            assert normalise_date(text) == (day.isoformat(), "wareki-date"), text


def test_gregorian_forms_round_trip_for_random_days() -> None:
    rng = random.Random(5)
    for _ in range(300):
        day = dt.date(1900, 1, 1) + dt.timedelta(days=rng.randrange(80000))
        assert normalise_date(day.isoformat()) == (day.isoformat(), None)
        assert normalise_date(f"{day.year}/{day.month}/{day.day}") == (day.isoformat(), "date-separators")
        assert normalise_date(f"{day.year}年{day.month}月{day.day}日") == (day.isoformat(), "kanji-date")
        us = normalise_date(f"{day.month}/{day.day}/{day.year}")
        assert us == ((day.isoformat(), "us-date") if day.day > 12 else (None, None))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("08:30", ("08:30", None)),
        ("8:30", ("08:30", "time-padded")),                 # komae
        ("22：00", ("22:00", "fullwidth-digits")),           # takamatsu
        ("8時30分", ("08:30", "kanji-time")),
        ("9時", ("09:00", "kanji-time")),
        ("午後5時半", ("17:30", "kanji-time")),
        ("午前0時", ("00:00", "kanji-time")),
        ("5:30 PM", ("17:30", "ampm-time")),
        ("午後1:15", ("13:15", "ampm-time")),
        ("08:30:00", ("08:30", "time-seconds-dropped")),
        ("17:45:30", ("17:45", "time-seconds-dropped")),
        ("24:00", ("24:00", None)),
        ("24:00:00", ("24:00", "time-seconds-dropped")),
        ("00:00", ("00:00", None)),
        ("0.375", ("09:00", "excel-serial-time")),
        ("0.5", ("12:00", "excel-serial-time")),
        ("0.7291666666666666", ("17:30", "excel-serial-time")),
        ("0830", ("08:30", "compact-time")),
    ],
)
def test_normalise_time(raw: str, expected: Result) -> None:
    assert normalise_time(raw) == expected


@pytest.mark.parametrize(
    "raw", ["9：00～17：00", "24:30", "25:00", "8:60", "午後13時", "1.5", "1", "随時", "830"])
def test_normalise_time_rejects(raw: str) -> None:
    assert normalise_time(raw) == (None, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("03-3430-1111", ("03-3430-1111", None)),            # komae
        ("(047)712-8569", ("(047)712-8569", None)),          # ichikawa, kept as written
        ("（054）627－5225", ("(054)627-5225", "fullwidth-digits")),   # yaizu
        ("087-888-1126  ", ("087-888-1126", "whitespace-stripped")),   # takamatsu
        ("０３ー３４３０ー１１１１", ("03-3430-1111", "fullwidth-digits")),
        ("０３-３４３０-１１１１", ("03-3430-1111", "fullwidth-digits")),
        ("047(325)4758", ("047(325)4758", None)),
        ("0120-123-456", ("0120-123-456", None)),
        ("090-1234-5678", ("090-1234-5678", None)),
        ("0334301111", ("0334301111", None)),
        ("+81-3-3430-1111", ("03-3430-1111", "phone-international")),
        ("+81 3 3430 1111", ("03-3430-1111", "phone-international")),
        ("03 3430 1111", ("03-3430-1111", "phone-spaces")),
        ("(047) 325-4758", ("(047)325-4758", "phone-spaces")),
        ("TEL:03-3430-1111", ("03-3430-1111", "phone-label-removed")),
        ("℡03-3430-1111", ("03-3430-1111", "phone-label-removed")),
        # every kind of Japanese number, by prefix and digit count
        ("0570-003590", ("0570-003590", None)),                      # ナビダイヤル, written 4-6
        ("0120123456", ("0120123456", None)),
        ("0800-123-4567", ("0800-123-4567", None)),                  # free dial, 11 digits
        ("050-1234-5678", ("050-1234-5678", None)),                  # IP phone
        ("070-1234-5678", ("070-1234-5678", None)),
        ("080 1234 5678", ("080-1234-5678", "phone-spaces")),
        ("020-1234-5678", ("020-1234-5678", None)),
        ("01267-2-1234", ("01267-2-1234", None)),                    # 5-digit 市外局番
        ("０１２０－１２３－４５６", ("0120-123-456", "fullwidth-digits")),
        # extensions and notes
        ("03-1234-5678 内線123", ("03-1234-5678 内線123", None)),
        ("03-1234-5678（内）123", ("03-1234-5678 内線123", "phone-extension")),
        ("03-1234-5678 ext.45", ("03-1234-5678 内線45", "phone-extension")),
        ("03-3430-1111（内線2442）", ("03-3430-1111 内線2442", "phone-extension")),
        ("0973-22-8317（こども未来課）", ("0973-22-8317", "phone-note-removed")),
        ("公園緑地課　(047)712-6367", ("(047)712-6367", "phone-note-removed")),
        ("+81 (0)3 3430 1111", ("03-3430-1111", "phone-international")),
    ],
)
def test_normalise_phone(raw: str, expected: Result) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["なし", "554-4111", "047-123-4567・047-123-4568", "3430-1111", "03-3430-11111", "2442・2421", "110",
     "03--3430-1111", "+1-212-555-0100", "03-3430-1111 内線2442・2421", "0800-123-456", "080-123-4567"],
)
def test_normalise_phone_rejects(raw: str) -> None:
    assert normalise_phone(raw) == (None, None)


def test_dash_placeholders_become_empty_in_typed_columns_only() -> None:
    raw = pl.Series("x", ["-", "－", "―", "ー", "--", "03-3430-1111", "なし", None, ""])
    phone = normalise_column(raw, "phone")
    assert phone.values.to_list() == [None, None, None, None, None, "03-3430-1111", "なし", None, None]
    assert phone.invalid.to_list() == [False] * 6 + [True, False, False]     # なし: a warning in validation
    assert phone.rule_counts == {"placeholder-emptied": 5}
    assert normalise_column(raw, "integer").values.to_list()[:5] == [None] * 5
    assert normalise_column(raw, "string").values.to_list()[:5] == ["-", "－", "―", "ー", "--"]   # text: a value
    assert normalise_column(raw, "flag").values.to_list()[:2] == ["", ""]    # a flag's "no" stays the empty text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2728501", ("2728501", None)),
        ("272-8501", ("2728501", "postal-hyphen-removed")),   # ichikawa 107
        ("〒272-8501", ("2728501", "postal-mark-removed")),
        ("〒 272-8501", ("2728501", "postal-mark-removed")),
        ("２７２－８５０１", ("2728501", "postal-hyphen-removed")),
        ("２７２８５０１", ("2728501", "fullwidth-digits")),
        ("272ー8501", ("2728501", "postal-hyphen-removed")),
        ("608501", ("0608501", "postal-leading-zero-restored")),
        ("2728501.0", ("2728501", "numeric-text")),
    ],
)
def test_normalise_postal_code(raw: str, expected: Result) -> None:
    assert normalise_postal_code(raw) == expected


@pytest.mark.parametrize("raw", ["272-850", "27-28501", "千葉県市川市", "272-8501 千葉県", "12345678"])
def test_normalise_postal_code_rejects(raw: str) -> None:
    assert normalise_postal_code(raw) == (None, None)


@pytest.mark.parametrize(
    "raw", ["○", "〇", "◯", "有", "あり", "TRUE", "true", "True", "はい", "可", "１", "1.0"])
def test_flag_yes_is_one(raw: str) -> None:
    value, rule = normalise_flag(raw)
    assert value == "1" and rule in ("flag-yes", "fullwidth-digits")


@pytest.mark.parametrize("raw", ["0", "×", "無", "なし", "FALSE", "false", "いいえ", "不可", "ー"])
def test_flag_no_is_the_empty_string(raw: str) -> None:
    assert normalise_flag(raw) == ("", "flag-no")


@pytest.mark.parametrize("raw", ["△", "要予約", "2"])
def test_flag_unknown_text_is_unreadable(raw: str) -> None:
    assert normalise_flag(raw) == (None, None)


def test_flag_canonical_one_is_untouched() -> None:
    assert normalise_flag("1") == ("1", None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("50,700 ", ("50700", "thousands-separator")),   # 松山市 想定収容人数
        ("1,234,567.5", ("1234567.5", "thousands-separator")),
        ("１２.５", ("12.5", "fullwidth-digits")),
        ("▲3", ("-3", "negative-mark")),
        ("△3", ("-3", "negative-mark")),
        ("▲1,200", ("-1200", "negative-mark")),
        ("−3", ("-3", "fullwidth-digits")),
        ("+5", ("5", "plus-sign-removed")),
        (".5", ("0.5", "decimal-point")),
        ("12", ("12", None)),
        ("-0.25", ("-0.25", None)),
    ],
)
def test_normalise_number(raw: str, expected: Result) -> None:
    assert normalise_number(raw) == expected


@pytest.mark.parametrize("raw", ["1,23", "50人", "約50", "-", "1.2.3", "12,34.5", "1e3"])
def test_normalise_number_rejects(raw: str) -> None:
    assert normalise_number(raw) == (None, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12", ("12", None)), ("12.0", ("12", "integer-decimal-zero")),
     ("１,２００", ("1200", "thousands-separator")), ("12.5", (None, None)), ("△2", ("-2", "negative-mark"))],
)
def test_normalise_integer(raw: str, expected: Result) -> None:
    assert normalise_integer(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.city.komae.tokyo.jp/index.cfm/42,73691,328,2043,html",
         ("https://www.city.komae.tokyo.jp/index.cfm/42,73691,328,2043,html", None)),
        ("ｈｔｔｐｓ：／／ｗｗｗ．ｃｉｔｙ．ｊｐ／", ("https://www.city.jp/", "fullwidth-ascii")),
        ("HTTP://example.jp/", ("http://example.jp/", "url-scheme-lowercased")),
        ("www.city.ichikawa.lg.jp", (None, None)),
        ("ATTACH\\a7a2.jpg", (None, None)),     # ichikawa's relative image paths
        ("https://example.jp/a b", (None, None)),
    ],
)
def test_normalise_url(raw: str, expected: Result) -> None:
    assert normalise_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("info@city.komae.lg.jp", ("info@city.komae.lg.jp", None)),
     ("ｉｎｆｏ＠ｃｉｔｙ．ｊｐ", ("info@city.jp", "fullwidth-ascii")),
     ("mailto:info@city.jp", ("info@city.jp", "mailto-removed")),
     ("info(at)city.jp", (None, None)), ("a@b", (None, None)), ("a b@c.jp", (None, None))],
)
def test_normalise_email(raw: str, expected: Result) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ｺﾏｴｼﾔｸｼｮ", ("コマエシヤクショ", "halfwidth-kana")),          # komae
     ("ｺﾏｴｼﾘﾂﾀﾞｲｺﾞｼｮｳｶﾞｯｺｳ", ("コマエシリツダイゴショウガッコウ", "halfwidth-kana")),
     ("ｷｮｳｼﾝﾉﾎｲｸｴﾝﾎｯﾊﾟﾆｲﾊﾏ", ("キョウシンノホイクエンホッパニイハマ", "halfwidth-kana")),   # ichikawa 105
     ("ダイ１チョウシャ", ("ダイ1チョウシャ", "fullwidth-digits")),   # ichikawa 107
     ("ｳﾞｨｰﾅｽ", ("ヴィーナス", "halfwidth-kana")),
     ("こまえし", ("コマエシ", "hiragana-to-katakana")),
     ("コマエシヤクショ", ("コマエシヤクショ", None)),
     ("狛江市役所", (None, None))],
)
def test_normalise_kana(raw: str, expected: Result) -> None:
    assert normalise_kana(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("122033.0", ("122033", "numeric-text")), ("ＡＢ１２", ("AB12", "fullwidth-digits")),
     ("0008-001", ("0008-001", None)), ("E3820100602201", ("E3820100602201", None))],
)
def test_normalise_code_text(raw: str, expected: Result) -> None:
    assert normalise_code_text(raw) == expected


def test_width_helpers() -> None:
    assert to_halfwidth_ascii("ＡＢＣ１２３（）－＠　ｱｲｳ") == "ABC123()-@ ｱｲｳ"
    assert to_fullwidth_kana("ｺﾏｴｼﾔｸｼｮ ｶﾞﾊﾟ abc 12") == "コマエシヤクショ ガパ abc 12"
    assert to_fullwidth_kana("ｳﾞ") == "ヴ"


# --- whole columns -----------------------------------------------------------------------------------

def _check_column_invariants(
    raw: pl.Series, col_type: str, result: V.ColumnResult, column_name: str = ""
) -> None:
    """What must hold for any input: shapes, blanks, counts, and agreement with the single-value helper."""
    n = raw.len()
    assert result.values.dtype == pl.String and result.values.len() == n
    assert result.changed.dtype == pl.Boolean and result.invalid.dtype == pl.Boolean
    assert result.changed.len() == result.invalid.len() == n
    assert sum(result.rule_counts.values()) == int(result.changed.sum())
    assert all(count > 0 for count in result.rule_counts.values())
    kind = V.kind_for(col_type, column_name or raw.name)
    texts = raw.cast(pl.String).to_list()
    rows = zip(texts, result.values, result.changed, result.invalid, strict=True)
    for text, value, changed, invalid in rows:
        if text is None or not text.strip():
            assert value is None and not changed and not invalid
            continue
        expected, _ = V._apply(text, kind.read, kind.width_rule)
        assert invalid == (expected is None), (col_type, text)
        assert value == (text.strip() if expected is None else expected), (col_type, text)
        assert changed == (value != text)


@functools.cache
def _pool_of_sample_values() -> pl.Series:
    cells: set[str] = set()
    for path in SAMPLES.glob("*.csv"):
        frame = read_sample(path.name)
        for name in frame.columns:
            cells.update(v for v in frame.get_column(name).to_list() if v is not None)
    extra = ["", " ", "\u3000", "8:30 ", " 45016", "○", "×", "272-8501", "ｺﾏｴ ", "R02.07.21"]
    return pl.Series("pool", sorted(cells) + extra + [None])


@needs_samples
@pytest.mark.parametrize("col_type", ALL_TYPES)
def test_column_agrees_with_the_single_value_helper_on_every_real_cell(col_type: str) -> None:
    pool = _pool_of_sample_values()
    result = normalise_column(pool, col_type)
    _check_column_invariants(pool, col_type, result)


@pytest.mark.parametrize("col_type", ALL_TYPES)
def test_column_agrees_with_helpers_on_random_mixtures(col_type: str) -> None:
    rng = random.Random(col_type)
    atoms = ["2023-03-31", "2023/3/31", "令和4年2月28日", "45016", "8:30", "08:30", "22：00", "0.375",
             "(047)712-8569", "03-3430-1111", "０３－３４３０－１１１１", "０３-３４３０-１１１１",
             "なし", "272-8501", "2728501", "○",
             "1", "×", "50,700", "１２.５", "▲3", "https://x.jp", "ｈｔｔｐ：／／ｘ．ｊｐ", "a@b.jp",
             "ｺﾏｴ", "こまえ", "ダイ１", "狛江", "122033.0", "92011", "１２２０３３", "ＡＢ", "abc", "\u3000",
             " ", ""]
    cells = [rng.choice(atoms) + rng.choice(["", "", " ", "\u3000"]) for _ in range(3000)] + [None]
    raw = pl.Series("mixed", cells)
    _check_column_invariants(raw, col_type, normalise_column(raw, col_type))
    assert raw.to_list() == cells   # the caller's series is not modified


def test_local_government_code_columns_are_detected_by_name() -> None:
    raw = pl.Series(["92011", "122033.0", "１２２０３３", "122034", None])
    names = ["全国地方公共団体コード", "所在地_全国地方公共団体コード", "市区町村コード",
             "都道府県コード又は市区町村コード",
             "都道府県コ―ド又は市区町村コ―ド"]   # U+2015 typo (yaizu)
    for name in names:
        result = normalise_column(raw, "code", column_name=name)
        assert result.values.to_list() == ["092011", "122033", "122033", "122034", None]
        assert result.invalid.to_list() == [False, False, False, True, False]
        assert result.rule_counts == {"leading-zero-restored": 1, "numeric-text": 1, "fullwidth-digits": 1}
        _check_column_invariants(raw, "code", result, name)
    plain = normalise_column(raw, "code", column_name="地域コード")
    assert plain.values.to_list() == ["92011", "122033", "122033", "122034", None]
    assert not plain.invalid.any()


def test_local_government_code_name_comes_from_the_series_when_not_given() -> None:
    result = normalise_column(pl.Series("全国地方公共団体コード", ["92011"]), "code")
    assert result.values.to_list() == ["092011"]


def test_us_order_is_read_only_when_the_column_proves_it() -> None:
    proven = normalise_column(pl.Series(["7/13/2020", "7/1/2020", "12/11/2020"]), "date")
    assert proven.values.to_list() == ["2020-07-13", "2020-07-01", "2020-12-11"]
    assert proven.rule_counts == {"us-date": 1, "us-date-by-column": 2}
    alone = normalise_column(pl.Series(["7/1/2020", "2020/7/1"]), "date")
    assert alone.invalid.to_list() == [True, False]
    contradicted = normalise_column(pl.Series(["7/13/2020", "7/1/2020", "13/7/2020"]), "date")
    assert contradicted.invalid.to_list() == [False, True, True]


def test_non_text_input_is_read_as_its_text() -> None:
    ints = normalise_column(pl.Series("n", [45016, None, 22196]), "date")
    assert ints.values.to_list() == ["2023-03-31", None, "1960-10-07"]
    floats = normalise_column(pl.Series("n", [12.0, 3.0]), "integer")
    assert floats.values.to_list() == ["12", "3"] and floats.rule_counts == {"integer-decimal-zero": 2}
    nulls = normalise_column(pl.Series("n", [None, None]), "date")
    assert nulls.values.to_list() == [None, None] and not nulls.changed.any()


def test_unknown_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown column type"):
        normalise_column(pl.Series(["x"]), "datetime")


def test_python_reader_runs_once_per_distinct_messy_value(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    kind = V._KINDS["date"]

    def counting(text: str) -> Result:
        calls.append(text)
        return kind.read(text)

    monkeypatch.setitem(V._KINDS, "date", dataclasses.replace(kind, read=counting))
    messy = ["令和4年2月28日", "45016", "2021/12/1"]
    cells = ["2023-03-31"] * 50_000 + messy * 1_000 + ["２０２３－０３－３１"] * 500
    result = normalise_column(pl.Series(cells), "date")
    assert sorted(calls) == sorted(messy)   # the canonical and the width-only cells never reach Python
    assert result.rule_counts == {"wareki-date": 1000, "excel-serial-date": 1000, "date-separators": 1000,
                                  "fullwidth-digits": 500}


def test_kana_vectorised_path_equals_jaconv_for_every_half_width_character() -> None:
    halfwidth = [chr(c) for c in range(0xFF61, 0xFFA0)]
    rng = random.Random(3)
    alphabet = halfwidth + list("ﾞﾟアイウガ12１２ abcあいうゔ()・ー　")
    cells = halfwidth + [a + b for a in halfwidth for b in "ﾞﾟ"] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12))) for _ in range(2000)]
    raw = pl.Series("名称_カナ", cells)
    result = normalise_column(raw, "kana")
    expected = [jaconv.z2h(jaconv.hira2kata(jaconv.h2z(c, kana=True, ascii=False, digit=False)),
                           kana=False, ascii=False, digit=True) for c in raw.str.strip_chars().to_list()]
    assert result.values.to_list() == [e or None for e in expected]
    _check_column_invariants(raw, "kana", result)


# --- the real sample files ---------------------------------------------------------------------------

@needs_samples
def test_ichikawa_population_excel_serial_survey_date() -> None:
    raw = column(read_sample("ichikawa_122033_104_population.csv"), "調査年月日")
    result = normalise_column(raw, "date")
    assert set(result.values.to_list()) == {"2023-03-31"}
    assert result.rule_counts == {"excel-serial-date": raw.len()}
    assert not result.invalid.any()


@needs_samples
def test_ichikawa_cultural_property_designation_dates() -> None:
    raw = column(read_sample("ichikawa_122033_102_cultural_property.csv"), "文化財指定日")
    result = normalise_column(raw, "date")
    assert "1960-10-07" in result.values.to_list()                 # 22196
    filled = raw.drop_nulls().filter(raw.drop_nulls().str.strip_chars() != "")
    assert result.rule_counts == {"excel-serial-date": filled.len()}
    assert not result.invalid.any()
    assert result.values.drop_nulls().str.contains(r"^(18|19|20)\d{2}-\d{2}-\d{2}$").all()


@needs_samples
def test_komae_aed_times_phones_and_kana() -> None:
    frame = read_sample("komae_132195_aed.csv")
    start = normalise_column(column(frame, "開始時間"), "time")
    assert "08:30" in start.values.to_list() and "8:30" not in start.values.to_list()
    assert start.rule_counts.get("time-padded", 0) >= 1 and not start.invalid.any()
    phones_raw = column(frame, "電話番号")
    phones = normalise_column(phones_raw, "phone")
    invalid_phones = phones.values.filter(phones.invalid).to_list()
    assert "なし" in invalid_phones
    assert all(v == "なし" for v in invalid_phones)
    kana = normalise_column(column(frame, "名称_カナ"), "kana")
    assert "コマエシヤクショ" in kana.values.to_list()
    assert not kana.values.drop_nulls().str.contains("[\uff61-\uff9f]").any()
    assert kana.rule_counts["halfwidth-kana"] == int(kana.changed.sum())
    address_raw = column(frame, "住所")
    address = normalise_column(address_raw, "string")      # an address column: digits made half-width
    assert "狛江市和泉本町1丁目1番5号" in address.values.to_list()
    assert not address.values.drop_nulls().str.contains("[０-９－]").any()
    assert address.values.to_list() == [None if v is None else v.strip().translate(str.maketrans(
        "０１２３４５６７８９", "0123456789")) for v in address_raw.to_list()]
    with_wide_digits = address_raw.drop_nulls().str.contains("[０-９]").sum()
    assert address.rule_counts["fullwidth-digits"] == with_wide_digits > 0
    other = normalise_column(address_raw.alias("設置位置"), "string")   # not an address: as written
    assert other.values.to_list() == address_raw.str.strip_chars().to_list()
    code = normalise_column(column(frame, "都道府県コード又は市区町村コード"), "code")
    assert code.values.unique().to_list() == ["132195"]


@needs_samples
def test_ichikawa_wireless_lan_postal_codes_lose_their_hyphen() -> None:
    raw = column(read_sample("ichikawa_122033_107_public_wireless_lan.csv"), "郵便番号")
    result = normalise_column(raw, "postal_code")
    filled = int(raw.str.contains("-").sum())
    assert filled > 0 and result.rule_counts == {"postal-hyphen-removed": filled}
    assert "2728501" in result.values.to_list()
    assert result.values.drop_nulls().str.contains(r"^\d{7}$").all()


@needs_samples
def test_yaizu_evacuation_hazard_marks_become_one() -> None:
    frame = read_sample("yaizu_222127_evacuation_space.csv")
    raw = column(frame, "災害種別_津波")
    result = normalise_column(raw, "flag")
    marks = int((raw == "○").sum())
    assert marks > 0 and result.rule_counts == {"flag-yes": marks}
    assert set(result.values.drop_nulls().to_list()) == {"1"}


@needs_samples
def test_yaizu_preschool_trailing_spaces_in_phones_are_stripped() -> None:
    raw = column(read_sample("yaizu_222127_preschool.csv"), "FAX番号")
    result = normalise_column(raw, "phone")
    trailing = int((raw != raw.str.strip_chars()).sum())
    assert trailing > 0 and result.rule_counts.get("whitespace-stripped") == trailing
    assert not result.invalid.any()


@needs_samples
def test_ichikawa_phones_in_brackets_are_kept_as_written() -> None:
    raw = column(read_sample("ichikawa_122033_101_public_facility.csv"), "電話番号")
    result = normalise_column(raw, "phone")
    kept = result.values.filter(~result.invalid).drop_nulls()
    assert kept.str.starts_with("(").any() and kept.str.starts_with("0").any()   # both forms, as published
    assert kept.str.contains(r"^(?:\(0\d+\)\d+|0\d+-\d+)-\d{4}$").all()
    # only the name after one number is dropped; every other number is kept as written
    rewritten = raw.str.strip_chars().replace("", None) != result.values
    assert raw.filter(rewritten.fill_null(False)).to_list() == ["(047)712-6555（そよかぜキッズ）"]
    assert result.rule_counts.get("phone-note-removed") == 1
    unreadable = result.values.filter(result.invalid).to_list()
    assert unreadable == ["(047)337-8703/(047)337-8750"]   # two numbers: which one is meant is not guessed
