"""Header rows: normalise spellings, recognise the dataset and layout, map the columns to canonical names.

A file's header row is compared with every variant (layout) of every dataset in the registry. Headers are
compared after :func:`normalise_header` (width, brackets, spaces, dash characters) and through the shared
alias table (``expectations/schemas/_aliases.yaml``), so 焼津市's ``都道府県コ―ド又は市区町村コ―ド``
(U+2015) is the legacy code column, and a legacy ``住所`` becomes the current ``所在地_連結表記``.

Score of a layout: the harmonic mean (F1) of
  * coverage — the weighted share of the layout's columns found in the file, where required columns weigh 3,
    recommended 1.5, others 1, each multiplied by how distinctive the column is (columns that every dataset
    has, such as 名称 or 備考, weigh least: an inverse document frequency over the registry), and
  * precision — the share of the file's (non-blank) headers that belong to the layout,
plus :data:`FILE_NAME_BONUS` when the file name carries the dataset's slug (``222127_aed.csv``) or its
Japanese name. A score below :data:`MIN_GOOD_SCORE` means "no dataset matched well": ask the uploader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import PurePath
from typing import TYPE_CHECKING

from kouiki.header_names import header_key, normalise_header
from kouiki.problems import IntakeError, Problem

if TYPE_CHECKING:
    from expectations.registry import Registry
    from kouiki.model import Column, Dataset, Variant

# Scores run from 0 to 1. On the sample files the true layout scores 1.0, the best wrong dataset 0.05-0.84
# (public_facility legacy for an AED file: they share 20 of 22 columns), and a city's own layout (高松市 0012,
# English property names) at most 0.36: below 0.5 the best guess is not trusted.
MIN_GOOD_SCORE = 0.5
MIN_CLOSE_SCORE = 0.2    # below this a dataset is not named as "close" when nothing matched well
FILE_NAME_BONUS = 0.05
LEVEL_WEIGHT = {"required": 3.0, "recommended": 1.5, "optional": 1.0, "unknown": 1.0}

@dataclass
class HeaderMatch:
    """How one file header row fits one layout (variant) of one dataset."""

    dataset_id: str
    variant: str
    score: float
    mapping: dict[str, str]            # file header → canonical column name (declared name if it has none)
    unmatched: list[str]               # file headers matching nothing: kept as extra columns
    missing: list[str]                 # declared columns of the variant absent from the file
    missing_required: list[str]
    renamed: dict[str, str]            # file header → declared header, where they differ (spelling, alias)
    declared: dict[str, str] = field(default_factory=dict)   # file header → declared column of this variant
    coverage: float = 0.0
    precision: float = 0.0
    file_name_hint: bool = False

    @property
    def good(self) -> bool:
        """True when the score is high enough to trust without asking the uploader."""
        return self.score >= MIN_GOOD_SCORE


# ------------------------------------------------------------------------------------------ alias groups


class _Aliases:
    """The alias table as groups of equivalent header keys (a column name with all its spellings)."""

    def __init__(self, aliases: Mapping[str, str]) -> None:
        self.target = {header_key(s): header_key(t) for s, t in aliases.items()}
        self.groups: dict[str, set[str]] = {}
        for spelling, target in self.target.items():
            self.groups.setdefault(target, {target}).add(spelling)

    def concept(self, name: str) -> str:
        """The key of the column name a spelling stands for (itself if it is no alias)."""
        key = header_key(name)
        return self.target.get(key, key)

    def group(self, name: str) -> set[str]:
        concept = self.concept(name)
        return self.groups.get(concept, {concept})


def _concept(column: Column, aliases: _Aliases) -> str:
    """The canonical idea a declared column stands for (legacy 住所 → 所在地_連結表記)."""
    return aliases.concept(column.maps_to or column.name)


def column_weights(registry: Registry) -> dict[str, float]:
    """How distinctive each column idea is: log(1 + datasets / datasets having it). 名称 ≈ 0.7, SSID ≈ 2.7."""
    aliases = _Aliases(registry.aliases)
    having: dict[str, int] = {}
    for dataset in registry:
        concepts = {_concept(c, aliases) for v in dataset.variants for c in v.columns}
        for concept in concepts:
            having[concept] = having.get(concept, 0) + 1
    total = len(registry)
    return {concept: math.log(1 + total / count) for concept, count in having.items()}


# ------------------------------------------------------------------------------------------ matching


@dataclass(frozen=True)
class _VariantIndex:
    """A variant's columns by the header keys that name them: exact name, direct spelling, alias group."""

    tiers: tuple[dict[str, list[Column]], ...]
    weights: dict[str, float]          # column name → weight in the coverage
    total: float


