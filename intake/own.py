"""A city's own dataset: a file that fits no standard dataset is published as it is, in its own layout.

When a header row matches no standard dataset and no mapping can be proposed (``intake.mapping``), the file is
not refused: a schema is generated for it (:func:`infer_own_dataset`) — the city's columns as written, each
column's type inferred from its values (dates, times, phone numbers, postal codes, URLs, integers, numbers,
kana, coordinates) so that it is normalised the same way as a standard file, a licence (CC BY 4.0) and a
description — and written as an ordinary schema file, ``$KOUIKI_HOME/schemas/own/own_<city>_<slug>.yaml``.
From there it is a dataset like any other (docs/schemas.md): the registry loads it
(``expectations.registry.default_registry``), the pipeline gives it a lake asset, generated staging and conformed
models and a release; the portal lists it under the city, and the scoreboard counts it as
「独自形式（標準未対応）」 / "own layout, not yet standard".

The city's next file with the same header row (same signature) goes to the same own dataset. The office turns
this off for a member with ``own_datasets: false`` in config/members.yaml (such files are then refused, as
before). An own dataset is replaced by a standard one as soon as the office accepts a mapping for the layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jaconv
import polars as pl
import yaml

from intake.headers import header_key, normalise_header
from intake.mapping import column_kinds, header_signature, type_of_kind
from intake.read import RawTable
from kouiki.localgov import lookup
from kouiki.model import Dataset
from kouiki.problems import Notice
from kouiki.settings import kouiki_home

OWN_PREFIX = "own_"
OWN_FOLDER = Path("schemas") / "own"
ID_COLUMN = "ID"
CODE_COLUMN = "全国地方公共団体コード"
_LEADING_ZERO = re.compile(r"^0\d")


def own_schemas_dir(home: Path | None = None) -> Path:
    """Where generated own-dataset schemas live (loaded by the registry with the built-in ones)."""
    return (home or kouiki_home()) / OWN_FOLDER


def is_own_dataset(dataset_id: str) -> bool:
    return dataset_id.startswith(OWN_PREFIX)


def own_dataset_city(dataset_id: str) -> str | None:
    parts = dataset_id.split("_")
    return parts[1] if is_own_dataset(dataset_id) and len(parts) > 2 else None


@dataclass(frozen=True)
class OwnDataset:
    dataset: Dataset
    file: Path
    signature: str
    created: bool

    @property
    def dataset_id_city(self) -> str:
        return own_dataset_city(self.dataset.id) or ""


def find_own_dataset(city_code: str, header: list[str], folder: Path | None = None) -> OwnDataset | None:
    """The city's own dataset for exactly this header row, if one was generated before."""
    from expectations.registry import load_own_schema

    root = folder or own_schemas_dir()
    signature = header_signature(header)
    for file in sorted(root.glob(f"{OWN_PREFIX}{city_code}_*.yaml")) if root.is_dir() else []:
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if (doc.get("source") or {}).get("signature") == signature:
            return OwnDataset(load_own_schema(file), file, signature, created=False)
    return None


def own_dataset_for(raw: RawTable, city_code: str, file_name: str, folder: Path | None = None) -> OwnDataset:
    """The city's own dataset for this layout: found by signature, or generated and written now."""
    from expectations.registry import load_own_schema

    found = find_own_dataset(city_code, raw.header, folder)
    if found is not None:
        return found
    root = folder or own_schemas_dir()
    root.mkdir(parents=True, exist_ok=True)
    dataset_id = _free_id(root, city_code, slug_of(file_name, raw.header))
    doc = infer_own_schema(raw, city_code, dataset_id, file_name)
    target = root / f"{dataset_id}.yaml"
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(_HEAD + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=4096), encoding="utf-8")
    tmp.replace(target)
    return OwnDataset(load_own_schema(target), target, header_signature(raw.header), created=True)


_HEAD = ("# 独自形式のデータセット（自動生成）: 標準のデータセットに当てはまらないファイルから、\n"
         "# 列と型を推定しました。\n"
         "# Generated schema of a city's own dataset (no standard dataset fits its file). Review and edit like any\n"
         "# schema (docs/schemas.md); a mapping onto a standard dataset (kouiki mappings accept) replaces it.\n")


def slug_of(file_name: str, header: list[str]) -> str:
    """A short id from the file name's ASCII words (``gomi_calendar``), else from the kana of its name, else
    from the layout's signature."""
    stem = Path(file_name).stem
    ascii_words = re.findall(r"[a-z0-9]+", normalise_header(stem).casefold())
    words = [w for w in ascii_words if not w.isdigit()]
    if words:
        return "_".join(words)[:40]
    kana = jaconv.kata2hira(normalise_header(stem))
    if kana and all("\u3041" <= c <= "\u3096" or c == "ー" for c in kana):
        romaji = re.sub(r"[^a-z0-9]", "", jaconv.kana2alphabet(kana))
        if romaji:
            return romaji[:40]
    return f"list_{header_signature(header)[:8]}"


