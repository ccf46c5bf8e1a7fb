"""Column mappings: a city's own layout mapped onto a standard dataset, proposed by intake, accepted by the office.

When a file's header row matches no dataset well enough (``intake.headers``), :func:`propose_mapping` looks
for the closest dataset column by column, from two kinds of evidence:

* the header: the standard's names and aliases, legacy names (``maps_to``), the English LinkData / IMI /
  schema.org property names many cities publish (``name``, ``address``, ``latitude``, ``startDate`` …) and a
  city's own Japanese names (``施設名``, ``フリガナ``, ``電話``), all from the vocabulary
  ``config/mappings/_vocabulary.yaml``; otherwise a fuzzy comparison after NFKC and katakana → hiragana;
* the values: a column of dates, phone numbers, latitudes, longitudes, postal codes, URLs or local-government
  codes fits a column of that type (and an unnamed column of latitudes is the dataset's 緯度).

The office accepts a proposal with ``kouiki mappings accept UPLOAD_ID``: it is stored as YAML under
``config/mappings/<city>/<signature>.yaml`` (data, reviewed like any configuration change), where
``signature`` is a digest of the normalised header row. A mapping is a per-member layout (a
``kouiki.model.Variant`` whose columns ``maps_to`` the canonical ones): the city's next file with the same
header row is read through it automatically (:func:`accepted_match`), and normalised, validated and published
like any standard file.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jaconv
import polars as pl
import yaml

from expectations.registry import Registry
from intake.headers import HeaderMatch, header_key, match_dataset
from intake.values import normalise_date, normalise_phone, normalise_time
from kouiki import localgov
from kouiki.model import Column, Dataset, Variant
from kouiki.problems import Notice
from kouiki.settings import REPO_ROOT, Settings

MAPPINGS_ENV = "KOUIKI_MAPPINGS"
VOCABULARY_FILE = "_vocabulary.yaml"
# A file column is proposed for a dataset column from this similarity on (0..1).
MIN_COLUMN_SCORE = 0.55
# A dataset is proposed when its score (F1 of weighted coverage and precision) reaches this; below it, nothing
# fits: the file is the city's own dataset.
MIN_PROPOSAL_SCORE = 0.3
LEVEL_WEIGHT = {"required": 3.0, "recommended": 1.5, "optional": 1.0, "unknown": 1.0}
VALUE_SAMPLE = 200
KIND_SHARE = 0.8           # share of the sampled cells that must read as a kind for the column to be of it
VALUE_ONLY_SCORE = 0.6     # a column mapped from its values alone (its header says nothing known)
FILE_NAME_BONUS = 0.1      # the file name names the dataset (its slug, e.g. aed, or its Japanese name)
MAPPED_VARIANT_PREFIX = "mapped-"


def mappings_dir() -> Path:
    """Where accepted mappings live: ``$KOUIKI_MAPPINGS`` or ``config/mappings`` of the repository."""
    return Settings.from_env().mappings


# ------------------------------------------------------------------------------------------ vocabulary


@dataclass(frozen=True)
class Vocabulary:
    english: dict[str, tuple[str, ...]]     # compact key (a-z0-9 only) → standard column names
    japanese: dict[str, tuple[str, ...]]    # folded key → standard column names

    def candidates(self, header: str) -> tuple[str, ...]:
        return self.english.get(compact(header)) or self.japanese.get(fold(header)) or ()


def compact(text: str) -> str:
    """``startDate``, ``start_date``, ``Start-Date`` → ``startdate``."""
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKC", text).casefold())


def fold(text: str) -> str:
    """A header as compared for kana/kanji variants: normalised, katakana as hiragana, no separators."""
    folded = jaconv.kata2hira(header_key(text))
    return re.sub(r"[_()（）・\-ー:：/／]", "", folded) or folded


@lru_cache(maxsize=4)
def load_vocabulary(path: Path | None = None) -> Vocabulary:
    file = path or REPO_ROOT / "config" / "mappings" / VOCABULARY_FILE
    doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}

    def table(section: str, key: Any) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for spelling, names in (doc.get(section) or {}).items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"{file}: {section}.{spelling}: expected a list of column names")
            out[key(str(spelling))] = tuple(names)
        return out

    return Vocabulary(english=table("english", compact), japanese=table("japanese", fold))


# ------------------------------------------------------------------------------------------ value kinds

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_DECIMAL = re.compile(r"^-?\d{1,3}\.\d+$")
_INTEGER = re.compile(r"^\d+$")
_POSTAL = re.compile(r"^〒?\s*\d{3}-\d{4}$")
_KATAKANA = re.compile(r"^[\u30a0-\u30ff\u3000 ・ー]+$")

# the column types each kind of value fits, the type a column of that kind is given first (intake.own)
KIND_TYPES: dict[str, tuple[str, ...]] = {
    "latitude": ("number",), "longitude": ("number",), "code": ("code",), "phone": ("phone",),
    "postal_code": ("postal_code",), "url": ("url",), "email": ("email",), "date": ("date",), "time": ("time",),
    "integer": ("integer", "number", "code", "string"), "number": ("number",), "kana": ("kana", "string"),
    "text": ("string", "kana"),
}
# kinds precise enough to map a column whose header says nothing
DISTINCT_KINDS = ("latitude", "longitude", "phone", "postal_code", "email", "url")


def value_kind(cells: pl.Series) -> str | None:
    """What a column holds, from a sample of its distinct non-empty cells (None: empty column)."""
    text = cells.cast(pl.String).str.strip_chars()
    sample = [unicodedata.normalize("NFKC", v) for v in text.filter(text.is_not_null() & (text != ""))
              .unique(maintain_order=True).head(VALUE_SAMPLE).to_list()]
    if not sample:
        return None

    def share(test: Any) -> float:
        return sum(1 for v in sample if test(v)) / len(sample)

    if share(_DECIMAL.match) >= KIND_SHARE:
        numbers = [float(v) for v in sample if _DECIMAL.match(v)]
        if sum(20 <= n <= 46 for n in numbers) >= KIND_SHARE * len(sample):
            return "latitude"
        if sum(122 <= n <= 154 for n in numbers) >= KIND_SHARE * len(sample):
            return "longitude"
    if share(lambda v: len(v) == 6 and localgov.is_valid_code(v)) >= KIND_SHARE:
        return "code"
    if share(lambda v: bool(_POSTAL.match(v))) >= KIND_SHARE:
        return "postal_code"
    if share(lambda v: v.startswith(("http://", "https://"))) >= KIND_SHARE:
        return "url"
    if share(lambda v: re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", v) is not None) >= KIND_SHARE:
        return "email"
    if share(lambda v: v.startswith("0") and (not _INTEGER.match(v) or len(v) in (10, 11))
             and normalise_phone(v)[0] is not None) >= KIND_SHARE:
        return "phone"
    if share(_INTEGER.match) >= KIND_SHARE:
        return "integer"
    if share(_NUMBER.match) >= KIND_SHARE:
        return "number"
    if share(lambda v: normalise_date(v)[0] is not None) >= KIND_SHARE:
        return "date"
    if share(lambda v: (":" in v or "時" in v) and normalise_time(v)[0] is not None) >= KIND_SHARE:
        return "time"
    if share(lambda v: bool(_KATAKANA.match(v))) >= KIND_SHARE:
        return "kana"
    return "text"


# ------------------------------------------------------------------------------------------ proposals


@dataclass(frozen=True)
class ColumnProposal:
    header: str                  # as written in the file
    column: str | None           # the standard column it becomes (None: kept as the city's own column)
    score: float
    evidence: str                # header, vocabulary, similar, values, header+values
    kind: str | None             # what the values are


@dataclass(frozen=True)
class MappingProposal:
    """The closest standard dataset for a file, column by column."""

    dataset_id: str
    name_ja: str
    score: float
    coverage: float
    precision: float
    signature: str
    columns: tuple[ColumnProposal, ...]
    missing_required: tuple[str, ...] = ()

    @property
    def mapped(self) -> dict[str, str]:
        return {c.header: c.column for c in self.columns if c.column}

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset_id, "dataset_name_ja": self.name_ja, "score": self.score,
                "coverage": self.coverage, "precision": self.precision, "signature": self.signature,
                "columns": [{"header": c.header, "column": c.column, "score": c.score, "evidence": c.evidence,
                             "values": c.kind} for c in self.columns],
                "missing_required": list(self.missing_required)}


def header_signature(header: Iterable[str]) -> str:
    """The layout's identity: a digest of its normalised header row (same names, same order)."""
    return hashlib.sha256("\x1f".join(header_key(h) for h in header).encode()).hexdigest()[:16]


