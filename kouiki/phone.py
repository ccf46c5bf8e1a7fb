"""Japanese telephone numbers: read every valid form a city writes, normalise it, check it by its digits.

A number is valid when its digits (separators and extension removed) are a domestic number of the national
numbering plan:

* 10 digits, the second and third not 0 — fixed lines with a 市外局番 of 2–5 digits (03-3430-1111,
  0466-22-1234, 01267-2-1234), 0120 / 0570 / 0180 / 0990 (フリーダイヤル, ナビダイヤル …);
* 11 digits starting 0X0 — 020 (M2M), 050 (IP phone), 060 (FMC), 070 / 080 / 090 (mobile), 0800 (free dial).

Written with hyphens, spaces, parentheses ((047)325-4758, 047(325)4758), full-width digits, a label (TEL:),
a ``+81`` prefix, an extension (内線12 / ext.12 / （内）12) or a note in words ((こども未来課), 公園緑地課 …).
The normalised number keeps the city's grouping in half-width (spaces become hyphens), an extension as
`` 内線<digits>``; a ``+81`` number becomes domestic; a note in words is dropped (the raw cell keeps it).

:data:`PHONE_SHAPE` and :data:`PHONE_DIGITS` are the canonical form as regexes (RE2-compatible: DuckDB runs
them in validation); :func:`phone_digits_sql` is the SQL that strips a value to its digits.
"""

from __future__ import annotations

import re
import unicodedata

import polars as pl

# rule names (stable: reports count them)
PHONE_LABEL_REMOVED = "phone-label-removed"     # TEL:03-…
PHONE_SPACES = "phone-spaces"                   # 03 3430 1111
PHONE_NOTE_REMOVED = "phone-note-removed"       # 0973-22-8317（こども未来課）, 公園緑地課 (047)712-6367
PHONE_EXTENSION = "phone-extension"             # 03-1234-5678 ext.12 → 03-1234-5678 内線12
PHONE_INTERNATIONAL = "phone-international"     # +81-3-1234-5678 → 03-1234-5678

EXTENSION_MARK = " 内線"
_GROUPS = r"(?:0[0-9]+(?:-[0-9]+){0,3}|\(0[0-9]+\)[0-9]+(?:-[0-9]+)?|0[0-9]+\([0-9]+\)[0-9]+)"
PHONE_SHAPE = rf"^{_GROUPS}(?:{EXTENSION_MARK}[0-9]+)?$"
PHONE_DIGITS = r"^(?:0[1-9][1-9][0-9]{7}|0[25-9]0[0-9]{8})$"
_EXTENSION_TAIL = rf"{EXTENSION_MARK}[0-9]+$"

_DASHES = str.maketrans({c: "-" for c in "‐‑‒–—―−ー－ｰ─"})
_LABEL = re.compile(r"^(?:TEL|Tel|tel|電話番号|電話|☎|℡)\s*[:.]?\s*")
# an extension at the end: 内線12, 内12, (内)12, (内線12), ext.12, ext 12, x12
_EXTENSION = re.compile(r"\s*\(?\s*(?:内線|内|ext\.?|EXT\.?|Ext\.?|x)\s*\)?\s*[:.]?\s*([0-9]{1,6})\s*\)?\s*$")
# a run of digits with separators between them, optionally opened by ( or +
_NUMBERISH = re.compile(r"[+(]?[0-9](?:[0-9]|[-\s()]+(?=[0-9(]))*\)?")
_INTERNATIONAL = re.compile(r"^\+\s*81\s*-?\s*(?:\(0\)\s*-?\s*)?")
_SPACE_AROUND_PUNCT = re.compile(r"\s*([()\-])\s*")
_SPACE_BETWEEN_DIGITS = re.compile(r"(?<=[0-9])\s+(?=[0-9(])")
_SHAPE_RE = re.compile(PHONE_SHAPE)
_DIGITS_RE = re.compile(PHONE_DIGITS)


def fold(text: str) -> str:
    """NFKC (full-width → half-width, （）→ (), ℡ → TEL) and every dash variant → '-'."""
    return unicodedata.normalize("NFKC", text).translate(_DASHES).strip()


def is_phone(text: str) -> bool:
    """True for a normalised number: the canonical shape and a valid count of digits for its prefix."""
    if not _SHAPE_RE.fullmatch(text):
        return False
    number = re.sub(_EXTENSION_TAIL, "", text)
    return bool(_DIGITS_RE.fullmatch(re.sub(r"[^0-9]", "", number)))


def read_phone(text: str) -> tuple[str | None, str | None]:
    """(normalised number or None, rule) for one stripped, non-empty cell; None when it is not exactly one
    valid number (なし, 554-4111 without 市外局番, two numbers, digits in the note)."""
    folded = fold(text)
    rules: list[str] = []
    if label := _LABEL.match(folded):
        folded = folded[label.end():]
        rules.append(PHONE_LABEL_REMOVED)
    extension = ""
    if ext := _EXTENSION.search(folded):
        extension = ext[1]
        folded = folded[:ext.start()]
    candidates = [m for m in _NUMBERISH.finditer(folded) if sum(c.isdigit() for c in m[0]) >= 2]
    if len(candidates) != 1:
        return None, None
    number = candidates[0]
    note = (folded[:number.start()] + folded[number.end():]).strip(" ()-、,:：")
    if any(c.isdigit() for c in note):
        return None, None
    if note:
        rules.append(PHONE_NOTE_REMOVED)
    value = number[0].strip()
    if value.startswith("(") and ")" not in value[1:]:
        value = value[1:]          # '(' that opened a note, not an area code
    if international := _INTERNATIONAL.match(value):
        value = "0" + value[international.end():].lstrip("-")
        rules.append(PHONE_INTERNATIONAL)
    spaced = _SPACE_BETWEEN_DIGITS.sub("-", _SPACE_AROUND_PUNCT.sub(r"\1", value))
    if spaced != value:
        value = spaced
        rules.append(PHONE_SPACES)
    if extension:
        if ext is not None and ext[0].strip() != f"{EXTENSION_MARK.strip()}{extension}":
            rules.append(PHONE_EXTENSION)
        value += f"{EXTENSION_MARK}{extension}"
    if not is_phone(value):
        return None, None
    return value, _most_specific(rules)


_RULE_ORDER = (PHONE_INTERNATIONAL, PHONE_NOTE_REMOVED, PHONE_EXTENSION, PHONE_LABEL_REMOVED, PHONE_SPACES)


def _most_specific(rules: list[str]) -> str | None:
    """One rule per changed cell (reports count each cell once): the most telling repair."""
    return next((r for r in _RULE_ORDER if r in rules), None)


def is_phone_expr(v: pl.Expr) -> pl.Expr:
    """:func:`is_phone` for a whole column at once (polars)."""
    digits = v.str.replace(_EXTENSION_TAIL, "").str.replace_all(r"[^0-9]", "")
    return v.str.contains(PHONE_SHAPE) & digits.str.contains(PHONE_DIGITS)


def phone_digits_sql(column_sql: str) -> str:
    """DuckDB expression: the digits of a phone value, its extension removed (for the PHONE_DIGITS test)."""
    return f"regexp_replace(regexp_replace({column_sql}, '{_EXTENSION_TAIL}', ''), '[^0-9]', '', 'g')"
