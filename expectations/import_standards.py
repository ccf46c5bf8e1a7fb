"""Regenerate the schema registry (``expectations/schemas/<id>.yaml``) from ``expectations/standards/``.

This was run ONCE to create the registry; since then the files in ``expectations/schemas/`` are the source of
truth and the office edits them by hand (see docs/schemas.md). Run it again only to start over from the
gathered definitions, e.g. into a scratch folder to compare::

    .venv/bin/python -m expectations.import_standards --out /tmp/schemas        # writes new files only
    .venv/bin/python -m expectations.import_standards --force                   # overwrites the registry!

What it does beyond copying: it refines column types from the definitions (名称_カナ → kana,
郵便番号 → postal_code, '1 / empty' hazard flags → flag, dates, times, phones, URLs, e-mail), turns
'有 / 無' style controlled vocabularies into ``enum``, and gives every legacy column the current column it
becomes (``maps_to``) by same name, by ``_aliases.yaml``, or by the per-dataset tables below. Datasets
without any column get ``variants: []``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import yaml

# libyaml's C loader/dumper when available: same output, ten times faster
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

HERE = Path(__file__).resolve().parent
STANDARDS = HERE / "standards"
SCHEMAS = HERE / "schemas"

# Editions of the definition books (standards/README.md): book A 2025-05-01, book B 2023-12-06.
BOOK_EDITION = {"A": "2025-05-01", "B": "2023-12-06"}

# Short descriptions (ja, en) written for the registry; the definitions carry none.
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "aed": ("AED（自動体外式除細動器）の設置場所の一覧。",
            "Where automated external defibrillators are installed."),
    "care_service": ("介護サービス事業所の一覧。", "Long-term care service providers."),
    "cultural_property": ("指定・登録された文化財の一覧。", "Designated and registered cultural properties."),
    "evacuation_space": ("災害種別ごとの指定緊急避難場所の一覧。",
                         "Designated emergency evacuation sites, by type of hazard."),
    "event": ("自治体が開催・周知するイベントの一覧。", "Events held or announced by the municipality."),
    "fire_hydrant": ("消火栓・防火水そう等の消防水利施設の一覧。",
                     "Fire-fighting water sources (hydrants, cisterns …)."),
    "food_business": ("食品等の営業許可・届出の一覧。", "Food business permits and notifications."),
    "hospital": ("病院・診療所の一覧。", "Hospitals and clinics."),
    "open_data_list": ("自治体が公開するオープンデータの一覧（データセット・ファイル単位）。",
                       "The municipality's open-data catalogue (datasets and files)."),
    "population": ("地域（町丁字）・年齢階級・男女別の人口と世帯数。",
                   "Population by area, age band and sex, and households."),
    "preschool": ("保育所・幼稚園・認定こども園等の子育て施設の一覧。",
                  "Childcare facilities: nurseries, kindergartens, centres for early childhood."),
    "public_facility": ("公共施設の一覧（バリアフリー情報を含む）。",
                        "Public facilities, with accessibility."),
    "public_toilet": ("公衆トイレの一覧（便器数・設備を含む）。",
                      "Public toilets, with counts and equipment."),
    "public_wireless_lan": ("公衆無線LANアクセスポイントの一覧。", "Public Wi-Fi access points."),
    "school_district": ("小中学校の通学区域（ポリゴン）。",
                        "Elementary and junior-high school districts (polygons)."),
    "school_lunch_menu": ("学校給食の献立。", "School lunch menus."),
    "support_program": ("自治体の支援制度（補助金・給付等）の一覧。",
                        "Support programmes (grants, benefits …) of the municipality."),
    "tourism": ("観光施設の一覧。", "Tourist facilities."),
}

# File-name hints beyond the dataset id (what cities actually name their files).
EXTRA_SLUGS: dict[str, list[str]] = {
    "preschool": ["kindergarten"],              # 高松市 publishes 幼稚園 as 'kindergarten'
    "food_business": ["food_business_all", "food_business_new"],
}

# Legacy → current column where the name changed and no shared alias says so (definitions, README notes).
MAPS_TO_OVERRIDES: dict[str, dict[str, str | None]] = {
    "public_facility": {"利用可能日時特記事項": "利用可能時間特記事項"},
    "open_data_list": {
        "NO": "データセット_ID",
        "データ名称": "データセット_タイトル",
        "データ概要": "データセット_概要",
        "分類": "データセット_分類",
        "更新頻度": "データセット_更新頻度",
        "URL": "データセット_URL",
        "登録日": "データセット_公開日",
        "最終更新日": "データセット_最終更新日",
        "備考": "データセット_備考",
        "データ形式": "ファイル形式",
        "ライセンス": "ファイル_ライセンス",
        "API対応有無": "ファイル_API対応有無",
    },
}

# Dataset-specific other spellings, put on the column (food_business uses 施設… names for generic items).
COLUMN_ALIASES: dict[str, dict[str, list[str]]] = {
    "food_business": {
        "施設所在地_都道府県": ["所在地_都道府県"],
        "施設所在地_市区町村": ["所在地_市区町村"],
        "施設所在地_町字": ["所在地_町字"],
        "施設所在地_番地以下": ["所在地_番地以下"],
        "施設方書": ["建物名等(方書)"],
        "施設電話番号": ["電話番号"],
        "連絡先備考": ["連絡先備考（その他、SNSなど）"],
    },
}

# Record-ID and local-government-code columns that are not the usual ID / 全国地方公共団体コード.
ID_COLUMN = {"open_data_list": "データセット_ID", "population": "地域コード"}
# 指定緊急避難場所一覧: 市区町村コード is required in both layouts; 全国地方公共団体コード is only in the
# current one.
CODE_COLUMN = {"evacuation_space": "市区町村コード"}

YES_NO = ["有", "無"]
DATE_NAME = re.compile(r"(年月日|指定日|開始日|終了日|公開日|更新日|登録日|満了日)$")
TIME_NAME = re.compile(r"(開始時間|終了時間|開所時間|閉所時間)$")


def refine_type(name: str, raw: dict[str, Any]) -> str:
    """The registry type of one column: the definition's type, refined from its name and format."""
    fmt = str(raw.get("format", ""))
    if "カナ" in name:
        return "kana"
    if name == "郵便番号":
        return "postal_code"
    if raw.get("enum") == ["1", ""] or fmt.startswith("1 = "):
        return "flag"
    if name.endswith("メールアドレス"):
        return "email"
    if name.endswith(("電話番号", "FAX番号")):
        return "phone"
    if name.endswith("URL"):
        return "url"
    if DATE_NAME.search(name):
        return "date"
    if TIME_NAME.search(name):
        return "time"
    return str(raw["type"])


