"""Japan's local government codes (全国地方公共団体コード) and the reference list shipped with kouiki.

A code is 6 half-width digits: the 5-digit JIS X 0401/0402 code (2 digits prefecture + 3 digits
municipality) followed by a check digit. Real files lose the leading zero (宇都宮市 writes ``92011`` for
``092011``), drop the check digit (高松市 ``37201``) or carry Excel's float text (``122033.0``);
:func:`normalise_code` repairs those and says which repair it made.

The reference list (``kouiki/data/local_governments.csv``, 1,788 rows) holds the 47 prefectures and every
municipality incl. Tokyo's special wards, but not the wards of designated cities (札幌市中央区 011011 …):
those are still valid codes, so validity is decided by the check digit, and the list only breaks ties.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jaconv

# d6 = (11 - ((6*d1 + 5*d2 + 4*d3 + 3*d4 + 2*d5) mod 11)) mod 10  (standards/_common.yaml)
CHECK_DIGIT_WEIGHTS = (6, 5, 4, 3, 2)

# Columns holding a 全国地方公共団体コード (_common.yaml local_government_code.columns).
LOCAL_GOVERNMENT_CODE_COLUMNS = frozenset({
    "全国地方公共団体コード", "所在地_全国地方公共団体コード",
    "市区町村コード", "都道府県コード又は市区町村コード",
})

_SIX_DIGITS = re.compile(r"[0-9]{6}")
_DIGITS = re.compile(r"[0-9]{1,6}")
_FLOAT_TEXT = re.compile(r"([0-9]+)\.0*")      # "122033.0": a numeric Excel cell written out as text
_PREFECTURES = range(1, 48)                  # 01 北海道 … 47 沖縄県

RULE_CHECK_DIGIT_ADDED = "check-digit-added"
RULE_LEADING_ZERO_RESTORED = "leading-zero-restored"
RULE_NUMERIC_TEXT = "numeric-text"
RULE_FULLWIDTH_DIGITS = "fullwidth-digits"
RULE_WHITESPACE_STRIPPED = "whitespace-stripped"


@dataclass(frozen=True)
class LocalGovernment:
    """One row of the reference list; kana are full-width katakana (the list ships them half-width)."""

    code: str
    prefecture: str
    city: str               # '' for a prefecture itself
    prefecture_kana: str
    city_kana: str

    @property
    def name(self) -> str:
        """地方公共団体名 as written in the standard, e.g. 千葉県市川市 (or 北海道 for the prefecture)."""
        return self.prefecture + self.city

    @property
    def is_prefecture(self) -> bool:
        return self.code[2:5] == "000"


def check_digit_of(digits: Sequence[Any]) -> Any:
    """The check-digit formula over the first five digits, written once for every engine that checks it.

    ``digits`` are ints, polars expressions or SQLAlchemy column expressions (each overloads + * - %), so the
    result is an int, or an expression of the same kind that computes the digit row by row.
    """
    weighted = sum(w * d for w, d in zip(CHECK_DIGIT_WEIGHTS, digits[:5], strict=True))
    return (11 - weighted % 11) % 10


def check_digit(code5: str) -> str:
    """The 6th digit of a 5-digit JIS code, e.g. '13219' → '5' (see :func:`check_digit_of`)."""
    if len(code5) != 5 or not code5.isascii() or not code5.isdigit():
        raise ValueError(f"expected 5 half-width digits, got {code5!r}")
    return str(check_digit_of([int(d) for d in code5]))


def is_valid_code(code: str) -> bool:
    """True for 6 half-width digits whose last digit is the check digit of the first five."""
    return (isinstance(code, str) and _SIX_DIGITS.fullmatch(code) is not None
            and check_digit(code[:5]) == code[5])


def normalise_code(raw: str) -> tuple[str | None, str | None]:
    """Return ``(6-digit code, rule applied)``, or ``(None, None)`` when no valid code can be made.

    ``rule`` is None when the text was already the code. A 5-digit value has two readings: a JIS code
    without its check digit (``37201`` → ``372013``) or a 6-digit code that lost its leading zero
    (``92011`` → ``092011``). The reading found in the reference list wins (a designated city's ward
    counts as found); when both are found (12 pairs, e.g. ``12203`` = 市川市 122033 or 012203) the
    JIS reading wins, since a zero can only be lost by prefectures 01–09 while the 5-digit JIS form is
    the usual way to write any code.
    """
    if raw is None:
        return None, None
    text = str(raw).strip()
    rule: str | None = RULE_WHITESPACE_STRIPPED if text != str(raw) else None
    halfwidth = jaconv.z2h(text, kana=False, ascii=True, digit=True)
    if halfwidth != text:
        rule = RULE_FULLWIDTH_DIGITS
    float_text = _FLOAT_TEXT.fullmatch(halfwidth)
    digits = float_text.group(1) if float_text else halfwidth
    if float_text:
        rule = RULE_NUMERIC_TEXT
    if not digits.isascii() or _DIGITS.fullmatch(digits) is None:
        return None, None
    if len(digits) == 6:
        return (digits, rule) if is_valid_code(digits) else (None, None)
    if len(digits) == 5:
        return _complete_five_digits(digits)
    if len(digits) == 4:   # a 5-digit JIS code of prefectures 01–09 that also lost its zero
        completed = _with_check_digit("0" + digits)
        return (completed, RULE_CHECK_DIGIT_ADDED) if completed else (None, None)
    return None, None


def _complete_five_digits(digits: str) -> tuple[str | None, str | None]:
    readings: list[tuple[str, str]] = []
    jis = _with_check_digit(digits)
    if jis:
        readings.append((jis, RULE_CHECK_DIGIT_ADDED))
    lost_zero = "0" + digits
    if digits[0] != "0" and is_valid_code(lost_zero):
        readings.append((lost_zero, RULE_LEADING_ZERO_RESTORED))
    for is_known in (_in_reference_list, _is_designated_city_ward):
        known = [reading for reading in readings if is_known(reading[0])]
        if known:
            return known[0]
    return readings[0] if readings else (None, None)


def _with_check_digit(code5: str) -> str | None:
    """The 6-digit code for a 5-digit JIS code, or None when its prefecture part is not 01–47."""
    if int(code5[:2]) not in _PREFECTURES:
        return None
    return code5 + check_digit(code5)


def _in_reference_list(code: str) -> bool:
    return code in _by_code()


def _is_designated_city_ward(code: str) -> bool:
    """Wards get the municipal numbers 101–199 right after their designated city's x00/x30/x40/x50."""
    municipal = int(code[2:5])
    return 100 < municipal < 200 and code[:2] in _prefectures_with_designated_cities()


