"""Header normalisation and dataset detection, on the header rows of the real sample files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from expectations.registry import load_registry
from intake.headers import (
    FILE_NAME_BONUS,
    MIN_GOOD_SCORE,
    detect,
    header_score,
    match_dataset,
    no_match_error,
    normalise_header,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"   # shared/ beside the clone (CI)
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/samples")
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="needs shared/samples beside the repository")

# dataset and layout of each sample, as SOURCES.md describes them
EXPECTED = {
    "ichikawa_122033_101_public_facility.csv": ("public_facility", "current"),
    "ichikawa_122033_102_cultural_property.csv": ("cultural_property", "current"),
    "ichikawa_122033_103_evacuation_space.csv": ("evacuation_space", "current"),
    "ichikawa_122033_104_population.csv": ("population", "current"),
    "ichikawa_122033_105_preschool.csv": ("preschool", "current"),
    "ichikawa_122033_106_open_data_list.csv": ("open_data_list", "current"),
    "ichikawa_122033_107_public_wireless_lan.csv": ("public_wireless_lan", "current"),
    "yaizu_222127_aed.csv": ("aed", "legacy"),
    "yaizu_222127_evacuation_space.csv": ("evacuation_space", "legacy"),
    "yaizu_222127_preschool.csv": ("preschool", "legacy"),
    "yaizu_222127_public_wireless_lan.csv": ("public_wireless_lan", "legacy"),
    "yaizu_222127_public_toilet.csv": ("public_toilet", "current"),
    "komae_132195_aed.csv": ("aed", "legacy"),
}
TAKAMATSU = "takamatsu_0012_kindergarten.csv"


def read_rows(name: str, count: int = 2) -> list[list[str]]:
    """The first ``count`` rows after any '#' preamble lines; UTF-8 (with or without BOM) else CP932."""
    raw = (SAMPLES / name).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp932")
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    reader = csv.reader(io.StringIO(body))
    return [next(reader) for _ in range(count)]


def read_header(name: str) -> list[str]:
    return read_rows(name, 1)[0]


def takamatsu_property_row() -> list[str]:
    """高松市's English property names: the '#property' line of the preamble."""
    text = (SAMPLES / TAKAMATSU).read_bytes().decode("utf-8-sig")
    line = next(line for line in text.splitlines() if line.startswith("#property,"))
    return next(csv.reader([line]))


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@needs_samples
def test_every_sample_is_listed():
    assert {p.name for p in SAMPLES.glob("*.csv")} == {*EXPECTED, TAKAMATSU}


# ------------------------------------------------------------------------------------------ normalisation


@pytest.mark.parametrize(("raw", "expected"), [
    ("都道府県コ―ド又は市区町村コ―ド", "都道府県コード又は市区町村コード"),   # U+2015 between katakana
    ("ｺｰﾄﾞ", "コード"),                                                       # half-width katakana
    ("センタ‐", "センター"),                                                 # U+2010 after katakana
    ("センター1", "センター1"),                                              # a real ー stays ー
    ("0-4歳の男性", "0-4歳の男性"),
    ("0－4歳の男性", "0-4歳の男性"),                                         # full-width hyphen
    ("0−4歳の男性", "0-4歳の男性"),                                          # U+2212 minus
    ("データ—ID", "データ-ID"),                                              # em dash before Latin: hyphen
    ("建物名等（方書）", "建物名等(方書)"),
    ("\ufeff全国地方公共団体コード", "全国地方公共団体コード"),
    ("名\u3000称 ", "名称"),
    ("車椅子使用者用トイレ有無\n（プルダウンから選択）", "車椅子使用者用トイレ有無(プルダウンから選択)"),
    ("名称＿カナ", "名称_カナ"),
    ("ＵＲＬ", "URL"),
])
def test_normalise_header(raw: str, expected: str):
    assert normalise_header(raw) == expected


# ------------------------------------------------------------------------------------------ detection


