"""The schema registry: the YAML files load into the model, and broken files are refused with file + key."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import pytest
import yaml

from expectations import import_standards
from expectations.registry import SCHEMAS_DIR, SchemaError, load_registry
from kouiki.model import Dataset

STANDARDS = Path(import_standards.__file__).resolve().parent / "standards"


@cache
def _standards() -> dict[str, dict]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    files = STANDARDS.glob("[!_]*.yaml")
    return {p.stem: yaml.load(p.read_text(encoding="utf-8"), Loader=loader) for p in files}


def _columnless() -> set[str]:
    return {key for key, d in _standards().items() if not any(v.get("columns") for v in d["variants"])}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture
def schemas_copy(tmp_path: Path) -> Path:
    """A writable copy of the registry folder, to break on purpose."""
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# ------------------------------------------------------------------------------------------ the real registry


def test_every_standard_dataset_has_a_registry_file():
    assert {p.stem for p in SCHEMAS_DIR.glob("[!_]*.yaml")} == set(_standards())


def test_datasets_with_columns_load_and_columnless_ones_are_skipped_with_a_reason(registry, caplog):
    columnless = _columnless()
    assert columnless == {"school_district", "school_lunch_menu", "support_program"}
    assert set(registry.datasets) == set(_standards()) - columnless
    assert set(registry.skipped) == columnless
    assert all("cannot be validated" in reason for reason in registry.skipped.values())
    with caplog.at_level("INFO", logger="expectations.registry"):
        load_registry()
    assert {rec.args[0] for rec in caplog.records if "skipping" in rec.getMessage()} == columnless


def test_canonical_variant_is_current_or_the_only_legacy_one(registry):
    for dataset_id, raw in _standards().items():
        if dataset_id in registry.skipped:
            continue
        has_current = any(v["variant"].startswith("current") and v.get("columns") for v in raw["variants"])
        assert registry.get(dataset_id).canonical.name == ("current" if has_current else "legacy"), dataset_id
    assert registry.get("hospital").canonical.column("住所") is not None


def test_legacy_columns_map_to_current_ones(registry):
    aed = registry.get("aed").variant("legacy")
    assert {c.name: c.maps_to for c in aed.columns if c.maps_to != c.name} == {
        "都道府県コード又は市区町村コード": "全国地方公共団体コード",
        "NO": "ID",
        "住所": "所在地_連結表記",
        "方書": "建物名等(方書)",
        "都道府県名": None,     # no current counterpart: kept as an extra column
        "市区町村名": None,
    }
    toilet = registry.get("public_toilet").variant("legacy")
    assert toilet.column("多機能トイレ数").maps_to == "バリアフリートイレ数"
    facility = registry.get("public_facility").variant("legacy")
    assert facility.column("利用可能日時特記事項").maps_to == "利用可能時間特記事項"
    for dataset in registry:
        canonical = {c.name for c in dataset.canonical.columns}
        for variant in dataset.variants:
            assert {c.maps_to for c in variant.columns if c.maps_to} <= canonical, (dataset.id, variant.name)


def test_types_are_refined_from_the_definitions(registry):
    aed = registry.get("aed").canonical
    evacuation = registry.get("evacuation_space").canonical
    cultural = registry.get("cultural_property").canonical
    assert aed.column("名称_カナ").type == "kana"
    assert aed.column("郵便番号").type == "postal_code"
    assert aed.column("連絡先メールアドレス").type == "email"
    assert aed.column("電話番号").type == "phone"
    assert aed.column("連絡先FormURL").type == "url"
    assert aed.column("開始時間").type == "time"
    assert aed.column("緯度").type == aed.column("経度").type == "number"
    assert aed.column("小児対応設備の有無").enum == ("有", "無", "")
    assert cultural.column("文化財指定日").type == "date"
    flags = [c for c in evacuation.columns
             if c.name.startswith("災害種別_") or c.name == "指定避難所との重複"]
    assert len(flags) == 9 and all(c.type == "flag" for c in flags)


def test_dataset_level_settings(registry):
    aed = registry.get("aed")
    assert (aed.lat_column, aed.lon_column, aed.id_column) == ("緯度", "経度", "ID")
    assert aed.policy.on_error == "quarantine" and aed.policy.reject_above == 0.5
    assert "aed" in aed.file_slugs and aed.version == "2025-05-01"
    assert registry.get("population").lat_column is None        # no coordinates in this dataset
    assert registry.get("hospital").id_column == "NO"           # legacy-only dataset
    assert registry.get("evacuation_space").code_column == "市区町村コード"


def test_get_explains_unknown_and_skipped_datasets(registry):
    with pytest.raises(KeyError, match="unknown dataset 'bus_stop'"):
        registry.get("bus_stop")
    with pytest.raises(KeyError, match="cannot be used"):
        registry.get("school_district")
    assert "aed" in registry and "school_district" not in registry
    assert len(list(registry)) == len(registry) == 15


def test_aliases_are_loaded(registry):
    assert registry.aliases["住所"] == "所在地_連結表記"
    assert registry.aliases["NO"] == "ID"
    assert registry.aliases["lat"] == "緯度"


def test_generator_output_is_a_valid_registry(tmp_path: Path):
    import_standards.main(["--out", str(tmp_path)])
    generated = load_registry(tmp_path)
    assert set(generated.datasets) == set(_standards()) - _columnless()


# ------------------------------------------------------------------------------------------ broken files


def _load_error(folder: Path) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        load_registry(folder)
    return info.value


def test_unknown_type_names_file_and_key(schemas_copy: Path):
    _edit(schemas_copy / "aed.yaml", "{name: 名称, type: string, required: true",
          "{name: 名称, type: text, required: true")
    error = _load_error(schemas_copy)
    assert error.file.name == "aed.yaml"
    assert error.key == "variants[current].columns[名称].type"
    assert "unknown type 'text'" in str(error) and "aed.yaml" in str(error)
    assert isinstance(error, ValueError)


def test_duplicate_column_is_refused(schemas_copy: Path):
    # 備考 → 名称 makes two 名称 columns in the current AED layout
    _edit(schemas_copy / "aed.yaml", "{name: 備考, type: string", "{name: 名称, type: string")
    error = _load_error(schemas_copy)
    assert error.key == "variants[current].columns[名称]" and "duplicate column" in error.reason


def test_duplicate_after_normalisation_is_refused(schemas_copy: Path):
    _edit(schemas_copy / "aed.yaml", "{name: 備考, type: string", "{name: 建物名等（方書）, type: string")
    error = _load_error(schemas_copy)
    assert "same header as '建物名等(方書)'" in error.reason


def test_maps_to_must_name_a_canonical_column(schemas_copy: Path):
    _edit(schemas_copy / "aed.yaml", "maps_to: 所在地_連結表記", "maps_to: 住所_連結")
    error = _load_error(schemas_copy)
    assert error.file.name == "aed.yaml"
    assert error.key == "variants[legacy].columns[住所].maps_to"
    assert "'住所_連結' is not a column of the canonical variant" in error.reason


def test_missing_dataset_id(schemas_copy: Path):
    _edit(schemas_copy / "fire_hydrant.yaml", "dataset_id: fire_hydrant\n", "")
    error = _load_error(schemas_copy)
    assert (error.file.name, error.key) == ("fire_hydrant.yaml", "dataset_id")


def test_dataset_id_must_match_the_file_name(schemas_copy: Path):
    _edit(schemas_copy / "fire_hydrant.yaml", "dataset_id: fire_hydrant", "dataset_id: hydrant")
    assert "differs from the file name" in _load_error(schemas_copy).reason


def test_unknown_key_is_refused(schemas_copy: Path):
    _edit(schemas_copy / "aed.yaml", "{name: 名称, type: string, required: true",
          "{name: 名称, type: string, requierd: true")
    error = _load_error(schemas_copy)
    assert error.key == "variants[current].columns[名称].requierd" and "unknown key" in error.reason


def test_yaml_syntax_error_names_the_line(schemas_copy: Path):
    _edit(schemas_copy / "tourism.yaml", "name_en: Tourist facilities", "name_en: [Tourist facilities")
    error = _load_error(schemas_copy)
    assert error.file.name == "tourism.yaml" and error.key.startswith("line ")


def test_duplicate_yaml_key_is_refused(schemas_copy: Path):
    _edit(schemas_copy / "aed.yaml", "name_en: AED locations\n", "name_en: AED locations\nname_en: AED\n")
    error = _load_error(schemas_copy)
    assert "duplicate key 'name_en'" in error.reason


def test_bad_policy_value(schemas_copy: Path):
    _edit(schemas_copy / "aed.yaml", "reject_above: 0.5", "reject_above: 50")
    error = _load_error(schemas_copy)
    assert error.key == "policy.reject_above"


def test_unquoted_date_version_is_accepted(schemas_copy: Path):
    _edit(schemas_copy / "aed.yaml", "version: '2025-05-01'", "version: 2025-06-01")
    assert load_registry(schemas_copy).get("aed").version == "2025-06-01"


def test_alias_to_an_unknown_column_names_the_alias(schemas_copy: Path):
    _edit(schemas_copy / "_aliases.yaml", "  住所: 所在地_連結表記", "  住所: 所在地_連結")
    error = _load_error(schemas_copy)
    assert (error.file.name, error.key) == ("_aliases.yaml", "aliases.住所")


def test_unquoted_no_alias_is_explained(schemas_copy: Path):
    # YAML 1.1 reads a bare NO as false: the office must quote it
    _edit(schemas_copy / "_aliases.yaml", '  "NO": ID', "  NO: ID")
    assert "quote it" in _load_error(schemas_copy).reason


def test_a_new_dataset_needs_no_code(schemas_copy: Path):
    (schemas_copy / "bus_stop.yaml").write_text(
        "dataset_id: bus_stop\nversion: '2026-01-01'\nname_ja: バス停留所一覧\nname_en: Bus stops\n"
        "id_column: ID\ncode_column: 全国地方公共団体コード\ncoordinates: {lat: 緯度, lon: 経度}\n"
        "variants:\n  - variant: current\n    columns:\n"
        "      - {name: 全国地方公共団体コード, type: code}\n      - {name: ID}\n"
        "      - {name: 名称, required: true, level: required}\n"
        "      - {name: 緯度, type: number}\n      - {name: 経度, type: number}\n",
        encoding="utf-8")
    bus: Dataset = load_registry(schemas_copy).get("bus_stop")
    assert [c.name for c in bus.canonical.columns] == ["全国地方公共団体コード", "ID", "名称", "緯度", "経度"]
    id_column = bus.canonical.column("ID")
    assert id_column is not None and id_column.type == "string" and bus.file_slugs == ("bus_stop",)


def test_shipped_policies_are_the_office_defaults_and_keys_are_id_and_name(registry):
    from kouiki.model import Policy
    assert {d.id: d.policy for d in registry} == {d.id: Policy() for d in registry}
    assert registry.get("aed").key_columns == ("ID", "名称")
    assert registry.get("hospital").key_columns == ("NO", "名称")
    assert registry.get("care_service").key_columns == ("ID", "介護サービス事業所名称")


def test_policy_can_be_tightened_in_yaml(schemas_copy: Path):
    _edit(schemas_copy / "aed.yaml", "on_warning: publish", "on_warning: withhold, strict_columns: [電話番号]")
    _edit(schemas_copy / "aed.yaml", "key_columns: [ID, 名称]", "key_columns: [ID]")
    aed = load_registry(schemas_copy).get("aed")
    assert (aed.policy.on_warning, aed.policy.strict_columns, aed.key_columns) == ("withhold", ("電話番号",), ("ID",))
    assert load_registry(schemas_copy).get("preschool").key_columns == ("ID", "名称")   # default when absent


@pytest.mark.parametrize(("old", "new", "key", "problem"), [
    ("on_warning: publish", "on_warning: hide", "policy.on_warning", "'hide': use one of publish, withhold"),
    ("on_warning: publish", "strict_columns: [電話]", "policy.strict_columns[0]", "'電話' is not a column"),
    ("key_columns: [ID, 名称]", "key_columns: [ID, 名前]", "key_columns[1]", "'名前' is not a column"),
])
def test_bad_policy_names_file_and_key(schemas_copy: Path, old: str, new: str, key: str, problem: str):
    _edit(schemas_copy / "aed.yaml", old, new)
    error = _load_error(schemas_copy)
    assert (error.file.name, error.key) == ("aed.yaml", key) and problem in error.reason
