"""Issue 15 end to end, through the real pipeline (CLI, catalog, Dagster ingest_city and publish_region, the
upload sensor, releases on disk):

* a refused upload (every row another municipality's) becomes published after the office adds ``submits_for``,
  with no new bytes: the sensor notices the registry change and evaluates it again;
* a LinkData-like file (English property names) is refused with a proposal, ``kouiki mappings accept`` maps it,
  its rows are published with dates, kana and digits normalised, and the city's next file in that layout is
  mapped on arrival;
* a file nothing fits is published as the city's own dataset (a fresh ``kouiki run`` process, whose registry
  includes the generated schema), counted on the scoreboard as 「独自形式（標準未対応）」; ``own_datasets: false``
  turns that off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context
from own_layouts import (
    AED_STANDARD_HEADER,
    EVENT_HEADER,
    EVENT_ROWS,
    FUJIEDA,
    FUJIEDA_AED_ROWS,
    GARBAGE_HEADER,
    GARBAGE_ROWS,
    YAIZU,
    write_csv,
    write_members,
)
from tools.cli import kouiki

from assets.resources import KouikiHome
from kouiki import catalog
from kouiki.settings import REPO_ROOT, Paths
from pipelines.sensors import upload_sensor


@pytest.fixture()
def office(kouiki_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    monkeypatch.setenv("KOUIKI_MEMBERS", str(write_members(tmp_path / "members.yaml")))
    monkeypatch.setenv("KOUIKI_MAPPINGS", str(tmp_path / "mappings"))
    return Paths(kouiki_home).ensure()


def _latest(paths: Paths, dataset: str) -> pl.DataFrame:
    latest = json.loads((paths.releases / dataset / "latest.json").read_text(encoding="utf-8"))
    return pl.read_csv(paths.releases / dataset / str(latest["number"]) / f"{dataset}.csv",
                       infer_schema_length=0)


@pytest.mark.slow
def test_refusals_are_revisited_and_own_layouts_mapped_then_published(office: Paths, tmp_path: Path) -> None:
    members = Path(os.environ["KOUIKI_MEMBERS"])
    fujieda = write_csv(tmp_path / "aed.csv", AED_STANDARD_HEADER, FUJIEDA_AED_ROWS)
    code, out, _ = kouiki("upload", YAIZU, str(fujieda))
    assert code == 2 and json.loads(out)["error"]["code"] == "other-city-data"
    refused_id = json.loads(out)["error"]["upload_id"]

    events = write_csv(tmp_path / "events.csv", EVENT_HEADER, EVENT_ROWS)
    code, out, _ = kouiki("upload", YAIZU, str(events))
    assert code == 2 and json.loads(out)["error"]["code"] == "no-dataset-match"
    events_id = json.loads(out)["error"]["upload_id"]
    code, out, _ = kouiki("mappings", "show", events_id)
    shown = json.loads(out)
    assert shown["rows"] == 3 and shown["proposals"][0]["dataset"] == "event"
    assert shown["proposals"][0]["score"] >= 0.7

    # the office accepts the mapping and fixes the registry; the sensor evaluates the refusals again
    instance = DagsterInstance.ephemeral()
    resource = KouikiHome(home=str(office.home), members_file=str(members))
    before = build_sensor_context(instance=instance, resources={"kouiki": resource})
    assert isinstance(upload_sensor(before), SkipReason)      # nothing waiting: both uploads are refused
    code, out, err = kouiki("mappings", "accept", events_id, "--no-run")
    assert code == 0, err
    assert Path(json.loads(out)["mapping"]).is_file()
    write_members(members, submits_for=[FUJIEDA])
    after = build_sensor_context(instance=instance, cursor=before.cursor, resources={"kouiki": resource})
    result = upload_sensor(after)
    assert isinstance(result, SensorResult) and [r.partition_key for r in result.run_requests or []] == [YAIZU]
    for upload_id in (refused_id, events_id):
        row = catalog.get_upload(office.catalog_url, upload_id)
        assert row is not None and row.status == "landed", (upload_id, row)

    code, out, err = kouiki("rerun", YAIZU)
    assert code == 0, err
    by_id = {u["upload_id"]: u for u in json.loads(out)["uploads"]}
    assert by_id[refused_id]["status"] == "accepted" and by_id[refused_id]["rows_accepted"] == 2
    assert by_id[events_id]["status"] == "accepted" and by_id[events_id]["rows_accepted"] == 3
    history = by_id[refused_id]["history"]
    assert [(h["action"], h["detail"].get("after")) for h in history] == [
        ("upload.landed", None), ("upload.decision", "landed")]
    assert history[1]["actor"] == "sensor"

    from pipelines.definitions import defs
    from pipelines.main_run import dagster_instance

    region = defs.resolve_job_def("publish_region").execute_in_process(
        instance=dagster_instance(office), raise_on_error=False)
    assert region.success
    aed = _latest(office, "aed")
    assert sorted(aed["名称"].to_list()) == ["藤枝市役所", "藤枝市民会館"]
    assert set(aed["全国地方公共団体コード"].to_list()) == {FUJIEDA}
    event = _latest(office, "event").sort("NO")
    assert event["イベント名"].to_list() == ["市民まつり", "朝市", "花火大会"]
    assert event["開始日"].to_list() == ["2024-04-01", "2024-05-03", "2024-08-10"]
    assert event["イベント名_カナ"].to_list() == ["シミンマツリ", "アサイチ", "ハナビタイカイ"]
    assert event["連絡先電話番号"][0] == "054-626-1111"
    for upload_id in (refused_id, events_id):     # the landed bytes are still there, as received
        row = catalog.get_upload(office.catalog_url, upload_id)
        assert row is not None and (office.home / row.stored_path).is_file()

    # the city's next file in that layout is mapped on arrival
    summer = write_csv(tmp_path / "events-summer.csv", EVENT_HEADER, EVENT_ROWS[1:])
    code, out, err = kouiki("upload", YAIZU, str(summer))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["dataset_id"] == "event" and doc["variant"].startswith("mapped-")
    assert doc["validation"]["summary"]["rows_accepted"] == 2


@pytest.mark.slow
def test_a_file_nothing_fits_is_published_as_the_citys_own_dataset(office: Paths, tmp_path: Path) -> None:
    gomi = write_csv(tmp_path / "gomi_calendar.csv", GARBAGE_HEADER, GARBAGE_ROWS)
    code, out, err = kouiki("upload", YAIZU, str(gomi))
    assert code == 0, err
    doc = json.loads(out)
    dataset = f"own_{YAIZU}_gomi_calendar"
    assert doc["dataset_id"] == dataset and doc["validation"]["summary"]["rows_accepted"] == 3
    schema = office.home / "schemas" / "own" / f"{dataset}.yaml"
    text = schema.read_text(encoding="utf-8")
    assert "name: 収集開始日\n    type: date" in text and "name: 問い合わせ\n    type: phone" in text

    env = {**os.environ, "DAGSTER_HOME": str(office.home / "dagster")}
    run = subprocess.run([sys.executable, "-m", "commands.cli", "run"], cwd=REPO_ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    released = _latest(office, dataset).sort("ID")
    assert released.height == len(GARBAGE_ROWS)
    assert released["地区"].to_list()[:2] == ["本町", "中港"]
    assert released["収集開始日"].to_list() == ["2024-04-01", "2024-04-02", "2024-04-03"]
    assert released["問い合わせ"].to_list() == ["054-626-1111", "054-626-1112", "054-626-1113"]
    assert set(released["全国地方公共団体コード"].to_list()) == {YAIZU}
    metadata = json.loads((office.releases / dataset / "1" / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["rows"] == 3 and "CC" in json.dumps(metadata["licence"])
    from portal.catalogue import dataset_entries, find_datasets
    from portal.store import ReleaseStore

    listed = {e.id: e for e in find_datasets(dataset_entries(ReleaseStore(office.releases)), city_code=YAIZU)}
    assert listed[dataset].title("ja") == "焼津市 独自データ「gomi_calendar」"     # the city's own list, by the city
    assert [c.code for c in listed[dataset].cities] == [YAIZU]
    with duckdb.connect(str(office.warehouse_db), read_only=True) as con:
        label = con.execute("SELECT status_label FROM marts.conformance_scoreboard WHERE dataset_id = ?",
                            [dataset]).fetchall()
    assert label == [("独自形式（標準未対応） / own layout, not yet standard",)]


def test_own_datasets_can_be_turned_off_per_member(office: Paths, tmp_path: Path) -> None:
    write_members(Path(os.environ["KOUIKI_MEMBERS"]), own_datasets=False)
    gomi = write_csv(tmp_path / "gomi_calendar.csv", GARBAGE_HEADER, GARBAGE_ROWS)
    code, out, _ = kouiki("upload", YAIZU, str(gomi))
    assert code == 2 and json.loads(out)["error"]["code"] == "no-dataset-match"
    assert not (office.home / "schemas" / "own").exists()
    write_members(Path(os.environ["KOUIKI_MEMBERS"]), own_datasets=True)   # turned on: the same bytes again
    code, out, err = kouiki("upload", YAIZU, str(gomi))
    assert code == 0, err
    assert json.loads(out)["dataset_id"] == f"own_{YAIZU}_gomi_calendar"