def _names_of(column: Column, dataset: Dataset, aliases: dict[str, str]) -> set[str]:
    """Header keys that name a canonical column: itself, its aliases, legacy names mapping to it, alias table."""
    names = {header_key(column.name), *(header_key(a) for a in column.aliases)}
    for variant in dataset.variants:
        for other in variant.columns:
            if other.maps_to == column.name:
                names |= {header_key(other.name), *(header_key(a) for a in other.aliases)}
    for spelling, target in aliases.items():
        if header_key(target) in names:
            names.add(header_key(spelling))
    return names


def header_similarity(header: str, column: Column, names: set[str], vocabulary: Vocabulary) -> tuple[float, str]:
    """How surely a file header names a standard column (0..1) and on what evidence."""
    key = header_key(header)
    if not key:
        return 0.0, ""
    if key in names:
        return 1.0, "header"
    candidates = vocabulary.candidates(header)
    if column.name in candidates:
        return round(0.95 - 0.03 * candidates.index(column.name), 3), "vocabulary"
    a = fold(header)
    best = 0.0
    for name in names:
        b = fold(name)
        short, long_ = sorted((a, b), key=len)
        if len(short) >= 2 and short in long_:
            best = max(best, 0.6 + 0.3 * len(short) / len(long_))
        else:
            best = max(best, difflib.SequenceMatcher(None, a, b).ratio())
    return (round(best, 3), "similar") if best >= MIN_COLUMN_SCORE else (0.0, "")


