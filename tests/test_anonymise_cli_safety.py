"""`kouiki anonymise` on hostile and broken input, run through the real CLI (typer): the input is never
overwritten or deleted, the report is written on every outcome, errors are one clear line, the platform floors
apply, formulas are neutralised and rows are shuffled."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from anonymise.cli_entry import anonymise_csv
from anonymise.hierarchy import interval_hierarchy
from anonymise.identifiers import is_valid_mynumber
from anonymise.synthetic import generate_care_records
from commands.cli import app

SEX_CSV = Path(__file__).parents[1] / "config" / "anonymisation" / "hierarchies" / "sex.csv"


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, list[str]]:
    """1,500 records with exact ages, 性別, 要介護度 and identifiers (氏名, 個人番号, 電話番号)."""
    source = generate_care_records("222127", 1_500, seed=5)
    ages = (2025 - source["生年月日"].dt.year()).clip(60, 99)
    table = source.select("氏名", "個人番号", "電話番号", "性別", "要介護度").with_columns(年齢=ages.cast(pl.String))
    data = tmp_path / "input.csv"
    table.write_csv(data)
    age = tmp_path / "age.csv"
    interval_hierarchy("年齢", list(range(60, 100)), (5, 10)).to_arx_csv(age, delimiter=";")
    return data, ["--qi", f"年齢={age}", "--qi", f"性別={SEX_CSV}"]


def run(data: Path, qis: list[str], out: Path, report: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["anonymise", str(data), *qis, "--k", "5", *extra, "--out", str(out),
                                      "--report", str(report)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink", "hardlink"])
def test_out_naming_the_input_is_refused_and_the_input_kept(
    tmp_path: Path, inputs: tuple[Path, list[str]], spelling: str
) -> None:
    data, qis = inputs
    before = data.read_bytes()
    out = {"same": data, "dotted": tmp_path / "sub" / ".." / data.name, "symlink": tmp_path / "link.csv",
           "hardlink": tmp_path / "hard.csv"}[spelling]
    if spelling == "symlink":
        out.symlink_to(data)
    if spelling == "hardlink":
        os.link(data, out)
    (tmp_path / "sub").mkdir(exist_ok=True)
    report = tmp_path / "report.json"
    code, output = run(data, qis, out, report, "--sensitive", "要介護度", "--l", "2")
    assert code == 2 and "--out" in output and "input" in output
    assert data.read_bytes() == before  # neither overwritten (success) nor deleted (failure)
    assert json.loads(report.read_text(encoding="utf-8"))["failure"]["code"] == "unsafe_path"


def test_report_naming_the_input_is_refused_without_writing(tmp_path: Path, inputs: tuple[Path, list[str]]) -> None:
    data, qis = inputs
    before = data.read_bytes()
    code, output = run(data, qis, tmp_path / "out.csv", data)
    assert code == 2 and "--report" in output
    assert data.read_bytes() == before and not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbf\r\n", "empty"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\x00\x00\x00", "not UTF-8 or CP932"),
        (b"\x81\x20\x85\x40\xef\xbf", "not UTF-8 or CP932"),
        (None, "not found"),
        ("folder", "folder"),
    ],
)
def test_unreadable_input_gives_one_clear_line_and_a_report(
    tmp_path: Path, inputs: tuple[Path, list[str]], content: bytes | str | None, words: str
) -> None:
    _, qis = inputs
    data = tmp_path / "broken.csv"
    if content == "folder":
        data.mkdir()
    elif isinstance(content, bytes):
        data.write_bytes(content)
    report = tmp_path / "report.json"
    code, output = run(data, qis, tmp_path / "out.csv", report)
    assert code == 2 and "Traceback" not in output
    assert words in output.replace("\n", " ")
    written = json.loads(report.read_text(encoding="utf-8"))
    assert written["failure"]["code"] == "input_unreadable" and words in written["failure"]["en"]
    assert not (tmp_path / "out.csv").exists()


def test_a_bad_qi_option_and_a_bad_hierarchy_still_write_the_report(
    tmp_path: Path, inputs: tuple[Path, list[str]]
) -> None:
    data, qis = inputs
    report = tmp_path / "report.json"
    code, output = run(data, ["--qi", "年齢"], tmp_path / "out.csv", report)
    assert code == 2 and "COL=HIERARCHY.csv" in output
    assert json.loads(report.read_text(encoding="utf-8"))["failure"]["code"] == "bad_qi_option"
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("男;*\n女;x;*\n", encoding="utf-8")
    report.unlink()
    code, _ = run(data, [*qis[:2], "--qi", f"性別={ragged}"], tmp_path / "out.csv", report)
    assert code == 2
    assert json.loads(report.read_text(encoding="utf-8"))["failure"]["code"] == "hierarchy_error"


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        (["--k", "2"], "floor.k"),
        (["--sensitive", "要介護度"], "floor.l"),
        (["--sensitive", "要介護度", "--l", "2", "--max-suppression", "40"], "floor.max_suppression"),
        (["--sensitive", "個人番号", "--l", "2"], "identifier.published"),
        (["--sensitive", "電話番号", "--l", "2"], "identifier.published"),
    ],
)
def test_weak_calls_are_blocked_naming_the_rule(
    tmp_path: Path, inputs: tuple[Path, list[str]], extra: list[str], rule: str
) -> None:
    data, qis = inputs
    out, report = tmp_path / "out.csv", tmp_path / "report.json"
    code, output = run(data, qis, out, report, *extra)
    assert code == 2 and rule in output
    written = json.loads(report.read_text(encoding="utf-8"))
    assert written["released"] is False and rule in [r["code"] for r in written["blocked_by_rules"]]
    assert not out.exists()
    if "個人番号" in extra:  # `--sensitive 個人番号` must not release the numbers anywhere
        numbers = set(pl.read_csv(data, infer_schema=False)["個人番号"])
        for path in tmp_path.rglob("*"):
            if path.is_file() and path != data:
                assert not numbers & set(re.findall(r"\d{12}", path.read_text(encoding="utf-8", errors="ignore")))


def test_an_area_declared_sensitive_is_blocked(tmp_path: Path) -> None:
    source = generate_care_records("122033", 800, seed=2)
    data = tmp_path / "input.csv"
    source.select("性別", "町字", "要介護度").write_csv(data)
    out, report = tmp_path / "out.csv", tmp_path / "report.json"
    result = anonymise_csv(data, {"性別": SEX_CSV}, ["町字"], 5, 2, 5, out, report)
    assert result["failure"]["code"] == "qi.outsider_knowable" and "町字" in result["failure"]["ja"]
    assert not out.exists()


def test_formula_cells_are_neutralised_and_rows_shuffled(tmp_path: Path) -> None:
    """Care levels replaced by spreadsheet formulas come out with a leading quote; the output order is not the
    input order (the input is sorted), and the seed in the report reproduces the same bytes."""
    source = generate_care_records("222127", 1_200, seed=9)
    formulas = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "plain"]
    table = (
        source.select("性別")
        .with_columns(年齢=(2025 - source["生年月日"].dt.year()).clip(60, 99).cast(pl.String))
        .with_columns(要介護度=pl.Series(formulas * 200))
        .sort("年齢", "性別", "要介護度")
    )
    data = tmp_path / "input.csv"
    table.write_csv(data)
    age = tmp_path / "age.csv"
    interval_hierarchy("年齢", list(range(60, 100)), (5, 10)).to_arx_csv(age, delimiter=";")
    qis = {"年齢": age, "性別": SEX_CSV}
    out, report = tmp_path / "out.csv", tmp_path / "report.json"
    result = anonymise_csv(data, qis, ["要介護度"], 5, 2, 5, out, report, seed=123)
    assert result["released"] is True, result["failure"]
    written = pl.read_csv(out, infer_schema=False)
    assert set(written["要介護度"]) == {"'" + f if f[0] in "=+-@\t" else f for f in formulas}
    assert not any(cell[0] in "=+-@\t\r" for cell in written["要介護度"])
    assert written["要介護度"].to_list() != sorted(written["要介護度"].to_list())
    assert written.rows() != written.sort(written.columns).rows()
    assert result["row_order"]["seed"] == 123
    again = tmp_path / "again.csv"
    anonymise_csv(data, qis, ["要介護度"], 5, 2, 5, again, tmp_path / "r2.json", seed=123)
    assert again.read_bytes() == out.read_bytes()
    other = tmp_path / "other.csv"
    anonymise_csv(data, qis, ["要介護度"], 5, 2, 5, other, tmp_path / "r3.json", seed=124)
    assert other.read_bytes() != out.read_bytes()
    lines = [sorted(path.read_text(encoding="utf-8").splitlines()) for path in (other, out)]
    assert lines[0] == lines[1]  # the same rows, in another order


def test_a_released_file_holds_no_mynumber_of_the_input(tmp_path: Path, inputs: tuple[Path, list[str]]) -> None:
    data, qis = inputs
    out, report = tmp_path / "out.csv", tmp_path / "report.json"
    code, output = run(data, qis, out, report, "--sensitive", "要介護度", "--l", "2")
    assert code == 0, output
    text = out.read_text(encoding="utf-8")
    assert not [n for n in re.findall(r"\d{12}", text) if is_valid_mynumber(n)]
    assert json.loads(report.read_text(encoding="utf-8"))["row_order"]["seed"] is not None