def _free_id(root: Path, city_code: str, slug: str) -> str:
    base = f"{OWN_PREFIX}{city_code}_{slug}"
    candidate, n = base, 2
    while (root / f"{candidate}.yaml").exists():
        candidate, n = f"{base}_{n}", n + 1
    return candidate


def own_column_names(header: list[str]) -> list[str]:
    """The lake names of the file's columns: as written (normalised), ``列<n>`` when blank, unique."""
    names: list[str] = []
    taken: set[str] = set()
    for pos, text in enumerate(header):
        name = normalise_header(text) or f"列{pos + 1}"
        if header_key(name) in taken or name.startswith("_"):
            name = f"{name.lstrip('_')}_列{pos + 1}"
        taken.add(header_key(name))
        names.append(name)
    return names


def infer_own_schema(raw: RawTable, city_code: str, dataset_id: str, file_name: str) -> dict[str, Any]:
    """The schema document (docs/schemas.md format) of a city's own file: its columns, types from the values."""
    kinds = column_kinds(raw.header, raw.data)
    data_columns = [c for c in raw.data.columns if c != "_source_line"]
    names = own_column_names(raw.header)
    keys = {header_key(h) for h in raw.header}
    columns: list[dict[str, Any]] = []
    if header_key(CODE_COLUMN) not in keys:
        columns.append({"name": CODE_COLUMN, "type": "code", "level": "optional",
                        "description": "全国地方公共団体コード（登録した市から補完）/ filled from the uploading city"})
    if header_key(ID_COLUMN) not in keys:
        columns.append({"name": ID_COLUMN, "type": "string", "level": "optional",
                        "description": "ファイルの行の順番 / row number in the city's file"})
    lat = lon = None
    for pos, (text, name) in enumerate(zip(raw.header, names, strict=True)):
        kind = kinds[pos]
        col_type = type_of_kind(kind)
        if name == CODE_COLUMN:
            col_type = "code"
        elif name == ID_COLUMN:
            col_type = "string"
        elif col_type == "integer" and pos < len(data_columns) and _has_leading_zeros(raw, data_columns[pos]):
            col_type = "code"   # 0012: an identifier, not a number
        if kind == "latitude" and lat is None:
            lat = name
        if kind == "longitude" and lon is None:
            lon = name
        column: dict[str, Any] = {"name": name, "type": col_type, "level": "optional"}
        if name != text and text.strip():
            column["aliases"] = [text]
        columns.append(column)
    city = lookup(city_code)
    city_name = (city.city or city.name) if city else city_code
    stem = Path(file_name).stem
    doc: dict[str, Any] = {
        "dataset_id": dataset_id,
        "version": "own-1",
        "name_ja": f"{city_name} 独自データ「{stem}」",
        "name_en": f"{city_name} ({city_code}) own dataset: {stem}",
        "description_ja": (f"{city_name}が独自の形式で登録した一覧です（独自形式・標準未対応）。列はファイルのとおり、"
                           "型は値から推定し、日付・かな・数字は標準のデータセットと同じように正規化しています。"),
        "description_en": (f"A list {city_name} published in its own layout (own layout, not yet standard). The "
                           "columns are the city's; their types were inferred from the values, and dates, kana and "
                           "digits are normalised as in the standard datasets."),
        "licence": "CC-BY-4.0",
        "file_slugs": [],
        "id_column": ID_COLUMN,
        "key_columns": [ID_COLUMN],
        "source": {"kind": "own_layout", "city_code": city_code, "signature": header_signature(raw.header),
                   "generated_from": file_name, "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                   "header": list(raw.header)},
        "variants": [{"variant": "current", "columns": columns}],
    }
    if lat and lon:
        doc["coordinates"] = {"lat": lat, "lon": lon}
    return doc


def _has_leading_zeros(raw: RawTable, column: str) -> bool:
    cells = raw.data[column].cast(pl.String).drop_nulls().to_list()
    return any(_LEADING_ZERO.match(str(c).strip()) for c in cells)


def own_notice(own: OwnDataset) -> Notice:
    return Notice.of(
        "own-dataset",
        name_ja=own.dataset.name_ja, dataset=own.dataset.id,
        details={"dataset": own.dataset.id, "schema": own.file.name, "created": own.created},
    )


def own_datasets_allowed(city_code: str) -> bool:
    """Whether the member publishes files that fit nothing as own datasets (``own_datasets``, default true)."""
    from kouiki.members import RegistryError, load_members

    try:
        member = next((m for m in load_members() if m.code == city_code), None)
    except RegistryError:
        return False
    return member is not None and member.own_datasets


_STANDARD: dict[int, Any] = {}


def standard_only(registry: Any) -> Any:
    """The registry without cities' own datasets (cached per registry: detection caches by identity)."""
    from expectations.registry import Registry

    if not any(is_own_dataset(d) for d in registry.datasets):
        return registry
    cached = _STANDARD.get(id(registry))
    if cached is None or cached[0] is not registry:
        view = Registry(datasets={k: v for k, v in registry.datasets.items() if not is_own_dataset(k)},
                        aliases=registry.aliases, skipped=registry.skipped)
        cached = _STANDARD[id(registry)] = (registry, view)
    return cached[1]
