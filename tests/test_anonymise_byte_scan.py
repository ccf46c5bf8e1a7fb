"""The byte scan of released files: 個人番号 in any formatting, 被保険者番号-like and phone-like values, source
identifiers and canaries, in CSV, JSON and Parquet files of any size (one row is enough)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from anonymise.byte_scan import scan_files, scan_folder

VALID = "123456789018"  # check digit 8 is right
INVALID = "123456789011"


def one_cell(tmp_path: Path, cell: str, suffix: str = ".csv") -> Path:
    path = tmp_path / f"release{suffix}"
    frame = pl.DataFrame({"年齢": ["80"], "備考": [cell]})
    if suffix == ".csv":
        frame.write_csv(path)
    elif suffix == ".json":
        path.write_text(json.dumps(frame.to_dicts(), ensure_ascii=True), encoding="utf-8")  # \\u escapes too
    else:
        frame.write_parquet(path, compression="zstd")
    return path


def rules(
    tmp_path: Path, path: Path, values: dict[str, list[str]] | None = None, canaries: tuple[str, ...] = ()
) -> set[str]:
    return {hit.rule for hit in scan_files([path], tmp_path, values, canaries)}


@pytest.mark.parametrize(
    "cell",
    [VALID, "1234 5678 9018", "1234-5678-9018", "１２３４５６７８９０１８", "１２３４－５６７８－９０１８",
     "番号:123456789018です", "1234\u30005678\u30009018"],
)
@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_a_mynumber_in_any_formatting_and_format_is_found(tmp_path: Path, cell: str, suffix: str) -> None:
    assert "mynumber" in rules(tmp_path, one_cell(tmp_path, cell, suffix))


@pytest.mark.parametrize("cell", [INVALID, "1234567890185", "2023-10-01", "a123456789018b", "12-3456-7890-1234"])
def test_twelve_digits_without_a_valid_check_digit_or_inside_longer_codes_are_not_mynumbers(
    tmp_path: Path, cell: str
) -> None:
    assert "mynumber" not in rules(tmp_path, one_cell(tmp_path, cell))


@pytest.mark.parametrize(
    ("cell", "rule"),
    [("0123456789", "insured_number_like"), ("03-3430-1111", "phone_like"),
     ("０９０－１２３４－５６７８", "phone_like"), ("(044)123-4567", "phone_like"), ("0471234567", "phone_like")],
)
def test_insured_number_and_phone_like_values_are_found(tmp_path: Path, cell: str, rule: str) -> None:
    assert rule in rules(tmp_path, one_cell(tmp_path, cell))


@pytest.mark.parametrize("cell", ["85～89", "2024-04", "132000", "要介護3", "狛江市", "2026-12-02T22:21:44+00:00"])
def test_ordinary_released_values_are_not_hits(tmp_path: Path, cell: str) -> None:
    assert rules(tmp_path, one_cell(tmp_path, cell), {"氏名": ["検証　漏洩一郎"]}, ("検証　漏洩花子",)) == set()


@pytest.mark.parametrize("cell", ["検証 漏洩一郎", "検証漏洩一郎", "様: 検証　漏洩一郎 (本人)"])
def test_source_names_are_found_whatever_the_spacing(tmp_path: Path, cell: str) -> None:
    assert rules(tmp_path, one_cell(tmp_path, cell), {"氏名": ["検証　漏洩一郎"]}) == {"source:氏名"}


def test_half_width_kana_addresses_and_digits_of_identifiers_are_found(tmp_path: Path) -> None:
    values = {"氏名カナ": ["ケンショウ　ロウエイイチロウ"], "住所": ["東京都狛江市和泉本町一丁目2番3号"],
              "被保険者番号": ["0012345678"], "電話番号": ["03-3430-1111"]}
    assert "source:氏名カナ" in rules(tmp_path, one_cell(tmp_path, "ｹﾝｼｮｳ ﾛｳｴｲｲﾁﾛｳ"), values)
    assert "source:住所" in rules(tmp_path, one_cell(tmp_path, "東京都狛江市 和泉本町一丁目２番３号"), values)
    assert "source:電話番号" in rules(tmp_path, one_cell(tmp_path, "tel 0334301111"), values)
    assert "source:被保険者番号" in rules(tmp_path, one_cell(tmp_path, "00-1234-5678"), values)


def test_canaries_are_found_in_every_file_of_a_folder(tmp_path: Path) -> None:
    (tmp_path / "cities").mkdir()
    pl.DataFrame({"a": ["x"]}).write_csv(tmp_path / "cities" / "132195_x.csv")
    (tmp_path / "metadata.json").write_text(json.dumps({"title": "検証　漏洩花子"}, ensure_ascii=False),
                                            encoding="utf-8")
    (tmp_path / "changes.json").write_text(json.dumps({"keys": {"added": ["row:" + "ab" * 16]}}), encoding="utf-8")
    hits = scan_folder(tmp_path, {}, ("検証　漏洩花子",))
    assert [(hit.file, hit.rule) for hit in hits] == [("metadata.json", "canary")]
    assert "漏洩花子" not in json.dumps([hit.as_dict() for hit in hits], ensure_ascii=False)  # reports are masked


def test_publication_scans_every_file_of_the_release_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A canary that only reaches metadata.json (through the policy's English title) passes the staged checks,
    which see the CSV and Parquet, and is caught by the scan of the complete release folder: nothing is
    published, the reason is logged."""
    import shutil

    import yaml
    from dagster import instance_for_test

    from anonymise.personal import DEMO_CANARIES
    from anonymise.policy import CONFIG_DIR
    from assets.anonymise import run_anonymisation
    from pipelines.definitions import defs

    policies = tmp_path / "policies"
    shutil.copytree(CONFIG_DIR, policies)
    path = policies / "care_certification.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["publication"]["title_en"] = f"Care list {DEMO_CANARIES[1]['氏名']}"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    home = tmp_path / "home"
    members = tmp_path / "members.yaml"
    entry = {"code": "132195", "name": "狛江市", "personal_datasets": ["care_certification"],
             "synthetic_personal_rows": 1_500}
    members.write_text(yaml.safe_dump({"members": [entry]}, allow_unicode=True), encoding="utf-8")
    for key, value in {"KOUIKI_HOME": home, "DAGSTER_HOME": home / "dagster", "KOUIKI_MEMBERS": members,
                       "KOUIKI_ANONYMISATION_POLICIES": policies}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("KOUIKI_CATALOG_URL", raising=False)
    with instance_for_test() as instance:
        run = run_anonymisation(defs.resolve_job_def("anonymise_personal"), instance,
                                {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    assert next(c for c in run.checks if c["check"] == "extract_verified")["passed"]
    assert not run.ok and any("releases" in error for error in run.errors)
    extract = home / "releases" / "care_certification_anonymised"
    assert not (extract / "latest.json").exists() and not [p for p in extract.glob("*") if p.name[0] != "."]
    log = [json.loads(line) for line in (home / "private" / "extract_log.jsonl").read_text().splitlines()]
    [blocked] = [e for e in log if e.get("blocked_reasons")]
    assert re.search(r"metadata\.json: (canary|source:氏名) \(検証…\)", blocked["blocked_reasons"][0]["en"])