def refine_enum(raw: dict[str, Any], col_type: str) -> list[str] | None:
    """Allowed values; vocabularies written only in ``format`` become a list. '' = empty allowed."""
    if col_type == "flag":
        return None                                  # the type itself means '1' or empty
    fmt = str(raw.get("format", ""))
    values: list[str] | None = [str(v) for v in raw["enum"]] if raw.get("enum") else None
    if values is None and "有 / 無" in fmt:
        values = list(YES_NO)
    if values is None and fmt.startswith("controlled: "):
        values = [v.strip() for v in fmt.removeprefix("controlled: ").split("/")]
    if values is not None and not raw.get("required") and "" not in values:
        values.append("")
    return values


def load_aliases() -> dict[str, str]:
    with (SCHEMAS / "_aliases.yaml").open(encoding="utf-8") as fh:
        return {str(k): str(v) for k, v in yaml.load(fh, Loader=_Loader)["aliases"].items()}


def resolve_maps_to(dataset_id: str, name: str, canonical: set[str], aliases: dict[str, str]) -> str | None:
    """The current column a legacy column becomes (override, same name, alias); None = kept as extra."""
    overrides = MAPS_TO_OVERRIDES.get(dataset_id, {})
    if name in overrides:
        return overrides[name]
    if name in canonical:
        return name
    target = aliases.get(name)
    if target in canonical:
        return target
    # the alias may point the other way round (e.g. 名称_英語 in a dataset whose current name is 名称_英字)
    siblings = [spelling for spelling, tgt in aliases.items()
                if tgt in (name, target) and spelling in canonical]
    return siblings[0] if siblings else None


def convert_column(dataset_id: str, raw: dict[str, Any], maps_to: str | None,
                   is_canonical: bool) -> dict[str, Any]:
    name = str(raw["name"])
    col_type = refine_type(name, raw)
    col: dict[str, Any] = {"name": name, "type": col_type, "required": bool(raw["required"]),
                           "level": raw["level"]}
    enum = refine_enum(raw, col_type)
    if enum is not None:
        col["enum"] = enum
    if raw.get("format") and col_type not in ("flag",):
        col["format"] = str(raw["format"])
    if not is_canonical and maps_to is not None:
        col["maps_to"] = maps_to
    if name in COLUMN_ALIASES.get(dataset_id, {}):
        col["aliases"] = COLUMN_ALIASES[dataset_id][name]
    if raw.get("example"):
        col["example"] = str(raw["example"])
    note = f" ({raw['note']})" if raw.get("note") else ""
    col["description"] = f"{raw.get('description', '')}{note}".strip()
    return col


