"""Turn the bytes of an uploaded file into a table of text cells: nothing lost, nothing guessed silently.

What this module decides, and nothing more:

* the format from the content (xlsx by its zip signature, CSV/TSV otherwise) and the text encoding
  (UTF-8 with BOM → UTF-8 → CP932, strictly, never a guess);
* which line is the header (the first line that is neither blank nor a ``#…`` preamble line, the
  ``#property`` line of LinkData-style files, or the best-scoring line when a ``header_scorer`` is given);
  a header on two or three rows (a group label over sub-columns, merged cells in xlsx) is joined into one
  name per column (病床数_一般, :mod:`intake.header_rows`); a LinkData file's Japanese labels (``#label``) are
  its header, its ``#property`` names kept as :attr:`RawTable.property_names`;
* every cell below it, as written, with the physical line (or sheet row) where its record starts; note lines
  under the table (※…, (注)…) are reported, not read as rows.

Everything it drops or works around (blank rows, empty unnamed columns, ragged rows, a preamble, mixed line
endings …) is reported as a :class:`~intake.problems.Notice`; a file it cannot read raises
:class:`~intake.problems.IntakeError` with the place and a fix.

Speed: a CSV is parsed by pyarrow's multi-threaded reader (CP932 is transcoded inside it), and the
``_source_line`` column is computed with vector operations. Rows with another cell count make pyarrow
retry single-threaded, setting those rows aside for the csv module and putting them back in place.
Python's ``csv`` module parses the few lines above the data, and the whole file only when pyarrow cannot
(an unclosed quote, a damaged byte …); all paths give identical results (the tests compare them).
"""

from __future__ import annotations

import csv
import io
import re
import string
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import fastexcel
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from intake.header_rows import MAX_HEADER_ROWS, Merge, count_header_rows, is_label, join_header_rows
from intake.problems import IntakeError, Notice

HeaderScorer = Callable[[list[str]], float]

SOURCE_LINE = "_source_line"
DEFAULT_MAX_UNZIPPED_BYTES = 500_000_000
MAX_ZIP_RATIO = 200
ZIP_RATIO_FLOOR_BYTES = 1 << 20       # entries smaller than this cannot be bombs worth refusing
HEADER_SEARCH_LINES = 15               # a header_scorer looks for the header among these first lines
# A first line scoring this well is the header: scoring the other head lines could not beat it by much.
CLEAR_HEADER_SCORE = 0.9
NOTICE_LINE_LIMIT = 20                 # line numbers (or rows) listed in one notice
UTF8_EVIDENCE_CHARS = 4                # this many valid non-ASCII UTF-8 characters prove a file is UTF-8
PROBE_BYTES = 1 << 20                  # bytes decoded to choose the encoding and find the header
XLSX_HEAD_ROWS = 100                   # rows of each sheet loaded to choose the sheet and the header
SLOW_PATH_CHUNK_ROWS = 50_000          # rows held as Python strings at once on the slow path
ARROW_BLOCK_BYTES = 1 << 20            # pyarrow's default; larger blocks measured slower here

# Characters that make a cell "blank". Full-width space and NBSP are common in Japanese spreadsheets.
_BLANK_CHARS = " \t\r\n\v\f\u3000\u00a0\ufeff"
_HEADER_STRIP_CHARS = string.whitespace + "\u3000\u00a0\ufeff"
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_NON_SPACE = re.compile(rb"[^ \t\r\n\v\f]")

_RESAVE_HINT_JA = "Excelで『CSV UTF-8 (コンマ区切り)』形式で保存し直してください。"
_RESAVE_HINT_EN = "Re-save the file from Excel as 'CSV UTF-8 (Comma delimited)'."

# Signatures of files that are certainly not tables, so the message can say what was uploaded.
_NOT_A_TABLE = (
    (b"\x89PNG\r\n\x1a\n", "PNG画像", "a PNG image"),
    (b"\xff\xd8\xff", "JPEG画像", "a JPEG image"),
    (b"GIF8", "GIF画像", "a GIF image"),
    (b"%PDF-", "PDF", "a PDF document"),
    (b"\x1f\x8b", "gzip圧縮ファイル", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip圧縮ファイル", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR圧縮ファイル", "a RAR archive"),
)
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_UTF8_BOM = b"\xef\xbb\xbf"

# Excel's own texts for the error values calamine reports as Error(<kind>).
_EXCEL_ERROR_TEXT = {
    "Div0": "#DIV/0!", "NA": "#N/A", "Name": "#NAME?", "Null": "#NULL!",
    "Num": "#NUM!", "Ref": "#REF!", "Value": "#VALUE!", "GettingData": "#GETTING_DATA",
}


@dataclass
class RawTable:
    """One uploaded table: header and cells exactly as written, plus what was noticed on the way."""

    header: list[str]
    data: pl.DataFrame
    encoding: str
    format: str
    sheet: str | None
    preamble: list[str]
    blank_rows_skipped: int
    notices: list[Notice] = field(default_factory=list)
    # LinkData files: each column's '#property' name (English: name, address, startDate …) and
    # '#object_type_xsd' type, in the order of ``header`` ("" where the file gives none); empty otherwise.
    property_names: list[str] = field(default_factory=list)
    property_types: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------
# public entry points


def read_file(
    path: Path,
    *,
    original_name: str | None = None,
    header_scorer: HeaderScorer | None = None,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
) -> RawTable:
    """Read an uploaded file; ``original_name`` (the name the uploader gave) is used for its extension."""
    path = Path(path)
    return read_bytes(
        path.read_bytes(),
        original_name or path.name,
        header_scorer=header_scorer,
        max_unzipped_bytes=max_unzipped_bytes,
    )


