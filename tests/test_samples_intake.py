"""Acceptance test of issue 3: every real sample file ingests, with no manual edit, into the right dataset.

Each file in ../shared/samples/ is staged exactly as an upload would be (``stage_file`` with the default
registry, no dataset hint). Per file the test asserts the dataset, layout variant, detected encoding and row
count, and a handful of cells read from the file itself: each is found by its physical line, checked against an
independent ``csv`` parse of the file, then asserted raw (``staged.raw``) beside normalised (``staged.values``).
"""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from expectations.registry import default_registry
from intake.process import StagedUpload, stage_file
from kouiki.problems import IntakeError

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"   # shared/ beside the clone (CI)
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/samples")
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(),
                                reason="../shared/samples is absent (the real municipal sample files; CI has them)")


@dataclass(frozen=True)
class Cell:
    """One cell of the file, as written and as the canonical column should hold it."""

    line: int                   # physical line (1-based) where the record starts in the file
    column: str                 # canonical column in the staged upload
    raw: str                    # the cell exactly as written
    normalised: str | None      # None: the cell is blank
    rule: str | None = None     # normalisation rule expected to be counted for the column
    header: str | None = None   # the file's own column name, when it differs (legacy / own layouts)

    @property
    def file_header(self) -> str:
        return self.header or self.column


@dataclass(frozen=True)
class Sample:
    """What one sample file must ingest as (SOURCES.md, and the file itself)."""

    file: str
    dataset: str
    variant: str
    encoding: str
    rows: int
    cells: tuple[Cell, ...]
    blank_rows: int = 0
    header_line: int = 1
    notices: frozenset[str] = frozenset()            # notice codes that must be present
    invalid_cells: dict[str, int] = field(default_factory=dict)   # column → cells unreadable as its type


# 備考 of 柏井こども館 (ichikawa 105, line 300): its last characters were lost and written as '??'
ICHIKAWA_105_LOST_CHARACTERS = (
    "火～日\u30009時～12時、13時～17時\u3000※詳細は、こども館ＨＰでご確認ください。〇公民館の２階にあります。"
    "大きな桜の木や、小さな草花に囲まれた緑豊かな場にあります。『赤ちゃんの駅』として授乳スペースもあります。"
    "乳幼児は玩具あそび、小中学生はボードゲー??"
)

