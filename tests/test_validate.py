"""Validation of a staged table with Great Expectations on DuckDB: findings, GE vs SQL, gaps, policy.

The staged table is built here from 狛江市's real AED file (legacy layout, mapped to the current names by
hand, with the little normalisation intake would do), so these tests depend neither on the registry nor on
intake. A few rows are then broken on purpose, each in one known way.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

import duckdb
import jaconv
import polars as pl
import pytest
import yaml

from expectations.suites import (
    REGEX_BY_RULE,
    build_checks,
    count_failing,
    local_government_check_digit,
)
from expectations.validate import ValidationResult, decide, validate_table
from kouiki.model import Column, Dataset, Policy, Variant
from kouiki.phone import is_phone
from kouiki.validation_errors import ERROR_TYPES, RULES, describe

REPO = Path(__file__).resolve().parent.parent
STANDARDS = REPO / "expectations" / "standards"
# the byte-for-byte copy of the real 狛江市 file kept with the demo inputs (demo/SOURCES.md)
KOMAE = REPO / "demo" / "uploads" / "132195" / "komae_132195_aed.csv"

# The legacy AED header (推奨データセット) → current names (自治体標準オープンデータセット).
LEGACY_TO_CURRENT = {
    "都道府県コード又は市区町村コード": "全国地方公共団体コード", "NO": "ID", "名称": "名称",
    "名称_カナ": "名称_カナ", "住所": "所在地_連結表記", "方書": "建物名等(方書)", "緯度": "緯度",
    "経度": "経度", "設置位置": "設置位置",
    "電話番号": "電話番号", "内線番号": "内線番号", "法人番号": "法人番号", "団体名": "団体名",
    "利用可能曜日": "利用可能曜日", "開始時間": "開始時間", "終了時間": "終了時間",
    "利用可能日時特記事項": "利用可能日時特記事項", "小児対応設備の有無": "小児対応設備の有無", "URL": "URL",
    "備考": "備考",
}
# Refinements the registry makes over standards/aed.yaml's current variant (types the standard only
# describes in words; the 有/無 value set is the legacy definition's enum).
REFINED: dict[str, dict[str, Any]] = {
    "名称_カナ": {"type": "kana"}, "郵便番号": {"type": "postal_code"},
    "連絡先メールアドレス": {"type": "email"},
    "小児対応設備の有無": {"enum": ("有", "無", "")},
}
SCRIPT = "<script>alert('x')</script>"


def aed_dataset(policy: Policy | None = None) -> Dataset:
    """The AED dataset from standards/aed.yaml (current variant as canonical), built directly."""
    doc = yaml.safe_load((STANDARDS / "aed.yaml").read_text(encoding="utf-8"))
    variants = []
    for variant in doc["variants"]:
        columns = []
        for c in variant["columns"]:
            fields: dict[str, Any] = {"type": c.get("type", "string"), "required": bool(c.get("required")),
                                      "level": c.get("level", "unknown"),
                                      "enum": tuple(c["enum"]) if c.get("enum") else None}
            if variant["variant"] == "current":
                fields |= REFINED.get(c["name"], {})
            columns.append(Column(name=c["name"], **fields))
        variants.append(Variant(variant["variant"], tuple(columns)))
    return Dataset(id="aed", name_ja=doc["name_ja"], name_en=doc["name_en"], version="test",
                   variants=tuple(variants), lat_column="緯度", lon_column="経度", policy=policy or Policy(),
                   key_columns=("ID", "名称"))


def _normalise(column: str, text: str) -> str | None:
    """The bit of intake's normalisation these rows need (8:30 → 08:30, ｺﾏｴ → コマエ)."""
    text = text.strip()
    if not text:
        return None
    if column in ("開始時間", "終了時間") and len(text) == 4 and text[1] == ":":
        return "0" + text
    if column == "名称_カナ":
        return jaconv.h2z(text, kana=True, digit=False, ascii=False)
    return text