def _candidate_keys(column: Column, aliases: _Aliases) -> tuple[set[str], set[str], set[str]]:
    """Keys by which a file header may name this column, in order of trust."""
    own = header_key(column.name)
    direct = {header_key(a) for a in column.aliases} | aliases.groups.get(own, set())
    if column.maps_to:
        direct.add(header_key(column.maps_to))
    related = set(aliases.group(column.name))
    for other in (*column.aliases, *([column.maps_to] if column.maps_to else [])):
        related |= aliases.group(other)
    return {own}, direct - {own}, related - direct - {own}


class _Matcher:
    """Matches header rows against variants; keeps each variant's index (registries do not change)."""

    def __init__(self, aliases: Mapping[str, str], weights: Mapping[str, float] | None) -> None:
        self.aliases = _Aliases(aliases)
        self.weights = weights
        self._indexes: dict[int, _VariantIndex] = {}

    def index(self, variant: Variant) -> _VariantIndex:
        cached = self._indexes.get(id(variant))
        if cached is None:
            cached = self._indexes[id(variant)] = self._build_index(variant)
        return cached

    def _build_index(self, variant: Variant) -> _VariantIndex:
        tiers: tuple[dict[str, list[Column]], ...] = ({}, {}, {})
        weights: dict[str, float] = {}
        for column in variant.columns:
            for tier, keys in zip(tiers, _candidate_keys(column, self.aliases), strict=True):
                for key in keys:
                    tier.setdefault(key, []).append(column)
            level = LEVEL_WEIGHT["required"] if column.required else LEVEL_WEIGHT.get(column.level, 1.0)
            distinct = self.weights.get(_concept(column, self.aliases), 1.0) if self.weights else 1.0
            weights[column.name] = level * distinct
        return _VariantIndex(tiers=tiers, weights=weights, total=sum(weights.values()))

    def assign(self, keys: list[str], variant: Variant) -> dict[int, Column]:
        """Header position → declared column. Exact names win over direct aliases, those over alias groups."""
        assigned: dict[int, Column] = {}
        taken: set[str] = set()
        for tier in self.index(variant).tiers:
            for position, key in enumerate(keys):
                if position in assigned or not key:
                    continue
                column = next((c for c in tier.get(key, ()) if c.name not in taken), None)
                if column is not None:
                    assigned[position] = column
                    taken.add(column.name)
        return assigned

    def match_variant(self, header: list[str], dataset: Dataset, variant: Variant,
                      hinted: bool) -> HeaderMatch:
        keys = [header_key(h) for h in header]
        assigned = self.assign(keys, variant)
        index = self.index(variant)
        present = {column.name for column in assigned.values()}
        coverage = sum(index.weights[name] for name in present) / index.total if index.total else 0.0
        non_blank = sum(1 for key in keys if key)
        precision = len(assigned) / non_blank if non_blank else 0.0
        f1 = 2 * coverage * precision / (coverage + precision) if coverage + precision else 0.0
        matched = sorted(assigned.items())
        return HeaderMatch(
            dataset_id=dataset.id,
            variant=variant.name,
            score=round(min(1.0, f1 + (FILE_NAME_BONUS if hinted else 0.0)), 4),
            mapping={header[i]: (c.maps_to or c.name) for i, c in matched},
            unmatched=[h for i, h in enumerate(header) if i not in assigned],
            missing=[c.name for c in variant.columns if c.name not in present],
            missing_required=[c.name for c in variant.columns if c.required and c.name not in present],
            renamed={header[i]: c.name for i, c in matched if header[i] != c.name},
            declared={header[i]: c.name for i, c in matched},
            coverage=round(coverage, 4),
            precision=round(precision, 4),
            file_name_hint=hinted,
        )

    def match_dataset(self, header: list[str], dataset: Dataset, file_name: str | None) -> HeaderMatch:
        hinted = _file_name_hint(dataset, file_name)
        ordered = [dataset.canonical, *(v for v in dataset.variants if v is not dataset.canonical)]
        matches = [self.match_variant(header, dataset, v, hinted) for v in ordered]
        best = max(matches, key=lambda m: m.score)   # max keeps the first of equal scores: canonical
        # The layout is the one whose own names the file uses most: a short file with current names
        # (全国地方公共団体コード, ID, 所在地_連結表記) is current even if the shorter legacy layout covers more of it
        # through aliases. The dataset's score stays the best variant's.
        chosen = max(matches, key=lambda m: (_exact_names(m), m.score))
        return chosen if chosen is best else replace(chosen, score=best.score)