def convert_dataset(raw: dict[str, Any], aliases: dict[str, str]) -> dict[str, Any]:
    """One standards/<id>.yaml → the registry's dict for <id>.yaml."""
    dataset_id = raw["dataset_id"]
    variants = [v for v in raw["variants"] if v.get("columns")]
    currents = [v for v in variants if v["variant"].startswith("current")]
    canonical_raw = (currents or variants or [None])[0]
    canonical = {c["name"] for c in canonical_raw["columns"]} if canonical_raw else set()
    number = str(raw["number_in_definition_book"])
    ja, en = DESCRIPTIONS[dataset_id]
    out: dict[str, Any] = {
        "dataset_id": dataset_id,
        "version": BOOK_EDITION[number[0]],
        "number": number,
        "name_ja": raw["name_ja"],
        "name_en": raw["name_en"],
        "description_ja": ja,
        "description_en": en,
        "file_slugs": [dataset_id, *EXTRA_SLUGS.get(dataset_id, [])],
        "source": f"expectations/standards/{dataset_id}.yaml",
    }
    notes = [n for v in raw["variants"] for n in v.get("notes", [])]
    if canonical_raw is None:
        out["notes"] = ["No columns are defined (not found in any source read), so uploads cannot be "
                        "validated; the loader skips this dataset until columns are added.", *notes]
        out["variants"] = []
        return out
    if notes:
        out["notes"] = notes
    out["id_column"] = ID_COLUMN.get(dataset_id, "ID" if "ID" in canonical else "NO")
    current_code, legacy_code = "全国地方公共団体コード", "都道府県コード又は市区町村コード"
    default_code = current_code if current_code in canonical else legacy_code
    out["code_column"] = CODE_COLUMN.get(dataset_id, default_code)
    if {"緯度", "経度"} <= canonical:
        out["coordinates"] = {"lat": "緯度", "lon": "経度"}
    out["policy"] = {"on_error": "quarantine", "on_warning": "publish", "reject_above": 0.5,
                     "fix_swapped_coordinates": True}
    out["variants"] = [convert_variant(dataset_id, v, v is canonical_raw, canonical, aliases)
                       for v in variants]
    return out


def convert_variant(dataset_id: str, raw: dict[str, Any], is_canonical: bool, canonical: set[str],
                    aliases: dict[str, str]) -> dict[str, Any]:
    name = "current" if raw["variant"].startswith("current") else str(raw["variant"])
    columns = []
    for col in raw["columns"]:
        maps_to = None if is_canonical else resolve_maps_to(dataset_id, col["name"], canonical, aliases)
        columns.append(convert_column(dataset_id, col, maps_to, is_canonical))
    return {"variant": name, "standard": raw.get("standard", ""), "confidence": raw.get("confidence", ""),
            "columns": columns}


def _flow(value: Any) -> str:
    """One YAML value on one line (flow style)."""
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, allow_unicode=True, width=1_000_000,
                     sort_keys=False)
    return text.strip().removesuffix("...").strip()


def render(data: dict[str, Any]) -> str:
    """The registry file as text: block style at the top, one flow-style line per column."""
    lines = [f"# {data['name_ja']} ({data['name_en']}), 自治体標準オープンデータセット {data['number']}.",
             "# Registry entry: the source of truth for this dataset. Format: docs/schemas.md.",
             "# First generated from expectations/standards/ by expectations/import_standards.py;",
             "# edit this file, not the generator."]
    for key, value in data.items():
        if key == "variants":
            continue
        if key == "notes":
            lines.append("notes:")
            lines.extend(f"  - {_flow(n)}" for n in value)
        else:
            lines.append(f"{key}: {_flow(value)}")
    if not data["variants"]:
        lines.append("variants: []")
    else:
        lines.append("variants:")
    for variant in data["variants"]:
        lines.append(f"  - variant: {_flow(variant['variant'])}")
        lines.append(f"    standard: {_flow(variant['standard'])}")
        lines.append(f"    confidence: {_flow(variant['confidence'])}")
        lines.append("    columns:")
        lines.extend(f"      - {_flow(col)}" for col in variant["columns"])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SCHEMAS,
                        help="folder to write into (default: the registry)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(argv)
    aliases = load_aliases()
    args.out.mkdir(parents=True, exist_ok=True)
    for src in sorted(STANDARDS.glob("[!_]*.yaml")):
        with src.open(encoding="utf-8") as fh:
            data = convert_dataset(yaml.load(fh, Loader=_Loader), aliases)
        target = args.out / src.name
        if target.exists() and not args.force:
            print(f"kept     {target} (exists; --force to overwrite)")
            continue
        target.write_text(render(data), encoding="utf-8")
        print(f"written  {target}")


if __name__ == "__main__":
    main()
