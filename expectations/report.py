"""Per-upload reports for city staff: HTML in Japanese (English below each part) and the same as JSON.

:func:`render_report` groups a :class:`~expectations.validate.ValidationResult`'s findings by problem
(error code × column): count, a plain explanation, the fix hint, the first examples with their line numbers
and the value as written. It adds what intake rewrote automatically and intake's notices. Cell values are
hostile input: the jinja2 environment autoescapes everything and the page allows no script (CSP).

:func:`build_data_docs` writes GE's own Data Docs site for the office from the stored GE result JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from expectations.errors import ERROR_TYPES, ErrorType, error_type

if TYPE_CHECKING:  # importing validate would import GE (seconds): rendering a report does not need it
    from expectations.validate import ValidationResult

TEMPLATES = Path(__file__).parent / "templates"
EXAMPLES_PER_PROBLEM = 20

# intake.values rule names → what they did, in words for staff (unknown rules show their name)
NORMALISATION_WORDS: dict[str, tuple[str, str]] = {
    "whitespace-stripped": ("前後の空白を削除", "removed surrounding spaces"),
    "fullwidth-digits": ("全角の数字・記号を半角に変換", "full-width digits and signs made half-width"),
    "fullwidth-ascii": ("全角の英数字・記号を半角に変換", "full-width letters and signs made half-width"),
    "date-separators": ("日付の区切り（/ や .）を YYYY-MM-DD に統一",
                        "dates like 2021/12/1 written as YYYY-MM-DD"),
    "kanji-date": ("「2021年12月1日」形式の日付を YYYY-MM-DD に変換", "dates like 2021年12月1日 converted"),
    "wareki-date": ("和暦（令和・平成など）を西暦に変換",
                    "Japanese era dates converted to the Western calendar"),
    "wareki-out-of-era": ("元号が終わった後の和暦日付を西暦に変換（要確認）",
                          "era dates after the era ended converted (please check)"),
    "excel-serial-date": ("Excel の日付番号（例：45016）を日付に変換",
                          "Excel serial numbers converted to dates"),
    "compact-date": ("8桁の日付（20230331）を YYYY-MM-DD に変換", "dates like 20230331 converted"),
    "us-date": ("月/日/年 の日付を YYYY-MM-DD に変換", "month/day/year dates converted"),
    "us-date-by-column": ("月/日/年 と判断した日付を変換（要確認）",
                          "dates read as month/day/year (please check)"),
    "datetime-to-date": ("日時から日付だけを取り出し", "date taken from a date-time"),
    "weekday-removed": ("日付の後ろの曜日を削除", "weekday after the date removed"),
    "time-padded": ("時刻を2桁にそろえた（8:30 → 08:30）", "times padded to two digits (8:30 → 08:30)"),
    "time-seconds-dropped": ("時刻の秒を削除", "seconds dropped from times"),
    "kanji-time": ("「8時30分」形式の時刻を hh:mm に変換", "times like 8時30分 converted"),
    "ampm-time": ("午前・午後の時刻を24時間制に変換", "a.m./p.m. times converted to the 24-hour clock"),
    "excel-serial-time": ("Excel の時刻の数値を hh:mm に変換", "Excel time numbers converted"),
    "compact-time": ("4桁の時刻（0830）を hh:mm に変換", "times like 0830 converted"),
    "phone-label-removed": ("電話番号の前の「TEL」などを削除", "labels like TEL removed from phone numbers"),
    "phone-spaces": ("電話番号の空白をハイフンに変換", "spaces in phone numbers replaced by hyphens"),
    "postal-mark-removed": ("郵便番号の「〒」を削除", "the 〒 mark removed"),
    "postal-hyphen-removed": ("郵便番号のハイフンを削除", "hyphen removed from postal codes"),
    "postal-leading-zero-restored": ("郵便番号の先頭の0を補った", "leading zero of postal codes restored"),
    "flag-yes": ("「○」「有」などを 1 に変換", "○, 有 etc. written as 1"),
    "flag-no": ("「×」「無」などを空欄に変換", "×, 無 etc. written as empty"),
    "negative-mark": ("▲・△ をマイナスに変換", "▲/△ written as a minus sign"),
    "thousands-separator": ("数値の桁区切りのカンマを削除", "thousands separators removed"),
    "plus-sign-removed": ("数値の先頭の + を削除", "leading + removed"),
    "decimal-point": ("小数点の書き方をそろえた（.5 → 0.5）", "decimal points normalised (.5 → 0.5)"),
    "integer-decimal-zero": ("整数の「.0」を削除", "'.0' removed from whole numbers"),
    "numeric-text": ("数値として保存されたコードを文字に戻した", "codes stored as numbers written as text"),
    "url-scheme-lowercased": ("URL の先頭（HTTP://）を小文字に", "URL scheme lower-cased"),
    "mailto-removed": ("メールアドレスの「mailto:」を削除", "mailto: removed"),
    "halfwidth-kana": ("半角カタカナを全角に変換", "half-width katakana made full-width"),
    "hiragana-to-katakana": ("ひらがなをカタカナに変換", "hiragana written as katakana"),
    "placeholder-emptied": ("「－」など「なし」を表す記号を空欄に（標準では空欄）",
                            "dashes standing for 'none' made empty (the standard's none)"),
    "phone-note-removed": ("電話番号に添えられた課名などの注記を除き、番号だけに",
                           "notes beside a phone number (a department's name) removed"),
    "phone-extension": ("内線番号を「 内線123」の形にそろえた", "extensions written as ' 内線123'"),
    "phone-international": ("+81 の番号を国内の書き方（0から）に", "+81 numbers written the domestic way"),
    "swapped-coordinates": ("入れ替わっていた緯度と経度を入れ替えて公開", "swapped latitude/longitude swapped back"),
    "swapped-coordinates-emptied": ("緯度と経度が逆の行の座標を空欄にして公開",
                                    "coordinates of rows with latitude/longitude swapped left empty"),
}

SEVERITY_WORDS = {
    ("error", "cell"): ("要修正：この行は公開していません", "must fix: the row is withheld"),
    ("error", "row"): ("要修正：この行は公開していません", "must fix: the row is withheld"),
    ("error", "file"): ("要修正：ファイル全体を受け付けません", "must fix: the file is not accepted"),
    ("warning", "cell"): ("確認のお願い：行は公開しています", "please check: the row is published"),
    ("warning", "row"): ("確認のお願い", "please check"),
    ("warning", "file"): ("確認のお願い", "please check"),
}

_environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                           trim_blocks=True, lstrip_blocks=True)


def render_report(result: ValidationResult, *, file_name: str, city_name: str, dataset_name_ja: str,
                  normalisations: dict[str, dict[str, int]],
                  notices: list[dict[str, Any]]) -> tuple[str, dict]:
    """The upload's report as (HTML, JSON-able dict); both carry the same content."""
    report = {
        "upload_id": result.upload_id,
        "file_name": file_name,
        "city_name": city_name,
        "dataset": {"id": result.dataset_id, "name_ja": dataset_name_ja},
        "summary": _summary(result),
        "counts_by_code": result.counts_by_code,
        "problems": _problems(result.findings),
        "normalisations": _normalisations(normalisations),
        "notices": [_notice(n) for n in notices],
        "gaps": [vars(g) for g in result.gaps],
    }
    html = _environment.get_template("report.html.j2").render(r=report)
    return html, report