@functools.cache
def _prefectures_with_designated_cities() -> frozenset[str]:
    return frozenset(gov.code[:2] for gov in all_local_governments() if 100 <= int(gov.code[2:5]) < 200
                     and gov.code[:2] != "13")   # 13101–13123 are Tokyo's special wards, listed themselves


def other_municipality(code: str, own_code: str) -> bool:
    """Whether ``code`` names a local government other than ``own_code``: a municipality in the national list,
    or another prefecture. The uploader's own prefecture and anything not in the list (typos, wards of
    designated cities) count as the uploader's own; validation reports malformed codes."""
    if code == own_code:
        return False
    known = lookup(code)
    if known is None:
        return False
    return not (known.is_prefecture and code[:2] == own_code[:2])


def lookup(code: str) -> LocalGovernment | None:
    """The reference entry of an exact 6-digit code, or None (not normalised: see normalise_code)."""
    return _by_code().get(code)


def all_local_governments() -> list[LocalGovernment]:
    """Every entry of the reference list, in its order (by code)."""
    return list(_load())


@functools.cache
def _by_code() -> dict[str, LocalGovernment]:
    return {gov.code: gov for gov in _load()}


@functools.cache
def _load() -> tuple[LocalGovernment, ...]:
    text = resources.files("kouiki").joinpath("data", "local_governments.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO(text))
    return tuple(
        LocalGovernment(
            code=row["code"],
            prefecture=row["prefecture"],
            city=row["city"],
            prefecture_kana=_fullwidth_kana(row["prefecture_kana"]),
            city_kana=_fullwidth_kana(row["city_kana"]),
        )
        for row in rows
    )


def _fullwidth_kana(text: str) -> str:
    return jaconv.h2z(text, kana=True, ascii=False, digit=False)


# ------------------------------------------------------------------------------------------ addresses
# 所在地_連結表記 is the whole address, prefecture first (the standard's example: 北海道札幌市厚別区青葉町一丁目…).
# Cities often leave out the prefecture (狛江市和泉本町…) or both (和泉本町…); the row's code says which they are.

_NAME_START = re.compile(r"^[\u3005\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")   # kanji or kana: a place name
_DISTRICT_START = re.compile(r"^[^\s0-9]{1,6}郡")                                # 印旛郡酒々井町…


def address_prefix(code: str) -> tuple[str, str] | None:
    """(prefecture, municipality) a full address in this government starts with, e.g. ('東京都', '狛江市').

    A prefecture's code gives ('東京都', ''); a ward of a designated city (not in the list) gives its city
    (141011 → ('神奈川県', '横浜市'), the ward's name follows in the address). None for an unknown code."""
    gov = lookup(code)
    if gov is None and is_valid_code(code) and _is_designated_city_ward(code):
        cities = [g for g in _load() if g.code[:2] == code[:2] and 100 <= int(g.code[2:5]) < int(code[2:5])]
        gov = cities[-1] if cities else None
    return (gov.prefecture, gov.city) if gov is not None else None


@functools.cache
def _prefecture_start() -> re.Pattern[str]:
    names = sorted({gov.prefecture for gov in _load()}, key=len, reverse=True)
    return re.compile("^(?:" + "|".join(map(re.escape, names)) + ")")


@functools.cache
def _municipality_start(prefecture: str) -> re.Pattern[str]:
    """Any municipality of the prefecture at the start of an address, after an optional 郡."""
    names = sorted({gov.city for gov in _load() if gov.prefecture == prefecture and gov.city}, key=len, reverse=True)
    return re.compile(r"^(?:[^\s0-9]{1,6}郡)?(?:" + "|".join(map(re.escape, names)) + ")")


def starts_with_prefecture(address: str) -> bool:
    return _prefecture_start().match(address) is not None


def with_address_prefix(address: str, code: str) -> str:
    """The address with what it leaves out of '<prefecture><municipality>' put in front, from ``code``.

    狛江市和泉本町1-1 (132195) → 東京都狛江市和泉本町1-1; 和泉本町1-1 → 東京都狛江市和泉本町1-1; an address that
    names another municipality of the prefecture (a facility just over the border) gets only the prefecture.
    Left as written: an address with a prefecture already, one that does not start with a place name
    (〒272-…, a number) and any address when the code is unknown."""
    prefix = address_prefix(code)
    if prefix is None or not _NAME_START.match(address) or starts_with_prefecture(address):
        return address
    prefecture, city = prefix
    if not city or _municipality_start(prefecture).match(address) or _DISTRICT_START.match(address):
        return prefecture + address
    return prefecture + city + address
