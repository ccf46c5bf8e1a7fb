"""intake.read: bytes of an uploaded file → a table of text cells, nothing lost, nothing guessed silently."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
import zipfile
from pathlib import Path

import openpyxl
import polars as pl
import pyarrow as pa
import pytest

from intake.read import SOURCE_LINE, RawTable, decode_text, read_bytes, read_file
from intake.read import text as reader  # the module that calls the fast and slow body parsers
from kouiki.problems import IntakeError

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/samples")
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared samples not available")


# ----------------------------------------------------------------------------------------------------
# helpers


def _sources_table() -> dict[str, dict[str, str]]:
    """The '## Files' table of SOURCES.md: file name → its columns."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for line in (SAMPLES / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if "rows × cols" in cells:
            header = cells
        elif header and cells[0].endswith(".csv"):
            rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def _expected_encoding(described: str) -> str:
    if described.startswith("CP932"):
        return "cp932"
    return "utf-8" if "no BOM" in described else "utf-8-sig"


def _codes(table: RawTable) -> list[str]:
    return [notice.code for notice in table.notices]


def _notices(table: RawTable, code: str) -> list:
    return [notice for notice in table.notices if notice.code == code]


def _line_of(data: bytes, needle: bytes) -> int:
    """Independent line count: CRLF, CR and LF each end one physical line."""
    head = data[: data.index(needle)]
    return len(re.findall(rb"\r\n|\r|\n", head)) + 1


def _read_slow(monkeypatch: pytest.MonkeyPatch, data: bytes, name: str, **kwargs) -> RawTable:
    """Read with the fast parser disabled, so the csv-module fallback does all the work."""
    with monkeypatch.context() as patch:
        patch.setattr(reader, "_parse_body_fast", _refuse_fast)
        return read_bytes(data, name, **kwargs)


def _refuse_fast(*args: object, **kwargs: object) -> None:
    raise pa.ArrowInvalid("fast path disabled by the test")


def _assert_same(fast: RawTable, slow: RawTable) -> None:
    assert fast.header == slow.header
    assert fast.data.columns == slow.data.columns
    assert fast.data.equals(slow.data)
    assert fast.notices == slow.notices
    assert fast.preamble == slow.preamble
    assert fast.blank_rows_skipped == slow.blank_rows_skipped


