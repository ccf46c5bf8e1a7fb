"""The problems validation reports, each with a stable code a city clerk can act on.

The codes, their words and weights are entries of the one problem catalogue (``kouiki/problems.yaml``, loaded by
:mod:`kouiki.problems`): those with ``validation`` traits become :data:`ERROR_TYPES`.

Codes follow the spirit of Frictionless (``missing-label``, ``type-error``, ``unique-error`` …) so that one
problem has one name in the reports, the API, the lake and the tests. Every entry says what went wrong
(``message_*``, templates with ``{column}``, ``{value}`` and ``{expected}``), what to do about it
(``hint_*``, in the plain tone of Validata: what to write, with an example) and its severity:

* ``error`` withholds the row (保留), only where publishing it would mislead: a duplicate ID, coordinates outside
  Japan, another municipality's row, a key column (名称, ID …) that is empty or unreadable;
* ``warning`` publishes the row and counts the problem (conformance, the city's report, the scoreboard): an empty
  必須 cell, a value in a non-standard form, a phone number that is not one. A typed cell that cannot hold the
  value is published empty (see :data:`EMPTIED_TYPES`); text keeps the value as written.

A dataset's policy can make more findings errors (``strict_columns``, ``on_warning: withhold``); see
:func:`severity_for`.

A code can be refined by a *rule* (``phone``, ``date``, ``enum``, ``latitude`` …): the rule supplies the
expected form and a sharper hint, e.g. a phone number's format-error says how to write a phone number.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from kouiki.problems import Entry, catalogue

if TYPE_CHECKING:
    from kouiki.model import Dataset

Severity = Literal["error", "warning"]
Scope = Literal["file", "row", "cell"]

# Coordinate bounds of Japan (Code for Japan OpenDataTools' rule; see standards/_common.yaml coordinates).
JAPAN_LATITUDE = (20.0, 46.0)
JAPAN_LONGITUDE = (122.0, 154.0)


@dataclass(frozen=True)
class ErrorType:
    """One kind of problem: its stable code, words for city staff in Japanese and English, its weight."""

    code: str
    title_ja: str
    title_en: str
    explanation_ja: str  # what the problem is, in one plain sentence (report headings)
    explanation_en: str
    message_ja: str      # template: {column} {value} {expected}
    message_en: str
    hint_ja: str         # what to do, in plain Japanese (may use {column} {expected})
    hint_en: str
    severity: Severity   # "error" blocks the row (or the file, for file-scope codes)
    weight: int          # report order: heavier first
    scope: Scope         # where it applies: the whole file, a row, or one cell

    @property
    def blocks_row(self) -> bool:
        return self.severity == "error"


@dataclass(frozen=True)
class RuleText:
    """What a rule expects, and how to write it: refines an ErrorType's message and hint."""

    expected_ja: str
    expected_en: str
    hint_ja: str = ""
    hint_en: str = ""


@dataclass(frozen=True)
class Description:
    """The words of one finding."""

    message_ja: str
    message_en: str
    hint_ja: str
    hint_en: str


def _error_type(code: str, entry: Entry) -> ErrorType:
    traits, message, hint = entry.validation, entry.message, entry.hint
    assert traits is not None and message is not None and hint is not None, code
    return ErrorType(code, entry.title.ja, entry.title.en, traits.explanation.ja, traits.explanation.en,
                     message.ja, message.en, hint.ja, hint.en, traits.severity, traits.weight, traits.scope)


# The codes validation reports, with their words and weights: the catalogue entries that have validation traits.
ERROR_TYPES: dict[str, ErrorType] = {
    code: _error_type(code, entry) for code, entry in catalogue().items() if entry.validation is not None}


