"""Every dataset of the schema registry is published without hand-written SQL: one `kouiki run` (the real
pipeline in a child process: landing → intake → validation → lake → generated models → releases) over one member
city that sends a small valid file of each of the 15 usable registry datasets, plus a dataset the office adds as a
YAML in KOUIKI_SCHEMAS. Each release is read back; the office's dataset is then found through the portal's CKAN
API on a real HTTP server."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from assets.models import MODELS_ROOT
from expectations.registry import default_registry
from intake.values import FULL_ADDRESS_COLUMNS
from kouiki.localgov import LOCAL_GOVERNMENT_CODE_COLUMNS, with_address_prefix
from kouiki.model import Column, Dataset
from kouiki.settings import REPO_ROOT
from portal.app import create_app
from portal.settings import PortalSettings
from portal.testing import serve

CITY = "132195"          # 狛江市
ROWS = 3
REGISTRY = default_registry()
DATASETS = sorted(REGISTRY.datasets)
HAND_WRITTEN = {"aed", "evacuation_space", "population"}   # dbt_like_sql/conformed/<id>.sql replaces the generated

OFFICE_SCHEMA = """\
dataset_id: ev_charger
version: "2026-11-01"
name_ja: 電気自動車充電設備一覧
name_en: EV chargers
description_ja: 市の施設にある電気自動車の充電設備（データ推進室の独自データセット）。
description_en: Electric-vehicle chargers at city facilities (the data office's own dataset).
file_slugs: [ev_charger]
coordinates: {lat: 緯度, lon: 経度}
variants:
  - variant: current
    columns:
      - {name: 全国地方公共団体コード, type: code, required: false, level: recommended}
      - {name: ID, type: string, required: false, level: recommended}
      - {name: 地方公共団体名, type: string, required: false, level: optional}
      - {name: 名称, type: string, required: true, level: required}
      - {name: 名称_カナ, type: kana, required: false, level: recommended}
      - {name: 緯度, type: number, required: false, level: recommended}
      - {name: 経度, type: number, required: false, level: recommended}
      - {name: 出力kW, type: number, required: true, level: required}
      - {name: 基数, type: integer, required: true, level: required}
"""
# Line 3 has a reading that is not katakana: a warning (format-warning), so the row is published and the
# release's conformance of 名称_カナ is 2 of 3 rows.
OFFICE_FILE = """\
全国地方公共団体コード,ID,地方公共団体名,名称,名称_カナ,緯度,経度,出力kW,基数
132195,EV-1,,狛江市役所駐車場,コマエシヤクシヨチユウシヤジヨウ,35.6348,139.5786,50,2
132195,EV-2,,狛江市民総合体育館,Komae Gym,35.6424,139.5801,6,4
132195,EV-3,,西河原公民館,,35.6300,139.5750,3,1
"""


def valid_value(dataset: Dataset, column: Column, i: int) -> str:
    """A value of row ``i`` that meets the standard's rule for ``column`` (every row different)."""
    name = column.name
    allowed = [v for v in column.enum or () if v]
    if name == dataset.code_column or name in LOCAL_GOVERNMENT_CODE_COLUMNS:
        return CITY
    if allowed:
        return allowed[i % len(allowed)]
    if name == dataset.id_column:
        return f"{i + 1:04d}"
    later = any(word in name for word in ("終了", "満了"))
    by_type = {
        "integer": str(10 + i),
        "number": {dataset.lat_column: f"{35.630 + i / 1000:.6f}",
                   dataset.lon_column: f"{139.570 + i / 1000:.6f}"}.get(name, f"{1.5 + i}"),
        "date": f"{2025 if later else 2024}-04-{i + 1:02d}",
        "time": "17:30" if later else "09:00",
        "phone": f"03-3430-{1111 + i}",
        "postal_code": f"20185{85 + i}",
        "url": f"https://www.city.komae.tokyo.jp/page{i}.html",
        "email": f"info{i}@city.komae.lg.jp",
        "flag": "1",
        "kana": ["コマエシヤクショ", "タマガワリョクチ", "イズミタマガワ"][i % 3],
        "code": {"法人番号": "8000020132195", "町字ID": f"000{i + 1}001"}.get(name, f"C-{i + 1}"),
    }
    return by_type.get(column.type, f"{name}の値{i + 1}")


def write_upload(dataset: Dataset, folder: Path) -> list[dict[str, str]]:
    """A CSV in the dataset's canonical layout with ROWS valid rows; returns the rows."""
    rows = [{c.name: valid_value(dataset, c, i) for c in dataset.canonical.columns} for i in range(ROWS)]
    path = folder / f"{CITY}_{dataset.file_slugs[0] if dataset.file_slugs else dataset.id}.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[c.name for c in dataset.canonical.columns])
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("generic")
    schemas, inbox, home = tmp / "schemas", tmp / "inbox", tmp / "home"
    schemas.mkdir()
    inbox.mkdir()
    (schemas / "ev_charger.yaml").write_text(OFFICE_SCHEMA, encoding="utf-8")
    (inbox / f"{CITY}_ev_charger.csv").write_text(OFFICE_FILE, encoding="utf-8")
    sent = {d: write_upload(REGISTRY.get(d), inbox) for d in DATASETS}
    members = tmp / "members.yaml"
    members.write_text(f'members:\n  - {{code: "{CITY}", name: 狛江市, inbox: {inbox}, '
                       f'datasets: [{", ".join([*DATASETS, "ev_charger"])}]}}\n', encoding="utf-8")
    env = dict(os.environ, KOUIKI_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), KOUIKI_MEMBERS=str(members),
               KOUIKI_SCHEMAS=str(schemas), COLUMNS="250")
    env.pop("KOUIKI_CATALOG_URL", None)
    done = subprocess.run([str(Path(sys.executable).parent / "kouiki"), "run"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"home": home, "sent": sent, "stdout": done.stdout}


def latest(home: Path, dataset_id: str) -> tuple[Path, dict[str, Any]]:
    pointer = json.loads((home / "releases" / dataset_id / "latest.json").read_text(encoding="utf-8"))
    folder = home / "releases" / dataset_id / str(pointer["number"])
    return folder, json.loads((folder / "metadata.json").read_text(encoding="utf-8"))


def test_there_are_fifteen_usable_registry_datasets() -> None:
    assert len(DATASETS) == 15


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_every_registry_dataset_is_published_and_reads_back(run: dict[str, Any], dataset_id: str) -> None:
    dataset = REGISTRY.get(dataset_id)
    assert (MODELS_ROOT / "conformed" / f"{dataset_id}.sql").exists() == (dataset_id in HAND_WRITTEN)
    folder, meta = latest(run["home"], dataset_id)
    sent: list[dict[str, str]] = run["sent"][dataset_id]
    assert meta["rows"] == ROWS and meta["rows_by_city"] == {CITY: ROWS}
    assert meta["columns"] == [c.name for c in dataset.canonical.columns]       # the standard layout, in order
    table = pl.read_parquet(folder / f"{dataset_id}.parquet")
    assert table.height == ROWS and "_city_code" not in table.columns
    full_address = next((c for c in FULL_ADDRESS_COLUMNS if c in table.columns), None)
    for column in dataset.canonical.columns:
        published = table[column.name].to_list()
        if column.type in ("integer", "number"):
            assert published == [float(r[column.name]) for r in sent], column.name
            assert table.schema[column.name].is_numeric(), column.name
        elif column.type == "date":
            assert [d.isoformat() for d in published] == [r[column.name] for r in sent], column.name
        elif column.name == full_address:   # intake puts the prefecture and city in front (issue 15)
            assert published == [with_address_prefix(r[column.name], CITY) for r in sent], column.name
            assert all(p.startswith("東京都狛江市") for p in published), column.name
        elif column.type not in ("phone", "postal_code"):      # intake writes these in one standard form
            assert published == [r[column.name] for r in sent], column.name
    region_csv = pl.read_csv(folder / f"{dataset_id}.csv", infer_schema=False)
    assert region_csv.height == ROWS and region_csv.columns == meta["columns"]
    assert (folder / "cities" / f"{CITY}_{dataset_id}.csv").exists()
    conformance = meta["conformance"]
    assert conformance["rows"] == ROWS and conformance["share_rows_conforming"] == 1.0
    assert {c: v["share"] for c, v in conformance["columns"].items()} == \
        {c.name: 1.0 for c in dataset.canonical.columns}
    # the run summary's table of releases: dataset, release number, rows
    assert re.search(rf"│ {dataset_id} +│ {meta['release']} +│ {ROWS} +│", run["stdout"]), run["stdout"][-3000:]


def test_an_office_dataset_yaml_alone_is_released_and_found_in_the_portal(run: dict[str, Any]) -> None:
    home = run["home"]
    folder, meta = latest(home, "ev_charger")
    table = pl.read_parquet(folder / "ev_charger.parquet")
    assert table.select("名称", "出力kW", "基数", "地方公共団体名").rows() == [
        ("狛江市役所駐車場", 50.0, 2, "東京都狛江市"), ("狛江市民総合体育館", 6.0, 4, "東京都狛江市"),
        ("西河原公民館", 3.0, 1, "東京都狛江市")]
    assert meta["title"] == {"ja": "電気自動車充電設備一覧", "en": "EV chargers"}
    conformance = meta["conformance"]
    assert (conformance["rows"], conformance["rows_conforming"], conformance["share_rows_conforming"]) == \
        (3, 2, 0.6667)
    kana = conformance["columns"]["名称_カナ"]
    assert (kana["share"], kana["warnings"], kana["errors"], kana["findings_by_code"]) == \
        (0.6667, 1, 0, {"format-warning": 1})
    assert {c: v["share"] for c, v in conformance["columns"].items() if c != "名称_カナ"} == \
        dict.fromkeys(["全国地方公共団体コード", "ID", "地方公共団体名", "名称", "緯度", "経度", "出力kW", "基数"], 1.0)
    assert re.search(r"│ ev_charger +│ 1 +│ 3 +│", run["stdout"])
    with serve(create_app(PortalSettings(home=home))) as base:
        found = httpx.get(f"{base}/api/3/action/package_search", params={"q": "充電設備"}, timeout=10).json()
        assert found["success"] and [p["name"] for p in found["result"]["results"]] == ["ev_charger"]
        package = found["result"]["results"][0]
        assert package["num_resources"] > 0 and package["rows"] == 3
        extras = {e["key"]: e["value"] for e in package["extras"]}
        assert extras["rows"] == "3" and extras["conformance"] == "0.6667"
        assert package["conformance"]["columns"]["名称_カナ"]["share"] == 0.6667
        page = httpx.get(f"{base}/dataset/ev_charger", timeout=10).text
        kana_row = next(line for line in page.splitlines() if '<th scope="row">名称_カナ</th>' in line)
        assert re.search(r'<td class="num"[^>]*>66\.7%</td>', kana_row)  # the column dictionary shows conformance
        every = httpx.get(f"{base}/api/3/action/package_list", timeout=10).json()["result"]
        assert set(every) == {*DATASETS, "ev_charger"}