def _xlsx_bytes(workbook: openpyxl.Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------
# the real municipal files


SOURCES = _sources_table() if SAMPLES.is_dir() else {}


@needs_samples
@pytest.mark.parametrize("file_name", sorted(SOURCES))
def test_sample_reads_with_right_encoding_rows_and_columns(file_name: str) -> None:
    described = SOURCES[file_name]
    rows_text, cols_text = described["rows × cols"].split("×")
    expected_rows = int(rows_text.split()[0])
    blank_match = re.search(r"\+(\d+) blank", rows_text)

    table = read_file(SAMPLES / file_name)

    assert table.encoding == _expected_encoding(described["encoding, newlines"])
    assert table.format == "csv"
    assert table.data.height == expected_rows
    assert len(table.header) == int(cols_text)
    assert table.data.columns[0] == SOURCE_LINE
    assert table.data.width == int(cols_text) + 1
    assert all(dtype == pl.String for dtype in table.data.dtypes[1:])
    assert table.data.schema[SOURCE_LINE] == pl.Int64
    assert table.blank_rows_skipped == (int(blank_match.group(1)) if blank_match else 0)
    assert table.data[SOURCE_LINE].is_sorted() and table.data[SOURCE_LINE].n_unique() == expected_rows


@needs_samples
@pytest.mark.parametrize("file_name", sorted(SOURCES))
def test_sample_fast_and_slow_paths_agree(file_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (SAMPLES / file_name).read_bytes()
    _assert_same(read_bytes(data, file_name), _read_slow(monkeypatch, data, file_name))


@needs_samples
def test_regular_samples_never_need_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse_slow(*args: object, **kwargs: object) -> None:
        raise AssertionError("slow path used")

    monkeypatch.setattr(reader, "_parse_body_slow", refuse_slow)
    for file_name in SOURCES:
        assert read_file(SAMPLES / file_name).data.height > 0


@needs_samples
def test_cp932_value_decodes_exactly() -> None:
    path = SAMPLES / "ichikawa_122033_103_evacuation_space.csv"
    raw = path.read_bytes()
    assert "県立国分高校".encode("cp932") in raw   # the sample really holds this name in CP932

    table = read_file(path)

    row = table.data.filter(pl.col("名称") == "県立国分高校")
    assert row.height == 1
    assert row["名称_カナ"].item() == "ｹﾝﾘﾂｺｸﾌﾞﾝｺｳｺｳ"   # half-width katakana, single CP932 bytes
    assert row["全国地方公共団体コード"].item() == "122033"
    assert row[SOURCE_LINE].item() == _line_of(raw, "県立国分高校".encode("cp932")) == 2


@needs_samples
def test_source_line_after_quoted_multiline_cells() -> None:
    path = SAMPLES / "ichikawa_122033_102_cultural_property.csv"
    raw = path.read_bytes()
    table = read_file(path)
    by_name = dict(zip(table.data["名称"], table.data[SOURCE_LINE], strict=True))

    # line 4's record holds "建造物\n歴史資料" and "狩野一廣\n歴史博物館": it ends on line 6
    assert by_name["元弘の板碑"] == 7 == _line_of(raw, "元弘の板碑".encode("cp932"))
    # line 40's record holds two LFs inside one quoted cell, twice over
    assert by_name["法華経寺五重塔"] == 43 == _line_of(raw, "法華経寺五重塔".encode("cp932"))
    multi = table.data.filter(pl.col("種類").str.contains("\n"))
    assert multi["種類"].to_list()[0] == "建造物\n歴史資料"   # the LF inside the cell is kept as written
    assert "mixed-line-endings" in _codes(table)
    assert _notices(table, "mixed-line-endings")[0].details == {"CRLF": 77, "LF": 4}


@needs_samples
def test_takamatsu_linkdata_preamble_header_and_blank_rows() -> None:
    path = SAMPLES / "takamatsu_0012_kindergarten.csv"
    raw = path.read_bytes()
    assert b"\r" not in raw and not raw.endswith(b"\n")   # LF only, no final newline

    table = read_file(path)

    assert len(table.preamble) == 9
    assert table.preamble[0] == "#LINK,,,,,,"
    assert table.preamble[6].startswith("#property,name,address")
    assert table.header == ["", "name", "address", "telephoneNumber", "referenceObject", "note", "location"]
    assert table.data.columns[:3] == [SOURCE_LINE, "列1", "name"]
    assert table.data.row(0, named=True)["name"] == "高松市立前田幼稚園"
    assert table.data.row(0, named=True)["location"] == "34.296244,134.113886"
    assert table.data[SOURCE_LINE][0] == 10
    blank = _notices(table, "blank-row")[0]
    assert blank.count == 4 and blank.details["lines"] == [12, 24, 48, 54]
    last = table.data.row(-1, named=True)
    assert last[SOURCE_LINE] == raw.count(b"\n") + 1   # the last line, which has no newline
    assert {"preamble", "header-row", "blank-label"} <= set(_codes(table))


@needs_samples
def test_no_notice_for_clean_utf8_file() -> None:
    table = read_file(SAMPLES / "yaizu_222127_aed.csv")
    assert _codes(table) == ["encoding"]
    assert table.preamble == [] and table.blank_rows_skipped == 0


# ----------------------------------------------------------------------------------------------------
# encodings


def test_decode_text_strict_order() -> None:
    text = "名称,住所\r\n市役所,焼津市本町\r\n"
    assert decode_text(("\ufeff" + text).encode("utf-8")) == (text, "utf-8-sig")
    assert decode_text(text.encode("utf-8")) == (text, "utf-8")
    assert decode_text(text.encode("cp932")) == (text, "cp932")
    assert decode_text("①㈱髙～№".encode("cp932")) == ("①㈱髙～№", "cp932")


def test_undecodable_byte_names_line_and_offset() -> None:
    before = "名称,住所\r\n" + "".join(f"施設{i},市川市八幡{i}\r\n" for i in range(30))
    data = before.encode("cp932") + b"bad\x81\x20cell,x\r\n" + "最後,行\r\n".encode("cp932")
    offset = len(before.encode("cp932")) + 3

    with pytest.raises(IntakeError) as caught:
        read_bytes(data, "broken.csv")

    error = caught.value
    assert error.code == "encoding-error"
    assert error.byte_offset == offset
    assert error.line == 32
    assert "32" in error.message_ja and str(offset) in error.message_en
    assert "CSV UTF-8" in error.hint_ja
    with pytest.raises(IntakeError) as direct:
        decode_text(data)
    assert (direct.value.line, direct.value.byte_offset) == (32, offset)


def test_damaged_utf8_is_reported_not_read_as_cp932_mojibake() -> None:
    good = "名称,住所\n" + "".join(f"焼津市立小学校{i},焼津市本町{i}\n" for i in range(20))
    data = good.encode("utf-8") + b"\xe3\x81\n"   # a UTF-8 character cut in half
    with pytest.raises(IntakeError) as caught:
        read_bytes(data, "cut.csv")
    assert caught.value.code == "encoding-error"
    assert caught.value.byte_offset == len(good.encode("utf-8"))
    assert caught.value.line == 22


def test_damaged_byte_beyond_the_probe_is_still_caught() -> None:
    rows = "".join(f"{i},市川市八幡{i}\r\n" for i in range(120_000))   # > 1 MiB of CP932
    data = ("番号,住所\r\n" + rows).encode("cp932") + b"9,\x81\x20\r\n"
    with pytest.raises(IntakeError) as caught:
        read_bytes(data, "late.csv")
    assert caught.value.code == "encoding-error"
    assert caught.value.line == 120_002
    assert caught.value.byte_offset == len(data) - 4


# ----------------------------------------------------------------------------------------------------
# refusals


@pytest.mark.parametrize("data", [b"", b"   \r\n\t\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf \r\n"])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(IntakeError) as caught:
        read_bytes(data, "empty.csv")
    assert caught.value.code == "empty-file"


def test_file_of_only_separators_and_comments_has_no_table() -> None:
    with pytest.raises(IntakeError) as caught:
        read_bytes(b",,,\r\n#note\r\n,,\r\n", "blank.csv")
    assert caught.value.code == "empty-file"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "PNG"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
    ],
)
def test_images_and_documents_are_unsupported(data: bytes, kind: str) -> None:
    with pytest.raises(IntakeError) as caught:
        read_bytes(data, "data.csv")
    assert caught.value.code == "unsupported-format" and kind in caught.value.message_en