def read_bytes(
    data: bytes,
    name: str,
    *,
    header_scorer: HeaderScorer | None = None,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
) -> RawTable:
    """Read the bytes of an uploaded file called ``name`` into a :class:`RawTable`."""
    if _is_xlsx(data):
        return _read_xlsx(data, name, header_scorer, max_unzipped_bytes)
    _refuse_non_text(data, name)
    return _read_text(data, name, header_scorer)


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode strictly as UTF-8 with BOM, else UTF-8, else CP932; returns ``(text, encoding)``.

    A UTF-8 decode that fails only after several valid non-ASCII characters is a damaged UTF-8 file,
    not CP932: it is reported rather than silently decoded as CP932 mojibake.
    """
    if data.startswith(_UTF8_BOM):
        try:
            return data.decode("utf-8-sig"), "utf-8-sig"
        except UnicodeDecodeError as err:
            raise _encoding_error(data, err.start, "utf-8-sig") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as err:
        utf8_failed_at = err.start
    if _looks_like_utf8(data[:utf8_failed_at]):
        raise _encoding_error(data, utf8_failed_at, "utf-8")
    try:
        return data.decode("cp932"), "cp932"
    except UnicodeDecodeError as err:
        cp932_failed_at = err.start
    if cp932_failed_at > utf8_failed_at:
        raise _encoding_error(data, cp932_failed_at, "cp932")
    raise _encoding_error(data, utf8_failed_at, "utf-8")


# ----------------------------------------------------------------------------------------------------
# format sniffing and refusals


def _is_xlsx(data: bytes) -> bool:
    if not data.startswith(_ZIP_MAGIC):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(info.filename.startswith("xl/") for info in archive.infolist())
    except zipfile.BadZipFile:
        return False


def _refuse_non_text(data: bytes, name: str) -> None:
    """Raise for anything that is not a text table: empty, old Excel, images, archives, binary."""
    if _NON_SPACE.search(data, len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0) is None:
        raise IntakeError(
            "empty-file",
            f"ファイル「{name}」は空です（データがありません）。",
            f"The file '{name}' is empty.",
            hint_ja="データが入ったファイルを選び直してください。",
            hint_en="Choose the file that holds the data.",
        )
    if data.startswith(_OLE2_MAGIC):
        raise IntakeError(
            "unsupported-format",
            f"「{name}」は古いExcel形式(.xls)かパスワード付きのファイルで、読み込めません。",
            f"'{name}' is an old Excel workbook (.xls) or a password-protected file, which cannot be read.",
            hint_ja="Excelで「Excelブック(.xlsx)」か『CSV UTF-8 (コンマ区切り)』形式で保存し直してください。",
            hint_en="Re-save it from Excel as 'Excel Workbook (.xlsx)' or 'CSV UTF-8 (Comma delimited)'.",
        )
    kind = _known_binary_kind(data)
    if kind is not None:
        raise IntakeError(
            "unsupported-format",
            f"「{name}」は{kind[0]}で、表（CSV・Excel）ではありません。",
            f"'{name}' is {kind[1]}, not a table (CSV or Excel).",
            hint_ja="CSVファイルかExcelブック(.xlsx)を選んでください。",
            hint_en="Choose a CSV file or an Excel workbook (.xlsx).",
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise IntakeError(
            "encoding-error",
            f"「{name}」はUTF-16（Excelの「Unicode テキスト」）で保存されていて、読み込めません。",
            f"'{name}' is saved as UTF-16 (Excel's 'Unicode Text'), which is not supported.",
            hint_ja=_RESAVE_HINT_JA,
            hint_en=_RESAVE_HINT_EN,
        )
    nul_at = data.find(b"\x00")
    if nul_at >= 0:
        line = _line_at(data, nul_at)
        raise IntakeError(
            "binary-content",
            f"「{name}」の {line} 行目（先頭から {nul_at} バイトの位置）にNULバイトがあります。"
            "テキストの表ではないようです。",
            f"'{name}' contains a NUL byte at line {line} (byte offset {nul_at}); "
            "it does not look like a text table.",
            hint_ja="CSVファイルかExcelブック(.xlsx)を選んでください。" + _RESAVE_HINT_JA,
            hint_en="Choose a CSV file or an Excel workbook (.xlsx). " + _RESAVE_HINT_EN,
            line=line,
            byte_offset=nul_at,
        )


def _known_binary_kind(data: bytes) -> tuple[str, str] | None:
    for magic, kind_ja, kind_en in _NOT_A_TABLE:
        if data.startswith(magic):
            return kind_ja, kind_en
    if data.startswith((_ZIP_MAGIC, b"PK\x05\x06")):
        return "Excelブック以外のZIPファイル", "a ZIP archive that is not an Excel workbook"
    return None


def _line_at(data: bytes, offset: int) -> int:
    """1-based physical line of a byte offset; CR, LF and CRLF each end one line."""
    head = data[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


# ----------------------------------------------------------------------------------------------------
# encodings


def _looks_like_utf8(valid_prefix: bytes) -> bool:
    text = valid_prefix.decode("utf-8", errors="replace")
    return len(text) - len(text.encode("ascii", errors="ignore")) >= UTF8_EVIDENCE_CHARS


def _encoding_error(data: bytes, offset: int, encoding: str) -> IntakeError:
    line = _line_at(data, offset)
    shown = " ".join(f"0x{byte:02X}" for byte in data[offset : offset + 2])
    label = _ENCODING_LABEL[encoding]
    return IntakeError(
        "encoding-error",
        f"{line} 行目（先頭から {offset} バイトの位置）のバイト {shown} を文字として読めません"
        f"（{label}として読めたのはそこまでです）。文字コードが混在しているか、ファイルが壊れています。",
        f"The byte(s) {shown} at line {line} (byte offset {offset}) cannot be decoded "
        f"(read as {label} up to there). The file mixes encodings or is damaged.",
        hint_ja=_RESAVE_HINT_JA,
        hint_en=_RESAVE_HINT_EN,
        line=line,
        byte_offset=offset,
    )


_ENCODING_LABEL = {"utf-8-sig": "UTF-8 (BOM付き)", "utf-8": "UTF-8", "cp932": "Shift_JIS (CP932)"}


def _probe_encoding(data: bytes) -> str | None:
    """The encoding decode_text would choose, decided from a prefix when the prefix settles it; else None."""
    if data.startswith(_UTF8_BOM):
        return "utf-8-sig"
    cut = len(data)
    if len(data) > PROBE_BYTES:   # cut after a line break: never inside a UTF-8 or CP932 character
        cut = max(data.rfind(b"\n", 0, PROBE_BYTES), data.rfind(b"\r", 0, PROBE_BYTES)) + 1
    probe = data[:cut]
    try:
        probe.decode("utf-8")
    except UnicodeDecodeError as err:
        return None if _looks_like_utf8(probe[: err.start]) else "cp932"
    return "utf-8" if _looks_like_utf8(probe) else None


# ----------------------------------------------------------------------------------------------------
# records: cells plus the physical lines they came from


@dataclass
class _Record:
    cells: list[str]
    first_line: int        # 1-based physical line (or sheet row) where the record starts
    last_line: int
    raw: str               # the record as written, without its final line break

    @property
    def blank(self) -> bool:
        return all(not cell.strip(_BLANK_CHARS) for cell in self.cells)

    @property
    def comment(self) -> bool:
        """A '#…' preamble line; a bare '#' is a header cell ("number"), not a comment."""
        first = self.cells[0].strip(_HEADER_STRIP_CHARS) if self.cells else ""
        return first.startswith("#") and len(first) > 1

    @property
    def property_line(self) -> bool:
        """LinkData's '#property' line, which names the columns of the data below it."""
        return self.marker == "#property"

    @property
    def marker(self) -> str:
        """The first cell, stripped and lower-cased: '#property', '#label', '#object_type_xsd' …"""
        return self.cells[0].strip(_HEADER_STRIP_CHARS).lower() if self.cells else ""


class _LineFeeder:
    """Hands physical lines (ended by CR, LF or CRLF) to csv.reader and counts lines and characters."""

    def __init__(self, text: str, start: int, first_line: int) -> None:
        self._lines = io.StringIO(text, newline="")
        self._lines.seek(start)
        self.offset = start
        self.line_no = first_line - 1
        self.lines_in_record = 0
        self.ran_out_inside_record = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self._lines.readline()
        if not line:
            # csv.reader asks for more only when a quoted cell is still open
            self.ran_out_inside_record = self.lines_in_record > 0
            raise StopIteration
        self.offset += len(line)
        self.line_no += 1
        self.lines_in_record += 1
        return line