def komae_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(normalised rows, raw rows) of the 狛江市 file in current column names, with _row/_source_line."""
    canonical = [c.name for c in aed_dataset().canonical.columns]
    values, raws = [], []
    with KOMAE.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        for i, cells in enumerate(reader):
            raw: dict[str, Any] = dict.fromkeys(canonical)
            for name, cell in zip(header, cells, strict=True):
                if name in LEGACY_TO_CURRENT:
                    raw[LEGACY_TO_CURRENT[name]] = cell
            value = {k: (_normalise(k, v) if v is not None else None) for k, v in raw.items()}
            provenance = {"_source_line": reader.line_num, "_row": i}
            values.append(value | provenance)
            raws.append({k: (v if v else None) for k, v in raw.items()} | provenance)
    return values, raws


def break_rows(values: list[dict[str, Any]], raws: list[dict[str, Any]]) -> None:
    """Break a few rows, each in one way, in both the staged and the raw table."""
    def put(row: int, column: str, value: str | None) -> None:
        values[row][column] = value
        raws[row][column] = value

    put(2, "名称", None)                      # line 4: key-error (名称 is a key: the row is withheld)
    put(4, "ID", values[3]["ID"])             # lines 5 and 6: unique-error
    put(5, "全国地方公共団体コード", "132196")  # line 7: check-digit-error (a warning)
    lat, lon = values[6]["緯度"], values[6]["経度"]
    put(6, "緯度", lon)                        # line 8: swapped (intake not run here) → coordinate-error twice
    put(6, "経度", lat)
    put(7, "開始時間", "17:00")                 # line 9: cross-column warning (row accepted)
    put(7, "終了時間", "08:30")
    put(8, "電話番号", SCRIPT)                  # line 10: format-error (a warning) with a hostile value


def write_staged(path: Path, values: list[dict[str, Any]], raws: list[dict[str, Any]]) -> Path:
    """A DuckDB file with tables `staged` and `staged_raw` (all VARCHAR + _source_line, _row BIGINT)."""
    schema = {k: pl.String for k in values[0]} | {"_source_line": pl.Int64, "_row": pl.Int64}
    with duckdb.connect(str(path)) as con:
        for table, rows in (("staged", values), ("staged_raw", raws)):
            con.register("frame", pl.DataFrame(rows, schema=schema))
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM frame")
            con.unregister("frame")
    return path


@pytest.fixture(scope="module")
def komae_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    values, raws = komae_rows()
    break_rows(values, raws)
    return write_staged(tmp_path_factory.mktemp("komae") / "staged.duckdb", values, raws)


@pytest.fixture(scope="module")
def komae_result(komae_db: Path) -> ValidationResult:
    return validate_table(komae_db, "staged", aed_dataset(), raw_table="staged_raw", upload_id="up-1")


def _lines(result: ValidationResult, code: str, column: str) -> list[int]:
    hits = result.findings.filter((pl.col("error_code") == code) & (pl.col("column") == column))
    return sorted(hits["source_line"].to_list())


# --- the 狛江市 file -------------------------------------------------------------------------------

def test_phone_nashi_is_a_format_warning_on_its_line(komae_result: ValidationResult) -> None:
    hit = komae_result.findings.filter((pl.col("column") == "電話番号") & (pl.col("raw_value") == "なし"))
    assert hit.height == 1
    finding = hit.row(0, named=True)
    assert finding["source_line"] == 57          # the line of なし in the uploaded file
    assert finding["error_code"] == "format-error" and finding["severity"] == "warning"   # the row is published
    assert "「なし」" in finding["message_ja"] and "03-1234-5678" in finding["hint_ja"]
    assert finding["upload_id"] == "up-1"


def test_each_broken_row_gets_its_code(komae_result: ValidationResult) -> None:
    assert _lines(komae_result, "key-error", "名称") == [4]
    assert _lines(komae_result, "unique-error", "ID") == [5, 6]
    assert _lines(komae_result, "check-digit-error", "全国地方公共団体コード") == [7]
    assert _lines(komae_result, "coordinate-error", "緯度") == [8]
    assert _lines(komae_result, "coordinate-error", "経度") == [8]
    assert _lines(komae_result, "cross-column-error", "終了時間") == [9]
    assert _lines(komae_result, "format-error", "電話番号") == [10, 57]


def test_failing_and_accepted_rows(komae_result: ValidationResult) -> None:
    # errors: row 2 (no 名称), 3 and 4 (one ID twice), 6 (outside Japan); rows 5 (check digit), 7 (times in
    # the wrong order), 8 and 55 (not phone numbers) have warnings only and are published
    assert komae_result.failing_rows.to_list() == [2, 3, 4, 6]
    accepted = komae_result.accepted_rows().to_list()
    assert {5, 7, 8, 55} <= set(accepted) and len(accepted) == komae_result.row_count - 4 == 53
    assert komae_result.pass_rate == pytest.approx(53 / 57)
    assert komae_result.decision == "quarantine"
    assert komae_result.rows_with_warnings == 4
    errors = komae_result.findings.filter(pl.col("severity") == "error")
    assert sorted(errors["error_code"].unique()) == ["coordinate-error", "key-error", "unique-error"]


def test_raw_value_shown_beside_normalised(komae_result: ValidationResult) -> None:
    # 開始時間 8:30 was normalised to 08:30; the swapped time row shows both as written
    hit = komae_result.findings.filter(pl.col("error_code") == "cross-column-error").row(0, named=True)
    assert hit["value"] == "08:30" and hit["raw_value"] == "08:30"
    unique = komae_result.findings.filter(pl.col("error_code") == "unique-error")
    assert set(unique["value"]) == {"4"}


def test_counts_by_code_match_findings(komae_result: ValidationResult) -> None:
    counts = komae_result.counts_by_code
    assert counts == {"check-digit-error": 1, "coordinate-error": 2, "cross-column-error": 1,
                      "format-error": 2, "key-error": 1, "unique-error": 2}
    assert sum(counts.values()) == komae_result.findings.height


def test_findings_have_the_promised_columns(komae_result: ValidationResult) -> None:
    assert komae_result.findings.columns[:11] == [
        "upload_id", "source_line", "row", "column", "raw_value", "value", "error_code", "message_ja",
        "message_en", "hint_ja", "hint_en"]
    assert "severity" in komae_result.findings.columns
    assert komae_result.ge_result["suite_name"] == "kouiki.aed.test"
    assert set(komae_result.summary()) >= {"decision", "gaps", "expectations", "pass_rate"}


# --- GE on DuckDB equals plain SQL ---------------------------------------------------------------

def test_ge_counts_equal_direct_sql_on_komae(komae_db: Path, komae_result: ValidationResult) -> None:
    checks = build_checks(aed_dataset())
    with duckdb.connect(str(komae_db), read_only=True) as con:
        direct = count_failing(con, "staged", checks)
    ge = {e.check_id: e.unexpected_count for e in komae_result.expectations if e.check_id in direct}
    assert ge == direct
    assert sum(direct.values()) == komae_result.findings.height


def generated_db(path: Path, rows: int) -> Path:
    """A larger AED-shaped staged table where every kind of check fails at its own rate."""
    names = [c.name for c in aed_dataset().canonical.columns]
    generated = {
        "全国地方公共団体コード":
            "CASE WHEN i % 97 = 0 THEN '132196' WHEN i % 89 = 0 THEN '13219' ELSE '132195' END",
        "ID": "CASE WHEN i % 50 = 1 THEN 'dup' ELSE CAST(i AS VARCHAR) END",
        "名称": "CASE WHEN i % 31 = 0 THEN NULL ELSE '施設' || i END",
        "所在地_連結表記": "'東京都狛江市和泉本町一丁目' || i",
        "設置位置": "CASE WHEN i % 401 = 0 THEN NULL ELSE '1階' END",
        "緯度": "CASE WHEN i % 61 = 0 THEN '139.5' WHEN i % 67 = 0 THEN '35,6' "
                "ELSE '35.' || (600000 + i) END",
        "経度": "CASE WHEN i % 61 = 0 THEN '35.6' ELSE '139.' || (500000 + i) END",
        "電話番号": "CASE WHEN i % 7 = 0 THEN 'なし' WHEN i % 11 = 0 THEN NULL ELSE '03-3430-1111' END",
        "開始時間": "CASE WHEN i % 3 = 0 THEN NULL WHEN i % 41 = 0 THEN '9：00～17：00' ELSE '08:30' END",
        "終了時間": "CASE WHEN i % 13 = 0 THEN '07:00' ELSE '17:00' END",
        "小児対応設備の有無": "CASE WHEN i % 4 = 0 THEN 'あり' WHEN i % 5 = 0 THEN NULL ELSE '有' END",
        "URL": "CASE WHEN i % 23 = 0 THEN 'www.city.komae.tokyo.jp' "
               "ELSE 'https://www.city.komae.tokyo.jp/' END",
        "郵便番号": "CASE WHEN i % 9 = 0 THEN '182-0003' ELSE '1820003' END",
        "名称_カナ": "CASE WHEN i % 19 = 0 THEN 'ｺﾏｴ' ELSE 'コマエ' END",
        "高度の値": "CASE WHEN i % 29 = 0 THEN '2階' ELSE '1' END",
        "連絡先メールアドレス": "CASE WHEN i % 37 = 0 THEN 'info@komae' ELSE 'info@city.komae.lg.jp' END",
    }
    select = ", ".join(f"{generated.get(n, 'NULL')}::VARCHAR AS \"{n}\"" for n in names)
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE staged AS SELECT {select}, i + 2 AS _source_line, i AS _row "
                    f"FROM range({rows}) r(i)")
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_db(tmp_path_factory.mktemp("gen") / "gen.duckdb", 3000)


@pytest.fixture(scope="module")
def generated_result(generated: Path) -> ValidationResult:
    return validate_table(generated, "staged", aed_dataset())


def test_ge_counts_equal_direct_sql_on_generated_rows(generated: Path,
                                                      generated_result: ValidationResult) -> None:
    result = generated_result
    with duckdb.connect(str(generated), read_only=True) as con:
        direct = count_failing(con, "staged", build_checks(aed_dataset()))
    ge = {e.check_id: e.unexpected_count for e in result.expectations if e.check_id in direct}
    assert ge == direct
    failing = {k for k, v in direct.items() if v}
    assert len(failing) >= 12                    # the generator breaks nearly every kind of check
    per_check = result.findings.group_by(["error_code", "column"]).len()
    found = {f"{r['error_code']}:{r['column']}": r["len"] for r in per_check.iter_rows(named=True)}
    assert found == {k: v for k, v in direct.items() if v}


def test_gaps_are_the_expectations_ge_listed_short(generated: Path,
                                                   generated_result: ValidationResult) -> None:
    result = validate_table(generated, "staged", aed_dataset(), ge_row_limit=20)
    counts = {e.check_id: e.unexpected_count for e in result.expectations}
    gaps = {g.check_id: g for g in result.gaps}
    assert set(gaps) == {k for k, v in counts.items() if v > 20}
    assert {k for k, v in counts.items() if 0 < v <= 20}       # some were listed in full by GE …
    assert all(g.consistent and g.ge_rows_listed == 20 for g in gaps.values())   # … the rest by SQL
    # default: GE counts only, every failing expectation is closed with SQL
    assert {k for k, v in counts.items() if v} == {g.check_id for g in generated_result.gaps}


def test_connections_are_closed_after_validation(komae_db: Path, komae_result: ValidationResult) -> None:
    # a lingering GE connection would make DuckDB refuse this differently configured one
    with duckdb.connect(str(komae_db)) as con:
        assert con.execute("SELECT count(*) FROM staged").fetchone() == (komae_result.row_count,)


# --- policy ---------------------------------------------------------------------------------------

def test_policy_decision_rejects_above_threshold(komae_db: Path) -> None:
    strict = aed_dataset(Policy(on_error="quarantine", reject_above=0.05))     # 4/57 = 7 % withheld
    result = validate_table(komae_db, "staged", strict, raw_table="staged_raw")
    assert (result.decision, result.decision_reason) == ("reject", "above-threshold")
    assert decide(Policy(reject_above=0.5), 57, 7) == ("quarantine", "failing-rows-set-aside")
    assert decide(Policy(reject_above=0.5), 10, 5)[0] == "quarantine"         # at the limit: not above
    assert decide(Policy(reject_above=0.5), 10, 6)[0] == "reject"
    assert decide(Policy(on_error="reject"), 57, 1) == ("reject", "policy-rejects-any-error")
    assert decide(Policy(on_error="reject"), 57, 0) == ("accept", "no-failing-rows")
    assert decide(Policy(), 0, 0) == ("reject", "no-rows")


def test_clean_rows_are_accepted(tmp_path: Path) -> None:
    values, raws = komae_rows()
    clean = [i for i, v in enumerate(values) if v["電話番号"] != "なし"]
    db = write_staged(tmp_path / "clean.duckdb", [values[i] | {"_row": n} for n, i in enumerate(clean)],
                      [raws[i] | {"_row": n} for n, i in enumerate(clean)])
    result = validate_table(db, "staged", aed_dataset(), raw_table="staged_raw")
    assert result.findings.is_empty()
    assert (result.decision, result.pass_rate, result.n_accepted) == ("accept", 1.0, 56)


def test_header_problems_are_file_level_findings(komae_db: Path) -> None:
    headers: dict[str, Any] = {"missing_columns": ["画像1", "設置位置"], "extra_columns": ["都道府県名"],
               "missing_required": ["設置位置"]}
    result = validate_table(komae_db, "staged", aed_dataset(), **headers)
    files = result.findings.filter(pl.col("row").is_null())
    assert sorted(zip(files["error_code"], files["column"], files["severity"], strict=True)) == [
        ("extra-label", "都道府県名", "warning"), ("missing-label", "画像1", "warning"),
        ("missing-required-label", "設置位置", "warning")]
    # a missing 必須 column publishes the rows (the shipped default) …
    assert (result.decision, result.decision_reason) == ("quarantine", "failing-rows-set-aside")
    # … unless the dataset's policy lists it as strict: then the upload is refused
    strict = validate_table(komae_db, "staged", aed_dataset(Policy(strict_columns=("設置位置",))), **headers)
    assert (strict.decision, strict.decision_reason) == ("reject", "missing-required-column")


def test_policy_can_withhold_warnings(komae_db: Path) -> None:
    """``on_warning: withhold`` makes every row-level warning an error; ``strict_columns`` only its columns'."""
    withhold = validate_table(komae_db, "staged", aed_dataset(Policy(on_warning="withhold")),
                              raw_table="staged_raw")
    assert withhold.failing_rows.to_list() == [2, 3, 4, 5, 6, 7, 8, 55]
    assert set(withhold.findings.filter(pl.col("row").is_not_null())["severity"]) == {"error"}
    phones = validate_table(komae_db, "staged", aed_dataset(Policy(strict_columns=("電話番号",))),
                            raw_table="staged_raw")
    assert phones.failing_rows.to_list() == [2, 3, 4, 6, 8, 55]