def _fits(kind: str | None, column: Column, dataset: Dataset) -> bool | None:
    """True when the values fit the column's type, False when they do not, None when it cannot be told."""
    if kind is None:
        return None
    if kind == "latitude":
        return column.name == (dataset.lat_column or "緯度")
    if kind == "longitude":
        return column.name == (dataset.lon_column or "経度")
    return column.type in KIND_TYPES.get(kind, ())


def propose_for_dataset(header: list[str], kinds: list[str | None], dataset: Dataset, aliases: dict[str, str],
                        vocabulary: Vocabulary) -> MappingProposal:
    """The best column-by-column mapping of a file onto one dataset's canonical columns."""
    canonical = dataset.canonical.columns
    pairs: list[tuple[float, int, int, str]] = []
    for ci, column in enumerate(canonical):
        names = _names_of(column, dataset, aliases)
        for hi, text in enumerate(header):
            score, evidence = header_similarity(text, column, names, vocabulary)
            fits = _fits(kinds[hi], column, dataset)
            if score and fits is True and column.type != "string":
                score, evidence = min(1.0, score + 0.1), f"{evidence}+values"
            elif score and fits is False and column.type != "string":
                score *= 0.6
            elif evidence == "similar" and column.type == "string" and kinds[hi] in DISTINCT_KINDS:
                score *= 0.8      # phone numbers under 連絡 are 電話番号 rather than the free text 連絡先備考
            elif not score and fits and kinds[hi] in DISTINCT_KINDS:
                score, evidence = VALUE_ONLY_SCORE, "values"
            if score >= MIN_COLUMN_SCORE:
                pairs.append((score, hi, ci, evidence))
    chosen: dict[int, tuple[int, float, str]] = {}
    used: set[int] = set()
    for score, hi, ci, evidence in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        if hi in chosen or ci in used:
            continue
        chosen[hi] = (ci, score, evidence)
        used.add(ci)
    weights = [LEVEL_WEIGHT["required"] if c.required else LEVEL_WEIGHT.get(c.level, 1.0) for c in canonical]
    total = sum(weights) or 1.0
    coverage = sum(weights[ci] * s for ci, s, _ in chosen.values()) / total
    non_blank = sum(1 for h in header if header_key(h)) or 1
    precision = sum(s for _, s, _ in chosen.values()) / non_blank
    score = 2 * coverage * precision / (coverage + precision) if coverage + precision else 0.0
    columns = tuple(
        ColumnProposal(text, canonical[chosen[hi][0]].name if hi in chosen else None,
                       round(chosen[hi][1], 3) if hi in chosen else 0.0,
                       chosen[hi][2] if hi in chosen else "", kinds[hi])
        for hi, text in enumerate(header))
    return MappingProposal(
        dataset_id=dataset.id, name_ja=dataset.name_ja, score=round(score, 3), coverage=round(coverage, 3),
        precision=round(precision, 3), signature=header_signature(header), columns=columns,
        missing_required=tuple(c.name for ci, c in enumerate(canonical) if c.required and ci not in used))


def names_dataset(dataset: Dataset, file_name: str | None) -> bool:
    """The file name carries the dataset's slug (as a word) or its Japanese name's first word."""
    if not file_name:
        return False
    name = header_key(Path(file_name).stem)
    words = {w for w in re.split(r"[^a-z0-9]+", name) if w}
    return any(slug.casefold() in words for slug in dataset.file_slugs) or header_key(dataset.name_ja) in name