def _iter_records(text: str, start: int, first_line: int, delimiter: str) -> Iterator[_Record]:
    """Records of ``text`` from char offset ``start`` (which begins physical line ``first_line``)."""
    if csv.field_size_limit() < sys.maxsize // 2:
        csv.field_size_limit(sys.maxsize // 2)   # a long cell is data, not an attack: pyarrow has no limit
    feeder = _LineFeeder(text, start, first_line)
    reader = csv.reader(feeder, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    while True:
        record_start, record_line = feeder.offset, feeder.line_no + 1
        feeder.lines_in_record = 0
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise IntakeError(
                "parse-error",
                f"{record_line} 行目をCSVとして読めません（{err}）。",
                f"Line {record_line} cannot be parsed as CSV ({err}).",
                hint_ja=_RESAVE_HINT_JA,
                hint_en=_RESAVE_HINT_EN,
                line=record_line,
            ) from None
        if feeder.ran_out_inside_record:
            raise _unclosed_quote(record_line)
        raw = text[record_start : feeder.offset].rstrip("\r\n")
        yield _Record(cells, record_line, feeder.line_no, raw)


def _unclosed_quote(line: int) -> IntakeError:
    return IntakeError(
        "unclosed-quote",
        f"{line} 行目で始まる「\"」（ダブルクォート）が閉じられていないため、"
        "そこから最後までが一つのセルになってしまいます。",
        f'The double quote (") opened on line {line} is never closed, so the rest of the file would '
        "become one cell.",
        hint_ja="そのセルの「\"」を確認し、閉じる「\"」を補うか削除して保存し直してください。",
        hint_en='Check that cell: add the closing " or remove the stray one, then save again.',
        line=line,
    )


def _detect_delimiter(text_head: str, name: str) -> str:
    """Tab when the first line with separators has tabs and no commas (or a .tsv/.txt name); else comma."""
    tab_by_name = name.lower().endswith((".tsv", ".txt"))
    for line in re.split(r"\r\n|\r|\n", text_head, maxsplit=200)[:200]:
        if _is_comment_line(line) or not ("\t" in line or "," in line):
            continue   # preamble, blank or title lines say nothing about the separator
        return "\t" if "\t" in line and (tab_by_name or "," not in line) else ","
    return ","


def _is_comment_line(line: str) -> bool:
    first = re.split(r"[,\t]", line, maxsplit=1)[0].strip(_HEADER_STRIP_CHARS)
    return first.startswith("#") and len(first) > 1


# ----------------------------------------------------------------------------------------------------
# choosing the header


@dataclass
class _HeaderChoice:
    header: _Record
    data_index: int               # index (into the head records) of the first record below the header
    preamble: list[_Record]
    chosen_by: str                # "first-line", "linkdata", "scorer"
    score: float | None = None
    sub_rows: list[_Record] = field(default_factory=list)   # header rows below the header (病床数 → 一般/療養/計)
    merges: tuple[Merge, ...] = ()                           # xlsx merged ranges of the header rows
    properties: list[str] = field(default_factory=list)      # LinkData: the '#property' names, per column
    property_types: list[str] = field(default_factory=list)  # LinkData: the '#object_type_xsd' types

    @property
    def width(self) -> int:
        """Cells across the header rows (the widest of them)."""
        return max(len(self.properties), *(len(rec.cells) for rec in [self.header, *self.sub_rows]))


def _choose_header(records: Sequence[_Record], scorer: HeaderScorer | None) -> _HeaderChoice | None:
    """Pick the header among the head records; None when no record could be one."""
    default_index = next((i for i, rec in enumerate(records) if not rec.blank and not rec.comment), None)
    property_index = next(
        (i for i, rec in enumerate(records[: default_index if default_index is not None else len(records)])
         if rec.property_line),
        None,
    )
    if property_index is not None:   # LinkData: '#property' names the columns, whatever a scorer thinks
        score = scorer(_header_cells(records[property_index])) if scorer is not None else None
        return _header_choice(records, property_index, property_index, "linkdata", score)
    candidates: list[int] = []
    candidates += [
        i for i, rec in enumerate(records)
        if not rec.blank and not rec.comment and (rec.first_line <= HEADER_SEARCH_LINES or i == default_index)
    ]
    if not candidates:
        return None
    chosen, chosen_by, score = candidates[0], "first-line", None
    if scorer is not None:
        first = scorer(_header_cells(records[candidates[0]]))
        if first >= CLEAR_HEADER_SCORE:   # the usual case: no need to score every head line
            return _header_choice(records, candidates[0], property_index, "first-line", first)
        scores = [first, *(scorer(_header_cells(records[i])) for i in candidates[1:])]
        best = max(range(len(candidates)), key=lambda k: (scores[k], -k))
        chosen, score = candidates[best], scores[best]
        chosen_by = "scorer" if chosen != candidates[0] else chosen_by
    return _header_choice(records, chosen, property_index, chosen_by, score)


def _header_choice(records: Sequence[_Record], chosen: int, property_index: int | None, chosen_by: str,
                   score: float | None) -> _HeaderChoice:
    if chosen == property_index:
        chosen_by = "linkdata"
    data_index = chosen + 1
    if chosen == property_index:   # LinkData keeps more '#…' metadata lines under '#property'
        while data_index < len(records) and records[data_index].comment:
            data_index += 1
    preamble = [
        rec for i, rec in enumerate(records[:data_index])
        if not rec.blank and (i != chosen or chosen == property_index)
    ]
    choice = _HeaderChoice(records[chosen], data_index, preamble, chosen_by, score)
    return _linkdata_labels(records, choice) if chosen == property_index else choice


# LinkData lines that give each column a label in the file's language, beside the '#property' names.
_LABEL_MARKERS = ("#label", "#property_label")


def _linkdata_labels(records: Sequence[_Record], choice: _HeaderChoice) -> _HeaderChoice:
    """A LinkData file read with its Japanese labels as the header when it has them, its '#property' names
    (English, e.g. name, address, startDate) kept beside them for mapping onto a dataset.

    The labels are a '#label…' metadata line, or else a plain row right under the metadata whose cells are
    all labels (no number, date, phone …) where the row below it holds a value: that row is the header,
    not data."""
    metadata = [rec for rec in records[: choice.data_index] if rec.comment]
    properties = _header_cells(choice.header, keep_trailing=True)
    types = next((_header_cells(rec, keep_trailing=True) for rec in metadata
                  if rec.marker.startswith("#object_type")), [])
    linked = replace(choice, properties=properties, property_types=types)
    label_line = next((rec for rec in metadata if rec.marker.startswith(_LABEL_MARKERS)), None)
    if label_line is not None:
        return replace(linked, header=label_line, chosen_by="linkdata-label")
    rows = [rec for rec in records[choice.data_index : choice.data_index + 2] if not rec.blank]
    if len(rows) == 2 and rows[0].first_line == records[choice.data_index].first_line \
            and _is_label_row(rows[0].cells, rows[1].cells):
        return replace(linked, header=rows[0], data_index=choice.data_index + 1, chosen_by="linkdata-label")
    return linked


def _is_label_row(cells: list[str], next_row: list[str]) -> bool:
    """Labels in Japanese (every filled cell a label, at least two, no repeats) over a row with a value."""
    labels = [(i, cell.strip(_HEADER_STRIP_CHARS)) for i, cell in enumerate(cells)
              if cell.strip(_HEADER_STRIP_CHARS)]
    texts = [text for _, text in labels]
    if len(texts) < 2 or len(set(texts)) != len(texts) or not all(is_label(text) for text in texts):
        return False
    if all(text.isascii() for text in texts):
        return False
    return any(i < len(next_row) and not is_label(next_row[i].strip(_HEADER_STRIP_CHARS))
               and next_row[i].strip(_HEADER_STRIP_CHARS) for i, _ in labels)


def _header_cells(record: _Record, keep_trailing: bool = False) -> list[str]:
    """Header cells as written, stripped; a '#property' or '#label' marker names no column: it becomes blank."""
    cells = [cell.strip(_HEADER_STRIP_CHARS) for cell in record.cells]
    if record.comment:
        cells[0] = ""
    while cells and not cells[-1] and not keep_trailing:
        cells.pop()
    return cells


def _with_header_rows(records: Sequence[_Record], choice: _HeaderChoice,
                      merges: Sequence[Merge] = ()) -> _HeaderChoice:
    """The header continued on the rows right below it: a group label row over sub-columns (病床数 over
    一般/療養/計) makes a two- or three-row header; the data starts below the last of them."""
    if choice.chosen_by.startswith("linkdata"):
        return choice
    below: list[_Record] = []
    for rec in records[choice.data_index : choice.data_index + MAX_HEADER_ROWS]:
        if rec.blank or rec.comment:
            break
        below.append(rec)
    if not below:
        return choice
    count = count_header_rows([choice.header.cells, *(rec.cells for rec in below)], merges)
    if count == 1:
        return choice
    return replace(choice, sub_rows=below[: count - 1], data_index=choice.data_index + count - 1,
                   merges=tuple(merges))


def _choice_header_cells(choice: _HeaderChoice) -> list[str]:
    """One header cell per column; the labels of a multi-row header joined (病床数_一般)."""
    cells = _header_cells(choice.header, keep_trailing=True)
    cells += [""] * (choice.width - len(cells))   # a LinkData label line may stop before its last columns
    if not choice.sub_rows:
        return cells
    rows = [cells, *(_header_cells(rec, keep_trailing=True) for rec in choice.sub_rows)]
    return join_header_rows(rows, choice.merges)


# ----------------------------------------------------------------------------------------------------
# the body below the header, parsed fast (pyarrow) or slowly (csv), described the same way


class _LineBreaks(NamedTuple):
    crlf: int
    lf: int     # LF not after CR
    cr: int     # CR not before LF

    @property
    def total(self) -> int:
        return self.crlf + self.lf + self.cr


@dataclass
class _Body:
    table: pa.Table                        # one nullable string column per header cell, generic names
    source_lines: np.ndarray               # int64, where each record starts
    blank: np.ndarray                      # bool, decided on the whole record (extra cells included)
    last_line: int                         # physical line where the last record ends
    line_breaks: _LineBreaks | None = None  # the whole file's CRLF / LF / CR, when the parse counted them
    row_lengths: np.ndarray | None = None  # cells per record; None when every record has them all
    extra_with_content: list[tuple[int, list[str]]] = field(default_factory=list)  # (line, extra cells)
    extra_with_content_count: int = 0
    extra_empty_lines: list[int] = field(default_factory=list)   # rows whose extra cells are all empty
    extra_empty_count: int = 0


def _parse_body_fast(
    data: bytes,
    offset: int,
    first_line: int,
    widths: tuple[int, int],
    encoding: str,
    delimiter: str,
    *,
    tolerant: bool = False,
) -> _Body:
    """Parse data[offset:] with pyarrow; raises pyarrow/Unicode errors when it cannot.

    ``widths`` is (cells in the header, cells pyarrow expects per row). Strict mode (multi-threaded)
    raises at the first row with another cell count; tolerant mode (single-threaded, so pyarrow can
    number the rows) sets such rows aside, reads them with the csv module and puts them back in place.
    """
    header_width, width = widths
    names = [f"c{i}" for i in range(width)]
    if offset >= len(data):
        table = pa.table({name: pa.array([], pa.string()) for name in names[:header_width]})
        return _Body(table, np.zeros(0, np.int64), np.zeros(0, bool), first_line - 1)
    set_aside: list[tuple[int, str]] = []

    def set_row_aside(row: pa_csv.InvalidRow) -> str:
        set_aside.append((row.number, row.text))
        return "skip"

    table = pa_csv.read_csv(
        pa.py_buffer(memoryview(data)[offset:]),
        read_options=pa_csv.ReadOptions(
            column_names=names,
            encoding="cp932" if encoding == "cp932" else "utf8",
            block_size=ARROW_BLOCK_BYTES,
            use_threads=not tolerant,
        ),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter, quote_char='"', double_quote=True, escape_char=False,
            newlines_in_values=True, ignore_empty_lines=False,
            invalid_row_handler=set_row_aside if tolerant else None,
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), null_values=[],
            strings_can_be_null=False, quoted_strings_can_be_null=False,
            check_utf8=encoding != "cp932",   # transcoded CP932 is valid UTF-8 by construction
        ),
    )
    return _arrow_body(table, [_aside_row(number, text, delimiter) for number, text in set_aside],
                       data, offset, first_line, header_width)