def test_staged_table_missing_a_canonical_column_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "bad.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE staged AS SELECT '1' AS \"ID\", 0::BIGINT AS _row, "
                    "2::BIGINT AS _source_line")
    with pytest.raises(ValueError, match="名称"):
        validate_table(db, "staged", aed_dataset())


# --- the rules themselves ---------------------------------------------------------------------------

PHONES_VALID = ["03-3430-1111", "0120-123-456", "0120123456", "0570-003590", "0800-123-4567", "050-1234-5678",
                "090-1234-5678", "070-1234-5678", "080-1234-5678", "020-1234-5678", "01267-2-1234",
                "0466-22-1234", "(047)325-4758", "047(325)4758", "03-1234-5678 内線123"]
PHONES_INVALID = ["なし", "554-4111", "03-3430-111", "090-1234-567", "0800-123-456", "080-123-4567",
                  "050-123-4567", "00-1234-5678", "03-3430-1111・1112", "+81-3-3430-1111", "03--3430-1111"]


def test_phone_check_counts_digits_for_the_prefix(tmp_path: Path) -> None:
    """The validation's phone rule (GE and its SQL twin) takes every valid Japanese number and no other."""
    check = next(c for c in build_checks(aed_dataset()) if c.column == "電話番号" and c.kind == "phone")
    phones = PHONES_VALID + PHONES_INVALID
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t AS SELECT unnest(?) AS \"電話番号\"", [phones])
        failing = [r[0] for r in con.execute(f"SELECT \"電話番号\" FROM t WHERE {check.failing_sql('t')}").fetchall()]
    assert sorted(failing) == sorted(PHONES_INVALID)
    assert [p for p in PHONES_VALID if not is_phone(p)] == [] and [p for p in PHONES_INVALID if is_phone(p)] == []