def _summary(result: ValidationResult) -> dict[str, Any]:
    rejected = result.decision == "reject"
    ja, en = decision_words(result)
    return {
        "rows_total": result.row_count,
        "rows_accepted": 0 if rejected else result.n_accepted,
        "rows_quarantined": result.row_count if rejected else result.n_failing,
        "rows_failing": result.n_failing,
        "rows_with_warnings": 0 if rejected else result.rows_with_warnings,
        "warnings": result.n_warnings,
        "pass_rate": result.pass_rate,
        "decision": result.decision,
        "decision_reason": result.decision_reason,
        "decision_ja": ja,
        "decision_en": en,
    }


def decision_words(result: ValidationResult) -> tuple[str, str]:
    """The decision in plain Japanese and English."""
    total, failing, accepted = result.row_count, result.n_failing, result.n_accepted
    share, limit = (failing / total if total else 0.0), result.policy.reject_above
    match result.decision_reason:
        case "no-failing-rows":
            return (f"すべての行（{total}行）を受け付け、公開します。{_warned_ja(result)}",
                    f"All {total} rows were accepted and are published.{_warned_en(result)}")
        case "failing-rows-set-aside":
            return (f"{accepted} 行を受け付けて公開し、公開すると誤解を招く誤りのある {failing} 行は保留しました。"
                    f"{_warned_ja(result)}下の一覧を見て直し、もう一度アップロードしてください。",
                    f"{accepted} rows were accepted and are published; {failing} rows with errors that would "
                    f"mislead were withheld.{_warned_en(result)} Fix them using the list below and upload again.")
        case "missing-required-column":
            return ("このデータセットで必ず必要とされる列がないため、このファイルは受け付けられませんでした。"
                    "列を追加してもう一度アップロードしてください。",
                    "A column this dataset insists on is missing, so the file was not accepted. Add it and "
                    "upload again.")
        case "no-rows":
            return ("データの行がないため、このファイルは受け付けられませんでした。",
                    "The file has no data rows, so it was not accepted.")
        case "policy-rejects-any-error":
            return (f"このデータセットは1行でも問題があるとファイル全体を受け付けない設定です。{failing} 行に"
                    "問題があるため、ファイルを受け付けられませんでした。",
                    f"This dataset accepts a file only without errors; {failing} rows have problems, so the "
                    "file was not accepted.")
        case "above-threshold":
            return (f"問題のある行が {share:.0%}（{failing}/{total} 行）あり、基準の {limit:.0%} を"
                    "超えたため、ファイル全体を受け付けられませんでした。",
                    f"{share:.0%} of rows ({failing}/{total}) have problems, above the limit of {limit:.0%}, "
                    "so the file was not accepted.")
    return (result.decision, result.decision)