@dataclass
class _AsideRow:
    """A row pyarrow set aside (another cell count than expected), read with the csv module."""

    index: int           # 0-based record index below the header
    cells: list[str]
    breaks: int          # line breaks inside the record
    blank: bool


def _aside_row(number: int, text: str, delimiter: str) -> _AsideRow:
    try:
        records = list(_iter_records(text, 0, 1, delimiter))
    except IntakeError:   # e.g. an unclosed quote: the slow path reports it with its line
        raise pa.ArrowInvalid("set-aside row needs the csv module") from None
    if len(records) > 1 or number < 1:
        raise pa.ArrowInvalid("pyarrow and the csv module split rows differently")
    cells = records[0].cells if records else []
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    return _AsideRow(number - 1, cells, breaks, all(not cell.strip(_BLANK_CHARS) for cell in cells))


def _arrow_body(
    table: pa.Table, aside: list[_AsideRow], data: bytes, offset: int, first_line: int, header_width: int
) -> _Body:
    """Rows in file order (pyarrow's and the set-aside ones), with start lines, blank rows and extra cells."""
    n_rows = table.num_rows + len(aside)
    aside_index = np.array([row.index for row in aside], dtype=np.int64)
    is_aside = np.zeros(n_rows, dtype=bool)
    if len(aside_index) and (aside_index.max() >= n_rows or len(set(aside_index.tolist())) != len(aside)):
        raise pa.ArrowInvalid("set-aside rows out of place")
    is_aside[aside_index] = True
    arrow_rows = np.flatnonzero(~is_aside)

    if aside:
        breaks = np.zeros(n_rows, dtype=np.int64)
        breaks[arrow_rows] = _breaks_in_cells(table, has_cr=b"\r" in data)
        breaks[aside_index] = [row.breaks for row in aside]
        line_breaks = _count_line_breaks(data)
    else:
        line_breaks, breaks = _line_breaks_fast(data, offset, first_line, table)
    source_lines = np.arange(first_line, first_line + n_rows, dtype=np.int64)
    if breaks.any():
        source_lines[1:] += np.cumsum(breaks)[:-1]
    last_line = int(source_lines[-1] + breaks[-1]) if n_rows else first_line - 1
    if line_breaks.total != _total_breaks(data, last_line):
        raise pa.ArrowInvalid("line breaks do not add up; using the csv module")

    blank = np.zeros(n_rows, dtype=bool)
    blank[arrow_rows] = _blank_mask(table)
    blank[aside_index] = [row.blank for row in aside]
    body = _Body(_cells_in_file_order(table, aside, arrow_rows, header_width), source_lines, blank,
                 last_line, line_breaks)
    if aside:
        lengths = np.full(n_rows, header_width, dtype=np.int64)
        lengths[aside_index] = [min(len(row.cells), header_width) for row in aside]
        body.row_lengths = lengths if (lengths != header_width).any() else None
    _note_extras(body, table, aside, arrow_rows, header_width)
    return body


def _cells_in_file_order(
    table: pa.Table, aside: list[_AsideRow], arrow_rows: np.ndarray, header_width: int
) -> pa.Table:
    cells = table.select(list(range(header_width)))
    if not aside:
        return cells
    padded = [row.cells[:header_width] + [None] * (header_width - len(row.cells)) for row in aside]
    combined = pa.concat_tables([cells, _rows_to_table(padded, header_width)])
    order = np.empty(len(arrow_rows) + len(aside), dtype=np.int64)
    order[arrow_rows] = np.arange(len(arrow_rows))
    order[[row.index for row in aside]] = np.arange(len(arrow_rows), len(arrow_rows) + len(aside))
    return combined.take(pa.array(order))


def _note_extras(
    body: _Body, table: pa.Table, aside: list[_AsideRow], arrow_rows: np.ndarray, header_width: int
) -> None:
    """Rows with more cells than the header: which have content there, which only empty cells."""
    kind = np.zeros(len(body.blank), dtype=np.int8)   # 0 none, 1 only empty extra cells, 2 content
    extra = table.select(list(range(header_width, table.num_columns)))
    if extra.num_columns:
        kind[arrow_rows] = np.where(_blank_mask_strict(extra), 1, 2)
    for row in aside:
        if len(row.cells) > header_width:
            kind[row.index] = 2 if any(row.cells[header_width:]) else 1
    kind[body.blank] = 0
    content_rows, empty_rows = np.flatnonzero(kind == 2), np.flatnonzero(kind == 1)
    arrow_position = np.full(len(kind), -1, dtype=np.int64)
    arrow_position[arrow_rows] = np.arange(len(arrow_rows))
    aside_cells = {row.index: row.cells[header_width:] for row in aside}
    for row_index in content_rows[:NOTICE_LINE_LIMIT]:
        cells = aside_cells.get(int(row_index))
        if cells is None:
            cells = list(extra.slice(int(arrow_position[row_index]), 1).to_pylist()[0].values())
        body.extra_with_content.append((int(body.source_lines[row_index]), cells))
    body.extra_with_content_count = len(content_rows)
    body.extra_empty_lines = [int(body.source_lines[row]) for row in empty_rows[:NOTICE_LINE_LIMIT]]
    body.extra_empty_count = len(empty_rows)


def _count_line_breaks(data: bytes, total: int | None = None) -> _LineBreaks:
    """CRLF / LF / CR counts; a total already known from the parse saves the slowest scan (CRLF)."""
    lf = data.count(b"\n")
    cr = data.count(b"\r") if b"\r" in data else 0
    crlf = 0
    if cr and lf:
        crlf = data.count(b"\r\n") if total is None else cr + lf - total
    return _LineBreaks(crlf, lf - crlf, cr - crlf)


def _total_breaks(data: bytes, last_line: int) -> int:
    return last_line - 1 + (1 if data.endswith((b"\n", b"\r")) else 0)


def _line_breaks_fast(
    data: bytes, offset: int, first_line: int, table: pa.Table
) -> tuple[_LineBreaks, np.ndarray]:
    """The file's line breaks, and the breaks inside each row's cells (scanned only when there are some)."""
    no_breaks_in_cells = np.zeros(table.num_rows, dtype=np.int64)
    one_line_per_record = _total_breaks(data, first_line - 1 + table.num_rows)
    if data.find(b'"', offset) < 0:   # without a quote no cell can hold a line break
        return _count_line_breaks(data, one_line_per_record), no_breaks_in_cells
    line_breaks = _count_line_breaks(data)
    if line_breaks.total == one_line_per_record:
        return line_breaks, no_breaks_in_cells
    return line_breaks, _breaks_in_cells(table, has_cr=bool(line_breaks.crlf or line_breaks.cr))


def _breaks_in_cells(table: pa.Table, has_cr: bool) -> np.ndarray:
    """Line breaks (CRLF, CR or LF, each one break) inside the cells of each row."""
    breaks = np.zeros(table.num_rows, dtype=np.int64)
    for column in table.columns:
        breaks += _occurrences(column, "\n")
        if has_cr:
            cr = _occurrences(column, "\r")
            if cr.any():
                breaks += cr - _occurrences(column, "\r\n")
    return breaks


def _occurrences(column: pa.ChunkedArray, needle: str) -> np.ndarray:
    counts = pc.count_substring(column, needle)
    return counts.to_numpy().astype(np.int64) if pc.max(counts).as_py() else np.zeros(len(column), np.int64)


def _blank_mask(table: pa.Table) -> np.ndarray:
    """True for rows whose every cell is empty or whitespace; stops at the first column that rules all out."""
    mask = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        trimmed = pc.utf8_trim(column, characters=_BLANK_CHARS)
        is_blank = pc.fill_null(pc.equal(trimmed, ""), True)
        mask &= is_blank.to_numpy(zero_copy_only=False)
        if not mask.any():
            break
    return mask


def _blank_mask_strict(table: pa.Table) -> np.ndarray:
    """True for rows whose every cell is exactly empty (or missing)."""
    mask = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        mask &= pc.fill_null(pc.equal(column, ""), True).to_numpy(zero_copy_only=False)
    return mask