SAMPLE_CASES = (
    Sample("ichikawa_122033_101_public_facility.csv", "public_facility", "current", "cp932", 342, (
        # full-width digits in an address are kept as written
        Cell(23, "所在地_連結表記", "千葉県市川市曽谷７丁目18-1", "千葉県市川市曽谷7丁目18-1", "fullwidth-digits"),
        Cell(222, "名称_カナ", "ｺｳﾉﾀﾞｲﾘｸｼﾞｮｳｷｮｳｷﾞｼﾞｮｳ", "コウノダイリクジョウキョウギジョウ", "halfwidth-kana"),
        Cell(274, "名称_カナ", "ショウボウダンダイ１９ブンダンシャコケンツメショ",
             "ショウボウダンダイ19ブンダンシャコケンツメショ", "fullwidth-digits"),
        Cell(60, "開始時間", "9:00", "09:00", "time-padded"),
        Cell(60, "電話番号", "(047)373-2202\u3000", "(047)373-2202", "whitespace-stripped"),
        Cell(232, "郵便番号", "272-0015", "2720015", "postal-hyphen-removed"),
    )),
    Sample("ichikawa_122033_102_cultural_property.csv", "cultural_property", "current", "cp932", 76, (
        Cell(2, "文化財指定日", "22196", "1960-10-07", "excel-serial-date"),
        # the record on line 4 spans lines 4–6 (LF inside quoted cells), so the next one starts on line 7
        Cell(4, "備考", "附についてはS63.7.5に指定", "附についてはS63.7.5に指定"),   # 和暦 in free text: as written
        Cell(7, "文化財指定日", "22313", "1961-02-01", "excel-serial-date"),
        Cell(65, "名称_カナ", "二ホンフクインルーテルイチカワキョウカイカイドウ",      # kanji 二, not katakana ニ
             "二ホンフクインルーテルイチカワキョウカイカイドウ"),
    ), notices=frozenset({"mixed-line-endings"}), invalid_cells={"名称_カナ": 1}),
    Sample("ichikawa_122033_103_evacuation_space.csv", "evacuation_space", "current", "cp932", 121, (
        Cell(2, "名称_カナ", "ｹﾝﾘﾂｺｸﾌﾞﾝｺｳｺｳ", "ケンリツコクブンコウコウ", "halfwidth-kana"),
        Cell(3, "名称_カナ", "ｵｵﾏﾁｼｮｳｶﾞｯｺｳ", "オオマチショウガッコウ", "halfwidth-kana"),
        Cell(2, "災害種別_洪水", "1", "1"),
        Cell(2, "災害種別_大規模な火事", "", None),
    )),
    Sample("ichikawa_122033_104_population.csv", "population", "current", "cp932", 237, (
        Cell(2, "調査年月日", "45016", "2023-03-31", "excel-serial-date"),
        Cell(2, "地域名", "国府台1丁目", "国府台1丁目"),
        Cell(238, "調査年月日", "45016", "2023-03-31", "excel-serial-date"),
        Cell(238, "総人口", "1441", "1441"),
    )),
    Sample("ichikawa_122033_105_preschool.csv", "preschool", "current", "cp932", 384, (
        Cell(2, "名称_カナ", "ｱﾝﾃﾞﾙｾﾝﾖｳﾁｴﾝ", "アンデルセンヨウチエン", "halfwidth-kana"),
        Cell(105, "名称_カナ", "ﾐﾙｷｰ ｳｪｲ ｲﾝﾀｰﾅｼｮﾅﾙ ﾅｰｻﾘｰｽｸｰﾙ ｲﾁｶﾜｺｳ",
             "ミルキー ウェイ インターナショナル ナーサリースクール イチカワコウ", "halfwidth-kana"),
        Cell(105, "所在地_番地以下", "6-23\u3000", "6-23", "whitespace-stripped"),
        Cell(117, "備考", "0", "0"),                                   # '0' for "no remark": kept as written
        Cell(300, "備考", ICHIKAWA_105_LOST_CHARACTERS, ICHIKAWA_105_LOST_CHARACTERS),   # '??' kept as written
    )),
    Sample("ichikawa_122033_106_open_data_list.csv", "open_data_list", "current", "cp932", 36, (
        Cell(2, "データセット_ID", "MM0000000101", "MM0000000101"),
        Cell(2, "データセット_最終更新日", "2022-06-01", "2022-06-01"),
        Cell(2, "ファイル_公開日", "2022-09-01", "2022-09-01"),
    )),
    Sample("ichikawa_122033_107_public_wireless_lan.csv", "public_wireless_lan", "current", "cp932", 45, (
        Cell(2, "郵便番号", "272-8501", "2728501", "postal-hyphen-removed"),
        Cell(2, "名称_カナ", "ダイ１チョウシャ", "ダイ1チョウシャ", "fullwidth-digits"),
        Cell(2, "地方公共団体名", "市川市", "市川市"),           # 4th column, after 法人番号 and ID
    )),
    Sample("yaizu_222127_aed.csv", "aed", "legacy", "utf-8", 82, (
        Cell(2, "ID", "0000000001", "0000000001", header="NO"),
        Cell(2, "全国地方公共団体コード", "222127", "222127", header="都道府県コード又は市区町村コード"),
        Cell(2, "設置位置", "２階正面入口", "２階正面入口"),
        Cell(56, "所在地_連結表記", "静岡県焼津市宗高88  ", "静岡県焼津市宗高88", "whitespace-stripped", header="住所"),
    )),
    Sample("yaizu_222127_public_toilet.csv", "public_toilet", "current", "utf-8", 112, (
        Cell(4, "所在地_連結表記", "静岡県焼津市吉永（官有無番地）", "静岡県焼津市吉永（官有無番地）"),
        Cell(15, "所在地_番地以下", "3808地先（3803-3番地ほか）", "3808地先（3803-3番地ほか）"),
        Cell(15, "高度の種別", "階", "階"),
        Cell(15, "男性トイレ総数", "5", "5"),
    )),
    Sample("yaizu_222127_evacuation_space.csv", "evacuation_space", "legacy", "utf-8", 31, (
        Cell(2, "災害種別_地震", "○", "1", "flag-yes"),
        Cell(2, "災害種別_洪水", "", None),
        Cell(27, "指定避難所との重複", "○", "1", "flag-yes"),
        Cell(2, "ID", "1", "1", header="NO"),
        Cell(2, "所在地_連結表記", "焼津市中港5-463", "静岡県焼津市中港5-463", "address-prefix-added",
             header="住所"),   # prefecture from 市区町村コード 222127
    )),
    Sample("yaizu_222127_preschool.csv", "preschool", "legacy", "utf-8", 60, (
        # header typo: U+2015 instead of the katakana long vowel ー
        Cell(2, "全国地方公共団体コード", "222127", "222127", header="都道府県コ―ド又は市区町村コ―ド"),
        Cell(18, "ID", "0013010018", "0013010018", header="NO"),
        Cell(22, "電話番号", "(054)622-7420 ", "(054)622-7420", "whitespace-stripped"),
        Cell(58, "名称", "岡本石井病院保育所\u3000Nature Kids", "岡本石井病院保育所\u3000Nature Kids"),
    )),
    Sample("yaizu_222127_public_wireless_lan.csv", "public_wireless_lan", "legacy", "utf-8", 17, (
        Cell(7, "所在地_連結表記", "静岡県焼津市田尻2968-1 ", "静岡県焼津市田尻2968-1", "whitespace-stripped",
             header="住所"),
        Cell(7, "名称", "ディスカバリーパーク焼津天文科学館１階", "ディスカバリーパーク焼津天文科学館１階"),
        Cell(7, "ID", "1000000010", "1000000010", header="NO"),
    )),
    Sample("komae_132195_aed.csv", "aed", "legacy", "utf-8", 57, (
        Cell(2, "開始時間", "8:30", "08:30", "time-padded"),
        Cell(2, "名称_カナ", "ｺﾏｴｼﾔｸｼｮ", "コマエシヤクショ", "halfwidth-kana"),
        Cell(2, "ID", "1", "1", header="NO"),
        Cell(2, "内線番号", "2442・2421", "2442・2421"),
        Cell(57, "所在地_連結表記", "狛江市猪方４丁目１番１号", "東京都狛江市猪方4丁目1番1号", "address-prefix-added",
             header="住所"),   # digits half-width; prefecture from 都道府県コード又は市区町村コード 132195
        Cell(57, "電話番号", "なし", "なし"),                     # not a number: kept, counted invalid
        Cell(57, "利用可能曜日", "全日・全時間帯使用可", "全日・全時間帯使用可"),
    ), invalid_cells={"電話番号": 1}),
    # 高松市's own LinkData layout: read as 子育て施設 because the file name says kindergarten
    Sample("takamatsu_0012_kindergarten.csv", "preschool", "current", "utf-8-sig", 70, (
        Cell(10, "緯度", "34.296244,134.113886", "34.296244", "split-coordinates", header="location"),
        Cell(10, "経度", "34.296244,134.113886", "134.113886", "split-coordinates", header="location"),
        Cell(10, "所在地_連結表記", "高松市前田東町788-1", "高松市前田東町788-1", header="address"),
        Cell(83, "名称", "メリーＧＯランド高松園", "メリーＧＯランド高松園", header="name"),   # last line, no newline
        Cell(83, "経度", "34.30287,134.016075", "134.016075", "split-coordinates", header="location"),
    ), blank_rows=4, header_line=7,
        notices=frozenset({"preamble", "blank-row", "combined-coordinates", "low-header-coverage"})),
)
CASES = {case.file: case for case in SAMPLE_CASES}
BY_FILE = [pytest.param(case, id=case.file) for case in SAMPLE_CASES]