def test_old_excel_is_unsupported() -> None:
    xls = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512)
    with pytest.raises(IntakeError) as caught:
        read_bytes(xls, "data.xls")
    assert caught.value.code == "unsupported-format" and ".xlsx" in caught.value.hint_ja


def test_zip_that_is_not_a_workbook_is_unsupported() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    with pytest.raises(IntakeError) as caught:
        read_bytes(buffer.getvalue(), "data.zip")
    assert caught.value.code == "unsupported-format"


def test_nul_byte_is_binary_content_with_offset() -> None:
    data = b"a,b\r\n1,2\r\n3,\x004\r\n"
    with pytest.raises(IntakeError) as caught:
        read_bytes(data, "nul.csv")
    assert caught.value.code == "binary-content"
    assert caught.value.byte_offset == data.index(b"\x00") == 12
    assert caught.value.line == 3


def test_unclosed_quote_is_an_error_with_its_line() -> None:
    with pytest.raises(IntakeError) as caught:
        read_bytes(b'a,b\n1,2\n3,"open\n4,5\n', "quote.csv")
    assert caught.value.code == "unclosed-quote"
    assert caught.value.line == 3


# ----------------------------------------------------------------------------------------------------
# CSV / TSV shapes


def test_tsv_detected_from_content() -> None:
    data = "名称\t住所\t備考\n市役所\t焼津市本町2-16-32\t本庁舎, 1階\n図書館\t焼津市三ケ名\t\n".encode()
    table = read_bytes(data, "list.csv")
    assert table.format == "tsv"
    assert table.header == ["名称", "住所", "備考"]
    assert table.data["備考"].to_list() == ["本庁舎, 1階", ""]
    assert table.data[SOURCE_LINE].to_list() == [2, 3]