def _warned_ja(result: ValidationResult) -> str:
    n = result.rows_with_warnings
    return f"そのうち {n} 行に確認のお願いがあります（行は公開しています）。" if n else ""


def _warned_en(result: ValidationResult) -> str:
    n = result.rows_with_warnings
    return f" {n} of them have warnings to check (they are published)." if n else ""


def _problems(findings: pl.DataFrame) -> list[dict[str, Any]]:
    """One entry per (error code, column, severity): count, words, first examples, every line number."""
    if findings.is_empty():
        return []
    grouped = findings.group_by(["error_code", "column", "severity"], maintain_order=True).agg(
        count=pl.len(),
        rows_affected=pl.col("row").drop_nulls().n_unique(),
        hint_ja=pl.first("hint_ja"), hint_en=pl.first("hint_en"),
        message_ja=pl.first("message_ja"), message_en=pl.first("message_en"),
        lines=pl.col("source_line").drop_nulls(),
        examples=pl.struct(line="source_line", row="row", raw_value="raw_value", value="value",
                           message_ja="message_ja", message_en="message_en")
        .filter(pl.col("row").is_not_null()).head(EXAMPLES_PER_PROBLEM),
    )
    problems = [_problem(g) for g in grouped.iter_rows(named=True)]
    # errors (rows withheld) first, then by weight
    return sorted(problems, key=lambda p: (p["severity"] != "error", -p["weight"], -p["count"], p["column"]))


def _problem(group: dict[str, Any]) -> dict[str, Any]:
    kind: ErrorType = error_type(group["error_code"])
    severity = group["severity"]          # the policy's, which may be stricter than the catalogue's
    severity_ja, severity_en = SEVERITY_WORDS[(severity, kind.scope)]
    file_level = kind.scope == "file"
    return {
        "error_code": kind.code, "column": group["column"], "severity": severity,
        "severity_ja": severity_ja, "severity_en": severity_en, "weight": kind.weight,
        "title_ja": kind.title_ja, "title_en": kind.title_en,
        # a file-level problem has no rows to list: its message is its explanation
        "explanation_ja": group["message_ja"] if file_level else kind.explanation_ja,
        "explanation_en": group["message_en"] if file_level else kind.explanation_en,
        "hint_ja": group["hint_ja"], "hint_en": group["hint_en"],
        "count": group["count"], "rows_affected": group["rows_affected"],
        "examples": group["examples"], "lines": group["lines"],
    }


def _normalisations(normalisations: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    rows = []
    for column, rules in normalisations.items():
        for rule, count in sorted(rules.items(), key=lambda item: -item[1]):
            if count:
                ja, en = NORMALISATION_WORDS.get(rule, (rule, rule))
                rows.append({"column": column, "rule": rule, "count": count,
                             "description_ja": ja, "description_en": en})
    return rows


def _notice(notice: dict[str, Any]) -> dict[str, Any]:
    """An intake notice with the catalogue's hint when its code is known."""
    known = ERROR_TYPES.get(str(notice.get("code", "")))
    out = {"code": notice.get("code"), "message_ja": notice.get("message_ja", ""),
           "message_en": notice.get("message_en", ""), "line": notice.get("line"),
           "column": notice.get("column"), "count": notice.get("count", 1),
           "hint_ja": notice.get("hint_ja") or (known.hint_ja.format(column=notice.get("column") or "")
                                                 if known else "")}
    return out


def build_data_docs(ge_result: dict[str, Any], out_dir: Path, *, run_name: str = "upload") -> Path:
    """GE Data Docs of one validation (from its stored result JSON) in ``out_dir``; returns index.html.

    Uses GE's own site builder on an ephemeral context: the result goes into the context's in-memory
    validation results store, and a filesystem site renders it (index, validation page, static assets).
    Imports GE lazily: rendering the staff report must not pay GE's import time.
    """
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResultSchema,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    import expectations.ge_custom  # noqa: F401  registers the custom expectations the pages render
    from expectations.ge_duckdb import ephemeral_context

    result = ExpectationSuiteValidationResultSchema().load(ge_result)
    context = ephemeral_context()
    out_dir = Path(out_dir).resolve()
    context.add_data_docs_site(site_name="office", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
        run_id=RunIdentifier(run_name=run_name), batch_identifier="staged")
    context.validation_results_store.set(key, result)
    context.build_data_docs(site_names=["office"])
    return out_dir / "index.html"
