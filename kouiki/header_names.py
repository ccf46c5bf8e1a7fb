"""One spelling per header, and the key two headers share when they are the same header.

A shared module (docs/architecture.md): it imports nothing of the project, so both the schema registry
(``expectations.registry``, which checks that aliases name known columns) and header mapping (``intake.headers``)
use it without importing each other.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# Dash-like characters left after NFKC. Between kana they are the prolonged sound mark ー (コ―ド → コード),
# elsewhere a hyphen (0-4歳). U+2500 (box drawing) is a common ー look-alike typed from IME symbol lists.
_DASHES = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2500\u2501\u30fc\ufe63\uff0d\uff70")
_INVISIBLE = frozenset("\ufeff\u200b\u200c\u200d\u2060")


def _is_kana(char: str) -> bool:
    return "\u3041" <= char <= "\u3096" or "\u30a1" <= char <= "\u30fa" or char in "\u30fc\u30fd\u30fe"


def normalise_header(text: str) -> str:
    """One spelling per header: NFKC (width, （）→()), dashes unified, spaces/BOM removed; case kept."""
    chars = [c for c in unicodedata.normalize("NFKC", text) if not c.isspace() and c not in _INVISIBLE]
    out: list[str] = []
    for i, char in enumerate(chars):
        if char in _DASHES:
            char = "ー" if _is_prolonged_sound(char, out[-1] if out else "", chars[i + 1: i + 2]) else "-"
        out.append(char)
    return "".join(out)


def _is_prolonged_sound(dash: str, before: str, after: list[str]) -> bool:
    """ー after kana (センター, コ―ド typed with U+2015); a hyphen elsewhere (0-4歳, データ-ID)."""
    if not _is_kana(before):
        return False
    return dash == "ー" or not (after and after[0].isascii() and after[0].isalnum())


@lru_cache(maxsize=16384)   # the same few thousand names are compared again for every variant
def header_key(text: str) -> str:
    """What two headers must share to be the same header (normalised, case-insensitive: URL = url)."""
    return normalise_header(text).casefold()