def test_check_digit_matches_published_codes() -> None:
    common = yaml.safe_load((STANDARDS / "_common.yaml").read_text(encoding="utf-8"))
    codes = common["local_government_code"]["check_digit"]["verified_examples"]
    assert all(local_government_check_digit(code[:5]) == int(code[5]) for code in codes)
    assert local_government_check_digit("13219") == 5 and local_government_check_digit("13219") != 6


@pytest.mark.parametrize(("rule", "good", "bad"), [
    ("phone", ["03-3430-1111", "(047)325-4758", "0120-123-456", "0312345678", "03-3430-1111 内線2442"],
     ["なし", "554-4111", "０３-３４３０-１１１１", "03-3430-1111・1112", "03-3430-1111 内線"]),
    ("time", ["08:30", "00:00", "23:59", "24:00"], ["8:30", "9：00～17：00", "24:30", "08:30:00"]),
    ("date", ["2024-04-01", "1960-10-07"], ["2024/4/1", "45016", "R02.07.21", "2024-13-01"]),
    ("postal_code", ["1820003"], ["182-0003", "〒1820003", "182000"]),
    ("url", ["https://www.city.komae.tokyo.jp/index.cfm/42,73691,328,2043,html"],
     ["www.city.komae.tokyo.jp", "ATTACH\\a7a2.jpg", "https://"]),
    ("email", ["info@city.komae.lg.jp"], ["info@komae", "info＠city.komae.lg.jp"]),
    ("local-government-code", ["132195", "011002"], ["92011", "1321950", "13219５"]),
    ("number", ["35.63494013", "-1", "139"], ["35,6", "１３９", "35.", "北緯35度"]),
    ("integer", ["120", "-3"], ["50,700", "12.0", "120人"]),
    ("kana", ["コマエシヤクショ", "ダイイチ　ショウガッコウ", "シミンカツドウシエンセンター(コマエクボ)"],
     ["ｺﾏｴ", "こまえ", "ダイ１", "Komae"]),
])
def test_format_rules(rule: str, good: list[str], bad: list[str]) -> None:
    with duckdb.connect() as con:
        def matches(value: str) -> bool:
            row = con.execute("SELECT regexp_full_match(?, ?)", [value, REGEX_BY_RULE[rule]]).fetchone()
            return bool(row and row[0])

        assert [v for v in good if not matches(v)] == []
        assert [v for v in bad if matches(v)] == []