def type_of_kind(kind: str | None) -> str:
    """The column type a column whose values are of ``kind`` is given (string for text, unknown or empty)."""
    return KIND_TYPES[kind][0] if kind in KIND_TYPES else "string"


def column_kinds(header: list[str], data: pl.DataFrame) -> list[str | None]:
    """The value kind of each file column (data columns in file order, ``_source_line`` aside)."""
    names = [c for c in data.columns if c != "_source_line"]
    return [value_kind(data[names[i]]) if i < len(names) else None for i in range(len(header))]


def propose_mapping(header: list[str], data: pl.DataFrame, registry: Registry, *, limit: int = 3,
                    file_name: str | None = None, vocabulary: Vocabulary | None = None) -> list[MappingProposal]:
    """The closest standard datasets for a file in a city's own layout, best first (at most ``limit``), each
    with its column mapping and score. Empty when nothing reaches :data:`MIN_PROPOSAL_SCORE`. A file name
    that names the dataset (``AED設置場所.csv``, ``…_aed.csv``) adds :data:`FILE_NAME_BONUS`."""
    vocab = vocabulary or load_vocabulary()
    kinds = column_kinds(header, data)
    proposals = []
    for ds in registry:
        proposal = propose_for_dataset(header, kinds, ds, registry.aliases, vocab)
        if proposal.mapped and names_dataset(ds, file_name):
            proposal = replace(proposal, score=round(min(1.0, proposal.score + FILE_NAME_BONUS), 3))
        proposals.append(proposal)
    good = [p for p in proposals if p.score >= MIN_PROPOSAL_SCORE and p.mapped]
    return sorted(good, key=lambda p: (-p.score, p.dataset_id))[:limit]


# ------------------------------------------------------------------------------------------ accepted mappings


@dataclass(frozen=True)
class AcceptedMapping:
    """A mapping the office accepted for one city's layout (one YAML file)."""

    city_code: str
    dataset_id: str
    signature: str
    columns: dict[str, str | None]          # file header → standard column (None: the city's own column)
    file: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def variant_name(self) -> str:
        return f"{MAPPED_VARIANT_PREFIX}{self.signature[:12]}"


def mapping_path(city_code: str, signature: str, folder: Path | None = None) -> Path:
    return (folder or mappings_dir()) / city_code / f"{signature}.yaml"


def load_mappings(city_code: str | None = None, folder: Path | None = None) -> list[AcceptedMapping]:
    """Every accepted mapping (of one city), read from ``config/mappings/<city>/*.yaml``."""
    root = folder or mappings_dir()
    pattern = f"{city_code}/*.yaml" if city_code else "*/*.yaml"
    found = []
    for file in sorted(root.glob(pattern)) if root.is_dir() else []:
        found.append(read_mapping(file))
    return found


def read_mapping(file: Path) -> AcceptedMapping:
    doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    try:
        columns = {str(k): (str(v) if v else None) for k, v in dict(doc["columns"]).items()}
        return AcceptedMapping(city_code=str(doc["city_code"]), dataset_id=str(doc["dataset_id"]),
                               signature=str(doc["signature"]), columns=columns, file=file,
                               meta={k: v for k, v in doc.items() if k not in {"columns"}})
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{file}: not a column mapping (needs city_code, dataset_id, signature, columns): "
                         f"{exc}") from None


