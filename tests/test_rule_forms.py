"""Each validation rule is written once (issue 18): one :class:`~expectations.suites.Check` per rule, its two forms
— the Great Expectations expectation and the SQL predicate of its failing rows — generated from the same entry
of ``RULE_FORMS``. Checked for every dataset of the shipped registry, and on the real files of the demo and the
shared samples: GE's unexpected counts *and the rows GE lists* equal what the SQL predicates find, per rule."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import duckdb
import pytest

from expectations.registry import load_registry
from expectations.suites import RULE_FORMS, CheckKind, build_checks, count_failing
from expectations.validate import validate_table
from intake.headers import header_score
from intake.process import choose_dataset, stage_table
from intake.read import read_file
from warehouse.staged_db import RAW_TABLE, STAGED_TABLE, write_staged_db

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples"
REGISTRY = load_registry()


def test_every_kind_of_check_has_both_forms() -> None:
    assert set(RULE_FORMS) == set(get_args(CheckKind))


@pytest.mark.parametrize("dataset_id", sorted(REGISTRY.datasets))
def test_every_rule_of_every_schema_yields_an_expectation_and_sql(dataset_id: str, tmp_path: Path) -> None:
    dataset = REGISTRY.get(dataset_id)
    checks = build_checks(dataset)
    assert checks
    for check in checks:
        expectation = check.expectation()
        kwargs = expectation.configuration.kwargs
        assert expectation.meta["check_id"] == check.id
        assert check.column in {kwargs.get("column"), kwargs.get("column_A"), *(kwargs.get("column_list") or [])}
        sql = check.failing_sql("t")
        # "exists" is about the header (intake reports a missing column): no row can fail it
        assert (sql is None) == (check.kind == "exists"), check
    # every predicate runs in DuckDB on a table of the dataset's columns (one row, every cell empty)
    columns = ", ".join(f'NULL::VARCHAR AS "{c.name}"' for c in dataset.canonical.columns)
    with duckdb.connect(str(tmp_path / "t.duckdb")) as con:
        con.execute(f"CREATE TABLE t AS SELECT {columns}")
        counts = count_failing(con, "t", checks)
    assert set(counts) == {c.id for c in checks if c.kind != "exists"}


def _real_files() -> list[Path]:
    """One real file per dataset: the demo's, then the shared samples' (when present beside the worktree)."""
    files = sorted((REPO / "demo" / "uploads").rglob("*.csv"))
    files += sorted(SAMPLES.glob("*.csv")) if SAMPLES.is_dir() else []
    return files


@pytest.fixture(scope="module")
def staged_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, Path]]:
    """(file name, dataset id, staged DuckDB file) for one real file per dataset."""
    out, seen = [], set()
    folder = tmp_path_factory.mktemp("staged")
    for path in _real_files():
        raw = read_file(path, header_scorer=lambda h: header_score(h, REGISTRY))
        try:
            match = choose_dataset(raw, REGISTRY, file_name=path.name)
        except Exception:   # a sample that fits no dataset (e.g. a kindergarten list of another layout)
            continue
        if match.dataset_id in seen:
            continue
        seen.add(match.dataset_id)
        staged = stage_table(raw, REGISTRY.get(match.dataset_id), match)
        db = folder / f"{path.stem}.duckdb"
        write_staged_db(db, staged.values, staged.raw)
        out.append((path.name, match.dataset_id, db))
    return out


def test_ge_and_sql_find_the_same_rows_on_real_files(staged_files: list[tuple[str, str, Path]]) -> None:
    assert len(staged_files) >= 3
    failing_rules = 0
    for name, dataset_id, db in staged_files:
        dataset = REGISTRY.get(dataset_id)
        checks = build_checks(dataset)
        # GE lists every failing row itself (no SQL gap-closing) …
        by_ge = validate_table(db, STAGED_TABLE, dataset, raw_table=RAW_TABLE, ge_row_limit=1_000_000)
        assert by_ge.gaps == [], name
        # … and the SQL predicates alone
        by_sql = validate_table(db, STAGED_TABLE, dataset, raw_table=RAW_TABLE, with_ge=False)
        with duckdb.connect(str(db), read_only=True) as con:
            sql_counts = count_failing(con, STAGED_TABLE, checks)
        ge_counts = {e.check_id: e.unexpected_count for e in by_ge.expectations if e.check_id in sql_counts}
        assert ge_counts == sql_counts, name
        order = ["row", "column", "error_code"]
        assert by_ge.findings.sort(order).equals(by_sql.findings.sort(order)), name
        assert (by_ge.decision, by_ge.n_failing) == (by_sql.decision, by_sql.n_failing), name
        failing_rules += sum(1 for n in sql_counts.values() if n)
    assert failing_rules >= 3   # the real files do break rules: the comparison is not of zeros only

