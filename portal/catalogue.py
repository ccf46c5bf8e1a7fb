"""What the portal knows about each published dataset: its latest release joined with the schema registry
(descriptions, column dictionary), the member cities' names and its theme; and the dataset search.

Search is for Japanese first: text is compared after NFKC (full-width Latin and digits, half-width kana),
case folding and katakana→hiragana, so ``ＡＥＤ``, ``aed`` and ``AED`` match, as do ``ヒナン`` and ``ひなん``.
Every word of the query must occur in the title (ja/en), the description (ja/en), the column names, the
theme or the cities' names, or in the kana reading of one of them (``portal/readings.yaml``: ひなん → 避難).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import jaconv

from kouiki.localgov import lookup
from kouiki.model import Dataset
from portal.readings import with_readings
from portal.store import Release, ReleaseStore
from portal.themes import Theme, theme_of

log = logging.getLogger(__name__)


def normalise_text(text: str) -> str:
    """NFKC, case-folded, katakana as hiragana: the form both queries and searched text are compared in."""
    return jaconv.kata2hira(unicodedata.normalize("NFKC", text).casefold())


def query_terms(query: str) -> list[str]:
    """The words of a query (split on any space, the ideographic space included)."""
    return [t for t in normalise_text(query).split() if t]


@dataclass(frozen=True)
class City:
    code: str
    name: str          # 市川市 (prefecture + municipality when the list knows it: full_name)
    full_name: str     # 千葉県市川市
    rows: int

    def label(self, lang: str) -> str:
        return f"{self.name} ({self.code})" if lang == "en" else self.name


@dataclass(frozen=True)
class ColumnEntry:
    """One row of the column dictionary."""

    name: str
    type: str              # the standard's type (string, code, number, flag, …) or "string" when unknown
    required: bool
    level: str
    format: str
    description: str


def city(code: str, rows: int = 0) -> City:
    government = lookup(code)
    if government is None:
        return City(code=code, name=code, full_name=code, rows=rows)
    return City(code=code, name=government.city or government.prefecture, full_name=government.name,
                rows=rows)


def registry_dataset(dataset_id: str) -> Dataset | None:
    """The dataset's definition from the schema registry, or None when it is unknown or the registry is broken
    (the portal still serves the release; it only loses descriptions)."""
    try:
        from expectations.registry import default_registry
        registry = default_registry()
        return registry.datasets.get(dataset_id)
    except Exception as exc:  # a broken registry must not take the public portal down
        log.warning("portal: schema registry unavailable: %s", exc)
        return None


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset as listed: its latest release plus what the registry says about it."""

    release: Release
    schema: Dataset | None

    @property
    def id(self) -> str:
        return self.release.dataset_id

    @property
    def theme(self) -> Theme:
        return theme_of(self.id)

    def title(self, lang: str) -> str:
        return self.release.title_en if lang == "en" else self.release.title_ja

    def description(self, lang: str) -> str:
        if self.schema is None:
            return ""
        if lang == "en":
            return self.schema.description_en or self.schema.description_ja
        return self.schema.description_ja or self.schema.description_en

    @cached_property
    def cities(self) -> list[City]:
        return [city(code, rows) for code, rows in sorted(self.release.rows_by_city.items())]

    @property
    def city_codes(self) -> set[str]:
        return set(self.release.rows_by_city)

    @property
    def code_column(self) -> str | None:
        """The column holding each row's city code, when the release has it."""
        candidates = [self.schema.code_column] if self.schema else []
        candidates.append("全国地方公共団体コード")
        return next((c for c in candidates if c in self.release.columns), None)

    def column_dictionary(self) -> list[ColumnEntry]:
        """Every public column of the release, in order, described by the registry where it knows it."""
        defined = {c.name: c for c in self.schema.canonical.columns} if self.schema else {}
        entries = []
        for name in self.release.columns:
            col = defined.get(name)
            entries.append(ColumnEntry(
                name=name, type=col.type if col else "string", required=bool(col and col.required),
                level=col.level if col else "unknown", format=(col.format or "") if col else "",
                description=col.description if col else ""))
        return entries

    @cached_property
    def search_text(self) -> str:
        parts: list[str] = [self.id, self.release.title_ja, self.release.title_en, self.description("ja"),
                            self.description("en"), self.theme.ja, self.theme.en, *self.release.columns]
        parts += [c.full_name for c in self.cities]
        # the kana readings of the names and keywords (ひなん finds 避難): portal/readings.yaml
        return normalise_text(with_readings(*parts))

    def matches(self, terms: Iterable[str]) -> bool:
        return all(term in self.search_text for term in terms)


def dataset_entries(store: ReleaseStore) -> list[DatasetEntry]:
    """Every dataset with a complete release, sorted by id."""
    entries = []
    for dataset_id in store.dataset_ids():
        release = store.latest(dataset_id)
        if release is not None:
            entries.append(DatasetEntry(release=release, schema=registry_dataset(dataset_id)))
    return entries


def find_datasets(entries: Iterable[DatasetEntry], query: str = "", kind: str = "", city_code: str = "",
                  ) -> list[DatasetEntry]:
    """The entries matching every word of ``query``, of theme ``kind`` and published by ``city_code``."""
    terms = query_terms(query)
    return [e for e in entries
            if e.matches(terms) and (not kind or e.theme.id == kind)
            and (not city_code or city_code in e.city_codes)]
