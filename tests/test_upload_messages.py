"""Words a city clerk reads when a file is refused: a file that matches no dataset names no "close" dataset at
0 %; an empty file and a header-only file are refused in the same words (file name, no data rows, what to
upload)."""

from __future__ import annotations

from pathlib import Path

import pytest

from expectations.registry import default_registry
from intake.headers import detect, no_match_error
from intake.process import stage_file
from kouiki.problems import IntakeError
from service.errors import empty_upload

KOMAE_AED = Path(__file__).resolve().parents[1] / "demo" / "uploads" / "132195" / "komae_132195_aed.csv"


def test_a_header_that_matches_nothing_lists_no_close_dataset() -> None:
    registry = default_registry()
    error = no_match_error(detect(["a", "b", "c"], registry), registry)
    assert error.code == "no-dataset-match"
    assert "0%" not in error.message_ja and "近いデータセットもありません" in error.message_ja
    assert "No dataset comes close" in error.message_en


def test_a_partly_matching_header_names_the_close_datasets() -> None:
    registry = default_registry()
    header = ["名称", "住所", "緯度", "経度", "電話番号", "メモ1", "メモ2", "メモ3", "メモ4", "メモ5", "メモ6"]
    matches = detect(header, registry)
    assert not matches[0].good and matches[0].score >= 0.2
    error = no_match_error(matches, registry)
    assert "近いもの: " in error.message_ja and "（0%）" not in error.message_ja


@pytest.mark.skipif(not KOMAE_AED.exists(), reason="needs demo/uploads")
def test_empty_and_header_only_files_are_refused_in_the_same_words(tmp_path: Path) -> None:
    header_only = tmp_path / "aed.csv"
    header_only.write_bytes(KOMAE_AED.read_bytes().splitlines(keepends=True)[0])
    with pytest.raises(IntakeError) as caught:
        stage_file(header_only, default_registry(), original_name="aed.csv")
    refused = caught.value.to_dict()
    empty = empty_upload("aed.csv").body()["error"]
    assert refused["code"] == "no-data-rows"
    for words in (refused, empty):
        assert words["message_ja"].startswith("「aed.csv」") and "データの行がありません" in words["message_ja"]
    assert refused["hint_ja"] == empty["hint_ja"] and refused["hint_en"] == empty["hint_en"]