RULES: dict[str, RuleText] = {
    "required": RuleText("必須項目", "a required value"),
    "integer": RuleText(
        "整数", "a whole number",
        "半角数字だけで記入してください（例：120）。カンマや単位（人、件など）は付けないでください。",
        "Use half-width digits only (e.g. 120), without commas or units."),
    "number": RuleText(
        "数値", "a number",
        "半角の数字と小数点で記入してください（例：35.634940）。単位や全角文字は使わないでください。",
        "Use half-width digits and a decimal point (e.g. 35.634940), without units."),
    "date": RuleText(
        "日付（YYYY-MM-DD）", "a date (YYYY-MM-DD)",
        "日付は 2024-04-01 のように西暦の年-月-日で記入してください。日付がない場合は空欄にしてください。",
        "Write dates like 2024-04-01 (year-month-day), or leave the cell empty."),
    "time": RuleText(
        "時刻（hh:mm）", "a time (hh:mm)",
        "時刻は 09:00 のように24時間制の「時:分」で記入してください。「9時～17時」のような範囲は"
        "開始時間と終了時間に分けて記入し、補足は特記事項の欄に書いてください。",
        "Write times like 09:00 (24-hour clock). Split ranges into the start and end columns; put notes in "
        "the remarks column."),
    "phone": RuleText(
        "電話番号", "a phone number",
        "電話番号は 03-1234-5678 のように半角数字とハイフンで記入してください。"
        "番号がない場合は空欄にしてください。",
        "Write phone numbers like 03-1234-5678 (half-width digits and hyphens); leave the cell empty if "
        "there is none."),
    "postal_code": RuleText(
        "郵便番号（7桁）", "a postal code (7 digits)",
        "郵便番号は 1820003 のように7桁の半角数字で記入してください。",
        "Write postal codes as 7 half-width digits, e.g. 1820003."),
    "url": RuleText(
        "URL", "a URL",
        "URL は https:// から始まる完全なアドレスで記入してください（例：https://www.city.komae.tokyo.jp/）。",
        "Write the full address starting with https:// (e.g. https://www.city.komae.tokyo.jp/)."),
    "email": RuleText(
        "メールアドレス", "an e-mail address",
        "メールアドレスは info@city.example.lg.jp のように半角で記入してください。",
        "Write e-mail addresses in half-width characters, like info@city.example.lg.jp."),
    "local-government-code": RuleText(
        "全国地方公共団体コード（6桁）", "a local government code (6 digits)",
        "全国地方公共団体コードは 132195 のように検査数字を含む6桁の半角数字で記入してください"
        "（先頭の0も省略しません。例：北海道は 010006）。",
        "Write the 6-digit code including its check digit, keeping leading zeros (e.g. 132195, 010006)."),
    "corporate-number": RuleText(
        "法人番号（13桁）", "a corporate number (13 digits)",
        "法人番号は13桁の半角数字で記入してください。国税庁法人番号公表サイトで確認できます。",
        "Write the 13-digit corporate number (see the National Tax Agency's site)."),
    "town-id": RuleText(
        "町字ID（7桁）", "a town ID (7 digits)",
        "町字IDはアドレス・ベース・レジストリの7桁の半角数字で記入してください（例：0001000）。",
        "Write the 7-digit town ID of the Address Base Registry (e.g. 0001000)."),
    "code": RuleText(
        "コード（半角英数字）", "a code (half-width letters and digits)",
        "コードは半角英数字で記入してください。", "Write codes with half-width letters and digits."),
    "kana": RuleText(
        "全角カタカナ", "full-width katakana",
        "読み仮名は コマエシヤクシヨ のように全角カタカナで記入してください。",
        "Write readings in full-width katakana, e.g. コマエシヤクシヨ."),
    "enum": RuleText(
        "{values}のいずれか", "one of {values}",
        "次のいずれかを記入してください：{values}。該当しない場合は空欄にしてください。",
        "Write one of: {values}; leave the cell empty if none applies."),
    "flag": RuleText(
        "「1」または空欄", "'1' or empty",
        "該当する場合は 1、該当しない場合は空欄にしてください（○ や「有」ではなく 1）。",
        "Write 1 when it applies and leave the cell empty otherwise."),
    "latitude": RuleText(
        f"日本の範囲の緯度（{JAPAN_LATITUDE[0]:g}〜{JAPAN_LATITUDE[1]:g}）",
        f"a latitude in Japan ({JAPAN_LATITUDE[0]:g}-{JAPAN_LATITUDE[1]:g})",
        "緯度は 35.634940 のように北緯20〜46度の10進数で記入してください。緯度と経度が入れ替わって"
        "いないか確認してください。",
        "Write the latitude in decimal degrees between 20 and 46 (e.g. 35.634940); check latitude and "
        "longitude are not swapped."),
    "longitude": RuleText(
        f"日本の範囲の経度（{JAPAN_LONGITUDE[0]:g}〜{JAPAN_LONGITUDE[1]:g}）",
        f"a longitude in Japan ({JAPAN_LONGITUDE[0]:g}-{JAPAN_LONGITUDE[1]:g})",
        "経度は 139.578776 のように東経122〜154度の10進数で記入してください。緯度と経度が入れ替わって"
        "いないか確認してください。",
        "Write the longitude in decimal degrees between 122 and 154 (e.g. 139.578776); check latitude and "
        "longitude are not swapped."),
    "time-order": RuleText(
        "「{other}」より後になっていません", 'is not later than "{other}"',
        "「{column}」は「{other}」より後の時刻にしてください。24時間使える場合は 00:00 と 24:00 のように"
        "記入してください。",
        'Make "{column}" later than "{other}"; for round-the-clock use write 00:00 and 24:00.'),
    "date-order": RuleText(
        "「{other}」より前になっています", 'is earlier than "{other}"',
        "「{column}」は「{other}」と同じ日かそれより後の日付にしてください。",
        'Make "{column}" the same day as "{other}" or later.'),
    "id": RuleText("重複しない値", "a unique value"),
    "label": RuleText("列", "a column"),
}


