"""Policies as data, hierarchies (built and ARX CSV), the preparation steps, and the documents kept apart from
the release (加工方法等情報, extract log)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml

from anonymise.documents import append_extract_log, extract_log_record, write_processing_information
from anonymise.hierarchy import HierarchyError, hierarchy_from_arx_csv, interval_hierarchy
from anonymise.policy import CONFIG_DIR, PolicyError, load_policy, policy_from_dict
from anonymise.process import anonymise_records, prepare_records
from anonymise.synthetic import generate_care_records


@pytest.fixture(scope="module")
def raw_policy() -> dict:
    return yaml.safe_load((CONFIG_DIR / "care_certification.yaml").read_text(encoding="utf-8"))


def test_the_shipped_policy_loads() -> None:
    policy = load_policy("care_certification")
    assert policy.qi_columns == ("年齢", "町字", "認定日", "性別")
    assert {"氏名", "個人番号", "番地", "被保険者番号"} <= set(policy.direct_identifiers)
    assert policy.model.k == 5 and policy.model.l == 2 and policy.model.max_suppression == 0.05
    assert policy.sensitive["要介護度"] is not None and len(policy.sensitive["要介護度"] or ()) == 7
    assert len(policy.sha256) == 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["quasi_identifiers"]["町字"].pop("hierarchy"), "hierarchy"),
        (lambda p: p["quasi_identifiers"]["町字"]["hierarchy"].update(kind="guess"), "kind"),
        (lambda p: p["keep"].update({"氏名": {}}), "direct identifiers"),
        (lambda p: p.update(sensitive={}), "sensitive"),
        (lambda p: p["privacy"].update(k=0), "k must be"),
        (lambda p: p["aggregate"]["tables"][0]["dims"].update({"要介護度": 0}), "quasi-identifiers"),
        (lambda p: p["special_descriptions"].append({"kind": "odd"}), "special_descriptions"),
    ],
)
def test_a_bad_policy_is_refused(raw_policy: dict, change: Callable[[dict], object], message: str) -> None:
    broken = json.loads(json.dumps(raw_policy, default=str))
    change(broken)
    with pytest.raises(PolicyError, match=message):
        policy_from_dict(broken, CONFIG_DIR)


def test_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policy("no_such_policy", config_dir=tmp_path)


def test_arx_hierarchy_files_with_either_delimiter(tmp_path: Path) -> None:
    semicolon = tmp_path / "a.csv"
    semicolon.write_text("\ufeff1;1-2;*\n2;1-2;*\n3;3-4;*\n", encoding="utf-8")
    comma = tmp_path / "b.csv"
    comma.write_text("東1,東部\n東2,東部\n西1,西部\n", encoding="utf-8")
    first = hierarchy_from_arx_csv(semicolon, "n")
    assert first.height == 3 and first.level_labels(1) == ["1-2", "3-4"]
    second = hierarchy_from_arx_csv(comma, "area")
    assert second.height == 3 and second.level_labels(2) == ["*"]  # "*" added on top


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1;a;*\n2;*\n", "different lengths"),
        ("1;a;x;*\n2;a;y;*\n", "several parents"),
        ("1;a;*\n1;b;*\n", "listed twice"),
    ],
)
def test_broken_arx_hierarchies_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "h.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HierarchyError, match=message):
        hierarchy_from_arx_csv(path)


def test_interval_hierarchy_codes_and_bands() -> None:
    hierarchy = interval_hierarchy("年齢", [50, 64, 65, 83, 92, 97, 103], (5, 10), bottom_code=65, top_code=95)
    rows = {row[0]: row for row in hierarchy.table.rows()}
    assert set(rows) == {"～64", "65", "83", "92", "95～"}
    assert rows["～64"] == ("～64", "～64", "～69", "*")
    assert rows["65"] == ("65", "65～69", "～69", "*")
    assert rows["83"] == ("83", "80～84", "80～89", "*")
    assert rows["92"] == ("92", "90～94", "90～", "*")
    assert rows["95～"] == ("95～", "95～", "90～", "*")


def test_preparation_ages_top_coding_and_rare_values() -> None:
    policy = load_policy("care_certification")
    records = generate_care_records("222127", 2_000, seed=6)
    birthdays = [date(1940, 4, 1), date(1940, 4, 2), date(1940, 12, 31), date(1920, 1, 1)]
    records = records.with_columns(
        pl.concat([pl.Series(birthdays), records["生年月日"].slice(len(birthdays))]).alias("生年月日"),
        pl.concat([pl.Series(["経過的要介護"]), records["要介護度"].slice(1)]).alias("要介護度"),
    )
    prepared = prepare_records(records, policy)
    assert prepared.table.columns == list(policy.released_columns)
    assert prepared.table["年齢"].head(4).to_list() == ["85", "84", "84", "95～"]
    assert prepared.table["要介護度"][0] == "その他"
    amounts = prepared.table["月額サービス利用額"]
    top = next(step for step in prepared.steps["top_coding"] if step["column"] == "月額サービス利用額")
    assert amounts.max() == top["top_code"] and top["records_top_coded"] > 0
    assert (amounts % 1000 == 0).all()
    assert anonymise_records(records, policy).release is not None  # "その他" is accepted as a care level


def test_processing_information_and_extract_log(tmp_path: Path) -> None:
    policy = load_policy("care_certification")
    records = generate_care_records("132195", 3_000, seed=12)
    result = anonymise_records(records, policy)
    info = result.processing_information
    assert result.release is not None
    assert info["deleted"]["direct_identifiers"] == list(policy.direct_identifiers)
    assert "生年月日" in info["deleted"]["not_published"]
    assert {qi: item["level"] for qi, item in info["generalisation"].items()} == result.outcome.levels
    assert info["suppression"]["records_suppressed"] == records.height - result.release.height
    assert info["policy"]["sha256"] == policy.sha256
    # it describes the processing, never the people: no identifier value appears in it
    text = json.dumps(info, ensure_ascii=False, default=str)
    assert not any(name in text for name in records["氏名"].head(50).to_list())

    public = tmp_path / "public"
    public.mkdir()
    release_path = public / "care.csv"
    result.release.write_csv(release_path)
    with pytest.raises(ValueError, match="公開フォルダ"):
        write_processing_information(info, public / "method.json", release_path)
    written = write_processing_information(info, tmp_path / "private" / "method.json", release_path)
    assert json.loads(written.read_text(encoding="utf-8"))["policy"]["name"] == "care_certification"

    log = tmp_path / "private" / "extract.jsonl"
    for requester in ("介護保険課 山田", "企画課 佐藤"):
        append_extract_log(log, extract_log_record(requester, policy, release_path, result.release.height, True))
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [entry["requested_by"] for entry in entries] == ["介護保険課 山田", "企画課 佐藤"]
    assert entries[0]["release_sha256"] == entries[1]["release_sha256"] and len(entries[0]["release_sha256"]) == 64
    assert entries[0]["policy_sha256"] == policy.sha256