# ----------------------------------------------------------------------------------------------------
# helpers


@functools.cache
def staged(file: str) -> StagedUpload:
    """The file staged as an upload: the default registry, no dataset hint (staged once per test run)."""
    return stage_file(SAMPLES / file, default_registry())


@functools.cache
def file_records(file: str, encoding: str) -> dict[int, list[str]]:
    """Independent reading of the file: physical line where each CSV record starts → its cells."""
    text = (SAMPLES / file).read_bytes().decode(encoding)
    reader = csv.reader(io.StringIO(text, newline=""))
    records: dict[int, list[str]] = {}
    start = 1
    for record in reader:
        records[start] = record
        start = reader.line_num + 1
    return records


def data_lines(case: Sample) -> list[int]:
    """Start lines of the data records: below the header, not '#…' LinkData lines, not blank."""
    return [line for line, cells in file_records(case.file, case.encoding).items()
            if line > case.header_line and not cells[0].startswith("#") and any(c.strip() for c in cells)]


def row_at(frame: pl.DataFrame, line: int) -> dict[str, Any]:
    rows = frame.filter(pl.col("_source_line") == line)
    assert rows.height == 1, f"{rows.height} staged rows start on line {line}"
    return rows.row(0, named=True)


def cell_problems(case: Sample, cell: Cell, upload: StagedUpload) -> list[str]:
    """What differs for one cell, worded for the report (file, line, column, seen vs expected)."""
    where = f"{case.file} line {cell.line} {cell.column}"
    records = file_records(case.file, case.encoding)
    header = records[case.header_line]
    written = records[cell.line][header.index(cell.file_header)]
    assert written == cell.raw, f"test data: {where} is written {written!r} in the file, not {cell.raw!r}"
    raw = row_at(upload.raw, cell.line)
    values = upload.values.filter(pl.col("_row") == raw["_row"]).row(0, named=True)
    problems = []
    if values["_source_line"] != cell.line:
        problems.append(f"{where}: values row {raw['_row']} starts on line {values['_source_line']}")
    if raw[cell.column] != cell.raw:
        problems.append(f"{where}: raw {raw[cell.column]!r}, expected {cell.raw!r}")
    if values[cell.column] != cell.normalised:
        problems.append(f"{where}: normalised {values[cell.column]!r}, expected {cell.normalised!r}")
    if cell.rule and cell.rule not in upload.normalisations.get(cell.column, {}):
        problems.append(f"{where}: rule {cell.rule!r} not counted ({upload.normalisations.get(cell.column)})")
    return problems