def _parse_body_slow(text: str, start: int, first_line: int, header_width: int, delimiter: str) -> _Body:
    """Parse with Python's csv module; handles ragged rows. Same result as the fast path where both work.

    Rows go to Arrow in chunks, so a million-row file does not sit in memory as Python strings.
    """
    body = _Body(pa.table({}), np.zeros(0, np.int64), np.zeros(0, bool), first_line - 1)
    chunks: list[pa.Table] = []
    rows: list[list[str | None]] = []
    lines: list[int] = []
    lengths: list[int] = []
    blank: list[bool] = []
    for record in _iter_records(text, start, first_line, delimiter):
        cells: list[str | None] = list(record.cells[:header_width])
        is_blank = record.blank
        if len(record.cells) > header_width and not is_blank:
            _note_extra_cells(body, record.first_line, record.cells[header_width:])
        lengths.append(len(cells))
        cells += [None] * (header_width - len(cells))
        rows.append(cells)
        lines.append(record.first_line)
        blank.append(is_blank)
        body.last_line = record.last_line
        if len(rows) == SLOW_PATH_CHUNK_ROWS:
            chunks.append(_rows_to_table(rows, header_width))
            rows = []
    chunks.append(_rows_to_table(rows, header_width))
    body.table = pa.concat_tables(chunks)
    body.source_lines = np.array(lines, dtype=np.int64)
    body.blank = np.array(blank, dtype=bool)
    row_lengths = np.array(lengths, dtype=np.int64)
    body.row_lengths = None if (row_lengths == header_width).all() else row_lengths
    return body


def _rows_to_table(rows: list[list[str | None]], width: int) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
    return pa.table({f"c{i}": pa.array(column, pa.string()) for i, column in enumerate(columns)})


def _note_extra_cells(body: _Body, line: int, extra: list[str]) -> None:
    if any(extra):
        body.extra_with_content_count += 1
        if len(body.extra_with_content) < NOTICE_LINE_LIMIT:
            body.extra_with_content.append((line, extra))
    else:
        body.extra_empty_count += 1
        if len(body.extra_empty_lines) < NOTICE_LINE_LIMIT:
            body.extra_empty_lines.append(line)


# ----------------------------------------------------------------------------------------------------
# text files


def _read_text(data: bytes, name: str, scorer: HeaderScorer | None) -> RawTable:
    encoding = _probe_encoding(data)
    full_text: str | None = None
    if encoding is None:   # the prefix did not settle it: decode everything (raises on a bad byte)
        full_text, encoding = decode_text(data)
    size = PROBE_BYTES
    while True:
        head_text, complete = _head_text(data, encoding, full_text, size)
        delimiter = _detect_delimiter(head_text, name)
        records = _head_records(head_text, delimiter)
        choice = _choose_header(records, scorer)
        if choice is not None:
            choice = _with_header_rows(records, choice)
        # the last record of a cut prefix may be cut too: trust only records before it
        if complete or (choice is not None and choice.data_index + 1 < len(records)):
            break
        size *= 4
    if choice is None:
        raise IntakeError(
            "empty-file",
            f"「{name}」には見出し行もデータもありません（空行か「#」で始まる行だけです）。",
            f"'{name}' holds no header and no data (only blank lines or lines starting with '#').",
            hint_ja="データが入ったファイルを選び直してください。",
            hint_en="Choose the file that holds the data.",
        )
    first_line = records[choice.data_index - 1].last_line + 1
    body = _parse_text_body(data, full_text, encoding, delimiter, first_line, records, choice)
    fmt = "tsv" if delimiter == "\t" else "csv"
    line_breaks = body.line_breaks or _count_line_breaks(data, _total_breaks(data, body.last_line))
    notices = [_encoding_notice(encoding), *_line_ending_notices(line_breaks)]
    notices += _header_notices(choice, scorer is not None)
    notices += _extension_notices(name, fmt)
    header_cells = _choice_header_cells(choice)
    notices += _header_rows_notices(choice, header_cells)
    return _assemble(header_cells, body, choice, notices, encoding, fmt, None)


def _head_text(data: bytes, encoding: str, full_text: str | None, size: int) -> tuple[str, bool]:
    """About ``size`` bytes (or characters) from the start, cut after a line break; and whether it is all."""
    if full_text is not None:
        if len(full_text) <= size:
            return full_text, True
        cut = max(full_text.rfind("\n", 0, size), full_text.rfind("\r", 0, size)) + 1
        return (full_text[:cut], False) if cut > 0 else (full_text, True)
    cut = max(data.rfind(b"\n", 0, size), data.rfind(b"\r", 0, size)) + 1 if len(data) > size else 0
    complete = cut <= 0
    try:
        return (data if complete else data[:cut]).decode(encoding), complete
    except UnicodeDecodeError:
        decode_text(data)   # raises the error a clerk can act on (line, byte offset, fix)
        raise


def _head_records(text: str, delimiter: str) -> list[_Record]:
    """Records from the top of the file, up to a little past the first possible header line."""
    records: list[_Record] = []
    default_index: int | None = None
    for record in _iter_records(text, 0, 1, delimiter):
        records.append(record)
        if default_index is None and not record.blank and not record.comment:
            default_index = len(records) - 1
        # stop a few records past both the default header and the scorer's search window
        if (default_index is not None and len(records) - default_index > MAX_HEADER_ROWS + 1
                and records[-2].first_line > HEADER_SEARCH_LINES + MAX_HEADER_ROWS):
            break
    return records


def _parse_text_body(
    data: bytes,
    full_text: str | None,
    encoding: str,
    delimiter: str,
    first_line: int,
    records: list[_Record],
    choice: _HeaderChoice,
) -> _Body:
    """Fast path first; the csv module when pyarrow rejects the file (ragged rows and the like)."""
    header_width = choice.width
    # rows that all end with extra delimiters (more cells than the header) stay on the fast path
    first_row = next((rec for rec in records[choice.data_index :] if not rec.blank), None)
    width = max(header_width, len(first_row.cells) if first_row else 0)
    byte_offset = _byte_offset_of_line(data, first_line)
    # one column hides an unclosed quote from pyarrow (no cell count goes wrong): the csv module judges
    if width > 1 or data.count(b'"', byte_offset) % 2 == 0:
        body = _try_pyarrow(data, byte_offset, first_line, (header_width, width), encoding, delimiter)
        if body is not None:
            return body
    text, used_encoding = decode_text(data) if full_text is None else (full_text, encoding)
    if used_encoding != encoding:   # cannot happen: _probe_encoding mirrors decode_text
        raise RuntimeError(f"encoding changed from {encoding} to {used_encoding}")
    start = _char_offset_of_line(text, first_line)
    return _parse_body_slow(text, start, first_line, header_width, delimiter)


def _try_pyarrow(
    data: bytes, offset: int, first_line: int, widths: tuple[int, int], encoding: str, delimiter: str
) -> _Body | None:
    """Strict pyarrow, then tolerant pyarrow for ragged rows; None when the csv module must decide."""
    for tolerant in (False, True):
        try:
            return _parse_body_fast(data, offset, first_line, widths, encoding, delimiter, tolerant=tolerant)
        except UnicodeDecodeError:
            return None   # a damaged byte: decode_text reports it
        except pa.ArrowInvalid as err:
            if "UTF8" in str(err):
                return None
    return None


def _byte_offset_of_line(data: bytes, line: int) -> int:
    """Byte offset where physical ``line`` starts (CR and LF never occur inside CP932/UTF-8 characters)."""
    if line <= 1:
        return 0
    for count, match in enumerate(_LINE_BREAK.finditer(data), start=2):
        if count == line:
            return match.end()
    return len(data)


def _char_offset_of_line(text: str, line: int) -> int:
    if line <= 1:
        return 0
    for count, match in enumerate(re.finditer(r"\r\n|\r|\n", text), start=2):
        if count == line:
            return match.end()
    return len(text)


# ----------------------------------------------------------------------------------------------------
# xlsx


