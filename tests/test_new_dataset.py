"""The office adds a dataset by writing one YAML file: it is detected, validated and loaded end to end by the
real pipeline (`kouiki run` in a child process), with no code change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from kouiki.settings import REPO_ROOT

SCHEMA = """\
dataset_id: bicycle_parking
version: "2026-11-01"
name_ja: 駐輪場一覧
name_en: Bicycle parking
description_ja: 市が管理する駐輪場の一覧（データ推進室の独自データセット）。
description_en: Bicycle parking run by the city (the data office's own dataset).
file_slugs: [bicycle_parking, churinjo]
id_column: ID
coordinates: {lat: 緯度, lon: 経度}
policy: {on_error: quarantine, reject_above: 0.5, strict_columns: [収容台数, 有料無料]}   # tighter than the default
variants:
  - variant: current
    columns:
      - {name: 全国地方公共団体コード, type: code, required: false, level: recommended}
      - {name: ID, type: string, required: false, level: recommended}
      - {name: 名称, type: string, required: true, level: required}
      - {name: 所在地_連結表記, type: string, required: true, level: required}
      - {name: 緯度, type: number, required: false, level: recommended}
      - {name: 経度, type: number, required: false, level: recommended}
      - {name: 収容台数, type: integer, required: true, level: required}
      - {name: 有料無料, type: string, required: false, level: optional, enum: [有料, 無料, ""]}
"""

FILE = """\
全国地方公共団体コード,ID,名称,所在地_連結表記,緯度,経度,収容台数,有料無料
132195,1,狛江駅北口駐輪場,東京都狛江市元和泉1-1-1,35.6326,139.5785,"1,200",有料
132195,2,和泉多摩川駐輪場,東京都狛江市東和泉4-1-1,35.6226,139.5734,たくさん,無料
132195,3,岩戸北駐輪場,東京都狛江市岩戸北1-1-1,35.6392,139.5839,３００,タダ
132195,4,喜多見駐輪場,東京都狛江市東野川1-1-1,35.6350,139.5900,150,無料
132195,5,猪方駐輪場,東京都狛江市猪方1-1-1,35.6300,139.5800,80,有料
"""


def test_a_new_dataset_yaml_is_validated_end_to_end(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "bicycle_parking.yaml").write_text(SCHEMA, encoding="utf-8")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "132195_bicycle_parking.csv").write_text(FILE, encoding="utf-8")
    members = tmp_path / "members.yaml"
    members.write_text(f'members:\n  - {{code: "132195", name: 狛江市, inbox: {inbox}, datasets: [bicycle_parking]}}\n',
                       encoding="utf-8")
    home = tmp_path / "home"
    env = dict(os.environ, KOUIKI_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), KOUIKI_MEMBERS=str(members),
               KOUIKI_SCHEMAS=str(schemas))
    run = subprocess.run([str(Path(sys.executable).parent / "kouiki"), "run"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "bicycle_parking" in run.stdout
    staged = pl.read_parquet(home / "lake" / "staged" / "bicycle_parking" / "city=132195" / "data.parquet")
    assert staged.select("名称", "収容台数").rows() == [
        ("狛江駅北口駐輪場", "1200"), ("喜多見駐輪場", "150"), ("猪方駐輪場", "80")]   # "1,200" normalised
    quarantine = pl.read_parquet(home / "lake" / "quarantine" / "bicycle_parking" / "city=132195" / "data.parquet")
    assert quarantine.select("_source_line", "_errors").rows() == [
        (3, "収容台数:type-error"), (4, "有料無料:constraint-error")]
    findings = pl.read_parquet(home / "lake" / "findings" / "bicycle_parking" / "city=132195" / "data.parquet")
    enum = findings.filter(pl.col("error_code") == "constraint-error")
    assert enum.select("source_line", "column", "raw_value").rows() == [(4, "有料無料", "タダ")]
    report = next((home / "reports" / "132195").glob("*.json"))
    assert json.loads(report.read_text(encoding="utf-8"))["dataset"]["id"] == "bicycle_parking"
