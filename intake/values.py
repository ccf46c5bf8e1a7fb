"""Value normalisers of the intake stage: turn what cities write into the standard's canonical text.

Every declared column type (``kouiki.model.ColumnType``) has a single-value helper
(``normalise_date`` …) that returns ``(normalised text or None, rule name or None)``: None as the value
means the text cannot be read as that type; the rule names the repair (``"wareki-date"``,
``"excel-serial-date"`` …) and is None exactly when the output equals the input.

:func:`normalise_column` gives the same results for a whole column without a Python call per row:
1. cells already canonical as written are recognised by one vectorised polars test and kept untouched;
2. the rest are stripped and, where only full-width characters stand in the way, folded vectorised;
3. what is left goes through the Python helper once per *distinct* value, joined back to the cells.
Each changed cell is counted under exactly one rule (its most specific repair), so
``sum(rule_counts.values()) == changed.sum()``. A lone dash (``-``, ``－``, ``―`` …) in a typed column
(:data:`PLACEHOLDER_TYPES`) stands for "none": it becomes empty (``placeholder-emptied``), not unreadable.
Phone numbers are read by :mod:`kouiki.phone`.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import jaconv
import polars as pl

from kouiki import localgov, phone

Reader = Callable[[str], tuple[str | None, str | None]]

# --- rule names (stable: they appear in reports and tests) ----------------------------------------
WHITESPACE_STRIPPED = "whitespace-stripped"
FULLWIDTH_DIGITS = "fullwidth-digits"          # only the width (or dash variant) of characters changed
FULLWIDTH_ASCII = "fullwidth-ascii"            # the same for url / email (letters, ＠, ／ …)
ISO_DATE_FROM_SEPARATORS = "date-separators"   # 2021/12/1, 2021.12.1, 2021-1-5
KANJI_DATE = "kanji-date"                      # 2021年12月1日
WAREKI_DATE = "wareki-date"                    # 令和4年2月28日, R02.07.21, H 7.10.17
WAREKI_OUT_OF_ERA = "wareki-out-of-era"        # 平成31年5月1日: converted, but after the era ended
EXCEL_SERIAL_DATE = "excel-serial-date"        # 45016
COMPACT_DATE = "compact-date"                  # 20230331
US_DATE = "us-date"                            # 7/13/2020 (day > 12, so the order is certain)
US_DATE_BY_COLUMN = "us-date-by-column"        # 7/1/2020 in a column whose other dates are surely m/d/y
DATETIME_TO_DATE = "datetime-to-date"          # 2023/03/31 0:00:00
WEEKDAY_REMOVED = "weekday-removed"            # 2023-03-31(金)
TIME_PADDED = "time-padded"                    # 8:30
TIME_SECONDS_DROPPED = "time-seconds-dropped"  # 08:30:00
KANJI_TIME = "kanji-time"                      # 8時30分, 午後5時
AMPM_TIME = "ampm-time"                        # 5:30 PM, 午後5:30
EXCEL_SERIAL_TIME = "excel-serial-time"        # 0.375
COMPACT_TIME = "compact-time"                  # 0830
PHONE_LABEL_REMOVED = phone.PHONE_LABEL_REMOVED  # TEL:03-… (more phone rules in kouiki.phone)
PHONE_SPACES = phone.PHONE_SPACES                # 03 3430 1111, (047) 325-4758
PLACEHOLDER_EMPTIED = "placeholder-emptied"      # '-', '－', '―' alone in a typed cell: "none", made empty
POSTAL_MARK_REMOVED = "postal-mark-removed"    # 〒272-8501
POSTAL_HYPHEN_REMOVED = "postal-hyphen-removed"  # 272-8501
POSTAL_LEADING_ZERO_RESTORED = "postal-leading-zero-restored"  # 608501 (Excel dropped the 0 of 060-8501)
FLAG_YES = "flag-yes"                          # ○ 有 あり TRUE → 1
FLAG_NO = "flag-no"                            # × 無 なし FALSE 0 → '' (the standard's "no" is empty)
NEGATIVE_MARK = "negative-mark"                # ▲3 △3 → -3
THOUSANDS_SEPARATOR = "thousands-separator"    # 50,700
PLUS_SIGN_REMOVED = "plus-sign-removed"
DECIMAL_POINT = "decimal-point"                # .5 → 0.5, 12. → 12
INTEGER_DECIMAL_ZERO = "integer-decimal-zero"  # 12.0 in an integer column
NUMERIC_TEXT = "numeric-text"                  # 122033.0 in a code column
URL_SCHEME_LOWERCASED = "url-scheme-lowercased"
MAILTO_REMOVED = "mailto-removed"
HALFWIDTH_KANA = "halfwidth-kana"              # ｺﾏｴｼﾔｸｼｮ
HIRAGANA_TO_KATAKANA = "hiragana-to-katakana"  # こまえ in a カナ column
KANA_LONG_VOWEL = "kana-long-vowel"            # センタ- in a カナ column: a hyphen after katakana is ー
ADDRESS_PREFIX_ADDED = "address-prefix-added"  # 狛江市和泉本町… → 東京都狛江市和泉本町… (from the row's code)

# Characters that stand in for a hyphen/minus in real files (incl. the katakana long vowel ー).
_DASHES = str.maketrans({c: "-" for c in "‐‑‒–—―−ー－ｰ"})
_NON_ASCII_DASHES = "‐‑‒–—―−ー－ｰ─━"   # the same, plus box-drawing look-alikes
_DASH_CHARS = "\\-" + _NON_ASCII_DASHES   # all of them, escaped for a [] class

# Text columns holding (part of) an address: the standard's 所在地_… columns (not their codes), the legacy
# 住所 / 方書 and 建物名等(方書). Their digits are written half-width with an ASCII hyphen between numbers,
# as the standard's own example is (北海道札幌市厚別区青葉町一丁目○-○　○○ビル1階, ../shared/standards).
_ADDRESS_COLUMN = re.compile(r"(所在地|住所|方書)(?!.*(コード|ID))")
# The whole address, prefecture to building, in one string (current layouts; 住所 in the legacy-only datasets):
# it also gets the prefecture and municipality in front where the city left them out.
FULL_ADDRESS_COLUMNS = ("所在地_連結表記", "住所")


@dataclass
class ColumnResult:
    values: pl.Series            # normalised text (pl.String); unreadable cells keep their stripped text
    changed: pl.Series           # pl.Boolean: the value differs from the raw text (blank → None is no change)
    rule_counts: dict[str, int]  # rule → number of cells it changed
    invalid: pl.Series           # pl.Boolean: non-empty but not readable as the column's type


# --- width helpers ---------------------------------------------------------------------------------

def to_halfwidth_ascii(text: str) -> str:
    """Full-width ASCII letters, digits and symbols (and U+3000) → half-width; kana untouched."""
    return str(jaconv.z2h(text, kana=False, ascii=True, digit=True))


def to_fullwidth_kana(text: str) -> str:
    """Half-width katakana → full-width, voiced marks combined (ｶﾞ → ガ); ASCII and digits untouched."""
    return str(jaconv.h2z(text, kana=True, ascii=False, digit=False))


_HALFWIDTH_KATAKANA = re.compile("[\uff61-\uff9f]")
# A dash right after katakana (not before an ASCII letter or digit, where it is a hyphen: コース-A) is the
# long-vowel mark typed with the wrong key: ｾﾝﾀ- → センター. Applied twice: matches cannot overlap.
_NOT_LONG_VOWEL_DASHES = _DASH_CHARS.replace("ー", "")
_KANA_THEN_DASH = re.compile(rf"([\u30a1-\u30fa\u30fc\uff66-\uff9f])[{_NOT_LONG_VOWEL_DASHES}](?![0-9A-Za-z])")
_KANA_THEN_DASH_POLARS = (rf"([\x{{30a1}}-\x{{30fa}}\x{{30fc}}\x{{ff66}}-\x{{ff9f}}])[{_NOT_LONG_VOWEL_DASHES}]"
                          r"([^0-9A-Za-z]|$)")


def long_vowel_marks(text: str) -> str:
    """A dash after katakana becomes ー (ｾﾝﾀ- → ｾﾝﾀー, センタ－ → センター); コース-A keeps its hyphen."""
    once = _KANA_THEN_DASH.sub(r"\1ー", text)
    return _KANA_THEN_DASH.sub(r"\1ー", once)


def widen_kana(text: str) -> str:
    """Half-width katakana → full-width, with a dash after katakana read as ー (ｾﾝﾀ- → センター)."""
    return to_fullwidth_kana(long_vowel_marks(text))


def _fold(text: str) -> str:
    """NFKC (full-width → half-width, ㍻ → 平成, ℡ → TEL) and every dash variant → '-'."""
    return unicodedata.normalize("NFKC", text).translate(_DASHES)


def _finish(raw: str, value: str | None, rule: str | None, width_rule: str) -> tuple[str | None, str | None]:
    """Attach the rule that explains ``raw`` → ``value`` when the reader named no structural one."""
    if value is None:
        return None, None
    if value == raw:
        return value, None
    if value == raw.strip():
        return value, WHITESPACE_STRIPPED
    return value, rule or width_rule


def _apply(text: str, reader: Reader, width_rule: str = FULLWIDTH_DIGITS) -> tuple[str | None, str | None]:
    """Strip ``text``, read it with ``reader`` (which sees stripped, non-empty text) and name the rule."""
    if text is None:
        return None, None
    stripped = text.strip()
    if not stripped:
        return None, None
    value, rule = reader(stripped)
    return _finish(text, value, rule, width_rule)


# --- dates -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Era:
    kanji: str
    letter: str
    start: dt.date


# The modern eras (元号) and their first days: data, not logic. 明治 counts from 慶応4年1月1日
# (1868-01-25 Gregorian) as the 1868 改元の詔 made it retroactive.
_ERAS = (
    _Era("明治", "M", dt.date(1868, 1, 25)),
    _Era("大正", "T", dt.date(1912, 7, 30)),
    _Era("昭和", "S", dt.date(1926, 12, 25)),
    _Era("平成", "H", dt.date(1989, 1, 8)),
    _Era("令和", "R", dt.date(2019, 5, 1)),
)
# 令和, 令 (single-kanji abbreviation), R, r
_ERA_BY_NAME = {name: era for era in _ERAS
                for name in (era.kanji, era.kanji[0], era.letter, era.letter.lower())}
_ERA_END = {era.kanji: nxt.start for era, nxt in itertools.pairwise(_ERAS)}
_ERA_NAMES = "|".join(sorted(_ERA_BY_NAME, key=len, reverse=True))
_ERA_YEAR = rf"(?P<era>{_ERA_NAMES})\.?\s*(?P<year>元|[0-9]{{1,2}})\s*"
_WAREKI_KANJI = re.compile(_ERA_YEAR + r"年\s*(?P<month>[0-9]{1,2})\s*月\s*(?P<day>[0-9]{1,2})\s*日?")
_WAREKI_SEPARATED = re.compile(
    _ERA_YEAR + r"(?P<sep>[-/.])\s*(?P<month>[0-9]{1,2})\s*(?P=sep)\s*(?P<day>[0-9]{1,2})")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_SEPARATED_DATE = re.compile(r"([0-9]{4})\s*([-/.])\s*([0-9]{1,2})\s*\2\s*([0-9]{1,2})")
_KANJI_DATE = re.compile(r"([0-9]{4})\s*年\s*([0-9]{1,2})\s*月\s*([0-9]{1,2})\s*日")
_COMPACT_DATE = re.compile(r"(1[89][0-9]{2}|2[01][0-9]{2})([0-9]{2})([0-9]{2})")
_SERIAL = re.compile(r"([0-9]{1,5})(?:\.0+)?")
_SLASH_MDY = re.compile(r"([0-9]{1,2})\s*/\s*([0-9]{1,2})\s*/\s*([0-9]{4})")
_MIDNIGHT = re.compile(r"(.+?)[ T]+0?0:00(?::00(?:\.0+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?")
_WEEKDAY = re.compile(r"(.+?)\s*\(([月火水木金土日])(?:曜日?)?\)")
_WEEKDAYS = "月火水木金土日"
_EXCEL_EPOCH = dt.date(1899, 12, 30)   # serial 61 = 1900-03-01: Excel counts a 1900-02-29 that never was
_SERIAL_MAX = 80000                    # 2119-01-10; larger integers are not dates
_YEARS_NOT_SERIALS = range(1868, 2101)  # "2021" in a date column is a year, not the serial for 1905-07-13


def _iso(year: int, month: int, day: int) -> str | None:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def _read_wareki(text: str) -> tuple[str | None, str | None]:
    match = _WAREKI_KANJI.fullmatch(text) or _WAREKI_SEPARATED.fullmatch(text)
    if match is None:
        return None, None
    era = _ERA_BY_NAME[match["era"]]
    era_year = 1 if match["year"] == "元" else int(match["year"])
    if era_year == 0:
        return None, None
    iso = _iso(era.start.year + era_year - 1, int(match["month"]), int(match["day"]))
    if iso is None:
        return None, None
    day = dt.date.fromisoformat(iso)
    end = _ERA_END.get(era.kanji)
    inside = day >= era.start and (end is None or day < end)
    return iso, (WAREKI_DATE if inside else WAREKI_OUT_OF_ERA)


def _read_serial(text: str) -> tuple[str | None, str | None]:
    match = _SERIAL.fullmatch(text)
    if match is None:
        return None, None
    serial = int(match[1])
    if not 1 <= serial <= _SERIAL_MAX or serial == 60 or serial in _YEARS_NOT_SERIALS:
        return None, None
    epoch = _EXCEL_EPOCH if serial > 60 else _EXCEL_EPOCH + dt.timedelta(days=1)
    return (epoch + dt.timedelta(days=serial)).isoformat(), EXCEL_SERIAL_DATE


def _read_us_date(text: str, *, ambiguous_is_us: bool) -> tuple[str | None, str | None]:
    match = _SLASH_MDY.fullmatch(text)
    if match is None:
        return None, None
    month, day, year = int(match[1]), int(match[2]), int(match[3])
    if month <= 12 < day:
        return _iso(year, month, day), US_DATE
    if ambiguous_is_us and month <= 12 and day <= 12:
        return _iso(year, month, day), US_DATE_BY_COLUMN
    return None, None   # both ≤ 12: m/d or d/m cannot be told; first > 12: not US order


def _read_plain_date(text: str, *, ambiguous_is_us: bool = False) -> tuple[str | None, str | None]:
    if match := _ISO_DATE.fullmatch(text):
        return _iso(int(match[1]), int(match[2]), int(match[3])), None
    if match := _SEPARATED_DATE.fullmatch(text):
        return _iso(int(match[1]), int(match[3]), int(match[4])), ISO_DATE_FROM_SEPARATORS
    if match := _KANJI_DATE.fullmatch(text):
        return _iso(int(match[1]), int(match[2]), int(match[3])), KANJI_DATE
    if match := _COMPACT_DATE.fullmatch(text):
        return _iso(int(match[1]), int(match[2]), int(match[3])), COMPACT_DATE
    for reader in (_read_wareki, _read_serial):
        value, rule = reader(text)
        if value is not None:
            return value, rule
    return _read_us_date(text, ambiguous_is_us=ambiguous_is_us)


def _read_date(text: str, *, ambiguous_is_us: bool = False) -> tuple[str | None, str | None]:
    """ISO date (YYYY-MM-DD) from ISO, y/m/d, 年月日, 和暦, Excel serial, compact or unambiguous US text."""
    folded = _fold(text)
    weekday = None
    if match := _WEEKDAY.fullmatch(folded):
        folded, weekday = match[1], match[2]
    midnight = _MIDNIGHT.fullmatch(folded)
    value, rule = _read_plain_date(midnight[1] if midnight else folded, ambiguous_is_us=ambiguous_is_us)
    if value is None:
        return None, None
    if weekday is not None and _WEEKDAYS[dt.date.fromisoformat(value).weekday()] != weekday:
        return None, None   # 2023-03-31(月): the date and its weekday disagree
    if midnight:
        rule = DATETIME_TO_DATE
    return value, rule or (WEEKDAY_REMOVED if weekday else None)


def normalise_date(text: str) -> tuple[str | None, str | None]:
    """(ISO date or None, rule): ISO, 2021/12/1, 2021年12月1日, 令和4年2月28日, R02.07.21, H 7.10.17,
    45016 (Excel serial), 20230331, 7/13/2020 (US order only when the day is > 12)."""
    return _apply(text, _read_date)


# --- times -----------------------------------------------------------------------------------------

_HH_MM = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_HH_MM_SS = re.compile(r"([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?")
_KANJI_TIME = re.compile(r"(午前|午後)?\s*([0-9]{1,2})\s*時\s*(?:([0-9]{1,2})\s*分|(半))?")
_AMPM_BEFORE = re.compile(r"(午前|午後|AM|PM|A\.M\.|P\.M\.)\s*([0-9]{1,2}):([0-9]{2})", re.IGNORECASE)
_AMPM_AFTER = re.compile(r"([0-9]{1,2}):([0-9]{2})\s*(AM|PM|A\.M\.|P\.M\.)", re.IGNORECASE)
_DAY_FRACTION = re.compile(r"0?\.[0-9]+|[01]\.[0-9]+")
_COMPACT_TIME = re.compile(r"([0-9]{2})([0-9]{2})")


def _hh_mm(hour: int, minute: int) -> str | None:
    if 0 <= hour <= 24 and 0 <= minute <= 59 and not (hour == 24 and minute):
        return f"{hour:02d}:{minute:02d}"
    return None


def _twelve_hour(marker: str | None, hour: int) -> int | None:
    """午後5 → 17, 午前12 → 0; None when the hour cannot carry a 午前/午後 marker."""
    if marker is None:
        return hour
    if not 0 <= hour <= 12:
        return None
    afternoon = marker.upper().replace(".", "") in ("午後", "PM")
    return hour % 12 + (12 if afternoon else 0)


def _read_time(text: str) -> tuple[str | None, str | None]:
    """hh:mm from h:mm, hh:mm:ss, 8時30分, 午後5時半, 5:30 PM, an Excel day fraction (0.375) or 0830."""
    folded = _fold(text)
    if match := _HH_MM.fullmatch(folded):
        return _hh_mm(int(match[1]), int(match[2])), (TIME_PADDED if len(match[1]) == 1 else None)
    if match := _HH_MM_SS.fullmatch(folded):
        return _hh_mm(int(match[1]), int(match[2])), TIME_SECONDS_DROPPED
    if match := _KANJI_TIME.fullmatch(folded):
        hour = _twelve_hour(match[1], int(match[2]))
        minute = 30 if match[4] else int(match[3] or 0)
        return (_hh_mm(hour, minute) if hour is not None else None), KANJI_TIME
    if match := _AMPM_BEFORE.fullmatch(folded) or _AMPM_AFTER.fullmatch(folded):
        marker, hour_text, minute_text = (match[1], match[2], match[3]) if match.re is _AMPM_BEFORE \
            else (match[3], match[1], match[2])
        hour = _twelve_hour(marker, int(hour_text))
        return (_hh_mm(hour, int(minute_text)) if hour is not None else None), AMPM_TIME
    if _DAY_FRACTION.fullmatch(folded) and float(folded) <= 1:
        minutes = round(float(folded) * 24 * 60)
        return _hh_mm(minutes // 60, minutes % 60), EXCEL_SERIAL_TIME
    if match := _COMPACT_TIME.fullmatch(folded):
        return _hh_mm(int(match[1]), int(match[2])), COMPACT_TIME
    return None, None


def normalise_time(text: str) -> tuple[str | None, str | None]:
    """(hh:mm or None, rule): 8:30, 8時30分, 22：00, 08:30:00, 0.375 (Excel), 0830, 午後5時; 24:00 allowed."""
    return _apply(text, _read_time)


# --- phone numbers (kouiki.phone) --------------------------------------------------------------------

def normalise_phone(text: str) -> tuple[str | None, str | None]:
    """(phone in half-width as written, or None, rule); None for なし, 554-4111, two numbers (kouiki.phone)."""
    return _apply(text, phone.read_phone)


# --- postal codes ----------------------------------------------------------------------------------

_POSTAL = re.compile(r"([0-9]{3})(-?)([0-9]{4})")
_POSTAL_NUMERIC = re.compile(r"([0-9]{6,7})(?:\.0+)?")


def _read_postal_code(text: str) -> tuple[str | None, str | None]:
    """7 digits without hyphen (the definition's example 1234567) from 〒272-8501, 272-8501, ２７２…"""
    folded = _fold(text)
    marked = folded.startswith("〒")
    folded = re.sub(r"\s+", "", folded.removeprefix("〒"))
    mark_rule = POSTAL_MARK_REMOVED if marked else None
    if match := _POSTAL.fullmatch(folded):
        return match[1] + match[3], mark_rule or (POSTAL_HYPHEN_REMOVED if match[2] else None)
    if match := _POSTAL_NUMERIC.fullmatch(folded):
        digits = match[1]
        if len(digits) == 6:   # a numeric cell dropped the 0 of 0xx-xxxx (北海道)
            return "0" + digits, mark_rule or POSTAL_LEADING_ZERO_RESTORED
        return digits, mark_rule or NUMERIC_TEXT
    return None, None


def normalise_postal_code(text: str) -> tuple[str | None, str | None]:
    """(7 digits without hyphen or None, rule) from 272-8501, 〒272-8501, ２７２－８５０１, 2728501."""
    return _apply(text, _read_postal_code)


# --- flags -----------------------------------------------------------------------------------------

# Compared after NFKC and casefold; "-" also stands for every dash variant.
_FLAG_YES = frozenset({"1", "1.0", "○", "〇", "◯", "●", "◎", "有", "有り", "あり", "true", "yes", "y", "はい",
                       "可", "対応", "対応可", "対応あり"})
_FLAG_NO = frozenset({"0", "0.0", "×", "✕", "✖", "x", "無", "無し", "なし", "false", "no", "n", "いいえ",
                      "不可", "否", "-", "対応なし"})


def _read_flag(text: str) -> tuple[str | None, str | None]:
    """'1' for yes words and marks, '' (the standard's empty "no") for no words; None for anything else."""
    key = _fold(text).strip().casefold()
    if key in _FLAG_YES:
        return "1", (None if key == "1" else FLAG_YES)
    if key in _FLAG_NO:
        return "", FLAG_NO
    return None, None


def normalise_flag(text: str) -> tuple[str | None, str | None]:
    """('1' | '' | None, rule): ○ 有 あり TRUE はい 可 → '1'; × 無 なし FALSE 0 → '' (the standard's
    "no" is the empty string); anything else (△, 要予約 …) → None."""
    return _apply(text, _read_flag)


# --- numbers ---------------------------------------------------------------------------------------

_NEGATIVE_MARKS = ("▲", "△", "▼")
_THOUSANDS = re.compile(r"-?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_BARE_DECIMAL = re.compile(r"(-?)([0-9]*)\.([0-9]*)")


def _read_number(text: str) -> tuple[str | None, str | None]:
    """Half-width decimal text: '50,700 ' → 50700, １２.５ → 12.5, ▲3 → -3, +5 → 5."""
    folded = _fold(text)
    rule = None
    if folded[:1] in _NEGATIVE_MARKS:
        folded, rule = "-" + folded[1:].lstrip(), NEGATIVE_MARK
    elif folded[:1] == "+":
        folded, rule = folded[1:].lstrip(), PLUS_SIGN_REMOVED
    elif folded[:1] == "-":
        folded = "-" + folded[1:].lstrip()
    if _THOUSANDS.fullmatch(folded):
        folded, rule = folded.replace(",", ""), rule or THOUSANDS_SEPARATOR
    if _NUMBER.fullmatch(folded):
        return folded, rule
    bare = _BARE_DECIMAL.fullmatch(folded)
    if bare and (bare[2] or bare[3]):   # .5 → 0.5, 12. → 12
        sign, whole, fraction = bare[1], bare[2] or "0", bare[3]
        return sign + whole + ("." + fraction if fraction else ""), rule or DECIMAL_POINT
    return None, None


def _read_integer(text: str) -> tuple[str | None, str | None]:
    """Half-width integer text; 12.0 → 12 (Excel floats); 12.5 is not an integer."""
    value, rule = _read_number(text)
    if value is None or "." not in value:
        return value, rule
    whole, fraction = value.split(".")
    return (whole, rule or INTEGER_DECIMAL_ZERO) if set(fraction) == {"0"} else (None, None)


def normalise_number(text: str) -> tuple[str | None, str | None]:
    """(half-width decimal text or None, rule): '50,700 ' → 50700, １２.５ → 12.5, ▲3 / △3 → -3."""
    return _apply(text, _read_number)


def normalise_integer(text: str) -> tuple[str | None, str | None]:
    """(half-width integer text or None, rule): as normalise_number, and 12.0 → 12; 12.5 → None."""
    return _apply(text, _read_integer)


# --- url, email, code, kana, string ----------------------------------------------------------------

_URL = re.compile(r"(https?)(://\S+)", re.IGNORECASE)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def _read_url(text: str) -> tuple[str | None, str | None]:
    """An absolute http(s) URL without spaces; full-width ASCII → half-width."""
    match = _URL.fullmatch(to_halfwidth_ascii(text))
    if match is None:
        return None, None
    scheme = match[1].lower()
    return scheme + match[2], (URL_SCHEME_LOWERCASED if scheme != match[1] else None)


def _read_email(text: str) -> tuple[str | None, str | None]:
    """name@domain.tld in half-width; a mailto: prefix is dropped."""
    halfwidth = to_halfwidth_ascii(text)
    rule = None
    if halfwidth[:7].lower() == "mailto:":
        halfwidth, rule = halfwidth[7:], MAILTO_REMOVED
    return (halfwidth, rule) if _EMAIL.fullmatch(halfwidth) else (None, None)


def _read_code(text: str) -> tuple[str | None, str | None]:
    """A code kept as written but half-width; a numeric cell's '122033.0' → '122033'. Never unreadable."""
    halfwidth = to_halfwidth_ascii(text)
    if match := re.fullmatch(r"([0-9]+)\.0+", halfwidth):
        return match[1], NUMERIC_TEXT
    return halfwidth, None


def _read_local_government_code(text: str) -> tuple[str | None, str | None]:
    """A 6-digit 全国地方公共団体コード with a correct check digit (see kouiki.localgov.normalise_code)."""
    return localgov.normalise_code(text)


_KANJI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々〆]")
_HALFWIDTH_KANA_RANGE = "\uff61-\uff9f"
_HIRAGANA_RANGE = "\u3041-\u3096\u309d\u309e"
_FULLWIDTH_DIGIT_RANGE = "\uff10-\uff19"


def _read_kana(text: str) -> tuple[str | None, str | None]:
    """Full-width katakana with half-width digits; None when kanji are left (not a reading)."""
    if _KANJI.search(text):
        return None, None
    fullwidth = to_fullwidth_kana(text)
    katakana = str(jaconv.hira2kata(fullwidth))
    long_vowels = long_vowel_marks(katakana)
    value = jaconv.z2h(long_vowels, kana=False, ascii=False, digit=True)
    rule = (HALFWIDTH_KANA if fullwidth != text else HIRAGANA_TO_KATAKANA if katakana != fullwidth
            else KANA_LONG_VOWEL if long_vowels != katakana else None)
    return str(value), rule


def _read_string(text: str) -> tuple[str | None, str | None]:
    """Free text as written, except half-width katakana, widened (ｾﾝﾀ- → センター) in names and notes too."""
    if _HALFWIDTH_KATAKANA.search(text):
        return widen_kana(text), HALFWIDTH_KANA
    return text, None


_DIGITS_DASH_DIGITS = re.compile(rf"(?<=[0-9])[{_DASH_CHARS}](?=[0-9])")


def _read_address(text: str) -> tuple[str | None, str | None]:
    """An address: half-width digits, ASCII '-' between numbers (３丁目１－５ → 3丁目1-5), kana widened."""
    value, rule = _read_string(text)
    assert value is not None
    digits = value.translate(_DIGIT_FOLD_TABLE)
    digits = _DIGITS_DASH_DIGITS.sub("-", digits)
    if digits != value:
        return digits, rule or FULLWIDTH_DIGITS
    return value, rule


def is_address_column(column_name: str) -> bool:
    """True for text columns holding an address or part of one (所在地_連結表記, 住所, 方書 …), not codes."""
    return _ADDRESS_COLUMN.search(unicodedata.normalize("NFKC", column_name)) is not None


def normalise_url(text: str) -> tuple[str | None, str | None]:
    """(http(s) URL in half-width or None, rule); a path without scheme (www.…, ATTACH\\…) → None."""
    return _apply(text, _read_url, FULLWIDTH_ASCII)


def normalise_email(text: str) -> tuple[str | None, str | None]:
    """(address in half-width or None, rule); mailto: dropped."""
    return _apply(text, _read_email, FULLWIDTH_ASCII)


def normalise_code_text(text: str) -> tuple[str | None, str | None]:
    """(code in half-width, rule) for a generic code column; '122033.0' → '122033'; never None for text."""
    return _apply(text, _read_code)


def normalise_kana(text: str) -> tuple[str | None, str | None]:
    """(full-width katakana with half-width digits, or None when kanji are left, rule)."""
    return _apply(text, _read_kana)


# --- whole columns ---------------------------------------------------------------------------------

def _local_government_code_is_canonical(v: pl.Expr) -> pl.Expr:
    digit = [v.str.slice(i, 1).cast(pl.Int32, strict=False) for i in range(6)]
    return v.str.contains(r"^[0-9]{6}$") & (localgov.check_digit_of(digit) == digit[5])


# YYYY-MM-DD of a real day, as one regex (one pass over the column, 25% faster than a shape regex plus
# strptime): years 0001–9999 as Python's date allows, 29/30/31 only in months that have them, and
# 02-29 only in leap years (every 4th year, centuries only when divisible by 400).
_YEAR = "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_ISO_DAY = (f"^(?:{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
            f"|(?:0[13578]|1[02])-31)|{_LEAP_YEAR}-02-29)$")


def _matches(pattern: str) -> Callable[[pl.Expr], pl.Expr]:
    return lambda v: v.str.contains(pattern)


def _kana_is_canonical(v: pl.Expr) -> pl.Expr:
    unusual = rf"[{_HALFWIDTH_KANA_RANGE}{_HIRAGANA_RANGE}{_FULLWIDTH_DIGIT_RANGE}]|{_KANJI.pattern}|^\s|\s$"
    return ~v.str.contains(unusual) & ~v.str.contains(_KANA_THEN_DASH_POLARS)


def _string_is_canonical(v: pl.Expr) -> pl.Expr:
    return (v.str.len_bytes() == v.str.strip_chars().str.len_bytes()) & ~v.str.contains(
        f"[{_HALFWIDTH_KANA_RANGE}]")


def _address_is_canonical(v: pl.Expr) -> pl.Expr:
    return _string_is_canonical(v) & ~v.str.contains(
        rf"[{_FULLWIDTH_DIGIT_RANGE}]|[0-9][{_NON_ASCII_DASHES}][0-9]")


# Full-width ASCII block and the ideographic space → half-width, for the vectorised second pass.
_WIDTH_FOLD = {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "}
_DIGIT_FOLD = {chr(c): chr(c - 0xFEE0) for c in range(0xFF10, 0xFF1A)}
_DIGIT_FOLD_TABLE = str.maketrans(_DIGIT_FOLD)


@functools.cache
def _kana_replacements() -> tuple[list[str], list[str]]:
    """jaconv's own conversions as literal replacements, voiced pairs (ｶﾞ) before single characters."""
    halfwidth = [chr(c) for c in range(0xFF61, 0xFFA0)]
    pairs = [c + mark for c in halfwidth for mark in "ﾞﾟ" if len(to_fullwidth_kana(c + mark)) == 1]
    hiragana = [chr(c) for c in range(0x3041, 0x3097)] + ["ゝ", "ゞ"]
    patterns = pairs + halfwidth + hiragana + list(_DIGIT_FOLD)
    replacements = ([to_fullwidth_kana(p) for p in pairs + halfwidth]
                    + [str(jaconv.hira2kata(h)) for h in hiragana] + list(_DIGIT_FOLD.values()))
    return patterns, replacements


def _normalise_kana_vectorised(values: pl.Series) -> pl.DataFrame:
    """(v, new, rule, bad) as normalise_kana gives them, for a whole column at once (jaconv is per
    character in Python: 1M names took 7 s that way)."""
    patterns, replacements = _kana_replacements()
    v = pl.col("v")
    widened = v.str.replace_many(patterns, replacements, leftmost=True)
    long_vowels = _long_vowel_marks_expr(widened)
    return pl.DataFrame({"v": values}).select(
        "v",
        new=long_vowels,
        rule=pl.when(v.str.contains(f"[{_HALFWIDTH_KANA_RANGE}]")).then(pl.lit(HALFWIDTH_KANA))
        .when(v.str.contains(f"[{_HIRAGANA_RANGE}]")).then(pl.lit(HIRAGANA_TO_KATAKANA))
        .when(long_vowels != widened).then(pl.lit(KANA_LONG_VOWEL))
        .otherwise(pl.lit(FULLWIDTH_DIGITS)),
        bad=v.str.contains(_KANJI.pattern),
    ).with_columns(new=pl.when("bad").then("v").otherwise("new"))


def _long_vowel_marks_expr(text: pl.Expr) -> pl.Expr:
    """:func:`long_vowel_marks` for a whole column (twice: a match cannot start inside the previous one)."""
    once = text.str.replace_all(_KANA_THEN_DASH_POLARS, "${1}ー${2}")
    return once.str.replace_all(_KANA_THEN_DASH_POLARS, "${1}ー${2}")


@dataclass(frozen=True)
class _Kind:
    """How one declared type is normalised: a Python reader and a vectorised 'already canonical' test.

    ``canonical`` must be False for any text with surrounding whitespace (anchored patterns are), since
    canonical cells are kept exactly as written.
    """

    read: Reader
    canonical: Callable[[pl.Expr], pl.Expr]
    width_rule: str = FULLWIDTH_DIGITS
    width_fold: Mapping[str, str] = field(default_factory=lambda: _WIDTH_FOLD)  # what the reader folds too
    vectorised: Callable[[pl.Series], pl.DataFrame] | None = None   # all cells at once, instead of read


_KINDS: dict[str, _Kind] = {
    "string": _Kind(_read_string, _string_is_canonical, width_fold={}),
    "kana": _Kind(_read_kana, _kana_is_canonical, vectorised=_normalise_kana_vectorised),
    "date": _Kind(_read_date, _matches(_ISO_DAY)),
    "time": _Kind(_read_time, _matches(r"^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")),
    "phone": _Kind(phone.read_phone, phone.is_phone_expr),
    "postal_code": _Kind(_read_postal_code, _matches(r"^[0-9]{7}$")),
    "flag": _Kind(_read_flag, lambda v: v == "1"),
    "number": _Kind(_read_number, _matches(r"^-?[0-9]+(?:\.[0-9]+)?$")),
    "integer": _Kind(_read_integer, _matches(r"^-?[0-9]+$")),
    "code": _Kind(_read_code, lambda v: v.str.contains(r"^[!-~]+$") & ~v.str.contains(r"^[0-9]+\.0+$")),
    "url": _Kind(_read_url, _matches(r"^https?://[!-~]+$"), FULLWIDTH_ASCII),
    "email": _Kind(_read_email, _matches(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+$"),
                   FULLWIDTH_ASCII),
}
_LOCAL_GOVERNMENT_CODE = _Kind(_read_local_government_code, _local_government_code_is_canonical)
_ADDRESS = _Kind(_read_address, _address_is_canonical, width_fold={})


def kind_for(col_type: str, column_name: str) -> _Kind:
    """How a column is normalised: by its declared type, and by its name for codes and addresses."""
    if col_type not in _KINDS:
        raise ValueError(f"unknown column type {col_type!r}; expected one of {sorted(_KINDS)}")
    if col_type == "code" and is_local_government_code_column(column_name):
        return _LOCAL_GOVERNMENT_CODE
    if col_type == "string" and is_address_column(column_name):
        return _ADDRESS
    return _KINDS[col_type]


def is_local_government_code_column(column_name: str) -> bool:
    """True for the standard's code columns, also when a dash-like character replaced ー (コ―ド)."""
    name = re.sub(r"[‐‑‒–—―−－ｰ-]", "ー", unicodedata.normalize("NFKC", column_name).strip())
    return name in localgov.LOCAL_GOVERNMENT_CODE_COLUMNS


def normalise_column(raw: pl.Series, col_type: str, *, column_name: str = "") -> ColumnResult:
    """Normalise a whole column to the canonical text of ``col_type`` (see the module docstring).

    A ``code`` column named like a 全国地方公共団体コード column (``column_name``, or the series' name)
    is read with :func:`kouiki.localgov.normalise_code` and is invalid without a correct check digit.
    """
    kind = kind_for(col_type, column_name or raw.name)
    text = raw if raw.dtype == pl.String else raw.cast(pl.String)
    # Anchored canonical patterns admit no surrounding whitespace, so the column as a whole is never
    # stripped: only the cells that are not canonical as they stand are, on the slow path.
    canonical = pl.DataFrame({"v": text}).select(
        (pl.col("v").str.len_bytes() > 0) & kind.canonical(pl.col("v"))).to_series().fill_null(False)
    rows = (text.is_not_null() & ~canonical).arg_true()
    values = text.clone()
    invalid = pl.repeat(False, len(text), dtype=pl.Boolean, eager=True)
    changed = invalid.clone()
    rule_counts: dict[str, int] = {}
    if rows.len():
        cells = _normalise_cells(text.gather(rows), kind, col_type)
        values = values.scatter(rows, cells.get_column("new"))
        invalid = invalid.scatter(rows, cells.get_column("bad"))
        changed = changed.scatter(rows, cells.get_column("changed"))
        counts = cells.get_column("rule").drop_nulls().value_counts()
        rule_counts = dict(zip(counts.get_column("rule").to_list(), counts.get_column("count").to_list(),
                               strict=True))
    return ColumnResult(values=values.alias(raw.name), changed=changed.alias(raw.name),
                        rule_counts=rule_counts, invalid=invalid.alias(raw.name))


def _normalise_cells(raw: pl.Series, kind: _Kind, col_type: str) -> pl.DataFrame:
    """(new, bad, changed, rule) for the cells that are not canonical as written, in their order."""
    stripped = raw.str.strip_chars()
    filled = pl.select(pl.when(stripped != "").then(stripped)).to_series().alias("v")
    cells = kind.vectorised(filled) if kind.vectorised is not None else _fold_then_read(filled, kind, col_type)
    # blank → None is no change; a placeholder (not blank) → None is one
    changed = (pl.col("new") != pl.col("raw")).fill_null(False) | (
        pl.col("new").is_null() & pl.col("v").is_not_null())
    return cells.with_columns(raw=raw).select(
        "new", bad=pl.col("bad").fill_null(False), changed=changed,
        rule=pl.when(changed).then(pl.coalesce(pl.when((pl.col("new") != pl.col("v")) | pl.col("new").is_null())
                                               .then("rule"),
                                               pl.lit(WHITESPACE_STRIPPED))),
    )


def _fold_then_read(values: pl.Series, kind: _Kind, col_type: str) -> pl.DataFrame:
    """(v, new, rule, bad) per cell: a vectorised width fold first; Python once per distinct leftover."""
    frame = pl.DataFrame({"v": values})
    if kind.width_fold:
        wide = f"[{re.escape(''.join(kind.width_fold))}]"
        v = pl.col("v")
        folded = v.str.replace_many(dict(kind.width_fold))
        frame = frame.with_columns(f=pl.when(v.str.contains(wide)).then(folded))
    else:
        frame = frame.with_columns(f=pl.lit(None, pl.String))
    frame = frame.with_columns(folds=kind.canonical(pl.col("f")).fill_null(False))
    leftover = frame.filter(~pl.col("folds")).get_column("v").drop_nulls().unique()
    if leftover.len():
        frame = frame.join(_read_each(leftover, kind, col_type), on="v", how="left", maintain_order="left")
    else:
        frame = frame.with_columns(new=pl.lit(None, pl.String), rule=pl.lit(None, pl.String),
                                   bad=pl.lit(False))
    folds = pl.col("folds")
    return frame.select(
        "v",
        new=pl.when(folds).then("f").otherwise("new"),
        rule=pl.when(folds).then(pl.lit(kind.width_rule)).otherwise("rule"),
        bad=pl.when(folds).then(pl.lit(False)).otherwise("bad"),
    )


# Typed columns where a lone dash stands for "none" (the standard's none is an empty cell). Not text columns,
# where a dash may be the value, nor flags, whose reader already reads '-' as "no".
PLACEHOLDER_TYPES = frozenset({"phone", "date", "time", "number", "integer", "postal_code", "url", "email", "code"})
_DASH_PLACEHOLDER = re.compile(r"[-‐‑‒–—―−ー－ｰ─━]+")


def _read_each(values: pl.Series, kind: _Kind, col_type: str) -> pl.DataFrame:
    read = kind.read
    if col_type == "date" and _column_is_us_ordered(values):
        def read(text: str) -> tuple[str | None, str | None]:
            return _read_date(text, ambiguous_is_us=True)
    texts = values.to_list()
    placeholders = col_type in PLACEHOLDER_TYPES
    results = [("", PLACEHOLDER_EMPTIED) if placeholders and _DASH_PLACEHOLDER.fullmatch(text) else read(text)
               for text in texts]
    return pl.DataFrame(
        {
            "v": texts,
            # '' from a reader is the empty value: None, except a flag's '' (the standard's "no")
            "new": [text if value is None else (None if value == "" and col_type != "flag" else value)
                    for text, (value, _) in zip(texts, results, strict=True)],
            "rule": [rule for _, rule in results],
            "bad": [value is None for value, _ in results],
        },
        schema={"v": pl.String, "new": pl.String, "rule": pl.String, "bad": pl.Boolean},
    )


def _column_is_us_ordered(values: pl.Series) -> bool:
    """m/d/yyyy with day > 12 somewhere, and never d/m/yyyy with the first number > 12."""
    orders = [(int(m[1]), int(m[2])) for text in values.to_list() if (m := _SLASH_MDY.fullmatch(_fold(text)))]
    surely_us = any(first <= 12 < second for first, second in orders)
    return surely_us and not any(first > 12 for first, _ in orders)


# --- the full address (所在地_連結表記) --------------------------------------------------------------

def prefix_full_addresses(values: pl.DataFrame, code_columns: list[str],
                          city_code: str | None = None) -> tuple[pl.DataFrame, str, int]:
    """The full address (所在地_連結表記, or a legacy-only dataset's 住所) starting with its prefecture and
    municipality, taken from the row's code.

    The code is the first valid one of ``code_columns`` (所在地_全国地方公共団体コード first: where the
    facility is), else ``city_code`` (the uploader). Returns the frame, the address column and how many cells
    changed; see :func:`kouiki.localgov.with_address_prefix` for what is left as written."""
    column = next((c for c in FULL_ADDRESS_COLUMNS if c in values.columns), "")
    if not column:
        return values, column, 0
    codes = [pl.when(_local_government_code_is_canonical(pl.col(c))).then(pl.col(c))
             for c in code_columns if c in values.columns and c != column]
    pairs = values.select(
        address=pl.col(column),
        code=pl.coalesce(*codes, pl.lit(city_code, pl.String)) if codes else pl.lit(city_code, pl.String),
    )
    prefectures = "|".join(sorted({gov.prefecture for gov in localgov.all_local_governments()}))
    candidates = pairs.filter(pl.col("address").is_not_null() & pl.col("code").is_not_null()
                              & ~pl.col("address").str.contains(f"^(?:{prefectures})")).unique()
    if candidates.height == 0:
        return values, column, 0
    candidates = candidates.with_columns(new=pl.Series([
        localgov.with_address_prefix(address, code) for address, code in candidates.iter_rows()], dtype=pl.String))
    joined = pairs.join(candidates, on=["address", "code"], how="left", maintain_order="left", nulls_equal=False)
    changed = joined.get_column("new").is_not_null() & (joined.get_column("new") != joined.get_column("address"))
    new = pl.select(pl.when(changed).then(joined.get_column("new")).otherwise(joined.get_column("address")))
    return values.with_columns(new.to_series().alias(column)), column, int(changed.sum())