def _check_zip_size(data: bytes, name: str, limit: int) -> None:
    """Refuse zip bombs before any decompression: too large in total, or compressed absurdly well."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    total = sum(info.file_size for info in infos)
    ratios = [info.file_size / max(info.compress_size, 1) for info in infos]
    worst = max(
        (ratio for ratio, info in zip(ratios, infos, strict=True) if info.file_size > ZIP_RATIO_FLOOR_BYTES),
        default=0.0,
    )
    if total > limit or worst > MAX_ZIP_RATIO:
        raise IntakeError(
            "file-too-large",
            f"「{name}」は展開すると {total / 1e6:,.0f} MB（圧縮率 {worst:,.0f} 倍）になり、"
            "大きすぎるため読み込みません。",
            f"'{name}' would expand to {total / 1e6:,.0f} MB (compression ratio {worst:,.0f}x); "
            "it is too large to read.",
            hint_ja="不要なシートや書式を削除するか、CSVで保存して分割してください。",
            hint_en="Remove unneeded sheets or formatting, or save as CSV and split it.",
        )


@dataclass
class _Sheet:
    name: str
    grid: pa.Table                        # from sheet row 1, one text column per sheet column
    errors: list[tuple[int, int, str]]    # (row index, column index, Excel's error text)
    visible: bool


def _read_xlsx(data: bytes, name: str, scorer: HeaderScorer | None, limit: int) -> RawTable:
    _check_zip_size(data, name, limit)
    try:
        workbook = fastexcel.read_excel(data)
        picked = _pick_sheet(workbook, scorer)
        if picked is not None and picked[0].grid.num_rows == XLSX_HEAD_ROWS:
            picked = (_load_sheet(workbook, picked[0].name, None), *picked[1:])
    except fastexcel.FastExcelError as err:
        raise _corrupt_workbook(name, err) from None
    if picked is None:
        raise IntakeError(
            "empty-file",
            f"「{name}」のどのシートにもデータがありません。",
            f"No sheet of '{name}' holds any data.",
            hint_ja="データが入ったファイルを選び直してください。",
            hint_en="Choose the file that holds the data.",
        )
    sheet, choice, others = picked
    head = _grid_records(sheet.grid.slice(0, choice.data_index + MAX_HEADER_ROWS))
    choice = _with_header_rows(head, choice, _header_merges(data, sheet.name, head, choice))
    body_table = sheet.grid.slice(choice.data_index)   # record index == sheet row index
    body = _Body(
        table=body_table,
        source_lines=np.arange(choice.data_index + 1, sheet.grid.num_rows + 1, dtype=np.int64),
        blank=_blank_mask(body_table),
        last_line=sheet.grid.num_rows,
    )
    notices = [_encoding_notice("xlsx"), *_sheet_notices(sheet.name, others)]
    notices += _cell_error_notices(sheet.errors)
    notices += _header_notices(choice, scorer is not None)
    notices += _extension_notices(name, "xlsx")
    header_cells = _choice_header_cells(choice)
    notices += _header_rows_notices(choice, header_cells)
    return _assemble(header_cells, body, choice, notices, "xlsx", "xlsx", sheet.name)


_MERGE_REF = re.compile(rb'<(?:\w+:)?mergeCell\b[^>]*?\bref="([A-Za-z]{1,3}[0-9]+(?::[A-Za-z]{1,3}[0-9]+)?)"')
_MERGE_SCAN_OVERLAP = 256   # bytes kept between chunks: longer than one <mergeCell …/> element


def _header_merges(data: bytes, sheet_name: str, head: list[_Record], choice: _HeaderChoice) -> list[Merge]:
    """The sheet's merged ranges that start in the header row or the rows below it, in grid coordinates
    (row 0 = the header row). Empty when the sheet has none or they cannot be read (the CSV rules decide)."""
    if choice.chosen_by.startswith("linkdata"):
        return []
    first_row = choice.header.first_line   # 1-based sheet row of the header (grid rows start at sheet row 1)
    labels = [bool(cell.strip(_HEADER_STRIP_CHARS)) for cell in choice.header.cells]
    if False not in labels[labels.index(True) if True in labels else 0:]:
        return []   # no blank header cell: nothing merged across, so no group row (and no scan of the sheet)
    try:
        from openpyxl.utils.cell import range_boundaries  # xlsx only: not imported for a CSV (0.15 s)

        ranges = [range_boundaries(ref) for ref in _merged_refs(data, sheet_name)]
        ranges = [(c1, r1, c2, r2) for c1, r1, c2, r2 in ranges
                  if r1 is not None and first_row <= r1 < first_row + MAX_HEADER_ROWS]
        if not ranges:
            return []
        offset = _first_column_offset(data, sheet_name, first_row, head[first_row - 1].cells)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    if offset is None:
        return []
    return [Merge(r1 - first_row, c1 - 1 - offset, r2 - first_row, c2 - 1 - offset)
            for c1, r1, c2, r2 in ranges if c1 - 1 - offset >= 0]


def _merged_refs(data: bytes, sheet_name: str) -> list[str]:
    """``ref`` of every <mergeCell> of the sheet, streamed from its XML (a large sheet is never held whole)."""
    from openpyxl.reader.excel import ExcelReader  # xlsx only

    reader = ExcelReader(io.BytesIO(data), read_only=True, keep_vba=False, keep_links=False)
    reader.read_manifest()
    reader.read_workbook()
    path = next((rel.target for sheet, rel in reader.parser.find_sheets() if sheet.name == sheet_name), None)
    if path is None:
        return []
    refs: list[str] = []
    tail = b""
    with reader.archive.open(path) as member:
        while True:
            chunk = member.read(1 << 20)
            buffer = tail + chunk
            safe_end = len(buffer) if not chunk else len(buffer) - _MERGE_SCAN_OVERLAP
            last = 0
            if b"mergeCell" in buffer:   # a plain search first: the regex is slow over a whole sheetData
                for match in _MERGE_REF.finditer(buffer):
                    if match.end() > safe_end:
                        break
                    refs.append(match.group(1).decode("ascii"))
                    last = match.end()
            if not chunk:
                return refs
            tail = buffer[max(last, safe_end):]


def _first_column_offset(data: bytes, sheet_name: str, sheet_row: int, grid_cells: list[str]) -> int | None:
    """Sheet columns left of the grid's first column: calamine starts the grid at the first used column."""
    grid_first = next((i for i, cell in enumerate(grid_cells) if cell), None)
    from openpyxl import load_workbook  # xlsx only

    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    try:
        row = next(workbook[sheet_name].iter_rows(min_row=sheet_row, max_row=sheet_row, values_only=True), ())
    finally:
        workbook.close()
    sheet_first = next((i for i, value in enumerate(row) if value not in (None, "")), None)
    if grid_first is None or sheet_first is None or sheet_first < grid_first:
        return None
    return sheet_first - grid_first


def _corrupt_workbook(name: str, err: Exception) -> IntakeError:
    return IntakeError(
        "corrupt-file",
        f"「{name}」はExcelブックとして読めません（壊れている可能性があります）: {err}",
        f"'{name}' cannot be read as an Excel workbook (it may be damaged): {err}",
        hint_ja="Excelで開けるか確認し、「Excelブック(.xlsx)」として保存し直してください。",
        hint_en="Check that it opens in Excel and save it again as 'Excel Workbook (.xlsx)'.",
    )


def _pick_sheet(
    workbook: fastexcel.ExcelReader, scorer: HeaderScorer | None
) -> tuple[_Sheet, _HeaderChoice, list[str]] | None:
    """First non-empty visible sheet, or the one whose header scores best when a scorer is given.

    Only the first rows of each sheet are loaded; the returned sheet may need loading in full.
    """
    names = list(workbook.sheet_names)
    found: list[tuple[_Sheet, _HeaderChoice]] = []
    for sheet_name in names:
        try:
            sheet = _load_sheet(workbook, sheet_name, XLSX_HEAD_ROWS)
        except fastexcel.FastExcelError:
            continue   # a chart sheet or an unreadable one holds no table; another sheet may
        choice = _choose_header(_grid_records(sheet.grid), scorer)
        if choice is None and sheet.grid.num_rows == XLSX_HEAD_ROWS:   # header further down
            sheet = _load_sheet(workbook, sheet_name, None)
            choice = _choose_header(_grid_records(sheet.grid), scorer)
        if choice is None:
            continue
        if scorer is None and sheet.visible:
            return sheet, choice, [other for other in names if other != sheet_name]
        found.append((sheet, choice))
    if not found:
        return None
    # visible sheets first, then the best score; the earliest sheet wins a tie
    ranked = sorted(
        enumerate(found),
        key=lambda item: (not item[1][0].visible, -(item[1][1].score or 0.0), item[0]),
    )
    sheet, choice = ranked[0][1]
    return sheet, choice, [other for other in names if other != sheet.name]


def _load_sheet(workbook: fastexcel.ExcelReader, sheet_name: str, n_rows: int | None) -> _Sheet:
    """The sheet from row 1 as text columns ("" for empty cells), with its error cells."""
    sheet = workbook.load_sheet(sheet_name, header_row=None, skip_rows=0, n_rows=n_rows, dtypes="string")
    batch, cell_errors = sheet.to_arrow_with_errors()
    table = pa.Table.from_batches([batch])
    errors = []
    for error in cell_errors.errors if cell_errors is not None else []:
        row, col = error.offset_position
        kind = re.search(r"Error\((\w+)\)", error.detail)
        errors.append((row, col, _EXCEL_ERROR_TEXT.get(kind.group(1), "#ERROR") if kind else "#ERROR"))
    columns = [
        _xlsx_text(table.column(i), [(row, text) for row, col, text in errors if col == i])
        for i in range(table.num_columns)
    ]
    grid = pa.table({f"c{i}": column for i, column in enumerate(columns)})
    return _Sheet(sheet_name, grid, errors, sheet.visible == "visible")