def test_txt_extension_with_tabs_and_commas_is_tsv() -> None:
    table = read_bytes(b"a,1\tb\nx\ty,z\n", "export.txt")
    assert table.format == "tsv" and table.header == ["a,1", "b"]


def test_cr_only_line_endings_and_no_final_newline() -> None:
    data = "名称,電話\r市役所,054-626-1111\r図書館,054-620-0021".encode("cp932")
    table = read_bytes(data, "mac.csv")
    assert table.encoding == "cp932"
    assert table.data["名称"].to_list() == ["市役所", "図書館"]
    assert table.data[SOURCE_LINE].to_list() == [2, 3]
    assert "mixed-line-endings" not in _codes(table)


def test_mixed_line_endings_are_noticed_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b'a,b\r\n1,2\n3,"x\r\ny"\r4,5\r\n'
    table = read_bytes(data, "mixed.csv")
    notice = _notices(table, "mixed-line-endings")[0]
    assert notice.details == {"CRLF": 3, "LF": 1, "CR": 1}
    assert table.data[SOURCE_LINE].to_list() == [2, 3, 5]
    assert table.data["b"].to_list() == ["2", "x\r\ny", "5"]
    _assert_same(table, _read_slow(monkeypatch, data, "mixed.csv"))


def test_blank_rows_are_skipped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    data = "id,名称\r\n1,a\r\n\r\n,\r\n \u3000,\t\r\n2,b\r\n\r\n".encode()
    table = read_bytes(data, "blank.csv")
    assert table.data["id"].to_list() == ["1", "2"]
    assert table.data[SOURCE_LINE].to_list() == [2, 6]
    assert table.blank_rows_skipped == 4
    assert _notices(table, "blank-row")[0].details["lines"] == [3, 4, 5, 7]
    _assert_same(table, _read_slow(monkeypatch, data, "blank.csv"))


def test_cells_are_kept_exactly_as_written() -> None:
    data = 'code,name,note\n011002," 札幌市 ",NA\n,"",null\n'.encode()
    table = read_bytes(data, "exact.csv")
    assert table.data.row(0) == (2, "011002", " 札幌市 ", "NA")
    assert table.data.row(1) == (3, "", "", "null")


def test_trailing_commas_and_empty_unnamed_columns_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"a,,b,,\r\n1,,2,,\r\n3,,4,,\r\n"
    table = read_bytes(data, "trailing.csv")
    assert table.header == ["a", "b"]
    assert table.data.columns == [SOURCE_LINE, "a", "b"]
    extra_label = _notices(table, "extra-label")[0]
    assert extra_label.details["columns"] == [4, 5]
    assert _notices(table, "blank-label")[0].details == {"columns": [2], "action": "dropped"}
    _assert_same(table, _read_slow(monkeypatch, data, "trailing.csv"))


def test_unnamed_column_with_data_is_kept_as_numbered_column() -> None:
    table = read_bytes(b"a,,c\n1,x,3\n2,,4\n", "unnamed.csv")
    assert table.header == ["a", "", "c"]
    assert table.data.columns == [SOURCE_LINE, "a", "列2", "c"]
    assert table.data["列2"].to_list() == ["x", ""]
    kept = _notices(table, "blank-label")[0]
    assert kept.column == "列2" and kept.details["action"] == "kept"


