"""The schema registry: every standard dataset, loaded from ``expectations/schemas/*.yaml`` and checked.

The YAML files are the source of truth (format: docs/schemas.md); this module turns them into the
dataclasses of ``kouiki.model`` and refuses a broken file with a :class:`SchemaError` that names the
file and the key, so the office sees at once what to fix. Datasets whose definition has no columns yet
(``variants: []``) cannot be validated: they are skipped with a logged reason and listed in
:attr:`Registry.skipped`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import yaml

from kouiki.errors import ConfigError
from kouiki.header_names import header_key
from kouiki.model import Column, Dataset, Policy, Variant
from kouiki.problems import Where
from kouiki.yaml_source import YamlDocument, first_problem, key_path, parse

if TYPE_CHECKING:   # pydantic is imported when the registry is built, not by its readers (kouiki inspect)
    from pydantic import BaseModel

    from expectations.schema_files import ColumnFile, PolicyFile, VariantFile

    _M = TypeVar("_M", bound=BaseModel)

log = logging.getLogger(__name__)

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
ALIASES_FILE = "_aliases.yaml"

# the name column a dataset's keys default to (with its id_column), first one the canonical variant has
NAME_COLUMNS = ("名称", "施設名称", "介護サービス事業所名称", "イベント名", "データセット_タイトル", "地域名")


class SchemaError(ConfigError):
    """A registry file is wrong: ``file`` and ``key`` say where (``variants[legacy].columns[住所]``), ``reason``
    what."""

    problem_code = "schema-error"

    def __init__(self, file: Path, key: str, reason: str, line: int | None = None) -> None:
        super().__init__(f"{file}{f':{line}' if line else ''}: {key}: {reason}", where=Where(str(file), line))
        self.file = file
        self.key = key
        self.reason = reason
        self.line = line

    def __reduce__(self) -> tuple[Any, ...]:   # pickles with the fields it was made from
        return (SchemaError, (self.file, self.key, self.reason, self.line))


@dataclass(frozen=True, eq=False)
class Registry:
    """All loaded datasets by id, the shared header aliases, and the datasets skipped (id → reason)."""

    datasets: dict[str, Dataset]
    aliases: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def get(self, dataset_id: str) -> Dataset:
        if dataset_id in self.datasets:
            return self.datasets[dataset_id]
        if dataset_id in self.skipped:
            raise KeyError(f"dataset {dataset_id!r} cannot be used: {self.skipped[dataset_id]}")
        raise KeyError(f"unknown dataset {dataset_id!r}; known: {', '.join(sorted(self.datasets))}")

    def __iter__(self) -> Iterator[Dataset]:
        return iter(self.datasets.values())

    def __len__(self) -> int:
        return len(self.datasets)

    def __contains__(self, dataset_id: object) -> bool:
        return dataset_id in self.datasets


def load_registry(path: Path | None = None, extra: Path | None = None) -> Registry:
    """Load and check every ``<dataset_id>.yaml`` and ``_aliases.yaml`` in ``path`` (default: schemas folder),
    plus the office's own datasets in ``extra`` (a folder of more ``<dataset_id>.yaml`` files; a file there
    replaces the built-in one of the same id).

    Raises :class:`SchemaError` (a ``ValueError``) naming the file and the key of the first problem found.
    """
    folder = Path(path) if path is not None else SCHEMAS_DIR
    by_id = {p.stem: p for p in folder.glob("*.yaml") if not p.name.startswith("_")}
    if extra is not None:
        by_id.update({p.stem: p for p in Path(extra).glob("*.yaml") if not p.name.startswith("_")})
    files = [by_id[k] for k in sorted(by_id)]
    if not files:
        raise ValueError(f"{folder}: no dataset files (*.yaml) found")
    datasets: dict[str, Dataset] = {}
    skipped: dict[str, str] = {}
    for file in files:
        parsed = _parse_dataset(file, _read_yaml(file))
        if isinstance(parsed, Dataset):
            datasets[parsed.id] = parsed
        else:
            skipped[file.stem] = parsed
            log.info("schema registry: skipping %s (%s): %s", file.stem, file, parsed)
    aliases_file = folder / ALIASES_FILE
    aliases: dict[str, str] = {}
    if aliases_file.exists():
        aliases = _parse_aliases(aliases_file, _read_yaml(aliases_file), datasets)
    return Registry(datasets=datasets, aliases=aliases, skipped=skipped)


@cache
def default_registry() -> Registry:
    """The registry of this installation, loaded once per process: the built-in schemas plus the office's
    own dataset files in ``$KOUIKI_SCHEMAS`` (a folder), if set, plus the generated schemas of cities' own
    datasets (``$KOUIKI_HOME/schemas/own``, ``intake.own``)."""
    from kouiki.file_cache import cached
    from kouiki.settings import Settings, kouiki_home

    extra = Settings.from_env().schemas
    own = kouiki_home() / "schemas" / "own"
    # read again only when a schema file or the code that reads it changed (a second of YAML per process)
    return cached("registry", registry_inputs(), lambda: with_own_datasets(load_registry(extra=extra), own))


def registry_inputs() -> list[Path]:
    """Every file the default registry is built from, and the code that builds it (for ``kouiki.file_cache``):
    the whole of ``expectations/`` (schemas and code) and ``intake/`` (header names), not a list to keep right."""
    from kouiki.settings import Settings, kouiki_home

    extra = Settings.from_env().schemas
    here = Path(__file__).resolve().parent
    return [here, here.parent / "intake", kouiki_home() / "schemas" / "own", *([extra] if extra else [])]


def with_own_datasets(registry: Registry, folder: Path | None = None) -> Registry:
    """The registry plus every generated own-dataset schema (``own_<city>_<slug>.yaml``) in ``folder``
    (default ``$KOUIKI_HOME/schemas/own``). A broken generated file is skipped with its reason, never fatal."""
    if folder is None:
        from kouiki.settings import kouiki_home

        folder = kouiki_home() / "schemas" / "own"
    if not folder.is_dir():
        return registry
    datasets, skipped = dict(registry.datasets), dict(registry.skipped)
    for file in sorted(folder.glob("own_*.yaml")):
        try:
            datasets[file.stem] = load_own_schema(file)
        except SchemaError as exc:
            skipped[file.stem] = str(exc)
            log.warning("own dataset schema skipped: %s", exc)
    return Registry(datasets=datasets, aliases=registry.aliases, skipped=skipped)


def load_own_schema(file: Path) -> Dataset:
    """One generated own-dataset schema file (same format and checks as the built-in ones)."""
    parsed = _parse_dataset(file, _read_yaml(file))
    if not isinstance(parsed, Dataset):
        raise SchemaError(file, "variants", parsed)
    return parsed


# ------------------------------------------------------------------------------------------------ reading


def _read_yaml(file: Path) -> YamlDocument:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(file, "(file)", f"not UTF-8 text: {exc}") from exc
    try:
        return parse(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        raise SchemaError(file, where, f"YAML syntax: {exc.problem}",
                          line=mark.line + 1 if mark else None) from exc


@dataclass(frozen=True)
class _Place:
    """A file and its YAML, for error messages that name the key and its line."""

    file: Path
    doc: YamlDocument

    def fail(self, loc: tuple[str | int, ...], problem: str) -> NoReturn:
        raise SchemaError(self.file, key_path(self.doc.data, loc) or "(top level)", problem,
                          line=self.doc.line_of(loc))


def _checked(place: _Place, model: type[_M]) -> _M:
    """The file as ``model`` (expectations.schema_files), or its first problem as a SchemaError."""
    from pydantic import ValidationError

    from expectations.schema_files import CHOICE_WORDS

    try:
        return model.model_validate(place.doc.data if place.doc.data is not None else {})
    except ValidationError as exc:
        loc, problem = first_problem(exc, model, CHOICE_WORDS)
        place.fail(loc, problem)


# ------------------------------------------------------------------------------------------------ datasets


def _parse_dataset(file: Path, doc: YamlDocument) -> Dataset | str:
    """The dataset of one file, or the reason it is skipped (no columns)."""
    from expectations.schema_files import DatasetFile

    place = _Place(file, doc)
    raw = _checked(place, DatasetFile)
    if raw.dataset_id != file.stem:
        place.fail(("dataset_id",), f"{raw.dataset_id!r} differs from the file name {file.name!r}")
    if not raw.variants:
        notes = raw.notes or []
        return str(notes[0]) if notes else "no columns are defined (variants: [])"
    variants = _variants(place, raw.variants)
    canonical = next((v for v in variants if v.name == "current"), variants[0])   # = Dataset.canonical
    _check_maps_to(place, variants, canonical)
    column_of = partial(_canonical_column, place, canonical)
    lat, lon = ((column_of(("coordinates", "lat"), raw.coordinates.lat),
                 column_of(("coordinates", "lon"), raw.coordinates.lon)) if raw.coordinates else (None, None))
    id_column = column_of(("id_column",), raw.id_column)
    return Dataset(
        id=raw.dataset_id, name_ja=raw.name_ja, name_en=raw.name_en, version=raw.version, variants=variants,
        id_column=id_column,
        key_columns=_key_columns(place, raw.key_columns, canonical, id_column),
        code_column=column_of(("code_column",), raw.code_column),
        lat_column=lat, lon_column=lon,
        policy=_policy(place, raw.policy, canonical),
        file_slugs=tuple(raw.file_slugs if raw.file_slugs is not None else [raw.dataset_id]),
        description_ja=raw.description_ja or "", description_en=raw.description_en or "",
        licence=raw.licence,
    )


def _canonical_column(place: _Place, canonical: Variant, loc: tuple[str | int, ...], name: str) -> str:
    if canonical.column(name) is None:
        place.fail(loc, f"{name!r} is not a column of the {canonical.name!r} variant")
    return name


def _key_columns(place: _Place, names: list[str] | None, canonical: Variant, id_column: str) -> tuple[str, ...]:
    """The dataset's key columns: as listed, or by default its ID column and its name column."""
    if names is None:
        name = next((n for n in NAME_COLUMNS if canonical.column(n) is not None), None)
        return tuple(c for c in (id_column, name) if c is not None)
    return tuple(_canonical_column(place, canonical, ("key_columns", i), n) for i, n in enumerate(names))


