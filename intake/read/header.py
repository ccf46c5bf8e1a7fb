"""Choosing the header: the first real line, LinkData's ``#property`` line, or the best-scoring line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from intake.header_rows import MAX_HEADER_ROWS, Merge, count_header_rows, is_label, join_header_rows
from intake.read.common import _HEADER_STRIP_CHARS, HEADER_SEARCH_LINES, HeaderScorer
from intake.read.records import _Record

# A first line scoring this well is the header: scoring the other head lines could not beat it by much.
CLEAR_HEADER_SCORE = 0.9


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