def _exact_names(match: HeaderMatch) -> int:
    """How many of the file's headers are the variant's own column names (after normalisation)."""
    return sum(1 for header, declared in match.declared.items() if header_key(header) == header_key(declared))


@lru_cache(maxsize=8)
def _matcher_for(registry: Registry) -> _Matcher:
    return _Matcher(registry.aliases, column_weights(registry))


def _file_name_hint(dataset: Dataset, file_name: str | None) -> bool:
    """True when the file name (folders included) has a slug of the dataset (…_aed.csv) or its name_ja."""
    if not file_name:
        return False
    name = normalise_header(PurePath(file_name).as_posix()).casefold()
    for slug in dataset.file_slugs:
        if re.search(rf"(?:^|[^a-z]){re.escape(slug.casefold())}(?:$|[^a-z])", name):
            return True
    return normalise_header(dataset.name_ja).casefold() in name


def match_dataset(header: list[str], dataset: Dataset, aliases: Mapping[str, str], *,
                  weights: Mapping[str, float] | None = None, file_name: str | None = None) -> HeaderMatch:
    """The best-fitting variant of one dataset for this header row (ties go to the canonical variant).

    ``weights`` (from :func:`column_weights`) make distinctive columns count more; without them all columns
    of one level weigh the same. ``file_name`` adds :data:`FILE_NAME_BONUS` when it names the dataset.
    """
    return _Matcher(aliases, weights).match_dataset(header, dataset, file_name)


def detect(header: list[str], registry: Registry, *, dataset_hint: str | None = None,
           file_name: str | None = None) -> list[HeaderMatch]:
    """Every dataset's best variant for this header row, best first. A hint restricts to that dataset."""
    matcher = _matcher_for(registry)
    datasets: Iterable[Dataset] = [registry.get(dataset_hint)] if dataset_hint else registry
    matches = [matcher.match_dataset(header, d, file_name) for d in datasets]
    return sorted(matches, key=lambda m: m.score, reverse=True)


def header_score(header: list[str], registry: Registry) -> float:
    """How much this row looks like a header of a known dataset (to find the header row or xlsx sheet)."""
    matches = detect(header, registry)
    return matches[0].score if matches else 0.0


def no_match_error(matches: list[HeaderMatch], registry: Registry) -> IntakeError:
    """The error for a best match that is not :attr:`HeaderMatch.good`: what came closest, what to do."""
    best = [m for m in matches[:3] if m.score >= MIN_CLOSE_SCORE]   # "close" at 0 % would mislead
    closest_ja = "、".join(f"{registry.get(m.dataset_id).name_ja}（{m.score:.0%}）" for m in best)
    closest_en = ", ".join(f"{registry.get(m.dataset_id).name_en} ({m.score:.0%})" for m in best)
    return IntakeError(Problem.of("no-dataset-match", "close" if best else "none", closest_ja=closest_ja,
                                  closest_en=closest_en))