def sources_table() -> dict[str, dict[str, str]]:
    """The '## Files' table of SOURCES.md: file name → its columns."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for line in (SAMPLES / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if "rows × cols" in cells:
            header = cells
        elif header and line.startswith("|") and cells[0].endswith(".csv"):
            rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def described_encoding(described: str) -> str:
    if described.startswith("CP932"):
        return "cp932"
    return "utf-8" if "no BOM" in described else "utf-8-sig"


# ----------------------------------------------------------------------------------------------------
# tests


def test_every_sample_file_has_a_case_that_agrees_with_sources_md() -> None:
    described = sources_table()
    assert {path.name for path in SAMPLES.iterdir() if path.name != "SOURCES.md"} == set(CASES) == set(described)
    for name, case in CASES.items():
        row = described[name]
        size = re.fullmatch(r"(\d+)(?: \(\+(\d+) blank\))? × (\d+)", row["rows × cols"])
        assert size, f"{name}: rows × cols not understood"
        rows, blank, cols = size.groups()
        assert (case.rows, case.blank_rows) == (int(rows), int(blank or 0)), name
        assert case.encoding == described_encoding(row["encoding, newlines"]), name
        layout = row["dataset / layout"].rsplit(" / ", 1)[1]
        assert layout.startswith("own") or layout.startswith(case.variant), name
        assert len(staged(name).raw_table.header) == int(cols), name


@pytest.mark.parametrize("case", BY_FILE)
def test_sample_is_read_as_its_dataset_variant_and_encoding(case: Sample) -> None:
    upload = staged(case.file)
    assert (upload.match.dataset_id, upload.match.variant) == (case.dataset, case.variant)
    assert upload.dataset.id == case.dataset
    assert upload.raw_table.encoding == case.encoding
    assert upload.values.height == upload.raw.height == case.rows
    assert upload.raw_table.blank_rows_skipped == case.blank_rows
    assert case.notices <= {notice.code for notice in upload.notices}
    assert upload.match.missing_required == []
    for column, count in case.invalid_cells.items():
        assert upload.invalid_cells.get(column) == count, column


@pytest.mark.parametrize("case", BY_FILE)
def test_sample_records_keep_their_physical_lines(case: Sample) -> None:
    """Every data record is staged, in order, at the line an independent CSV parse finds it on."""
    upload = staged(case.file)
    assert upload.values["_source_line"].to_list() == data_lines(case)
    assert upload.values["_row"].to_list() == list(range(case.rows))
    assert upload.raw["_source_line"].to_list() == upload.values["_source_line"].to_list()


@pytest.mark.parametrize("case", BY_FILE)
def test_sample_values_raw_beside_normalised(case: Sample) -> None:
    assert len(case.cells) >= 2
    upload = staged(case.file)
    problems = [problem for cell in case.cells for problem in cell_problems(case, cell, upload)]
    assert problems == []


def test_takamatsu_dataset_comes_from_its_file_name() -> None:
    """高松市's own layout matches no standard by its header: only the file name ('kindergarten') names it."""
    upload = staged("takamatsu_0012_kindergarten.csv")
    assert upload.match.file_name_hint and not upload.match.good
    with pytest.raises(IntakeError):
        stage_file(SAMPLES / "takamatsu_0012_kindergarten.csv", default_registry(), original_name="0012.csv")