# A value that cannot be read as its column's type is published empty in these typed columns (a release casts
# them, or a program dials / matches them); in every other column (text) it is published as written. Either
# way the raw value stays in the findings and the landed file.
EMPTIED_TYPES = frozenset({"integer", "number", "date", "time", "flag", "phone", "postal_code"})
# codes that say a value is not readable as its column's type (what EMPTIED_TYPES applies to, and what makes a
# key column's value unreadable)
UNREADABLE_CODES = frozenset({"type-error", "format-error", "constraint-error", "date-error"})
# codes that refine the code of the check that found them (a date check's format-error on a date that has the
# right form but is not in the calendar): counts per check add them back to the check's own code
REFINES = {"date-error": "format-error"}
# codes that record a repair intake made: never escalated by a strict policy (the published value is right)
REPAIR_CODES = frozenset({"swapped-coordinates-fixed"})


def severity_for(code: str, column: str, dataset: Dataset) -> Severity:
    """The severity of a finding of ``code`` in ``column`` under ``dataset``'s keys and policy.

    The catalogue's errors stay errors. A key column's unreadable value is an error (the row cannot be told
    apart). ``strict_columns`` and ``on_warning: withhold`` make a row-level warning an error, and a missing
    required column of theirs a file-level error (the upload is refused)."""
    kind = error_type(code)
    policy = dataset.policy
    strict = column in policy.strict_columns or policy.on_warning == "withhold"
    if kind.severity == "error":
        return "error"
    if kind.scope == "file":
        return "error" if code == "missing-required-label" and strict else "warning"
    if code in REPAIR_CODES:
        return "warning"
    if code in UNREADABLE_CODES and column in dataset.key_columns:
        return "error"
    return "error" if strict and kind.scope == "cell" else "warning"


def error_type(code: str) -> ErrorType:
    """The catalogue entry of ``code``; KeyError names the unknown code."""
    try:
        return ERROR_TYPES[code]
    except KeyError:
        raise KeyError(f"unknown error code {code!r}; known: {sorted(ERROR_TYPES)}") from None


def enum_values_text(values: tuple[str, ...] | list[str]) -> str:
    """How a value set reads in a message: 「有」「無」."""
    return "".join(f"「{v}」" for v in values)


def describe(code: str, rule: str | None = None, *, column: str = "", value: object = "",
             other: str = "", values: tuple[str, ...] | list[str] = ()) -> Description:
    """The message and hint of one finding of ``code`` (refined by ``rule``) in Japanese and English.

    ``value`` is shown as written (callers shorten long cells); ``other`` is the other column of a
    cross-column rule; ``values`` the allowed values of an enum.
    """
    kind = error_type(code)
    text = RULES.get(rule or "")
    fields = {"column": column, "other": other, "values": enum_values_text(values)}
    expected_ja = text.expected_ja.format(**fields) if text else ""
    expected_en = text.expected_en.format(**fields) if text else ""
    hint_ja = text.hint_ja if text and text.hint_ja else kind.hint_ja
    hint_en = text.hint_en if text and text.hint_en else kind.hint_en
    shown = "" if value is None else str(value)
    return Description(
        message_ja=kind.message_ja.format(column=column, value=shown, expected=expected_ja),
        message_en=kind.message_en.format(column=column, value=shown, expected=expected_en),
        hint_ja=hint_ja.format(**fields),
        hint_en=hint_en.format(**fields),
    )


