"""The column dictionary in Japanese: the schema registry describes types, formats and columns in English (its
YAML files are compiled from the standard's definition books); ``glossary_ja.yaml`` gives the Japanese the
Japanese pages show. A text the glossary lacks is shown in English, marked ``lang="en"`` for screen readers,
and ``tests/test_portal_glossary.py`` fails until it is added.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from portal.catalogue import ColumnEntry

GLOSSARY = Path(__file__).resolve().parent / "glossary_ja.yaml"
ENGLISH_WORD = re.compile(r"[a-z]{3,}")   # "URI" and "hh:mm" are notation; English prose has lower-case words


@dataclass(frozen=True)
class Glossary:
    types: dict[str, str]
    formats: dict[str, str]          # one English part of a format (formats are "日本語; English" or English)
    descriptions: dict[str, str]

    def format_ja(self, text: str) -> str | None:
        """The Japanese of a format: each "; "-separated part translated (parts already in Japanese kept)."""
        if text in self.formats:
            return self.formats[text]
        parts = []
        for part in (p.strip() for p in text.split(";")):
            translated = self.formats.get(part)
            if translated is None and ENGLISH_WORD.search(part):
                return None
            if part:
                parts.append(translated or part)
        return "。".join(dict.fromkeys(parts))


@functools.cache
def glossary() -> Glossary:
    raw = yaml.safe_load(GLOSSARY.read_text(encoding="utf-8")) or {}
    return Glossary(types=dict(raw.get("types") or {}), formats=dict(raw.get("formats") or {}),
                    descriptions=dict(raw.get("descriptions") or {}))


@dataclass(frozen=True)
class LocalColumn:
    """A column dictionary row as one page shows it; ``*_lang`` is set where the text is not the page's."""

    name: str
    type: str
    required: bool
    format: str
    description: str
    format_lang: str = ""
    description_lang: str = ""


def localise(columns: list[ColumnEntry], lang: str) -> list[LocalColumn]:
    """The rows in ``lang``: Japanese from the glossary, English (marked) where it has no entry."""
    words = glossary()
    rows = []
    for column in columns:
        if lang == "en":
            rows.append(LocalColumn(column.name, column.type, column.required, column.format, column.description))
            continue
        fmt = words.format_ja(column.format) if column.format else ""
        description = words.descriptions.get(column.description) if column.description else ""
        rows.append(LocalColumn(
            name=column.name, type=words.types.get(column.type, column.type), required=column.required,
            format=column.format if fmt is None else fmt, format_lang="en" if fmt is None else "",
            description=column.description if description is None else description,
            description_lang="en" if description is None else ""))
    return rows
