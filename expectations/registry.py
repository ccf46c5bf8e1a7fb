"""The schema registry: every standard dataset, loaded from ``expectations/schemas/*.yaml`` and checked.

The YAML files are the source of truth (format: docs/schemas.md); this module turns them into the
dataclasses of ``expectations.model`` and refuses a broken file with a :class:`SchemaError` that names the
file and the key, so the office sees at once what to fix. Datasets whose definition has no columns yet
(``variants: []``) cannot be validated: they are skipped with a logged reason and listed in
:attr:`Registry.skipped`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NoReturn, get_args

import yaml

from expectations.model import Column, ColumnType, Dataset, Level, Policy, Variant
from intake.header_names import header_key
from kouiki.errors import ConfigError

try:  # the C loader is ~10x faster; both behave the same here
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

log = logging.getLogger(__name__)

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
ALIASES_FILE = "_aliases.yaml"

COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)
LEVELS: tuple[str, ...] = get_args(Level)
ON_ERROR = ("quarantine", "reject")
ON_WARNING = ("publish", "withhold")
# the name column a dataset's keys default to (with its id_column), first one the canonical variant has
NAME_COLUMNS = ("名称", "施設名称", "介護サービス事業所名称", "イベント名", "データセット_タイトル", "地域名")
DATASET_ID = re.compile(r"^[a-z][a-z0-9_]*$")

# Keys each level of a file may hold. "info" keys are for people (provenance, notes) and are not loaded.
DATASET_KEYS = {"dataset_id", "version", "name_ja", "name_en", "variants", "description_ja", "description_en",
                "file_slugs", "id_column", "code_column", "key_columns", "coordinates", "policy", "licence"}
LICENCES = {"CC-BY-4.0", "PDL-1.0"}   # publish.release.LICENCES describes them
DATASET_INFO_KEYS = {"number", "source", "notes"}
VARIANT_KEYS = {"variant", "columns"}
VARIANT_INFO_KEYS = {"standard", "confidence", "notes"}
COLUMN_KEYS = {"name", "type", "required", "level", "format", "enum", "description", "maps_to", "aliases"}
COLUMN_INFO_KEYS = {"example"}
POLICY_KEYS = {"on_error", "on_warning", "reject_above", "fix_swapped_coordinates", "strict_columns"}


class SchemaError(ConfigError):
    """A registry file is wrong; ``file`` and ``key`` say where (``variants[legacy].columns[住所]``)."""

    kind = "データセット定義の誤り / dataset schema error"
    fix = "ファイルを直してください / fix the file"

    def __init__(self, file: Path, key: str, problem: str) -> None:
        super().__init__(f"{file}: {key}: {problem}")
        self.file = file
        self.key = key
        self.problem = problem


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
        parsed = _parse_dataset(_Place(file), _read_yaml(file))
        if isinstance(parsed, Dataset):
            datasets[parsed.id] = parsed
        else:
            skipped[file.stem] = parsed
            log.info("schema registry: skipping %s (%s): %s", file.stem, file, parsed)
    aliases_file = folder / ALIASES_FILE
    aliases: dict[str, str] = {}
    if aliases_file.exists():
        aliases = _parse_aliases(_Place(aliases_file), _read_yaml(aliases_file), datasets)
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
    parsed = _parse_dataset(_Place(file), _read_yaml(file))
    if not isinstance(parsed, Dataset):
        raise SchemaError(file, "variants", parsed)
    return parsed


# ------------------------------------------------------------------------------------------------ reading


class _StrictLoader(_BaseLoader):
    """Safe YAML loader that refuses duplicate keys (plain PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _read_yaml(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(file, "(file)", f"not UTF-8 text: {exc}") from exc
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a safe loader (see _StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        raise SchemaError(file, where, f"YAML syntax: {exc.problem}") from exc


@dataclass(frozen=True)
class _Place:
    """Where we are in a file, for error messages."""

    file: Path
    key: str = ""

    def at(self, key: str) -> _Place:
        joiner = "" if not self.key or key.startswith("[") else "."
        return _Place(self.file, f"{self.key}{joiner}{key}")

    def fail(self, problem: str) -> NoReturn:
        raise SchemaError(self.file, self.key or "(top level)", problem)


def _mapping(place: _Place, value: Any, allowed: set[str], info: set[str] | None = None) -> dict[str, Any]:
    info = info or set()
    if not isinstance(value, dict):
        place.fail(f"expected a mapping (key: value), got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            place.at(str(key)).fail(_not_text(key))
        if key not in allowed and key not in info:
            place.at(key).fail(f"unknown key; allowed: {', '.join(sorted(allowed | info))}")
    return value


def _text(place: _Place, value: Any, *, required: bool = True) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float | dt.date):
        if value is None and not required:
            return ""
        place.fail("missing" if value is None else _not_text(value))
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    if required and not text.strip():
        place.fail("must not be empty")
    return text


def _not_text(value: Any) -> str:
    if isinstance(value, bool):
        return (f"read as {value}: YAML turns unquoted NO/YES/ON/OFF into true/false; quote it, "
                f'e.g. "NO"')
    return f"expected text, got {value!r}; quote it"


def _texts(place: _Place, value: Any, *, allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list):
        place.fail("expected a list, e.g. [a, b]")
    return tuple(_text(place.at(f"[{i}]"), v, required=not allow_empty) for i, v in enumerate(value))


def _flag(place: _Place, value: Any) -> bool:
    if not isinstance(value, bool):
        place.fail(f"expected true or false, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------------ datasets


def _parse_dataset(place: _Place, raw: Any) -> Dataset | str:
    """The dataset of one file, or the reason it is skipped (no columns)."""
    raw = _mapping(place, raw, DATASET_KEYS, DATASET_INFO_KEYS)
    for key in ("dataset_id", "version", "name_ja", "name_en", "variants"):
        if key not in raw:
            place.at(key).fail("missing (required key)")
    dataset_id = _text(place.at("dataset_id"), raw["dataset_id"])
    if not DATASET_ID.match(dataset_id):
        place.at("dataset_id").fail(f"{dataset_id!r}: use lower-case letters, digits and _ only")
    if dataset_id != place.file.stem:
        place.at("dataset_id").fail(f"{dataset_id!r} differs from the file name {place.file.name!r}")
    if not isinstance(raw["variants"], list):
        place.at("variants").fail("expected a list of variants")
    if not raw["variants"]:
        notes = raw.get("notes") or []
        return str(notes[0]) if notes else "no columns are defined (variants: [])"
    variants = _parse_variants(place.at("variants"), raw["variants"])
    canonical = next((v for v in variants if v.name == "current"), variants[0])   # = Dataset.canonical
    _check_maps_to(place.at("variants"), variants, canonical)
    lat, lon = _parse_coordinates(place.at("coordinates"), raw.get("coordinates"), canonical)
    id_column = _canonical_column(place.at("id_column"), raw.get("id_column", "ID"), canonical)
    return Dataset(
        id=dataset_id,
        name_ja=_text(place.at("name_ja"), raw["name_ja"]),
        name_en=_text(place.at("name_en"), raw["name_en"]),
        version=_text(place.at("version"), raw["version"]),
        variants=variants,
        id_column=id_column,
        key_columns=_key_columns(place.at("key_columns"), raw.get("key_columns"), canonical, id_column),
        code_column=_canonical_column(place.at("code_column"),
                                      raw.get("code_column", "全国地方公共団体コード"), canonical),
        lat_column=lat,
        lon_column=lon,
        policy=_parse_policy(place.at("policy"), raw.get("policy", {}), canonical),
        file_slugs=_texts(place.at("file_slugs"), raw.get("file_slugs", [dataset_id])),
        description_ja=_text(place.at("description_ja"), raw.get("description_ja"), required=False),
        description_en=_text(place.at("description_en"), raw.get("description_en"), required=False),
        licence=_licence(place.at("licence"), raw.get("licence", "CC-BY-4.0")),
    )


def _licence(place: _Place, value: Any) -> str:
    text = _text(place, value)
    if text not in LICENCES:
        place.fail(f"{text!r}: choose one of {', '.join(sorted(LICENCES))}")
    return text


def _canonical_column(place: _Place, value: Any, canonical: Variant) -> str:
    name = _text(place, value)
    if canonical.column(name) is None:
        place.fail(f"{name!r} is not a column of the {canonical.name!r} variant")
    return name


def _parse_coordinates(place: _Place, raw: Any, canonical: Variant) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    raw = _mapping(place, raw, {"lat", "lon"})
    if set(raw) != {"lat", "lon"}:
        place.fail("give both lat and lon, e.g. {lat: 緯度, lon: 経度}")
    return (_canonical_column(place.at("lat"), raw["lat"], canonical),
            _canonical_column(place.at("lon"), raw["lon"], canonical))


def _key_columns(place: _Place, raw: Any, canonical: Variant, id_column: str) -> tuple[str, ...]:
    """The dataset's key columns: as listed, or by default its ID column and its name column."""
    if raw is None:
        name = next((n for n in NAME_COLUMNS if canonical.column(n) is not None), None)
        return tuple(c for c in (id_column, name) if c is not None)
    names = _texts(place, raw)
    for i, name in enumerate(names):
        _canonical_column(place.at(f"[{i}]"), name, canonical)
    return names


def _parse_policy(place: _Place, raw: Any, canonical: Variant) -> Policy:
    raw = _mapping(place, raw, POLICY_KEYS)
    defaults = Policy()
    on_error = raw.get("on_error", defaults.on_error)
    if on_error not in ON_ERROR:
        place.at("on_error").fail(f"{on_error!r}: use one of {', '.join(ON_ERROR)}")
    on_warning = raw.get("on_warning", defaults.on_warning)
    if on_warning not in ON_WARNING:
        place.at("on_warning").fail(f"{on_warning!r}: use one of {', '.join(ON_WARNING)}")
    strict = _texts(place.at("strict_columns"), raw.get("strict_columns", []))
    for i, name in enumerate(strict):
        _canonical_column(place.at("strict_columns").at(f"[{i}]"), name, canonical)
    reject_above = raw.get("reject_above", defaults.reject_above)
    is_number = isinstance(reject_above, int | float) and not isinstance(reject_above, bool)
    if not is_number or not 0 <= reject_above <= 1:
        place.at("reject_above").fail(f"{reject_above!r}: use a share between 0 and 1, e.g. 0.5")
    fix = _flag(place.at("fix_swapped_coordinates"),
                raw.get("fix_swapped_coordinates", defaults.fix_swapped_coordinates))
    return Policy(on_error=on_error, on_warning=on_warning, reject_above=float(reject_above),
                  fix_swapped_coordinates=fix, strict_columns=strict)


def _parse_variants(place: _Place, raw: list[Any]) -> tuple[Variant, ...]:
    variants: list[Variant] = []
    for i, item in enumerate(raw):
        here = place.at(f"[{i}]")
        item = _mapping(here, item, VARIANT_KEYS, VARIANT_INFO_KEYS)
        name = _text(here.at("variant"), item.get("variant"))
        here = place.at(f"[{name}]")
        if any(v.name == name for v in variants):
            here.at("variant").fail(f"variant {name!r} is defined twice")
        variants.append(Variant(name=name, columns=_parse_columns(here.at("columns"), item.get("columns"))))
    return tuple(variants)


def _parse_columns(place: _Place, raw: Any) -> tuple[Column, ...]:
    if not isinstance(raw, list) or not raw:
        place.fail("expected a non-empty list of columns")
    columns: list[Column] = []
    seen: dict[str, str] = {}   # header key (normalised, case-folded) → declared name
    for i, item in enumerate(raw):
        column = _parse_column(place, i, item)
        key = header_key(column.name)
        if key in seen:
            place.at(f"[{column.name}]").fail(
                f"duplicate column: {column.name!r} is the same header as {seen[key]!r}")
        seen[key] = column.name
        columns.append(column)
    return tuple(columns)


def _parse_column(columns_place: _Place, index: int, raw: Any) -> Column:
    named = isinstance(raw, dict) and isinstance(raw.get("name"), str) and raw["name"].strip()
    place = columns_place.at(f"[{raw['name'] if named else index}]")
    raw = _mapping(place, raw, COLUMN_KEYS, COLUMN_INFO_KEYS)
    name = _text(place.at("name"), raw.get("name"))
    col_type = raw.get("type", "string")
    if col_type not in COLUMN_TYPES:
        place.at("type").fail(f"unknown type {col_type!r}; use one of {', '.join(COLUMN_TYPES)}")
    level = raw.get("level", "unknown")
    if level not in LEVELS:
        place.at("level").fail(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    enum = _texts(place.at("enum"), raw["enum"], allow_empty=True) if raw.get("enum") is not None else None
    maps_to = _text(place.at("maps_to"), raw["maps_to"]) if raw.get("maps_to") is not None else None
    return Column(
        name=name,
        type=col_type,
        required=_flag(place.at("required"), raw.get("required", False)),
        level=level,
        format=_text(place.at("format"), raw["format"]) if raw.get("format") is not None else None,
        enum=enum,
        description=_text(place.at("description"), raw.get("description"), required=False),
        maps_to=maps_to,
        aliases=_texts(place.at("aliases"), raw.get("aliases", [])),
    )


def _check_maps_to(place: _Place, variants: tuple[Variant, ...], canonical: Variant) -> None:
    """maps_to only outside the canonical variant, naming one of its columns, at most once per variant."""
    for variant in variants:
        targets: dict[str, str] = {}
        for column in variant.columns:
            if column.maps_to is None:
                continue
            here = place.at(f"[{variant.name}]").at(f"columns[{column.name}]").at("maps_to")
            if variant is canonical:
                here.fail(f"the canonical variant {canonical.name!r} must not use maps_to")
            if canonical.column(column.maps_to) is None:
                here.fail(f"{column.maps_to!r} is not a column of the canonical variant {canonical.name!r}")
            if column.maps_to in targets:
                here.fail(f"{targets[column.maps_to]!r} already maps to {column.maps_to!r}")
            targets[column.maps_to] = column.name


# ------------------------------------------------------------------------------------------------ aliases


def _parse_aliases(place: _Place, raw: Any, datasets: Mapping[str, Dataset]) -> dict[str, str]:
    """spelling → column name; no chains, no spelling with two meanings, every target a known column."""
    raw = _mapping(place, raw, {"aliases"}, {"version"})
    table = raw.get("aliases") or {}
    if not isinstance(table, dict):
        place.at("aliases").fail("expected a mapping of spelling: column name")
    known = {header_key(c.name) for d in datasets.values() for v in d.variants for c in v.columns}
    aliases: dict[str, str] = {}
    by_key: dict[str, str] = {}
    for spelling, target in table.items():
        here = place.at("aliases").at(str(spelling))
        if not isinstance(spelling, str):
            here.fail(_not_text(spelling))
        target = _text(here, target)
        if target in table:
            here.fail(f"{target!r} is itself an alias; point to the column name directly")
        key = header_key(spelling)
        if key in by_key and by_key[key] != target:
            here.fail(f"same header as the alias {key!r} but a different column ({by_key[key]!r})")
        if header_key(target) not in known:
            here.fail(f"{target!r} is not a column of any dataset")
        by_key[key] = target
        aliases[spelling] = target
    return aliases
