"""An independent scan of every released byte: every file of a release, whatever its format and size.

It knows nothing of the policy's roles or of the anonymiser: it reads each file (CSV, JSON, GeoJSON,
Parquet, anything else as text), folds the text (NFKC: full-width digits and letters become ASCII; every
dash becomes '-'), and looks for

- 個人番号: 12 digits with a valid check digit, in any formatting (spaced, hyphenated, full-width);
- 被保険者番号-like values: a standalone run of 10 digits;
- phone-like values: 0 then 9 or 10 more digits, with or without '-', ' ', '(' ')';
- the values of the source's identifying columns (names, kana, addresses, numbers), spaces and dashes ignored;
- the planted canaries.

A hit blocks the release. Values shorter than 8 ASCII characters (or 3 non-ASCII ones) are not searched
inside text here: a short 番地 ("1-2") occurs by chance in any file; anonymise.verify matches those as whole
published cells.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from anonymise.identifiers import is_valid_mynumber
from anonymise.reasons import Reason

MIN_ASCII, MIN_NON_ASCII = 8, 3
_DASHES = str.maketrans({c: "-" for c in "‐‑‒–—―−ー－﹣"})
_SPLIT = re.compile(r"[\r\n,;\t\"{}\[\]|]+")
_NOT_AROUND = r"(?<![0-9A-Za-z])(?<!\d[ -])"
_NOT_AFTER = r"(?![0-9A-Za-z])(?![ -]\d)"
_MYNUMBER = re.compile(_NOT_AROUND + r"(\d(?:[ -]?\d){11})" + _NOT_AFTER)
_TEN_DIGITS = re.compile(_NOT_AROUND + r"(\d{10})" + _NOT_AFTER)
_PHONE = re.compile(_NOT_AROUND + r"(\(?0\d{1,4}\)?[ -]?\(?\d{1,4}\)?[ -]?\d{3,4})" + _NOT_AFTER)
_DIGIT_RUN = re.compile(r"\d(?:[ \-()]?\d)*")
_BLANKS = re.compile(r"[\s\u3000]+")


@dataclass(frozen=True)
class Hit:
    file: str
    rule: str  # mynumber | insured_number_like | phone_like | source:<column> | canary
    example_masked: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "rule": self.rule, "example_masked": self.example_masked}


class ValueIndex:
    """Identifier values to look for, folded once: digit values by their digits, text values without blanks."""

    def __init__(self, values: Mapping[str, Iterable[Any]]) -> None:
        self.digits: dict[str, str] = {}
        self.text: dict[str, str] = {}
        for origin, column_values in values.items():
            for value in column_values:
                if value is None:
                    continue
                folded = fold(str(value))
                if re.fullmatch(r"[\d \-()+]+", folded):
                    digits = re.sub(r"\D", "", folded)
                    if len(digits) >= MIN_ASCII:
                        self.digits.setdefault(digits, origin)
                else:
                    compact = _BLANKS.sub("", folded)
                    if _long_enough(compact):
                        self.text.setdefault(compact, origin)
        self.digit_lengths = sorted({len(v) for v in self.digits})
        self.text_lengths = sorted({len(v) for v in self.text})

    def find(self, token: str) -> tuple[str, str] | None:
        """(origin, value) of the first identifier value inside `token` (already folded), else None."""
        compact = _BLANKS.sub("", token)
        found = _inside(compact, self.text, self.text_lengths)
        if found:
            return found
        for run in _DIGIT_RUN.findall(token):
            found = _inside(re.sub(r"\D", "", run), self.digits, self.digit_lengths)
            if found:
                return found
        return None


def _inside(text: str, values: dict[str, str], lengths: list[int]) -> tuple[str, str] | None:
    for width in lengths:
        if width > len(text):
            break
        for start in range(len(text) - width + 1):
            piece = text[start:start + width]
            if piece in values:
                return values[piece], piece
    return None


def _long_enough(value: str) -> bool:
    if value.isascii():
        return len(value) >= MIN_ASCII
    return sum(1 for c in value if not c.isascii()) >= MIN_NON_ASCII or len(value) >= MIN_ASCII


def fold(text: str) -> str:
    """NFKC (full-width → ASCII, half-width kana → full-width), every dash → '-'."""
    return unicodedata.normalize("NFKC", text).translate(_DASHES)


def scan_files(
    files: Iterable[Path],
    root: Path,
    identifier_values: Mapping[str, Iterable[Any]] | None = None,
    canaries: Iterable[str] = (),
) -> list[Hit]:
    """Every hit in every file (paths reported relative to `root`); the files are scanned whatever their size."""
    index = ValueIndex({**(identifier_values or {}), "canary": list(canaries)})
    hits: list[Hit] = []
    for path in sorted(files):
        name = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        seen: set[str] = set()
        for token in _tokens(path):
            folded = fold(token)
            if folded in seen:
                continue
            seen.add(folded)
            hits += _token_hits(name, folded, index)
    return _one_per_rule_and_file(hits)


def scan_folder(folder: Path, identifier_values: Mapping[str, Iterable[Any]] | None = None,
                canaries: Iterable[str] = ()) -> list[Hit]:
    """scan_files over every file below `folder`, hidden ones included."""
    return scan_files([p for p in folder.rglob("*") if p.is_file()], folder, identifier_values, canaries)


def _token_hits(name: str, token: str, index: ValueIndex) -> list[Hit]:
    hits = []
    for match in _MYNUMBER.finditer(token):
        if is_valid_mynumber(re.sub(r"\D", "", match.group(1))):
            hits.append(Hit(name, "mynumber", mask(match.group(1))))
    for match in _TEN_DIGITS.finditer(token):
        hits.append(Hit(name, "insured_number_like", mask(match.group(1))))
    for match in _PHONE.finditer(token):
        if len(re.sub(r"\D", "", match.group(1))) in (10, 11):
            hits.append(Hit(name, "phone_like", mask(match.group(1))))
    found = index.find(token)
    if found:
        origin, value = found
        hits.append(Hit(name, "canary" if origin == "canary" else f"source:{origin}", mask(value)))
    return hits


def _one_per_rule_and_file(hits: list[Hit]) -> list[Hit]:
    unique: dict[tuple[str, str], Hit] = {}
    for hit in hits:
        unique.setdefault((hit.file, hit.rule), hit)
    return list(unique.values())


def mask(value: str) -> str:
    """Enough of a found value to recognise it in a report, not enough to copy it."""
    return value[:2] + "…" if len(value) > 2 else "…"


def _tokens(path: Path) -> Iterator[str]:
    """Every piece of text a reader of the file sees: cells, keys, values, column names, metadata."""
    yield path.name
    if path.suffix == ".parquet":
        yield from _parquet_tokens(path)
        return
    raw = path.read_bytes()
    text = _decode(raw)
    if path.suffix in (".json", ".geojson"):
        yield from _json_tokens(_parsed_json(text))
    if path.suffix == ".csv":
        yield from (cell for row in csv.reader(io.StringIO(text)) for cell in row)
    yield from _SPLIT.split(text)  # every file as plain text too: nothing escapes by being malformed


def _decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _parsed_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None  # still scanned as plain text below


def _json_tokens(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _json_tokens(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_tokens(item)
    elif value is not None:
        yield str(value)


def _parquet_tokens(path: Path) -> Iterator[str]:
    parquet = pq.ParquetFile(path)
    metadata = parquet.metadata.metadata or {}
    for key, value in metadata.items():
        yield key.decode("utf-8", "replace")
        yield value.decode("utf-8", "replace")
    table = parquet.read()
    for name in table.column_names:
        yield name
        column = table[name]
        try:
            as_text = pc.unique(pc.cast(column, "string"))
        except Exception:
            as_text = pc.unique(column).to_pylist()
            yield from (str(value) for value in as_text if value is not None)
            continue
        yield from (value for value in as_text.to_pylist() if value is not None)


def hits_reason(hits: list[Hit]) -> Reason:
    """One blocking reason listing what was found where (masked)."""
    found = "; ".join(f"{hit.file}: {hit.rule} ({hit.example_masked})" for hit in hits[:20])
    more = f" … (+{len(hits) - 20})" if len(hits) > 20 else ""
    return Reason(
        "scan.identifier_in_release",
        f"規則 scan.identifier_in_release: 公開ファイルに個人番号・被保険者番号・電話番号・氏名・住所等の値が"
        f"見つかりました。公開しません: {found}{more}",
        f"rule scan.identifier_in_release: identifier values were found in released files; nothing is "
        f"released: {found}{more}",
    )
