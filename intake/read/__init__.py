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
endings …) is reported as a :class:`~kouiki.problems.Notice`; a file it cannot read raises
:class:`~kouiki.problems.IntakeError` with the place and a fix.

Speed: a CSV is parsed by pyarrow's multi-threaded reader (CP932 is transcoded inside it), and the
``_source_line`` column is computed with vector operations. Rows with another cell count make pyarrow
retry single-threaded, setting those rows aside for the csv module and putting them back in place.
Python's ``csv`` module parses the few lines above the data, and the whole file only when pyarrow cannot
(an unclosed quote, a damaged byte …); all paths give identical results (the tests compare them).

The package follows the order a file is read in:

* :mod:`intake.read.sniff` — the format from the content, and refusing what is not a table;
* :mod:`intake.read.encoding` — the text encoding (:func:`decode_text`);
* :mod:`intake.read.records` — records: cells plus the physical lines they came from;
* :mod:`intake.read.header` — choosing the header (and joining a header on several rows);
* :mod:`intake.read.body` — the body below the header, parsed fast (pyarrow) or slowly (csv);
* :mod:`intake.read.text` — CSV/TSV files, :mod:`intake.read.xlsx` — Excel workbooks;
* :mod:`intake.read.assemble` — from the body to a :class:`RawTable`;
* :mod:`intake.read.notices` — the words of every :class:`~kouiki.problems.Notice` reading gives;
* :mod:`intake.read.common` — :class:`RawTable` and the limits every stage shares.
"""

from __future__ import annotations

from pathlib import Path

from intake.read.common import DEFAULT_MAX_UNZIPPED_BYTES, SOURCE_LINE, HeaderScorer, RawTable
from intake.read.encoding import decode_text
from intake.read.sniff import _is_xlsx, _refuse_non_text
from intake.read.text import _read_text
from intake.read.xlsx import _read_xlsx

__all__ = ["DEFAULT_MAX_UNZIPPED_BYTES", "SOURCE_LINE", "HeaderScorer", "RawTable", "decode_text", "read_bytes",
           "read_file"]


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

