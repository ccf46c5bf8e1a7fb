"""Excel workbooks (xlsx): the sheet, its header (merged cells included) and its cells as text."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

import fastexcel
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from intake.header_rows import MAX_HEADER_ROWS, Merge
from intake.read.assemble import _assemble
from intake.read.body import _blank_mask, _Body
from intake.read.common import _HEADER_STRIP_CHARS, HeaderScorer, RawTable
from intake.read.header import _choice_header_cells, _choose_header, _HeaderChoice, _with_header_rows
from intake.read.notices import (
    _cell_error_notices,
    _encoding_notice,
    _extension_notices,
    _header_notices,
    _header_rows_notices,
    _sheet_notices,
)
from intake.read.records import _Record
from kouiki.problems import IntakeError, Problem

MAX_ZIP_RATIO = 200
ZIP_RATIO_FLOOR_BYTES = 1 << 20       # entries smaller than this cannot be bombs worth refusing
XLSX_HEAD_ROWS = 100                   # rows of each sheet loaded to choose the sheet and the header

# Excel's own texts for the error values calamine reports as Error(<kind>).
_EXCEL_ERROR_TEXT = {
    "Div0": "#DIV/0!", "NA": "#N/A", "Name": "#NAME?", "Null": "#NULL!",
    "Num": "#NUM!", "Ref": "#REF!", "Value": "#VALUE!", "GettingData": "#GETTING_DATA",
}


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
        raise IntakeError(Problem.of("file-too-large", name=name, megabytes=total / 1e6, ratio=worst))


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
        raise IntakeError(Problem.of("empty-file", "no-sheet-data", name=name))
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
    return IntakeError(Problem.of("corrupt-file", name=name, detail=err))


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

