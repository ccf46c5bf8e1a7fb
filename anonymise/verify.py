"""Release verification, deliberately independent of the anonymiser: plain DuckDB SQL over the released
table (or the published file itself), sharing no code with anonymise.lattice / anonymise.anonymiser.

Checks: no direct-identifier column; no value of a deleted column anywhere in the published cells
(or headers); k-anonymity and l-diversity measured on the release; prosecutor re-identification
risk. The result says passed / not passed with reasons in Japanese and English, so a pipeline can
block a release.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from anonymise.reasons import Reason
from kouiki.sql import literal, quote

if TYPE_CHECKING:  # the policy is only read, never run: verification imports no anonymiser code
    from anonymise.policy import Policy

# An identifier value is searched for inside every published cell and header when it is long enough not to
# occur by chance (≥ 8 characters, or ≥ 3 non-ASCII characters such as a name). Shorter values (番地 "12-5")
# must not be a whole published cell, except in the verified QI / sensitive columns: a value there is shared by
# at least k records, so a short 番地 equal to a month label ("2023-10") is a coincidence, not a leak.
SUBSTRING_MIN_ASCII = 8
SUBSTRING_MIN_NON_ASCII = 3
IGNORED_BELOW = 2
# A published column with more distinct values than this share of the records (and more than the minimum) is
# as good as an identifier itself: the release fails, and that column is matched by whole cells only. The minimum
# is small: a 個人番号 column in a 300-row file is just as identifying as in a million-row one.
NEAR_UNIQUE_SHARE = 0.5
NEAR_UNIQUE_MIN = 10


@dataclass
class VerificationResult:
    passed: bool
    reasons: list[Reason]
    records: int
    classes: int
    k: int | None
    l_distinct: dict[str, int]
    l_entropy: dict[str, float]
    risk: dict[str, float]
    leaks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": [reason.as_dict() for reason in self.reasons],
            "records": self.records,
            "classes": self.classes,
            "k": self.k,
            "l_distinct": self.l_distinct,
            "l_entropy": self.l_entropy,
            "risk": self.risk,
            "leaks": self.leaks,
        }


def verify_release(
    release: pl.DataFrame | Path,
    quasi_identifiers: Sequence[str],
    k: int,
    sensitive: Sequence[str] = (),
    l: int | None = None,  # noqa: E741 - the model's own name
    l_variant: str = "distinct",
    source: pl.DataFrame | None = None,
    direct_identifiers: Sequence[str] = (),
    forbidden_columns: Sequence[str] = (),
    forbidden_values: Sequence[str] = (),
    risk_threshold: float = 0.2,
) -> VerificationResult:
    """Verify a release (a DataFrame, or a published CSV/Parquet file read back with DuckDB).

    `source` supplies the values of `direct_identifiers` to look for; `forbidden_values` adds more (canaries).
    """
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        columns = _load_release(con, release)
        reasons: list[Reason] = []
        reasons += _check_columns(columns, [*direct_identifiers, *forbidden_columns], quasi_identifiers, sensitive)
        missing = [column for column in [*quasi_identifiers, *sensitive] if column not in columns]
        records = int(_scalar(con, "SELECT count(*) FROM release"))
        near_unique = _near_unique_columns(con, columns, records)
        if near_unique:
            reasons.append(_near_unique_reason(near_unique))
        class_columns = [*quasi_identifiers, *sensitive]
        leaks = _scan_for_values(con, columns, source, direct_identifiers, forbidden_values, class_columns, near_unique)
        if leaks:
            reasons.append(_leak_reason(leaks))
        if records == 0:
            reasons.append(Reason("empty_release", "公開データが0件です。", "The release has no records."))
        if missing or records == 0:
            return VerificationResult(False, reasons, records, 0, None, {}, {}, {}, leaks)
        classes = _class_sizes(con, quasi_identifiers, records, risk_threshold)
        reasons += _check_k(classes, k)
        distinct, entropy = {}, {}
        for attribute in sensitive:
            distinct[attribute] = _min_distinct(con, quasi_identifiers, attribute)
            entropy[attribute] = _min_entropy_l(con, quasi_identifiers, attribute)
            if l is not None:
                reasons += _check_l(attribute, l, l_variant, distinct[attribute], entropy[attribute])
        return VerificationResult(
            passed=not reasons,
            reasons=reasons,
            records=records,
            classes=int(classes["classes"]),
            k=int(classes["min_size"]),
            l_distinct=distinct,
            l_entropy=entropy,
            risk={key: classes[key] for key in ("max", "average", "share_above_threshold", "threshold")},
            leaks=leaks,
        )
    finally:
        con.close()


def verify_policy_release(
    release: pl.DataFrame | Path,
    source: pl.DataFrame,
    policy: Policy,
    forbidden_values: Sequence[str] = (),
) -> VerificationResult:
    """verify_release with everything taken from the policy; the sources of derived QIs (生年月日) and any
    source column the policy does not publish must not appear as columns either."""
    derived_sources = [rule.source_column for rule in policy.quasi_identifiers if rule.derive]
    not_published = [column for column in source.columns if column not in policy.released_columns]
    return verify_release(
        release,
        quasi_identifiers=policy.qi_columns,
        k=policy.model.k,
        sensitive=list(policy.sensitive),
        l=policy.model.l,
        l_variant=policy.model.l_variant,
        source=source,
        direct_identifiers=policy.direct_identifiers,
        forbidden_columns=[*derived_sources, *not_published],
        forbidden_values=forbidden_values,
        risk_threshold=policy.risk_threshold,
    )


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return row[0] if row else None


def _load_release(con: duckdb.DuckDBPyConnection, release: pl.DataFrame | Path) -> list[str]:
    if isinstance(release, pl.DataFrame):
        con.register("release_input", release.to_arrow())
        con.execute("CREATE TABLE release AS SELECT * FROM release_input")
        con.unregister("release_input")
    elif release.suffix == ".parquet":
        con.execute("CREATE TABLE release AS SELECT * FROM read_parquet(?)", [str(release)])
    else:
        # Every published byte as text: no type inference, headers kept as published.
        con.execute(
            "CREATE TABLE release AS SELECT * FROM read_csv(?, all_varchar = true, header = true)",
            [str(release)],
        )
    return [row[0] for row in con.execute("SELECT column_name FROM (DESCRIBE release)").fetchall()]


def _check_columns(
    columns: list[str], forbidden: Sequence[str], quasi_identifiers: Sequence[str], sensitive: Sequence[str]
) -> list[Reason]:
    reasons = []
    present = [column for column in columns if column in set(forbidden)]
    if present:
        reasons.append(
            Reason(
                "direct_identifier_column",
                f"公開してはならない列が残っています: {', '.join(present)}",
                f"Columns that must not be published are present: {', '.join(present)}",
            )
        )
    missing = [column for column in [*quasi_identifiers, *sensitive] if column not in columns]
    if missing:
        reasons.append(
            Reason(
                "missing_column",
                f"検証に必要な列が公開データにありません: {', '.join(missing)}",
                f"Columns needed for verification are missing from the release: {', '.join(missing)}",
            )
        )
    return reasons


def _scan_for_values(
    con: duckdb.DuckDBPyConnection,
    columns: list[str],
    source: pl.DataFrame | None,
    direct_identifiers: Sequence[str],
    extra: Sequence[str],
    class_columns: Sequence[str],
    near_unique: Sequence[str],
) -> list[dict[str, Any]]:
    """Look for identifier values in every distinct published cell and header.

    Every substring of every distinct cell is a candidate (cells are few and short); each identifier column of
    the source is semi-joined against the candidates, so nothing of size n x identifiers is materialised. A
    long value counts wherever it occurs; a short one only as a whole cell outside the QI / sensitive columns.
    """
    present = [column for column in direct_identifiers if source is not None and column in source.columns]
    if not present and not extra:
        return []
    _create_candidates(con, columns, class_columns, near_unique)
    con.execute("CREATE TABLE hits (origin VARCHAR, value VARCHAR, whole BOOLEAN, in_class_column BOOLEAN)")
    if extra:
        con.execute("CREATE TABLE canaries (value VARCHAR)")
        con.executemany("INSERT INTO canaries VALUES (?)", [[str(value)] for value in extra])
        con.execute(
            "INSERT INTO hits SELECT '(canary)', piece, whole, in_class_column FROM candidates "
            "WHERE piece IN (SELECT value FROM canaries)"
        )
    if source is not None and present:
        con.register("source_input", source.select(present).to_arrow())
        for column in present:
            con.execute(
                f"INSERT INTO hits SELECT {literal(column)}, piece, whole, in_class_column FROM candidates "
                f"WHERE piece IN (SELECT CAST({quote(column)} AS VARCHAR) FROM source_input)"
            )
        con.unregister("source_input")
    rows = con.execute(
        f"""
        WITH counted AS (
            SELECT origin, value FROM hits
            WHERE length(value) >= {SUBSTRING_MIN_ASCII}
               OR (strlen(value) <> length(value) AND length(value) >= {SUBSTRING_MIN_NON_ASCII})
               OR (whole AND NOT in_class_column)
        ),
        first_origin AS (  -- a canary planted in the source is reported under its real column
            SELECT value, arg_min(origin, CAST(origin = '(canary)' AS INTEGER)) AS origin FROM counted GROUP BY value
        )
        SELECT origin, count(*) AS found, min(value) AS example FROM first_origin GROUP BY origin ORDER BY origin
        """
    ).fetchall()
    return [
        {"column": origin, "values_found": int(found), "example_masked": _mask(example)}
        for origin, found, example in rows
    ]


def _create_candidates(
    con: duckdb.DuckDBPyConnection, columns: list[str], class_columns: Sequence[str], near_unique: Sequence[str]
) -> None:
    """Table `candidates`: every distinct published cell and header (whole), and the pieces of them that a
    long identifier could be (≥ 8 characters, or ≥ 3 in a cell with non-ASCII text). Near-unique columns
    (already a failure of their own) contribute whole cells only, which keeps this table small."""
    casts = ", ".join(f"CAST({quote(column)} AS VARCHAR)" for column in columns)
    names = ", ".join(literal(column) for column in columns)
    con.execute(
        f"CREATE TABLE cells AS SELECT DISTINCT source, cell FROM "
        f"(SELECT unnest([{names}]) AS source, unnest([{casts}]) AS cell FROM release) WHERE cell IS NOT NULL"
    )
    con.executemany("INSERT INTO cells VALUES ('(header)', ?)", [[column] for column in columns])
    in_class = f"source IN ({', '.join(map(literal, class_columns))})" if class_columns else "false"
    scanned = f"source NOT IN ({', '.join(map(literal, near_unique))})" if near_unique else "true"
    con.execute(
        f"""
        CREATE TABLE candidates AS
        SELECT DISTINCT cell AS piece, true AS whole, {in_class} AS in_class_column
        FROM cells WHERE length(cell) >= {IGNORED_BELOW}
        UNION ALL
        SELECT DISTINCT substr(cell, CAST(start AS BIGINT), CAST(width AS BIGINT)), false, false
        FROM (SELECT DISTINCT cell FROM cells WHERE {scanned}) distinct_cells,
             range(CASE WHEN strlen(cell) = length(cell) THEN {SUBSTRING_MIN_ASCII}
                        ELSE {SUBSTRING_MIN_NON_ASCII} END, length(cell)) widths(width),
             range(1, length(cell) - width + 2) starts(start)
        """
    )


def _near_unique_columns(con: duckdb.DuckDBPyConnection, columns: list[str], records: int) -> list[str]:
    """Columns with more distinct values than NEAR_UNIQUE_SHARE of the records (and NEAR_UNIQUE_MIN)."""
    if not columns or records == 0:
        return []
    counts = ", ".join(f"count(DISTINCT {quote(column)})" for column in columns)
    row = con.execute(f"SELECT {counts} FROM release").fetchone()
    limit = max(NEAR_UNIQUE_MIN, NEAR_UNIQUE_SHARE * records)
    return [column for column, distinct in zip(columns, row or (), strict=True) if distinct > limit]


def _mask(value: str) -> str:
    """Enough of a leaked value to recognise it in a report, not enough to copy it."""
    return value[:2] + "…" if len(value) > 2 else "…"


def _near_unique_reason(columns: list[str]) -> Reason:
    names = ", ".join(columns)
    return Reason(
        "near_unique_column",
        f"ほぼ1件ごとに値が異なる列があり、識別子として働きます: {names}",
        f"Columns with nearly one distinct value per record act as identifiers: {names}",
    )


def _leak_reason(leaks: list[dict[str, Any]]) -> Reason:
    columns = ", ".join(f"{leak['column']} ({leak['values_found']})" for leak in leaks)
    return Reason(
        "identifier_value_found",
        f"削除したはずの項目の値が公開データの中に見つかりました: {columns}",
        f"Values of deleted identifier columns were found in the published cells: {columns}",
    )


def _class_sizes(
    con: duckdb.DuckDBPyConnection, quasi_identifiers: Sequence[str], records: int, threshold: float
) -> dict[str, float]:
    qis = ", ".join(quote(column) for column in quasi_identifiers)
    row = con.execute(
        f"""
        WITH classes AS (SELECT count(*) AS size FROM release GROUP BY {qis})
        SELECT count(*), min(size), sum(CASE WHEN 1.0 / size > ? THEN size ELSE 0 END) FROM classes
        """,
        [threshold],
    ).fetchone()
    assert row is not None
    classes, min_size, above = int(row[0]), int(row[1]), int(row[2] or 0)
    return {
        "classes": classes,
        "min_size": min_size,
        "max": 1.0 / min_size,
        "average": classes / records,  # mean over records of 1 / (size of its class)
        "share_above_threshold": above / records,
        "threshold": threshold,
    }


def _check_k(classes: dict[str, float], k: int) -> list[Reason]:
    if classes["min_size"] >= k:
        return []
    return [
        Reason(
            "k_violation",
            f"同じ属性の組合せを持つレコードが {int(classes['min_size'])} 件しかないグループがあります（k={k} 未満）。",
            f"An equivalence class has only {int(classes['min_size'])} records (k={k} required).",
        )
    ]


def _min_distinct(con: duckdb.DuckDBPyConnection, quasi_identifiers: Sequence[str], attribute: str) -> int:
    qis = ", ".join(quote(column) for column in quasi_identifiers)
    return int(
        _scalar(
            con,
            f"SELECT min(d) FROM (SELECT count(DISTINCT {quote(attribute)}) AS d FROM release GROUP BY {qis})",
        )
    )


def _min_entropy_l(con: duckdb.DuckDBPyConnection, quasi_identifiers: Sequence[str], attribute: str) -> float:
    """exp(minimum class entropy of the attribute): the largest l for which entropy l-diversity holds."""
    qis = ", ".join(quote(column) for column in quasi_identifiers)
    entropy = _scalar(
        con,
        f"""
        WITH counts AS (SELECT {qis}, {quote(attribute)}, count(*) AS n FROM release GROUP BY ALL),
        shares AS (SELECT {qis}, n / sum(n) OVER (PARTITION BY {qis}) AS p FROM counts)
        SELECT min(h) FROM (SELECT -sum(p * ln(p)) AS h FROM shares GROUP BY {qis})
        """,
    )
    return float(math.exp(entropy))


def _check_l(attribute: str, l: int, variant: str, distinct: int, entropy_l: float) -> list[Reason]:  # noqa: E741
    if variant == "entropy":
        if entropy_l + 1e-9 >= l:
            return []
        return [
            Reason(
                "l_violation",
                f"「{attribute}」のばらつき（エントロピーl）が {entropy_l:.2f} のグループがあります（l={l} 未満）。",
                f"A class has entropy-l {entropy_l:.2f} for {attribute} (l={l} required).",
            )
        ]
    if distinct >= l:
        return []
    return [
        Reason(
            "l_violation",
            f"「{attribute}」が {distinct} 種類しかないグループがあります（l={l} 未満）。",
            f"A class has only {distinct} distinct values of {attribute} (l={l} required).",
        )
    ]