@needs_samples
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_is_detected_from_its_header_alone(registry, name: str):
    best, runner_up = detect(read_header(name), registry)[:2]
    assert (best.dataset_id, best.variant) == EXPECTED[name]
    assert best.good and best.score > runner_up.score
    assert best.missing_required == []


@needs_samples
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_headers_all_map(registry, name: str):
    header = read_header(name)
    best = detect(header, registry, file_name=name)[0]
    assert best.file_name_hint
    assert best.unmatched == []
    assert set(best.mapping) == set(header)
    dataset = registry.get(best.dataset_id)
    canonical = {c.name for c in dataset.canonical.columns}
    variant = dataset.variant(best.variant)
    for file_header, target in best.mapping.items():
        # either a canonical column, or a legacy column without a current counterpart kept under its own name
        declared = variant.column(best.declared[file_header])
        kept_as_extra = declared is not None and declared.maps_to is None and target == declared.name
        assert target in canonical or kept_as_extra


@needs_samples
def test_header_row_scores_higher_than_a_data_row(registry):
    for name in EXPECTED:
        header, first_record = read_rows(name)
        assert header_score(header, registry) >= MIN_GOOD_SCORE > header_score(first_record, registry), name


@needs_samples
def test_yaizu_preschool_typo_is_mapped(registry):
    header = read_header("yaizu_222127_preschool.csv")
    typo = "都道府県コ―ド又は市区町村コ―ド"
    assert typo in header
    best = detect(header, registry)[0]
    assert best.renamed == {typo: "都道府県コード又は市区町村コード"}
    assert best.mapping[typo] == "全国地方公共団体コード"


@needs_samples
def test_komae_aed_legacy_headers_all_map_to_current_names(registry):
    header = read_header("komae_132195_aed.csv")
    best = match_dataset(header, registry.get("aed"), registry.aliases)
    assert best.variant == "legacy" and len(best.mapping) == len(header) == 22
    assert best.mapping["都道府県コード又は市区町村コード"] == "全国地方公共団体コード"
    assert best.mapping["NO"] == "ID"
    assert best.mapping["住所"] == "所在地_連結表記"
    assert best.mapping["方書"] == "建物名等(方書)"
    assert best.mapping["都道府県名"] == "都道府県名"        # no current counterpart: kept as extra
    assert best.renamed == {} and best.missing == [] and best.unmatched == []


@needs_samples
def test_missing_and_unmatched_columns_are_listed(registry):
    header = read_header("komae_132195_aed.csv")
    trimmed = [h for h in header if h not in ("住所", "内線番号")] + ["担当課"]
    best = detect(trimmed, registry)[0]
    assert (best.dataset_id, best.variant) == ("aed", "legacy")
    assert best.missing == ["住所", "内線番号"]
    assert best.missing_required == ["住所"]
    assert best.unmatched == ["担当課"]
    assert best.score < detect(header, registry)[0].score


@needs_samples
def test_current_file_with_legacy_spellings_and_noise(registry):
    """A current-layout toilet file retyped by hand: full-width brackets, spaces, aliases, another order."""
    header = read_header("yaizu_222127_public_toilet.csv")
    retyped = [h.replace("(", "（").replace(")", "）") for h in reversed(header)]
    respelled = {"緯度": "lat", "経度": "経度 ", "バリアフリートイレ数": "多機能トイレ数"}
    retyped = [respelled.get(h, h) for h in retyped]
    best = detect(retyped, registry)[0]
    assert (best.dataset_id, best.variant) == ("public_toilet", "current")
    assert best.unmatched == [] and best.missing == []
    assert best.mapping["lat"] == "緯度" and best.mapping["経度 "] == "経度"
    assert best.mapping["多機能トイレ数"] == "バリアフリートイレ数"
    assert best.renamed["建物名等（方書）"] == "建物名等(方書)"


