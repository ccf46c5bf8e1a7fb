"""`kouiki anonymise INPUT.csv --qi COL=HIERARCHY.csv … [--sensitive COL] --k K [--l L]
[--max-suppression PCT] --out OUT.csv --report REPORT.json`, as plain functions (the CLI wiring
lives in commands.cli).

Only the quasi-identifiers (generalised) and the sensitive columns are written; every other column
is dropped. The platform floors (anonymise.floors) apply as they do in the pipeline. Rows are shuffled
(the seed is in the report, which stays with the office), text cells that a spreadsheet would run as a
formula are neutralised as the publication step does, and the file is written aside and moved into place
only when the separate DuckDB verification and the byte scan pass.

The input is never deleted or overwritten: an --out or --report naming it (by any path) is refused.
The report is written on every outcome (released, blocked, bad input, bad hierarchy), except when
--report itself names the input.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

import polars as pl

from anonymise.anonymiser import anonymise_table, shuffled
from anonymise.byte_scan import hits_reason, scan_files
from anonymise.floors import (
    FloorsError,
    check_model,
    check_published_columns,
    column_kinds,
    load_floors,
    unreadable_floors,
)
from anonymise.hierarchy import HierarchyError, detect_delimiter, hierarchy_from_arx_csv
from anonymise.lattice import PrivacyModel
from anonymise.quality import QualityModel
from anonymise.reasons import Reason
from anonymise.verify import verify_release

# Dropped columns this unique (distinct values / rows) are treated as direct identifiers and searched
# for in the output; less unique ones (a city name, a category) could legitimately equal a generalised label.
IDENTIFIER_UNIQUENESS = 0.5
# The same guard as publish.release (CSV injection): such a text cell gets a leading quote.
FORMULA_PREFIX = re.compile(r"^[=+\-@\t\r]")
_IDENTIFYING = {"individual_code", "linking_code", "name_or_contact"}


class InputError(ValueError):
    """The input cannot be read as a table (the message says what and how to fix it)."""


class UnsafePathError(ValueError):
    """An output path that would overwrite or delete the input."""


def parse_qi_options(items: list[str]) -> tuple[dict[str, Path], list[str]]:
    """`COL=HIERARCHY.csv` items → {column: path}, and the items that are not of that form."""
    qis: dict[str, Path] = {}
    bad = []
    for item in items:
        column, sep, hierarchy = item.partition("=")
        if not sep or not column or not hierarchy or not Path(hierarchy).is_file():
            bad.append(item)
        else:
            qis[column] = Path(hierarchy)
    return qis, bad


def run_cli(
    input: Path,
    qi_items: list[str],
    sensitive: list[str],
    k: int,
    l: int | None,  # noqa: E741 - the model's own name
    max_suppression: float,
    out: Path,
    report: Path,
    quality: QualityModel | None = None,
) -> dict[str, Any]:
    """What `kouiki anonymise` runs: the --qi items checked here so that a bad one gets a report too."""
    qis, bad = parse_qi_options(qi_items)
    if bad:
        failure = Reason(
            "bad_qi_option",
            f"--qi は 列名=階層ファイル.csv（存在するファイル）の形で指定してください: {bad}",
            f"use --qi COL=HIERARCHY.csv (an existing file): {bad}",
        )
        if _same_file(report, input):
            check_paths(input, out, report)  # raises: the report would overwrite the input
        skeleton = _skeleton(input, qis, sensitive, k, l, max_suppression)
        return _finish(skeleton, report, time.perf_counter(), failure, None if _same_file(out, input) else out)
    return anonymise_csv(input, qis, sensitive, k, l, max_suppression, out, report, quality=quality)


def check_paths(input: Path, out: Path, report: Path) -> None:
    """Refuse an --out or --report that is the input (by any path, links included) or each other."""
    if _same_file(out, input):
        raise UnsafePathError(f"--out は入力ファイルと同じです。別のファイル名を指定してください / --out is the "
                              f"input file ({input}); choose another path: the input is never overwritten")
    if _same_file(report, input):
        raise UnsafePathError(f"--report は入力ファイルと同じです / --report is the input file ({input}); "
                              "choose another path: the input is never overwritten")
    if _same_file(out, report):
        raise UnsafePathError(f"--out と --report が同じです / --out and --report are the same file ({out})")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def anonymise_csv(
    input: Path,
    qis: dict[str, Path],
    sensitive: list[str],
    k: int,
    l: int | None,  # noqa: E741 - the model's own name
    max_suppression: float,
    out: Path,
    report: Path,
    seed: int | None = None,
    quality: QualityModel | None = None,
) -> dict[str, Any]:
    """Anonymise a CSV (delimiter ',' or ';') with ARX-format hierarchy files.

    `max_suppression` is a percentage (5 = at most 5 % of the records suppressed); `quality` is the utility
    metric the search optimises (default: ARX's Loss).

    Writes OUT (only when the result verifies) and REPORT (always), and returns the report. An OUT that is the
    input is refused with a report; when REPORT itself is the input, UnsafePathError is raised and nothing is
    written.
    """
    started = time.perf_counter()
    result = _skeleton(input, qis, sensitive, k, l, max_suppression)
    result["model"]["quality"] = (quality or QualityModel()).describe()
    try:
        check_paths(input, out, report)
    except UnsafePathError as error:
        if _same_file(report, input):
            raise
        return _finish(result, report, started, Reason("unsafe_path", str(error), str(error)))
    try:
        table, delimiter = read_delimited(input)
    except InputError as error:
        return _finish(result, report, started, Reason("input_unreadable", str(error), str(error)), out)
    result["records_in"] = table.height
    missing = [column for column in [*qis, *sensitive] if column not in table.columns]
    if missing:
        names = ", ".join(missing)
        failure = Reason("missing_column", f"入力CSVに列がありません: {names}",
                         f"columns not in the input CSV: {names}")
        return _finish(result, report, started, failure, out)
    blocked = _floors(table, k, l, max_suppression, sensitive)
    if blocked:
        result["blocked_by_rules"] = [reason.as_dict() for reason in blocked]
        return _finish(result, report, started, _joined(blocked), out)
    try:
        hierarchies = {column: hierarchy_from_arx_csv(path, column) for column, path in qis.items()}
        model = PrivacyModel(k=k, l=l, max_suppression=max_suppression / 100, quality=quality or QualityModel())
        outcome = anonymise_table(table, hierarchies, model, sensitive=sensitive)
    except (HierarchyError, OSError, UnicodeDecodeError, ValueError) as error:
        failure = Reason("hierarchy_error", f"階層ファイルまたはモデルの誤り: {error}",
                         f"hierarchy or model error: {error}")
        return _finish(result, report, started, failure, out)
    dropped = [column for column in table.columns if column not in qis and column not in sensitive]
    scanned = _identifier_columns(table, dropped)
    result |= {"dropped_columns": dropped, "identifier_columns_scanned": scanned}
    if not outcome.ok or outcome.release is None:
        return _finish(result, report, started, outcome.failure, out)
    seed = secrets.randbits(62) if seed is None else seed
    written = _write_aside(formula_safe(shuffled(outcome.release, seed)), out, delimiter)
    verification = verify_release(
        written, list(qis), k, sensitive=sensitive, l=l, source=table,
        direct_identifiers=scanned, forbidden_columns=scanned,
    )
    hits = scan_files([written], written.parent, {column: table[column].to_list() for column in scanned})
    reasons = [*verification.reasons, *([hits_reason(hits)] if hits else [])]
    result |= _figures(outcome, verification, seed)
    if reasons:
        written.unlink(missing_ok=True)
        failure = Reason("verification_failed", " / ".join(r.ja for r in reasons), " / ".join(r.en for r in reasons))
        result["verification"]["reasons"] = [reason.as_dict() for reason in reasons]
        return _finish(result, report, started, failure, out)
    os.replace(written, out)
    result |= {"released": True, "out": str(out)}
    return _finish(result, report, started, None)


def _skeleton(
    input: Path, qis: dict[str, Path], sensitive: list[str], k: int, l: int | None, max_suppression: float  # noqa: E741
) -> dict[str, Any]:
    return {
        "input": str(input),
        "records_in": None,
        "model": {"k": k, "l": l, "max_suppression_pct": max_suppression},
        "quasi_identifiers": {column: str(path) for column, path in qis.items()},
        "sensitive": sensitive,
        "dropped_columns": [],
        "identifier_columns_scanned": [],
        "released": False,
        "out": None,
    }


def _floors(table: pl.DataFrame, k: int, l: int | None, max_suppression: float, sensitive: list[str]) -> list[Reason]:  # noqa: E741
    try:
        floors = load_floors()
    except FloorsError as error:
        return [unreadable_floors(error)]
    reasons = check_model(floors, k, l, max_suppression / 100, bool(sensitive))
    return reasons + check_published_columns({column: "sensitive" for column in sensitive}, table, floors)


def _joined(reasons: list[Reason]) -> Reason:
    return Reason(reasons[0].code, " ".join(r.ja for r in reasons), " ".join(r.en for r in reasons))


def _identifier_columns(table: pl.DataFrame, dropped: list[str]) -> list[str]:
    """Dropped columns whose values must not appear in the output: unique ones, and any that identify by name or
    value (names, phone numbers, 個人番号 and other codes)."""
    floors = load_floors()
    columns = []
    for column in dropped:
        unique = table.height and table[column].n_unique() / table.height >= IDENTIFIER_UNIQUENESS
        if unique or _IDENTIFYING & set(column_kinds(column, table[column], table.height, floors)):
            columns.append(column)
    return columns


def formula_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells starting with = + - @ tab or CR get a leading quote, as in every published CSV."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_PREFIX.pattern)).then("'" + pl.col(name)).otherwise(pl.col(name))
        .alias(name)
        for name in text
    )


def _write_aside(release: pl.DataFrame, out: Path, delimiter: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    aside = out.with_name(f".{out.name}.{os.getpid()}.partial")
    release.write_csv(aside, separator=delimiter)
    return aside


def _figures(outcome: Any, verification: Any, seed: int) -> dict[str, Any]:
    search = outcome.search
    return {
        "levels": {
            column: {"level": level, "name": outcome.level_names[column]} for column, level in outcome.levels.items()
        },
        "records_suppressed": outcome.metrics["records_suppressed"],
        "suppressed_pct": 100 * outcome.metrics["suppressed_share"],
        "equivalence_classes": outcome.metrics["equivalence_classes"],
        "loss": {
            "metric": outcome.metrics["loss_metric"],
            "value": outcome.metrics["loss"],
            "generalisation_only": outcome.metrics["loss_generalisation_only"],
            "generalisation_intensity": outcome.metrics["generalisation_intensity"],
            "discernibility": outcome.metrics["discernibility"],
        },
        "quality": outcome.metrics["quality"],
        "verification": {
            "passed": verification.passed,
            "k": verification.k,
            "l": min(verification.l_distinct.values()) if verification.l_distinct else None,
            "l_entropy": verification.l_entropy,
            "risk": verification.risk,
            "reasons": [reason.as_dict() for reason in verification.reasons],
        },
        "search": {
            "lattice_size": search.lattice_size if search else None,
            "nodes_evaluated": len(search.evaluations) if search else None,
        },
        "row_order": {"shuffled": True, "seed": seed,
                      "note": "この報告は公開しないこと / keep this report private: the seed undoes the shuffle"},
    }


def read_delimited(path: Path) -> tuple[pl.DataFrame, str]:
    """All columns as text; UTF-8 (BOM or not) or CP932; delimiter ',' or ';' from the header line.

    InputError (one line, no traceback) for a missing, unreadable, empty, wrongly encoded or malformed file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as error:
        raise InputError(f"{path}: 入力ファイルがありません / input file not found") from error
    except IsADirectoryError as error:
        raise InputError(f"{path}: フォルダです。CSVファイルを指定してください / a folder, not a CSV file") from error
    except OSError as error:
        raise InputError(f"{path}: 入力ファイルを読めません（{error.strerror}）/ cannot read the input file "
                         f"({error.strerror}); check its permissions") from error
    if not raw.strip(b"\xef\xbb\xbf \t\r\n"):
        raise InputError(f"{path}: 入力ファイルが空です（0バイト）/ the input file is empty: export the list with its "
                         "header row and records")
    text = _decode(path, raw)
    delimiter = detect_delimiter(text)
    try:
        table = pl.read_csv(text.encode("utf-8"), separator=delimiter, infer_schema=False)
    except pl.exceptions.PolarsError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: CSVとして読めません / not a readable CSV: {first}") from error
    return table, delimiter


_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ue000-\uf8ff]")


def _decode(path: Path, raw: bytes) -> str:
    """UTF-8 (BOM or not), UTF-16 with a BOM, else CP932; anything that decodes only to control or private-use
    characters (a spreadsheet, a zip, another encoding) is refused rather than read as garbage."""
    candidates = ["utf-16"] if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else ["utf-8-sig", "cp932"]
    for encoding in candidates:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not _NOT_TEXT.search(text):
            return text
    raise InputError(f"{path}: 文字コードが UTF-8 でも Shift_JIS (CP932) でもなく、CSVとして読めません / the file is "
                     "not UTF-8 or CP932 text (an Excel workbook or another encoding?): save it as UTF-8 CSV")


def _finish(
    result: dict[str, Any], report: Path, started: float, failure: Reason | None, out: Path | None = None
) -> dict[str, Any]:
    """Record the outcome in the report (always). On failure a stale --out from an earlier run is removed, so no
    file there can be mistaken for this run's result (the input is never --out: check_paths)."""
    if failure is not None:
        result |= {"released": False, "out": None, "failure": failure.as_dict()}
        if out is not None:
            out.unlink(missing_ok=True)
    else:
        result["failure"] = None
    result["seconds"] = round(time.perf_counter() - started, 3)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    return result
