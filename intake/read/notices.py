"""The notices reading gives: the words for everything it dropped or worked around."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from intake.read.body import _Body, _LineBreaks
from intake.read.common import _HEADER_STRIP_CHARS, NOTICE_LINE_LIMIT
from intake.read.encoding import _ENCODING_LABEL
from intake.read.header import _HeaderChoice
from kouiki.problems import Notice


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