def write_mapping(proposal: MappingProposal, city_code: str, header: list[str], *, upload_id: str,
                  folder: Path | None = None, accepted_by: str = "office") -> Path:
    """Store an accepted proposal as reviewable YAML (one file per city and layout)."""
    target = mapping_path(city_code, proposal.signature, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    by_header = {c.header: c.column for c in proposal.columns}
    doc = {
        "city_code": city_code,
        "dataset_id": proposal.dataset_id,
        "signature": proposal.signature,
        "accepted_from": upload_id,
        "accepted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "accepted_by": accepted_by,
        "score": proposal.score,
        "columns": {h: by_header.get(h) for h in header},
    }
    head = ("# 列の対応（kouiki mappings accept で作成）: 左がファイルの見出し、右が標準の項目\n"
            "# （空欄は独自の列として公開）。\n"
            "# Column mapping accepted by the data office: file header → standard column (null: kept as the\n"
            "# city's own column). Edit and review like any configuration change.\n")
    target.write_text(head + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


def find_mapping(city_code: str | None, header: list[str], folder: Path | None = None) -> AcceptedMapping | None:
    """The city's accepted mapping for exactly this header row, if any."""
    if not city_code:
        return None
    target = mapping_path(city_code, header_signature(header), folder)
    return read_mapping(target) if target.is_file() else None


def mapping_variant(mapping: AcceptedMapping, dataset: Dataset) -> Variant:
    """The mapping as a layout of the dataset: each mapped file header ``maps_to`` its canonical column."""
    columns = []
    for header, target in mapping.columns.items():
        canonical = dataset.canonical.column(target) if target else None
        if canonical is None:
            continue
        columns.append(Column(name=header, type=canonical.type, required=canonical.required,
                              level=canonical.level, maps_to=None if header == target else target))
    return Variant(name=mapping.variant_name, columns=tuple(columns))


def accepted_match(mapping: AcceptedMapping, registry: Registry, header: list[str]) -> tuple[Dataset, HeaderMatch]:
    """The dataset (with the mapping as one more layout) and the header match the mapping gives."""
    dataset = registry.get(mapping.dataset_id)
    variant = mapping_variant(mapping, dataset)
    with_variant = replace(dataset, variants=(*dataset.variants, variant))
    match = match_dataset(header, replace(with_variant, variants=(variant,)), registry.aliases)
    mapped = set(match.mapping.values())
    missing = [c.name for c in dataset.canonical.columns if c.name not in mapped]
    match = replace(match, variant=variant.name, score=1.0, missing=missing,
                    missing_required=[c.name for c in dataset.canonical.columns if c.required and c.name in missing])
    return with_variant, match


def mapped_notice(mapping: AcceptedMapping, dataset: Dataset) -> Notice:
    return Notice.of(
        "mapped-layout",
        source=mapping.file.name if mapping.file else mapping.signature,
        name_ja=dataset.name_ja, name_en=dataset.name_en,
        details={"signature": mapping.signature, "dataset": dataset.id},
    )



# With the uploader's dataset hint, a proposal is used at once when it maps this share of the file's columns.
HINTED_MIN_PRECISION = 0.5


def proposed_for_hint(raw: Any, registry: Registry, dataset_hint: str | None
                      ) -> tuple[Dataset, HeaderMatch, Notice] | None:
    """The uploader named the dataset but the header row is the city's own: read the file through the mapping
    proposed for that dataset, when it maps every key column but the ID (rows are then numbered) and at least
    :data:`HINTED_MIN_PRECISION` of the file's columns. None otherwise (the file stays refused)."""
    if not dataset_hint or dataset_hint not in registry:
        return None
    dataset = registry.get(dataset_hint)
    proposal = propose_for_dataset(raw.header, column_kinds(raw.header, raw.data), dataset, registry.aliases,
                                   load_vocabulary())
    keys = [k for k in dataset.key_columns if k != dataset.id_column]
    if proposal.precision < HINTED_MIN_PRECISION or not set(keys) <= set(proposal.mapped.values()):
        return None
    mapping = AcceptedMapping(city_code="", dataset_id=dataset.id, signature=proposal.signature,
                              columns={c.header: c.column for c in proposal.columns})
    with_variant, match = accepted_match(mapping, registry, raw.header)
    mapped = ", ".join(f"{h}→{c}" for h, c in proposal.mapped.items())
    notice = Notice.of(
        "proposed-mapping",
        name_ja=dataset.name_ja, name_en=dataset.name_en, score=proposal.score, mapped=mapped,
        details={"score": proposal.score, "signature": proposal.signature, "mapping": proposal.mapped},
    )
    return with_variant, match, notice


def proposals_for_file(path: Path, registry: Registry, *, limit: int = 3) -> list[dict[str, Any]]:
    """The mapping proposals for a file, as JSON; empty when it cannot be read."""
    from intake.headers import header_score
    from intake.read import read_file
    from kouiki.problems import IntakeError

    try:
        raw = read_file(path, header_scorer=lambda h: header_score(h, registry))
    except IntakeError:
        return []
    return proposals_json(raw, registry, path.name, limit=limit)


def proposals_json(raw: Any, registry: Registry, file_name: str | None = None, *,
                   limit: int = 3) -> list[dict[str, Any]]:
    """The mapping proposals for a read table, as JSON (``kouiki inspect``)."""
    found = propose_mapping(raw.header, raw.data, registry, file_name=file_name, limit=limit)
    return [{**p.to_json(), "rows": raw.data.height} for p in found]
