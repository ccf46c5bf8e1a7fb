"""Content the service refuses even though intake can read it.

Formula injection (CSV injection): cells a spreadsheet would run as a formula when someone opens the
published CSV, e.g. ``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``, ``+SUM(A1)`` or ``@SUM(A1)``.

Published open data is opened in Excel by the public, so such a cell is refused at upload with its line and
column. Values that merely start with a sign stay allowed: ``-`` (a common "none" mark), ``-12.5``,
``+81-3-...`` phone numbers.

Another city's rows: a city uploads only for itself, so a 全国地方公共団体コード naming another municipality
is refused. The city's own prefecture code (legacy files put it in 都道府県コード又は市区町村コード) and ward
codes of a designated city (not in the national list) are allowed.
"""

from __future__ import annotations

import polars as pl

from intake.process import StagedUpload
from intake.read import SOURCE_LINE, RawTable
from kouiki.localgov import lookup, other_municipality
from kouiki.problems import IntakeError, Problem, Where

# "=" anything; or + - @ followed by a function name and "(", or a DDE call ("cmd|...").
FORMULA_PATTERN = r"^[\s\u3000]*(?:=|[+\-@][\s\u3000]*[A-Za-z_][A-Za-z0-9_.]*[\s\u3000]*[(|!])"
SHOWN_CHARS = 40


def find_formula_cell(raw: RawTable) -> IntakeError | None:
    """The first cell (by line) that a spreadsheet would execute, as an ``IntakeError``; None if there is none."""
    data = raw.data
    columns = [c for c in data.columns if c != SOURCE_LINE and data[c].dtype == pl.String]
    hits: list[tuple[int, str, str, int]] = []
    for position, column in enumerate(columns):
        flagged = data.select(SOURCE_LINE, column).filter(pl.col(column).str.contains(FORMULA_PATTERN))
        if flagged.height:
            line, value = flagged.row(0)
            hits.append((int(line), _header_name(raw, column, position), str(value), flagged.height))
    if not hits:
        return None
    line, column, value, _ = min(hits)
    total = sum(h[3] for h in hits)
    shown = value[:SHOWN_CHARS] + ("…" if len(value) > SHOWN_CHARS else "")
    return IntakeError(Problem.of("formula-injection", line=line, column=column, value=shown, total=total,
                                  where=Where(line=line, column=column)))


def _header_name(raw: RawTable, column: str, position: int) -> str:
    """The header as written in the file for a data column (the frame's names may be made unique)."""
    return raw.header[position] if position < len(raw.header) and raw.header[position] else column


def find_other_city_row(staged: StagedUpload, city_code: str,
                        submits_for: tuple[str, ...] = ()) -> IntakeError | None:
    """Refuses a file none of whose rows is the member's own: every row's local-government code names a
    government other than ``city_code`` that the member may not submit for (``submits_for``, from the member
    registry). Such a file cannot be attributed to the member. A file with some such rows among its own is
    accepted: the lake load withholds just those rows, each with an ``other-municipality`` error naming its line."""
    column = staged.dataset.code_column
    if column not in staged.values.columns:
        return None
    codes = staged.values.select(SOURCE_LINE, column).filter(
        pl.col(column).is_not_null() & (pl.col(column) != city_code))
    others = [(int(line), code) for line, code in codes.iter_rows()
              if other_municipality(str(code), city_code) and code not in submits_for]
    if not others or len(others) < staged.values.height:
        return None
    line, code = others[0]
    known = lookup(code)
    name = known.name if known else code
    return IntakeError(Problem.of("other-city-data", line=line, column=column, code=code, name=name,
                                  city_code=city_code, count=len(others), where=Where(line=line, column=column)))