def _policy(place: _Place, raw: PolicyFile, canonical: Variant) -> Policy:
    strict = tuple(_canonical_column(place, canonical, ("policy", "strict_columns", i), name)
                   for i, name in enumerate(raw.strict_columns))
    return Policy(on_error=raw.on_error, on_warning=raw.on_warning, reject_above=float(raw.reject_above),
                  fix_swapped_coordinates=raw.fix_swapped_coordinates, strict_columns=strict)


def _variants(place: _Place, raw: list[VariantFile]) -> tuple[Variant, ...]:
    variants: list[Variant] = []
    for i, item in enumerate(raw):
        if any(v.name == item.variant for v in variants):
            place.fail(("variants", i, "variant"), f"variant {item.variant!r} is defined twice")
        variants.append(Variant(name=item.variant, columns=_columns(place, i, item.columns)))
    return tuple(variants)


def _columns(place: _Place, variant_index: int, raw: list[ColumnFile]) -> tuple[Column, ...]:
    columns: list[Column] = []
    seen: dict[str, str] = {}   # header key (normalised, case-folded) → declared name
    for i, item in enumerate(raw):
        key = header_key(item.name)
        if key in seen:
            place.fail(("variants", variant_index, "columns", i),
                       f"duplicate column: {item.name!r} is the same header as {seen[key]!r}")
        seen[key] = item.name
        columns.append(Column(
            name=item.name, type=item.type, required=item.required, level=item.level, format=item.format,
            enum=tuple(item.enum) if item.enum is not None else None, description=item.description or "",
            maps_to=item.maps_to, aliases=tuple(item.aliases)))
    return tuple(columns)