def _xlsx_text(column: pa.ChunkedArray, errors: list[tuple[int, str]]) -> pa.Array:
    """Empty cells become "", real date cells lose calamine's " 00:00:00", error cells show Excel's text."""
    values = column.combine_chunks()
    values = pc.replace_substring_regex(values, r"^(\d{4}-\d{2}-\d{2}) 00:00:00$", r"\1")
    values = pc.replace_substring_regex(values, r"^1899-12-31 (\d{2}:\d{2}:\d{2})$", r"\1")   # time only
    if errors:
        as_list = values.to_pylist()
        for row, text in errors:
            as_list[row] = text
        values = pa.array(as_list, pa.string())
    return pc.fill_null(values, "")


def _grid_records(grid: pa.Table) -> list[_Record]:
    records = []
    for index, row in enumerate(grid.to_pylist()):
        cells = [value or "" for value in row.values()]
        written = list(cells)
        while written and not written[-1]:
            written.pop()
        records.append(_Record(cells, index + 1, index + 1, ",".join(written)))
    return records


# ----------------------------------------------------------------------------------------------------
# from body to RawTable


def _assemble(
    header_cells: list[str],
    body: _Body,
    choice: _HeaderChoice,
    notices: list[Notice],
    encoding: str,
    fmt: str,
    sheet: str | None,
) -> RawTable:
    keep = ~body.blank
    blank_lines = body.source_lines[body.blank]
    notices += _blank_row_notices(blank_lines)
    table = body.table.filter(pa.array(keep)) if body.blank.any() else body.table
    lines = body.source_lines[keep]
    lengths = body.row_lengths[keep] if body.row_lengths is not None else None
    notes = _trailing_notes(table)
    if notes:   # ※… lines under the table explain it; they are not rows
        notices.append(_note_rows_notice(table.slice(table.num_rows - notes), lines[-notes:]))
        table, lines = table.slice(0, table.num_rows - notes), lines[:-notes]
        lengths = lengths[:-notes] if lengths is not None else None

    kept, dropped_trailing, dropped_inner, named = _keep_columns(header_cells, table)
    notices += _dropped_column_notices(dropped_trailing, dropped_inner)
    notices += [_unnamed_column_notice(i, named[i]) for i in kept if not header_cells[i]]
    if lengths is not None and kept:
        notices += _missing_cell_notices(lines, lengths, max(kept) + 1, header_cells)
    notices += _extra_cell_notices(body)

    unique_names, duplicate_notices = _unique_names([named[i] for i in kept])
    notices += duplicate_notices
    frame = _to_polars(lines, unique_names, [table.column(index) for index in kept])
    return RawTable(
        header=[header_cells[i] for i in kept],
        data=frame,
        encoding=encoding,
        format=fmt,
        sheet=sheet,
        preamble=[rec.raw for rec in choice.preamble],
        blank_rows_skipped=len(blank_lines),
        notices=notices,
        property_names=_per_column(choice.properties, kept),
        property_types=_per_column(choice.property_types, kept),
    )


def _per_column(values: list[str], kept: list[int]) -> list[str]:
    """LinkData's per-column metadata for the kept columns; [] when the file has none."""
    if not values:
        return []
    return [values[i] if i < len(values) else "" for i in kept]


# A note under a table: one cell starting with ※, ＊, (注), 注1:, 出典: … (not 注射…, which is a name).
_NOTE_START = re.compile(r"^(?:[※＊*]|[（(]注[0-9０-９]*[)）]|注[0-9０-９]*[:：)）]|(?:出典|資料|備考)[:：])")
MAX_NOTE_ROWS = 20


def _trailing_notes(table: pa.Table) -> int:
    """How many of the last rows are notes: one filled cell, starting like a note; never every row."""
    notes = 0
    for row in range(table.num_rows - 1, max(table.num_rows - 1 - MAX_NOTE_ROWS, 0), -1):
        cells = [v.strip(_BLANK_CHARS) for v in table.slice(row, 1).to_pylist()[0].values()
                 if v and v.strip(_BLANK_CHARS)]
        if len(cells) != 1 or not _NOTE_START.match(cells[0]):
            break
        notes += 1
    return notes


def _note_rows_notice(rows: pa.Table, lines: np.ndarray) -> Notice:
    texts = [next(v for v in row.values() if v and v.strip(_BLANK_CHARS)).strip(_BLANK_CHARS)
             for row in rows.to_pylist()]
    shown = _lines_text(_first_lines(lines), len(lines))
    return Notice(
        "note-row",
        f"表の下にある注記 {len(texts)} 行（{shown} 行目）はデータに含めていません: {' / '.join(texts)}",
        f"{len(texts)} note line(s) under the table (line {shown}) were not read as data: {' / '.join(texts)}",
        line=int(lines[0]),
        count=len(texts),
        details={"lines": _first_lines(lines), "notes": texts},
    )


def _to_polars(lines: np.ndarray, names: list[str], columns: list[pa.ChunkedArray]) -> pl.DataFrame:
    """``_source_line`` first, then one pl.String column per kept header cell (from_arrow: fastest here)."""
    arrays: dict[str, pa.Array | pa.ChunkedArray] = {SOURCE_LINE: pa.array(lines, pa.int64())}
    arrays.update(zip(names, columns, strict=True))
    frame = pl.from_arrow(pa.table(arrays))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _keep_columns(
    header_cells: list[str], table: pa.Table
) -> tuple[list[int], list[int], list[int], list[str]]:
    """Indices to keep; unnamed empty columns to drop (trailing / inner); display names ("列N" if unnamed)."""
    empty = [
        not header_cells[i] and bool(_blank_mask_strict(table.select([i])).all())
        for i in range(len(header_cells))
    ]
    last_named_or_data = max((i for i, is_empty in enumerate(empty) if not is_empty), default=-1)
    kept = [i for i, is_empty in enumerate(empty) if not is_empty]
    trailing = [i for i in range(last_named_or_data + 1, len(header_cells))]
    inner = [i for i, is_empty in enumerate(empty) if is_empty and i <= last_named_or_data]
    named = [cell or f"列{i + 1}" for i, cell in enumerate(header_cells)]
    return kept, trailing, inner, named


def _unique_names(names: list[str]) -> tuple[list[str], list[Notice]]:
    seen = {SOURCE_LINE}
    unique: list[str] = []
    notices: list[Notice] = []
    for name in names:
        candidate, k = name, 2
        while candidate in seen:
            candidate, k = f"{name}__{k}", k + 1
        if candidate != name:
            notices.append(Notice(
                "duplicate-label",
                f"見出し「{name}」が重複しているため、列名を「{candidate}」にしました。",
                f"The header '{name}' repeats; the column was named '{candidate}'.",
                column=candidate,
                details={"label": name},
            ))
        seen.add(candidate)
        unique.append(candidate)
    return unique, notices


# ----------------------------------------------------------------------------------------------------
# notices


def _first_lines(lines: Sequence[int] | np.ndarray) -> list[int]:
    return [int(line) for line in list(lines)[:NOTICE_LINE_LIMIT]]


def _lines_text(lines: list[int], total: int) -> str:
    shown = ", ".join(str(line) for line in lines)
    return shown + (" …" if total > len(lines) else "")


def _encoding_notice(encoding: str) -> Notice:
    if encoding == "xlsx":
        return Notice("encoding", "Excelブック(.xlsx)として読み込みました。",
                      "Read as an Excel workbook (.xlsx).", details={"encoding": encoding})
    label = _ENCODING_LABEL[encoding]
    return Notice("encoding", f"文字コード {label} として読み込みました。",
                  f"Read with the {label} encoding.", details={"encoding": encoding})


def _line_ending_notices(line_breaks: _LineBreaks) -> list[Notice]:
    present = {kind: count for kind, count in zip(("CRLF", "LF", "CR"), line_breaks, strict=True) if count}
    if len(present) < 2:
        return []
    shown = ", ".join(f"{kind} {count}" for kind, count in present.items())
    return [Notice(
        "mixed-line-endings",
        f"改行コードが混在しています（{shown}）。セル内の改行も含みます。すべて改行として扱いました。",
        f"Line endings are mixed ({shown}), counting line breaks inside cells; all were read as line breaks.",
        count=sum(present.values()),
        details=present,
    )]