def test_repeated_header_names_are_made_unique() -> None:
    table = read_bytes("名称,名称,名称,_source_line\n1,2,3,4\n".encode(), "dup.csv")
    assert table.header == ["名称", "名称", "名称", "_source_line"]
    assert table.data.columns == [SOURCE_LINE, "名称", "名称__2", "名称__3", "_source_line__2"]
    assert table.data.row(0) == (2, "1", "2", "3", "4")
    assert len(_notices(table, "duplicate-label")) == 3


def test_ragged_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"a,b,c\r\n1,2,3\r\n4,5\r\n6,7,8,9,10\r\n11\r\n12,13,14,,\r\n"
    table = read_bytes(data, "ragged.csv")
    assert table.data.rows() == [
        (2, "1", "2", "3"),
        (3, "4", "5", None),
        (4, "6", "7", "8"),
        (5, "11", None, None),
        (6, "12", "13", "14"),
    ]
    missing = _notices(table, "missing-cell")
    assert [(n.line, n.column) for n in missing] == [(3, "c"), (5, "b")]
    extra = _notices(table, "extra-cell")
    assert extra[0].line == 4 and extra[0].details["extra_cells"] == ["9", "10"]
    assert extra[1].details == {"lines": [6], "all_empty": True}
    _assert_same(table, _read_slow(monkeypatch, data, "ragged.csv"))


def test_ragged_rows_are_set_aside_by_pyarrow_not_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = "".join(f'{i},"名称\n{i}",{i}\r\n' for i in range(2000))
    data = ("a,b,c\r\n" + rows + "short,row\r\n" + rows + "x,y,z,extra\r\n").encode("cp932")
    monkeypatch.setattr(reader, "_parse_body_slow", None)   # any use of the slow path would fail
    table = read_bytes(data, "big-ragged.csv")
    assert table.data.height == 4002
    short = table.data.filter(pl.col("a") == "short")
    assert short.row(0) == (2 + 2 * 2000, "short", "row", None)   # each earlier record spans two lines
    assert _notices(table, "missing-cell")[0].line == 4002
    extra = _notices(table, "extra-cell")[0]
    assert extra.line == 4003 + 2 * 2000 and extra.details["extra_cells"] == ["extra"]