def _check_maps_to(place: _Place, variants: tuple[Variant, ...], canonical: Variant) -> None:
    """maps_to only outside the canonical variant, naming one of its columns, at most once per variant."""
    for v, variant in enumerate(variants):
        targets: dict[str, str] = {}
        for c, column in enumerate(variant.columns):
            if column.maps_to is None:
                continue
            loc = ("variants", v, "columns", c, "maps_to")
            if variant is canonical:
                place.fail(loc, f"the canonical variant {canonical.name!r} must not use maps_to")
            if canonical.column(column.maps_to) is None:
                place.fail(loc, f"{column.maps_to!r} is not a column of the canonical variant {canonical.name!r}")
            if column.maps_to in targets:
                place.fail(loc, f"{targets[column.maps_to]!r} already maps to {column.maps_to!r}")
            targets[column.maps_to] = column.name


# ------------------------------------------------------------------------------------------------ aliases


def _parse_aliases(file: Path, doc: YamlDocument, datasets: Mapping[str, Dataset]) -> dict[str, str]:
    """spelling → column name; no chains, no spelling with two meanings, every target a known column."""
    from expectations.schema_files import AliasesFile

    place = _Place(file, doc)
    table = _checked(place, AliasesFile).aliases or {}
    known = {header_key(c.name) for d in datasets.values() for v in d.variants for c in v.columns}
    aliases: dict[str, str] = {}
    by_key: dict[str, str] = {}
    for spelling, target in table.items():
        loc = ("aliases", spelling)
        if target in table:
            place.fail(loc, f"{target!r} is itself an alias; point to the column name directly")
        key = header_key(spelling)
        if key in by_key and by_key[key] != target:
            place.fail(loc, f"same header as the alias {key!r} but a different column ({by_key[key]!r})")
        if header_key(target) not in known:
            place.fail(loc, f"{target!r} is not a column of any dataset")
        by_key[key] = target
        aliases[spelling] = target
    return aliases