def _header_notices(choice: _HeaderChoice, scored: bool) -> list[Notice]:
    notices = []
    if choice.preamble:
        lines = [rec.first_line for rec in choice.preamble]
        notices.append(Notice(
            "preamble",
            f"見出し行の上にある {len(lines)} 行（{_lines_text(_first_lines(lines), len(lines))} 行目）は"
            "表の説明として扱い、データには含めていません。",
            f"{len(lines)} line(s) above the data (line {_lines_text(_first_lines(lines), len(lines))}) "
            "were kept as a preamble, not as data.",
            line=lines[0],
            count=len(lines),
            details={"lines": _first_lines(lines)},
        ))
    line = choice.header.first_line
    if choice.chosen_by == "linkdata-label":
        notices.append(Notice(
            "header-row",
            f"{line} 行目の見出し（LinkData形式の日本語の項目名）を列名としました。"
            "「#property」行の英語の項目名は、標準の項目との対応づけに使います。",
            f"Line {line} (the labels of a LinkData file) was used as the header; the English names of "
            "its '#property' line are kept to map the columns onto a standard dataset.",
            line=line,
            details={"chosen_by": "linkdata-label", "properties": choice.properties},
        ))
    elif choice.chosen_by == "linkdata":
        notices.append(Notice(
            "header-row",
            f"{line} 行目の「#property」行を見出しとしました（LinkData形式）。1列目には見出しがありません。",
            f"The '#property' line {line} was used as the header (LinkData layout); "
            "its first column has no name.",
            line=line,
            details={"chosen_by": "linkdata", "score": choice.score},
        ))
    elif choice.chosen_by == "scorer" and scored:
        notices.append(Notice(
            "header-row",
            f"{line} 行目が見出しとして最も適切と判断し、見出し行としました。",
            f"Line {line} looked most like the header and was used as the header.",
            line=line,
            details={"chosen_by": "scorer", "score": choice.score},
        ))
    return notices


def _header_rows_notices(choice: _HeaderChoice, header_cells: list[str]) -> list[Notice]:
    if not choice.sub_rows:
        return []
    first, last = choice.header.first_line, choice.sub_rows[-1].last_line
    joined = [cell for i, cell in enumerate(header_cells)
              if any(i < len(rec.cells) and rec.cells[i].strip(_HEADER_STRIP_CHARS) for rec in choice.sub_rows)][:5]
    example = "、".join(joined) or "、".join(header_cells[:3])
    return [Notice(
        "header-rows",
        f"見出しが {first}〜{last} 行目の {last - first + 1} 行にわたるため、上の行の見出しと下の行の見出しを"
        f"「_」でつないで列名にしました（例: {example}）。",
        f"The header spans lines {first}-{last}; the labels of its rows were joined with '_' into one name "
        f"per column (e.g. {', '.join(joined) or ', '.join(header_cells[:3])}).",
        line=first,
        count=len(choice.sub_rows) + 1,
        details={"lines": list(range(first, last + 1)), "columns": header_cells,
                 "merged_cells": bool(choice.merges)},
    )]


def _extension_notices(name: str, fmt: str) -> list[Notice]:
    suffix = Path(name).suffix.lower().lstrip(".")
    expected = {"csv": {"csv", "txt"}, "tsv": {"tsv", "txt", "csv"}, "xlsx": {"xlsx", "xlsm"}}[fmt]
    if not suffix or suffix in expected:
        return []
    return [Notice(
        "extension-mismatch",
        f"拡張子は「.{suffix}」ですが、中身は{fmt.upper()}だったため{fmt.upper()}として読み込みました。",
        f"The file name ends in '.{suffix}' but the content is {fmt.upper()}; it was read as {fmt.upper()}.",
        details={"extension": suffix, "format": fmt},
    )]


def _sheet_notices(sheet_name: str, others: list[str]) -> list[Notice]:
    if not others:
        return []
    listed = "」「".join(others)
    return [Notice(
        "sheet",
        f"シート「{sheet_name}」を読み込みました。ほかのシート（「{listed}」）は読み込んでいません。",
        f"Read the sheet '{sheet_name}'; the other sheets ({', '.join(others)}) were not read.",
        count=len(others),
        details={"sheet": sheet_name, "other_sheets": others},
    )]


def _cell_error_notices(errors: list[tuple[int, int, str]]) -> list[Notice]:
    if not errors:
        return []
    rows = sorted({row + 1 for row, _, _ in errors})
    shown = _lines_text(_first_lines(rows), len(rows))
    return [Notice(
        "cell-error",
        f"{len(errors)} 個のセルがExcelのエラー値（#N/A など）でした（{shown} 行目）。"
        "エラーの表示のまま読み込みました。",
        f"{len(errors)} cell(s) hold Excel error values such as #N/A (row {shown}); "
        "they were read as the error text.",
        line=rows[0],
        count=len(errors),
        details={"rows": _first_lines(rows)},
    )]


def _blank_row_notices(blank_lines: np.ndarray) -> list[Notice]:
    if len(blank_lines) == 0:
        return []
    shown = _first_lines(blank_lines)
    text = _lines_text(shown, len(blank_lines))
    return [Notice(
        "blank-row",
        f"空の行を {len(blank_lines)} 行読み飛ばしました（{text} 行目）。",
        f"Skipped {len(blank_lines)} blank row(s) (line {text}).",
        line=shown[0],
        count=len(blank_lines),
        details={"lines": shown},
    )]


def _dropped_column_notices(trailing: list[int], inner: list[int]) -> list[Notice]:
    notices = []
    for code, columns in (("extra-label", trailing), ("blank-label", inner)):
        if not columns:
            continue
        positions = "、".join(str(i + 1) for i in columns)
        notices.append(Notice(
            code,
            f"見出しもデータもない列（{positions} 列目）を取り除きました。",
            f"Removed column(s) {', '.join(str(i + 1) for i in columns)}, which have no header and no data.",
            count=len(columns),
            details={"columns": [i + 1 for i in columns], "action": "dropped"},
        ))
    return notices


def _unnamed_column_notice(index: int, name: str) -> Notice:
    return Notice(
        "blank-label",
        f"{index + 1} 列目には見出しがありませんがデータがあるため、「{name}」として残しました。",
        f"Column {index + 1} has no header but holds data; it was kept as '{name}'.",
        column=name,
        details={"position": index + 1, "action": "kept"},
    )


def _missing_cell_notices(
    lines: np.ndarray, lengths: np.ndarray, needed: int, header_cells: list[str]
) -> list[Notice]:
    short = np.flatnonzero(lengths < needed)
    notices = []
    for row in short[:NOTICE_LINE_LIMIT]:
        line, have = int(lines[row]), int(lengths[row])
        notices.append(Notice(
            "missing-cell",
            f"{line} 行目のセルが {have} 個しかなく、見出しの {needed} 列に足りません。"
            "足りないセルは空（値なし）にしました。",
            f"Line {line} has {have} cell(s), fewer than the {needed} columns of the header; "
            "the missing cells were left empty (no value).",
            line=line,
            column=header_cells[have] or f"列{have + 1}",
            details={"cells": have, "expected": needed},
        ))
    notices += _more_rows_notice("missing-cell", len(short))
    return notices


def _extra_cell_notices(body: _Body) -> list[Notice]:
    notices = []
    for line, cells in body.extra_with_content:
        notices.append(Notice(
            "extra-cell",
            f"{line} 行目のセルが見出しより {len(cells)} 個多く、余分なセル（{cells}）は表に入れていません。",
            f"Line {line} has {len(cells)} cell(s) more than the header; the extra cells ({cells}) "
            "were left out of the table.",
            line=line,
            count=1,
            details={"extra_cells": cells},
        ))
    notices += _more_rows_notice("extra-cell", body.extra_with_content_count)
    if body.extra_empty_count:
        text = _lines_text(body.extra_empty_lines, body.extra_empty_count)
        notices.append(Notice(
            "extra-cell",
            f"{body.extra_empty_count} 行の末尾に見出しより多い空のセル（余分な区切り文字）があり、"
            f"無視しました（{text} 行目）。",
            f"{body.extra_empty_count} row(s) end with empty cells beyond the header (extra delimiters); "
            f"they were ignored (line {text}).",
            line=body.extra_empty_lines[0],
            count=body.extra_empty_count,
            details={"lines": body.extra_empty_lines, "all_empty": True},
        ))
    return notices


def _more_rows_notice(code: str, total: int) -> list[Notice]:
    if total <= NOTICE_LINE_LIMIT:
        return []
    more = total - NOTICE_LINE_LIMIT
    return [Notice(
        code,
        f"同じ問題のある行がほかに {more} 行あります。",
        f"{more} more row(s) have the same problem.",
        count=more,
        details={"more": True},
    )]