# --- dates that have the form of a date but are not in the calendar -----------------------------------------

# first year of each era (元年): 令和5年 = 2023
_ERA_FIRST_YEAR = {"令和": 2019, "令": 2019, "R": 2019, "平成": 1989, "平": 1989, "H": 1989, "昭和": 1926,
                   "昭": 1926, "S": 1926, "大正": 1912, "大": 1912, "T": 1912, "明治": 1868, "明": 1868, "M": 1868}
_ERA = "|".join(sorted(_ERA_FIRST_YEAR, key=len, reverse=True))
_DATE_SHAPES = (
    re.compile(r"(?P<year>[0-9]{4})\s*(?P<sep>[-/.])\s*(?P<month>[0-9]{1,2})\s*(?P=sep)\s*(?P<day>[0-9]{1,2})"),
    re.compile(r"(?P<year>[0-9]{4})\s*年\s*(?P<month>[0-9]{1,2})\s*月\s*(?P<day>[0-9]{1,2})\s*日?"),
    re.compile(rf"(?P<era>{_ERA})\.?\s*(?P<year>元|[0-9]{{1,2}})\s*年\s*(?P<month>[0-9]{{1,2}})\s*月\s*"
               r"(?P<day>[0-9]{1,2})\s*日?"),
    re.compile(rf"(?P<era>{_ERA})\.?\s*(?P<year>元|[0-9]{{1,2}})\s*(?P<sep>[-/.])\s*(?P<month>[0-9]{{1,2}})\s*"
               r"(?P=sep)\s*(?P<day>[0-9]{1,2})"),
    re.compile(r"(?P<year>(?:1[89]|2[01])[0-9]{2})(?P<month>[0-9]{2})(?P<day>[0-9]{2})"),
)


def impossible_date(value: object, column: str = "") -> Description | None:
    """The words for a value written as a date whose month or day is not in the calendar (「2023/02/30」:
    2月30日は存在しません; 「令和5年13月1日」: 13月は存在しません), with the fix; None for anything else
    (a real date, or text that is not shaped like a date: that stays a format error)."""
    written = str(value or "").strip()
    text = unicodedata.normalize("NFKC", written)
    for shape in _DATE_SHAPES:
        match = shape.fullmatch(text)
        if match:
            return _calendar_problem(written, column, _western_year(match), int(match["month"]), int(match["day"]))
    return None


def _western_year(match: re.Match[str]) -> int:
    year = 1 if match["year"] == "元" else int(match["year"])
    era = match.groupdict().get("era")
    return _ERA_FIRST_YEAR[era] + year - 1 if era else year


def _calendar_problem(text: str, column: str, year: int, month: int, day: int) -> Description | None:
    where_ja, where_en = f"「{column}」の「{text}」", f'"{text}" in "{column}"'
    if not 1 <= month <= 12:
        return Description(
            f"{where_ja}：{month}月は存在しません（月は1〜12）。", f"{where_en}: there is no month {month} (1-12).",
            "月は1〜12で記入してください。年・月・日の順序が入れ替わっていないかも確認し、2024-04-01 のように"
            "年-月-日で記入してください。",
            "Write the month as 1 to 12, check the year, month and day are in that order, and write the date as "
            "year-month-day, e.g. 2024-04-01.")
    last = calendar.monthrange(year, month)[1]
    if 1 <= day <= last:
        return None
    return Description(
        f"{where_ja}：{month}月{day}日は存在しません（{year}年{month}月は{last}日まで）。",
        f"{where_en}: {calendar.month_name[month]} {day} does not exist ({year}-{month:02d} has {last} days).",
        f"{year}年{month}月は{last}日までです。正しい日付を {year}-{month:02d}-{min(max(day, 1), last):02d} のように"
        "年-月-日で記入してください（日付が分からない場合は空欄）。",
        f"{year}-{month:02d} has {last} days: write the real date as year-month-day, e.g. "
        f"{year}-{month:02d}-{min(max(day, 1), last):02d} (or leave the cell empty).")