def test_every_check_has_catalogued_words() -> None:
    for check in build_checks(aed_dataset()):
        assert check.error_code in ERROR_TYPES and check.rule in RULES
        words = describe(check.error_code, check.rule, column=check.column, value="x",
                         other=check.other_column, values=check.value_set)
        assert check.column in words.message_ja and words.hint_ja and words.hint_en
    enum = describe("constraint-error", "enum", column="小児対応設備の有無", value="あり",
                    values=("有", "無"))
    assert enum.message_ja == "「小児対応設備の有無」の「あり」は「有」「無」のいずれかではありません。"


def test_suite_meta_maps_every_expectation_to_a_code() -> None:
    from expectations.suites import build_suite

    dataset = dataclasses.replace(aed_dataset())
    suite = build_suite(dataset)
    metas = [e.meta for e in suite.expectations]
    assert len(metas) == len(build_checks(dataset))
    assert all(m and m["error_code"] in ERROR_TYPES and m["column"] for m in metas)
    kinds = {type(e).__name__ for e in suite.expectations}
    assert {"ExpectColumnValuesToHaveValidLocalGovernmentCheckDigit", "ExpectColumnValuesAsNumberToBeBetween",
            "ExpectColumnValuesToBeUnique", "ExpectColumnPairValuesToBeInOrderWhereReadable"} <= kinds


# --- the two GE-on-DuckDB fixes are both needed (a canary for GE upgrades) ---------------------------

def test_without_persisted_connection_every_expectation_breaks(komae_db: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import great_expectations.execution_engine.sqlalchemy_execution_engine as ge_sql_engine

    from expectations import ge_duckdb

    monkeypatch.setattr(ge_duckdb, "install", lambda: None)
    monkeypatch.setattr(ge_sql_engine, "_PERSISTED_CONNECTION_DIALECTS", tuple(
        d for d in ge_sql_engine._PERSISTED_CONNECTION_DIALECTS if d != "duckdb"))
    with pytest.raises(RuntimeError, match="list index out of range"):
        validate_table(komae_db, "staged", aed_dataset())


def test_without_postgresql_regex_rendering_regexes_break(komae_db: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from expectations import ge_duckdb

    monkeypatch.setattr(ge_duckdb, "_render_regex_as_postgresql", lambda engine: None)
    with pytest.raises(RuntimeError, match="Regex is not supported for dialect duckdb"):
        validate_table(komae_db, "staged", aed_dataset())