@needs_samples
def test_exact_name_wins_over_an_alias(registry):
    """指定緊急避難場所一覧 has both 全国地方公共団体コード and 市区町村コード (an alias of the former)."""
    best = detect(read_header("yaizu_222127_evacuation_space.csv"), registry)[0]
    assert best.mapping["市区町村コード"] == "市区町村コード"
    current = registry.get("evacuation_space").variant("current")
    header = ["市区町村コード", "全国地方公共団体コード", *(c.name for c in current.columns[2:])]
    match = match_dataset(header, registry.get("evacuation_space"), registry.aliases)
    assert match.mapping["市区町村コード"] == "市区町村コード"
    assert match.mapping["全国地方公共団体コード"] == "全国地方公共団体コード"


@needs_samples
def test_hint_restricts_detection(registry):
    header = read_header("komae_132195_aed.csv")
    only = detect(header, registry, dataset_hint="public_facility")
    assert [m.dataset_id for m in only] == ["public_facility"]
    assert only[0].score < detect(header, registry)[0].score
    with pytest.raises(KeyError):
        detect(header, registry, dataset_hint="school_lunch_menu")   # no columns: cannot be matched


@needs_samples
def test_file_name_slug_bonus(registry):
    header = read_header("komae_132195_aed.csv")[:8]       # only the generic columns: ambiguous
    aed = registry.get("aed")
    plain = match_dataset(header, aed, registry.aliases)
    for name in ("122033_108_aed.csv", "data/AED設置箇所一覧/list.csv"):
        hinted = match_dataset(header, aed, registry.aliases, file_name=name)
        assert hinted.file_name_hint
        assert hinted.score == pytest.approx(plain.score + FILE_NAME_BONUS, abs=1e-3)
    assert not match_dataset(header, aed, registry.aliases, file_name="paediatric.csv").file_name_hint


def test_current_names_are_recognised_in_a_legacy_only_dataset(registry):
    """Aliases work both ways: 所在地_連結表記 fills the legacy-only 医療機関一覧's 住所."""
    header = ["NO", "名称", "名称_カナ", "医療機関の種類", "所在地_連結表記", "電話番号", "診療曜日",
              "診療開始時間", "診療終了時間", "診療科目", "病床数", "URL"]
    best = detect(header, registry)[0]
    assert (best.dataset_id, best.variant) == ("hospital", "legacy") and best.good
    assert best.renamed == {"所在地_連結表記": "住所"} and best.mapping["所在地_連結表記"] == "住所"
    assert best.missing_required == []


# ------------------------------------------------------------------------------------------ 高松市 own layout


@needs_samples
def test_takamatsu_first_non_comment_line_is_data_not_a_header(registry):
    row = read_header(TAKAMATSU)
    assert row[1] == "高松市立前田幼稚園"       # the English names are in the '#property' line, not here
    matches = detect(row, registry, file_name=TAKAMATSU)
    assert not matches[0].good
    assert header_score(row, registry) < MIN_GOOD_SCORE


@needs_samples
def test_takamatsu_property_names_rank_preschool_with_hint_but_do_not_match_well(registry):
    row = takamatsu_property_row()
    assert row[1:] == ["name", "address", "telephoneNumber", "referenceObject", "note", "location"]
    unhinted = detect(row, registry, file_name=TAKAMATSU)
    assert not unhinted[0].good                               # no dataset matched well: ask the uploader
    hinted = detect(row, registry, dataset_hint="preschool", file_name=TAKAMATSU)
    best = hinted[0]
    assert best.dataset_id == "preschool" and not best.good
    assert best.mapping == {"name": "名称", "address": "所在地_連結表記", "telephoneNumber": "電話番号",
                            "note": "備考"}
    assert best.unmatched == ["#property", "referenceObject", "location"]
    assert "名称_カナ" in best.missing_required
    error = no_match_error(hinted, registry)
    assert error.code == "no-dataset-match"
    assert "子育て施設一覧" in error.message_ja and "Childcare" not in error.message_ja
    assert registry.get("preschool").name_en in error.message_en
