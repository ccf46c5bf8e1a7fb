"""Search by reading: the kanji words of a dataset's names and keywords also indexed in kana (避難 → ひなん),
from the reading list ``readings.yaml``. Queries are compared after NFKC and katakana → hiragana
(``catalogue.normalise_text``), so ひなん, ヒナン and ﾋﾅﾝ all find 避難.
"""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

import jaconv
import yaml

READINGS = Path(__file__).resolve().parent / "readings.yaml"


@functools.cache
def reading_list() -> dict[str, str]:
    """Word → reading (hiragana), from readings.yaml."""
    raw = yaml.safe_load(READINGS.read_text(encoding="utf-8")) or {}
    words = raw.get("words") or {}
    return {unicodedata.normalize("NFKC", str(k)): jaconv.kata2hira(str(v)) for k, v in words.items()}


@functools.cache
def _longest() -> int:
    return max((len(w) for w in reading_list()), default=0)


def reading(text: str) -> str:
    """``text`` with every listed word replaced by its reading, longest word first (指定緊急避難場所一覧 →
    していきんきゅうひなんばしょいちらん); characters the list does not know are kept."""
    words = reading_list()
    text = unicodedata.normalize("NFKC", text)
    out: list[str] = []
    position = 0
    while position < len(text):
        for size in range(min(_longest(), len(text) - position), 0, -1):
            word = text[position:position + size]
            if word in words:
                out.append(words[word])
                position += size
                break
        else:
            out.append(text[position])
            position += 1
    return jaconv.kata2hira("".join(out))


def with_readings(*texts: str) -> str:
    """The texts and, where the list changes them, their readings: what a search indexes."""
    parts = [t for t in texts if t]
    parts += [r for t in parts if (r := reading(t)) != jaconv.kata2hira(unicodedata.normalize("NFKC", t))]
    return "\n".join(parts)
