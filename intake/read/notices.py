"""The notices reading gives: the words for everything it dropped or worked around."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from intake.read.body import _Body, _LineBreaks
from intake.read.common import _HEADER_STRIP_CHARS, NOTICE_LINE_LIMIT
from intake.read.header import _HeaderChoice
from kouiki.problems import JA_LIST_SEPARATOR, Notice, term


def _first_lines(lines: Sequence[int] | np.ndarray) -> list[int]:
    return [int(line) for line in list(lines)[:NOTICE_LINE_LIMIT]]


def _lines_text(lines: list[int], total: int) -> str:
    shown = ", ".join(str(line) for line in lines)
    return shown + (" …" if total > len(lines) else "")


def _more_rows(total: int) -> int:
    """How many rows with the same problem are not listed one by one (beyond NOTICE_LINE_LIMIT)."""
    return max(total - NOTICE_LINE_LIMIT, 0)


def _encoding_notice(encoding: str) -> Notice:
    if encoding == "xlsx":
        return Notice.of("encoding", "xlsx", details={"encoding": encoding})
    label = term("encoding", encoding)
    return Notice.of("encoding", label_ja=label.ja, label_en=label.en, details={"encoding": encoding})


def _line_ending_notices(line_breaks: _LineBreaks) -> list[Notice]:
    present = {kind: count for kind, count in zip(("CRLF", "LF", "CR"), line_breaks, strict=True) if count}
    if len(present) < 2:
        return []
    shown = ", ".join(f"{kind} {count}" for kind, count in present.items())
    return [Notice.of("mixed-line-endings", shown=shown, count=sum(present.values()), details=present)]


def _header_notices(choice: _HeaderChoice, scored: bool) -> list[Notice]:
    notices = []
    if choice.preamble:
        lines = [rec.first_line for rec in choice.preamble]
        notices.append(Notice.of("preamble", lines=_lines_text(_first_lines(lines), len(lines)), line=lines[0],
                                 count=len(lines), details={"lines": _first_lines(lines)}))
    line = choice.header.first_line
    if choice.chosen_by == "linkdata-label":
        notices.append(Notice.of("header-row", "linkdata-label", line=line,
                                 details={"chosen_by": "linkdata-label", "properties": choice.properties}))
    elif choice.chosen_by == "linkdata":
        notices.append(Notice.of("header-row", "linkdata", line=line,
                                 details={"chosen_by": "linkdata", "score": choice.score}))
    elif choice.chosen_by == "scorer" and scored:
        notices.append(Notice.of("header-row", "scorer", line=line,
                                 details={"chosen_by": "scorer", "score": choice.score}))
    return notices


def _header_rows_notices(choice: _HeaderChoice, header_cells: list[str]) -> list[Notice]:
    if not choice.sub_rows:
        return []
    first, last = choice.header.first_line, choice.sub_rows[-1].last_line
    joined = [cell for i, cell in enumerate(header_cells)
              if any(i < len(rec.cells) and rec.cells[i].strip(_HEADER_STRIP_CHARS) for rec in choice.sub_rows)][:5]
    example = joined or header_cells[:3]
    return [Notice.of(
        "header-rows", first=first, last=last, rows=last - first + 1,
        example_ja=JA_LIST_SEPARATOR.join(example), example_en=", ".join(example),
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
    return [Notice.of("extension-mismatch", suffix=suffix, format=fmt.upper(),
                      details={"extension": suffix, "format": fmt})]


def _sheet_notices(sheet_name: str, others: list[str]) -> list[Notice]:
    if not others:
        return []
    return [Notice.of("sheet", sheet=sheet_name, others_ja="」「".join(others), others_en=", ".join(others),
                      count=len(others), details={"sheet": sheet_name, "other_sheets": others})]


def _cell_error_notices(errors: list[tuple[int, int, str]]) -> list[Notice]:
    if not errors:
        return []
    rows = sorted({row + 1 for row, _, _ in errors})
    return [Notice.of("cell-error", rows=_lines_text(_first_lines(rows), len(rows)), line=rows[0],
                      count=len(errors), details={"rows": _first_lines(rows)})]


def _blank_row_notices(blank_lines: np.ndarray) -> list[Notice]:
    if len(blank_lines) == 0:
        return []
    shown = _first_lines(blank_lines)
    return [Notice.of("blank-row", "skipped", lines=_lines_text(shown, len(blank_lines)), line=shown[0],
                      count=len(blank_lines), details={"lines": shown})]


def _dropped_column_notices(trailing: list[int], inner: list[int]) -> list[Notice]:
    notices = []
    for code, columns in (("extra-label", trailing), ("blank-label", inner)):
        if not columns:
            continue
        positions = [str(i + 1) for i in columns]
        notices.append(Notice.of(
            code, "dropped",
            positions_ja=JA_LIST_SEPARATOR.join(positions), positions_en=", ".join(positions),
            count=len(columns),
            details={"columns": [i + 1 for i in columns], "action": "dropped"},
        ))
    return notices


def _unnamed_column_notice(index: int, name: str) -> Notice:
    return Notice.of("blank-label", "kept", position=index + 1, column=name,
                     details={"position": index + 1, "action": "kept"})


def _missing_cell_notices(
    lines: np.ndarray, lengths: np.ndarray, needed: int, names: list[str]
) -> list[Notice]:
    """A notice per row with fewer cells than the header (``names``: the columns' display names)."""
    short = np.flatnonzero(lengths < needed)
    notices = []
    for row in short[:NOTICE_LINE_LIMIT]:
        line, have = int(lines[row]), int(lengths[row])
        notices.append(Notice.of("missing-cell", "short-row", line=line, cells=have, needed=needed,
                                 column=names[have], details={"cells": have, "expected": needed}))
    if more := _more_rows(len(short)):
        notices.append(Notice.of("missing-cell", "more", count=more, details={"more": True}))
    return notices


def _extra_cell_notices(body: _Body) -> list[Notice]:
    notices = []
    for line, cells in body.extra_with_content:
        notices.append(Notice.of("extra-cell", "content", line=line, extra=len(cells), cells=cells, count=1,
                                 details={"extra_cells": cells}))
    if more := _more_rows(body.extra_with_content_count):
        notices.append(Notice.of("extra-cell", "more", count=more, details={"more": True}))
    if body.extra_empty_count:
        notices.append(Notice.of(
            "extra-cell", "empty",
            lines=_lines_text(body.extra_empty_lines, body.extra_empty_count),
            line=body.extra_empty_lines[0],
            count=body.extra_empty_count,
            details={"lines": body.extra_empty_lines, "all_empty": True},
        ))
    return notices
