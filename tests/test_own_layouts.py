"""Files in a city's own layout (issue 15): mapping proposals from headers and values, accepted mappings applied
to the city's next file, the uploader's dataset hint, and refusals evaluated again from the landed bytes.

Real components throughout: intake's reader and normalisers, the schema registry, the catalog (SQLite in a
temporary home) and the upload service's code path (``submit_upload``)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from own_layouts import (
    AED_OWN_HEADER,
    AED_OWN_ROWS,
    EVENT_HEADER,
    EVENT_ROWS,
    GARBAGE_HEADER,
    GARBAGE_ROWS,
    YAIZU,
    write_csv,
)

from expectations.registry import default_registry
from intake.headers import header_score
from intake.mapping import (
    column_kinds,
    find_mapping,
    header_signature,
    load_mappings,
    load_vocabulary,
    propose_for_dataset,
    propose_mapping,
    write_mapping,
)
from intake.process import stage_file
from intake.read import RawTable, read_file
from kouiki import catalog
from kouiki.problems import IntakeError
from kouiki.settings import Paths
from service.revisit import decision_history
from service.submit import UploadRefused, submit_upload


@pytest.fixture()
def mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "mappings"
    monkeypatch.setenv("KOUIKI_MAPPINGS", str(folder))
    return folder


def _read(path: Path) -> RawTable:
    registry = default_registry()
    return read_file(path, header_scorer=lambda h: header_score(h, registry))


def test_linkdata_english_properties_are_proposed_as_the_event_dataset(tmp_path: Path) -> None:
    raw = _read(write_csv(tmp_path / "events.csv", EVENT_HEADER, EVENT_ROWS))
    proposals = propose_mapping(raw.header, raw.data, default_registry())
    best = proposals[0]
    assert best.dataset_id == "event" and best.score >= 0.7, [(p.dataset_id, p.score) for p in proposals]
    assert best.score - proposals[1].score >= 0.2     # clearly ahead of the next dataset
    assert best.mapped == {
        "name": "イベント名", "name_kana": "イベント名_カナ", "startDate": "開始日", "endDate": "終了日",
        "startTime": "開始時間", "endTime": "終了時間", "location": "場所名称", "address": "住所",
        "latitude": "緯度", "longitude": "経度", "telephone": "連絡先電話番号", "description": "説明", "url": "URL"}
    kinds = {c.header: c.kind for c in best.columns}
    assert kinds["startDate"] == "date" and kinds["latitude"] == "latitude" and kinds["telephone"] == "phone"


def test_own_japanese_names_are_proposed_as_aed_with_kana_and_kanji_variants(tmp_path: Path) -> None:
    raw = _read(write_csv(tmp_path / "AED設置場所一覧.csv", AED_OWN_HEADER, AED_OWN_ROWS))
    best = propose_mapping(raw.header, raw.data, default_registry(), file_name="AED設置場所一覧.csv")[0]
    assert best.dataset_id == "aed"
    assert best.mapped == {"施設名": "名称", "フリガナ": "名称_カナ", "所在地": "所在地_連結表記", "電話": "電話番号",
                           "設置場所": "設置位置", "緯度": "緯度", "経度": "経度"}
    assert [c.header for c in best.columns if c.column is None] == ["点検日"]   # kept as the city's own column


def test_values_alone_map_columns_whose_header_says_nothing(tmp_path: Path) -> None:
    rows = [[r[0], r[8], r[9], r[10]] for r in EVENT_ROWS]
    raw = _read(write_csv(tmp_path / "x.csv", ["名称", "Y座標", "X座標", "連絡"], rows))
    registry = default_registry()
    best = propose_for_dataset(raw.header, column_kinds(raw.header, raw.data), registry.get("aed"), registry.aliases,
                               load_vocabulary())
    assert best.mapped["Y座標"] == "緯度" and best.mapped["X座標"] == "経度" and best.mapped["連絡"] == "電話番号"
    assert {c.header: c.evidence for c in best.columns}["Y座標"] == "values"


def test_nothing_standard_gives_no_proposal(tmp_path: Path) -> None:
    raw = _read(write_csv(tmp_path / "gomi.csv", GARBAGE_HEADER, GARBAGE_ROWS))
    assert propose_mapping(raw.header, raw.data, default_registry()) == []


def test_an_accepted_mapping_reads_the_citys_next_file_in_that_layout(tmp_path: Path, mappings: Path) -> None:
    registry = default_registry()
    first = write_csv(tmp_path / "events-april.csv", EVENT_HEADER, EVENT_ROWS[:1])
    raw = _read(first)
    with pytest.raises(IntakeError) as refused:
        stage_file(first, registry, city_code=YAIZU)
    assert refused.value.code == "no-dataset-match"
    proposal = propose_mapping(raw.header, raw.data, registry)[0]
    written = write_mapping(proposal, YAIZU, raw.header, upload_id=f"{YAIZU}-0000000000000000")
    assert written == mappings / YAIZU / f"{header_signature(EVENT_HEADER)}.yaml"
    assert [m.dataset_id for m in load_mappings(YAIZU)] == ["event"]
    assert "name: イベント名" in written.read_text(encoding="utf-8")

    # the next file: same layout, other rows; every row read, every value normalised
    later = write_csv(tmp_path / "events-summer.csv", EVENT_HEADER, EVENT_ROWS)
    staged = stage_file(later, registry, city_code=YAIZU)
    assert staged.dataset.id == "event" and staged.match.variant.startswith("mapped-")
    values = staged.values
    assert values.height == len(EVENT_ROWS)
    assert values["NO"].to_list() == ["1", "2", "3"]                    # no ID column: rows numbered
    assert values["開始日"].to_list() == ["2024-04-01", "2024-05-03", "2024-08-10"]   # 令和6年4月1日, R6.8.10
    assert values["イベント名_カナ"].to_list() == ["シミンマツリ", "アサイチ", "ハナビタイカイ"]   # half-width widened
    assert values["連絡先電話番号"][0] == "054-626-1111"                 # full-width digits and dashes
    assert values["開始時間"][1] == "06:00"
    assert staged.raw["開始日"][2] == "R6.8.10"                          # the raw cell kept beside it
    assert {n.code for n in staged.notices} >= {"mapped-layout", "row-number-id"}
    # another city's file in the same layout is not mapped by 焼津市's mapping
    assert find_mapping("132195", raw.header) is None
    with pytest.raises(IntakeError):
        stage_file(later, registry, city_code="132195")


def test_a_dataset_hint_reads_an_own_layout_through_the_proposed_mapping(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "list.csv", AED_OWN_HEADER, AED_OWN_ROWS)
    with pytest.raises(IntakeError):
        stage_file(path, default_registry())
    staged = stage_file(path, default_registry(), dataset_hint="aed")
    assert staged.dataset.id == "aed" and staged.values.height == 3
    assert staged.values["名称_カナ"].to_list() == ["ヤイヅシヤクショ", "ヤイヅトショカン", "オオイガワチョウシャ"]
    assert staged.values["電話番号"][0] == "054-626-1111"
    assert staged.extra_columns == {"点検日": "点検日"}
    assert "proposed-mapping" in {n.code for n in staged.notices}


def test_uploading_refused_bytes_again_with_a_dataset_hint_evaluates_them_again(kouiki_home: Path,
                                                                               tmp_path: Path) -> None:
    paths = Paths(kouiki_home).ensure()
    registry = default_registry()
    path = write_csv(tmp_path / "list.csv", AED_OWN_HEADER, AED_OWN_ROWS)
    with pytest.raises(UploadRefused) as refused:
        submit_upload(paths, registry, YAIZU, path, "list.csv")
    upload_id = refused.value.upload_id
    assert upload_id and refused.value.error["code"] == "no-dataset-match"
    with pytest.raises(UploadRefused):        # the same bytes, no hint: the same answer, no new decision
        submit_upload(paths, registry, YAIZU, path, "list.csv")
    assert [h["action"] for h in decision_history(paths, upload_id)] == ["upload.landed"]

    submission = submit_upload(paths, registry, YAIZU, path, "list.csv", dataset_hint="aed")
    assert submission.upload.upload_id == upload_id and submission.upload.status == "landed"
    assert submission.upload.dataset_id == "aed"
    assert submission.report["summary"]["rows_total"] == 3 and submission.report["summary"]["rows_accepted"] == 3
    history = decision_history(paths, upload_id)
    assert [(h["detail"].get("before"), h["detail"].get("after")) for h in history[1:]] == [("unreadable", "landed")]
    assert "dataset aed" in history[1]["detail"]["reason"]
    landed = paths.home / (catalog.get_upload(paths.catalog_url, upload_id) or submission.upload).stored_path
    assert landed.exists() and landed.read_bytes() == path.read_bytes()       # the landed bytes, untouched
    assert pl.read_csv(landed).height == 3


def test_inspect_shows_the_mapping_proposal_with_its_score(tmp_path: Path) -> None:
    from commands.inspect import inspect_file

    report = inspect_file(write_csv(tmp_path / "events.csv", EVENT_HEADER, EVENT_ROWS))
    assert report["ok"] is False and report["error"]["code"] == "no-dataset-match"
    best = report["mapping_proposals"][0]
    assert best["dataset"] == "event" and best["score"] >= 0.7 and best["rows"] == len(EVENT_ROWS)
    assert {c["header"]: c["column"] for c in best["columns"]}["startDate"] == "開始日"


def test_an_own_schema_takes_its_types_from_the_values(tmp_path: Path) -> None:
    from expectations.registry import load_own_schema
    from intake.own import own_dataset_for

    header = [*GARBAGE_HEADER, "緯度っぽい", "経度っぽい", "地区番号", "世帯数", ""]
    rows = [[*r, lat, lon, no, n, "x"] for r, lat, lon, no, n in zip(
        GARBAGE_ROWS, ["34.86", "34.87", "34.88"], ["138.32", "138.33", "138.34"], ["001", "002", "010"],
        ["120", "85", "3"], strict=True)]
    raw = _read(write_csv(tmp_path / "ごみ収集.csv", header, rows))
    own = own_dataset_for(raw, YAIZU, "ごみ収集.csv", folder=tmp_path / "own")
    assert own.created and own.dataset.id.startswith(f"own_{YAIZU}_")
    types = {c.name: c.type for c in own.dataset.canonical.columns}
    assert types == {"全国地方公共団体コード": "code", "ID": "string", "地区": "string", "燃やすごみ": "string",
                     "資源ごみ": "string", "収集開始日": "date", "問い合わせ": "phone", "緯度っぽい": "number",
                     "経度っぽい": "number", "地区番号": "code", "世帯数": "integer", "列10": "string"}
    assert (own.dataset.lat_column, own.dataset.lon_column) == ("緯度っぽい", "経度っぽい")
    assert own.dataset.licence == "CC-BY-4.0" and "独自形式" in own.dataset.description_ja
    assert load_own_schema(own.file) == own.dataset                 # an ordinary schema file
    again = own_dataset_for(raw, YAIZU, "another name.csv", folder=tmp_path / "own")
    assert not again.created and again.dataset.id == own.dataset.id   # same layout, same dataset