def test_fast_and_slow_agree_on_generated_ragged_files(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    pieces = ["", "市川", '"a,b"', '"改\r\n行"', '"\n"', " "]
    for trial in range(8):
        lines = ["h1,h2,h3"]
        for _ in range(200):
            lines.append(",".join(rng.choice(pieces) for _ in range(rng.choice([1, 2, 3, 3, 3, 3, 4, 5]))))
        text = "".join(line + rng.choice(["\r\n", "\n", "\r"]) for line in lines)
        data = text.encode("cp932" if trial % 2 else "utf-8")
        with monkeypatch.context() as patch:
            patch.setattr(reader, "_parse_body_slow", None)
            tolerant = read_bytes(data, "ragged.csv")
        _assert_same(tolerant, _read_slow(monkeypatch, data, "ragged.csv"))
        assert tolerant.data[SOURCE_LINE].to_list() == _oracle_start_lines(text, skip=1)


def test_many_ragged_rows_list_twenty_and_count_the_rest() -> None:
    rows = "".join(f"{i},x,extra{i}\n" for i in range(25))
    table = read_bytes(("a,b\n" + rows).encode(), "many.csv")
    extra = _notices(table, "extra-cell")
    assert [n.line for n in extra[:20]] == list(range(2, 22))
    assert extra[-1].count == 5 and extra[-1].details == {"more": True}
    assert sum(n.count for n in extra) == 25


def test_data_rows_with_trailing_comma_stay_on_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"a,b\r\n1,2,\r\n3,4,\r\n"
    monkeypatch.setattr(reader, "_parse_body_slow", None)   # any use of the slow path would fail
    table = read_bytes(data, "t.csv")
    assert table.data.rows() == [(2, "1", "2"), (3, "3", "4")]
    assert _notices(table, "extra-cell")[0].details == {"lines": [2, 3], "all_empty": True}


def test_header_only_file_has_no_rows() -> None:
    table = read_bytes(b"a,b\r\n", "h.csv")
    assert table.header == ["a", "b"] and table.data.height == 0
    assert table.data.columns == [SOURCE_LINE, "a", "b"]


def test_hash_preamble_and_bare_hash_header() -> None:
    data = "#作成日 2024-01-01\n# 出典: 市川市\n#,名称\n1,市役所\n".encode()
    table = read_bytes(data, "p.csv")
    assert table.preamble == ["#作成日 2024-01-01", "# 出典: 市川市"]
    assert table.header == ["#", "名称"]   # a bare '#' is a column name ("number"), not a comment
    assert table.data[SOURCE_LINE].to_list() == [4]
    assert _notices(table, "preamble")[0].details["lines"] == [1, 2]


def _standard_scorer(cells: list[str]) -> float:
    known = {"全国地方公共団体コード", "ID", "名称", "所在地_連結表記", "緯度", "経度"}
    return sum(cell in known for cell in cells) / max(len(cells), 1)


def test_header_scorer_finds_header_below_a_title_row(monkeypatch: pytest.MonkeyPatch) -> None:
    data = "指定緊急避難場所一覧（令和6年4月1日現在）,,,\r\n,,,\r\n全国地方公共団体コード,ID,名称,緯度\r\n" \
           "122033,1,市役所,35.72\r\n".encode("cp932")
    plain = read_bytes(data, "title.csv")
    assert plain.header[0] == "指定緊急避難場所一覧（令和6年4月1日現在）"   # without a scorer: first line

    table = read_bytes(data, "title.csv", header_scorer=_standard_scorer)
    assert table.header == ["全国地方公共団体コード", "ID", "名称", "緯度"]
    assert table.preamble == ["指定緊急避難場所一覧（令和6年4月1日現在）,,,"]
    assert table.data.row(0) == (4, "122033", "1", "市役所", "35.72")
    assert _notices(table, "header-row")[0].line == 3
    assert table.blank_rows_skipped == 0   # blank lines above the header are not data rows
    _assert_same(table, _read_slow(monkeypatch, data, "title.csv", header_scorer=_standard_scorer))


def test_fast_and_slow_agree_on_generated_messy_files(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(20240401)
    pieces = ["", "市川", "a b", '"q,1"', '"改\n行"', '"c\r\nr"', '"x""y"', "　", " ", '"\n\n"']
    for trial in range(6):
        endings = ["\r\n", "\n", "\r"] if trial % 2 else ["\r\n"]
        lines = ["#meta,1", "h1,h2,h3,"]
        for _ in range(300):
            roll = rng.random()
            if roll < 0.05:
                lines.append("")
            elif roll < 0.08:
                lines.append(",,,")
            else:
                lines.append(",".join(rng.choice(pieces) for _ in range(4)))
        text = "".join(line + rng.choice(endings) for line in lines)
        data = text.encode("cp932" if trial % 3 == 0 else "utf-8")
        with monkeypatch.context() as patch:
            patch.setattr(reader, "_parse_body_slow", None)   # regular files must not need it
            fast = read_bytes(data, "gen.csv")
        _assert_same(fast, _read_slow(monkeypatch, data, "gen.csv"))
        assert fast.data[SOURCE_LINE].to_list() == _oracle_start_lines(text, skip=2)


def _oracle_start_lines(text: str, skip: int) -> list[int]:
    """Start lines of the non-blank records, from csv.reader's own line counter."""
    rows = csv.reader(io.StringIO(text, newline=""))
    starts, previous = [], 0
    for index, row in enumerate(rows):
        if index >= skip and any(cell.strip(" \u3000\r\n") for cell in row):
            starts.append(previous + 1)
        previous = rows.line_num
    return starts


# ----------------------------------------------------------------------------------------------------
# xlsx


def _workbook_with_sheets() -> openpyxl.Workbook:
    workbook = openpyxl.Workbook()
    cover = workbook.active
    cover.title = "表紙"
    cover["B2"] = "市川市 公共施設一覧"
    workbook.create_sheet("空")
    data = workbook.create_sheet("施設")
    data["A1"] = "公共施設一覧（令和6年度）"
    data.append([])
    data.append(["全国地方公共団体コード", "ID", "名称", "開設日", "更新日", "緯度", "郵便番号"])
    data.append([122033, 1, "市川市役所", dt.date(2023, 3, 31), 45016, 35.7219, "2728501"])
    data.append([])
    data.append([122033, 2, "中央図書館", dt.datetime(2001, 4, 1, 9, 30), 45017, 35.7, "011002"])
    return workbook


def test_xlsx_first_non_empty_sheet_without_scorer() -> None:
    table = read_bytes(_xlsx_bytes(_workbook_with_sheets()), "facilities.xlsx")
    assert table.format == "xlsx" and table.encoding == "xlsx"
    assert table.sheet == "表紙"
    assert table.header == ["市川市 公共施設一覧"]
    assert _notices(table, "sheet")[0].details["other_sheets"] == ["空", "施設"]


def test_xlsx_sheet_chosen_by_header_score_with_codes_and_dates() -> None:
    data = _xlsx_bytes(_workbook_with_sheets())
    table = read_bytes(data, "facilities.xlsx", header_scorer=_standard_scorer)
    assert table.sheet == "施設"
    assert table.header == ["全国地方公共団体コード", "ID", "名称", "開設日", "更新日", "緯度", "郵便番号"]
    assert table.preamble == ["公共施設一覧（令和6年度）"]
    first, second = table.data.rows(named=True)
    assert first[SOURCE_LINE] == 4 and second[SOURCE_LINE] == 6   # sheet rows; row 5 is blank
    assert first["全国地方公共団体コード"] == "122033"               # not "122033.0"
    assert first["ID"] == "1"
    assert first["開設日"] == "2023-03-31"                          # a real date cell
    assert first["更新日"] == "45016"                               # a serial number in a plain cell stays
    assert first["緯度"] == "35.7219"
    assert second["郵便番号"] == "011002"                           # zero-padded text stays text
    assert second["開設日"] == "2001-04-01 09:30:00"
    assert table.blank_rows_skipped == 1
    assert table.data.schema[SOURCE_LINE] == pl.Int64


def test_xlsx_error_cells_keep_their_text() -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["名称", "値"])
    sheet.append(["a", 1])
    sheet["B2"].value = "#N/A"
    sheet["B2"].data_type = "e"
    table = read_bytes(_xlsx_bytes(workbook), "e.xlsx")
    assert table.data["値"].to_list() == ["#N/A"]
    assert _notices(table, "cell-error")[0].line == 2


def test_xlsx_zip_bomb_is_refused() -> None:
    buffer = io.BytesIO(_xlsx_bytes(_workbook_with_sheets()))
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", bytes(30_000_000))   # compresses about 1000×
    with pytest.raises(IntakeError) as caught:
        read_bytes(buffer.getvalue(), "bomb.xlsx")
    assert caught.value.code == "file-too-large"


def test_xlsx_uncompressed_size_limit() -> None:
    data = _xlsx_bytes(_workbook_with_sheets())
    with pytest.raises(IntakeError) as caught:
        read_bytes(data, "big.xlsx", max_unzipped_bytes=1_000)
    assert caught.value.code == "file-too-large"
    assert read_bytes(data, "big.xlsx").sheet == "表紙"


def test_xlsx_detected_by_content_not_extension() -> None:
    table = read_bytes(_xlsx_bytes(_workbook_with_sheets()), "facilities.csv")
    assert table.format == "xlsx"
    assert "extension-mismatch" in _codes(table)


def test_read_file_uses_original_name(tmp_path: Path) -> None:
    path = tmp_path / "upload-1234"
    path.write_bytes(b"a\tb\n1\t2\n")
    table = read_file(path, original_name="list.tsv")
    assert table.format == "tsv" and table.data.row(0) == (2, "1", "2")
