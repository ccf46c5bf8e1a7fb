"""Per-upload reports for city staff: HTML in Japanese (English below each part) and the same as JSON.

:func:`render_report` groups a :class:`~expectations.validate.ValidationResult`'s findings by problem
(error code × column): count, a plain explanation, the fix hint, the first examples with their line numbers
and the value as written. It adds what intake rewrote automatically and intake's notices. Cell values are
hostile input: the jinja2 environment autoescapes everything and the page allows no script (CSP).

:func:`build_data_docs` writes the office's page of a validation (every GE expectation and its result) from the
stored GE result JSON, in place of GE's own Data Docs site.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from expectations.times import format_jst
from kouiki.validation_errors import ERROR_TYPES, ErrorType, error_type

if TYPE_CHECKING:  # importing validate would import GE (seconds): rendering a report does not need it
    from expectations.validate import ValidationResult

TEMPLATES = Path(__file__).parent / "templates"
EXAMPLES_PER_PROBLEM = 20
_UPLOAD_CITY = re.compile(r"^(\d{6})-")

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
    "kana-long-vowel": ("カタカナの後の「-」を長音「ー」に（センタ- → センター）",
                        "a hyphen after katakana written as the long-vowel mark ー"),
    "address-prefix-added": ("住所の前に都道府県名・市区町村名を補った（団体コードから）",
                             "prefecture and municipality added in front of the address (from the code)"),
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


def city_code_of(upload_id: str | None) -> str | None:
    """The city code an upload id starts with (``132195-ac0f…`` → ``132195``)."""
    match = _UPLOAD_CITY.match(upload_id or "")
    return match.group(1) if match else None


def render_report(result: ValidationResult, *, file_name: str, city_name: str, dataset_name_ja: str,
                  normalisations: dict[str, dict[str, int]],
                  notices: list[dict[str, Any]], received_at: datetime | None = None) -> tuple[str, dict]:
    """The upload's report as (HTML, JSON-able dict); both carry the same content."""
    report = {
        "upload_id": result.upload_id,
        "file_name": file_name,
        "city_name": city_name,
        "city_code": city_code_of(result.upload_id),
        "received_at": format_jst(received_at),
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


def render_refusal(error: dict[str, Any], *, upload_id: str, file_name: str, city_name: str,
                   received_at: datetime | None = None) -> tuple[str, dict]:
    """The page of an upload that was refused before validation (cannot be read, header only, formulas, another
    city's rows …): the reason, the line, how to fix it. (HTML, JSON-able dict)."""
    words = {k: str(error.get(k) or "") for k in ("code", "message_ja", "message_en", "hint_ja", "hint_en")}
    report = {"upload_id": upload_id, "file_name": file_name, "city_name": city_name,
              "city_code": city_code_of(upload_id), "received_at": format_jst(received_at),
              "refused": True, "error": {**words, "line": error.get("line")}}
    return _environment.get_template("refusal.html.j2").render(r=report), report


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
        hint_ja=pl.first("hint_ja"), hint_en=pl.first("hint_en"), hints=pl.col("hint_ja").n_unique(),
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
        # one hint for the group; when its rows each have their own (a date's own month), the catalogue's
        "hint_ja": group["hint_ja"] if group["hints"] <= 1 else kind.hint_ja.format(column=group["column"] or ""),
        "hint_en": group["hint_en"] if group["hints"] <= 1 else kind.hint_en.format(column=group["column"] or ""),
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


DATA_DOCS_LEFTOVERS = ("validations", "expectations", "static")   # what GE's own site builder wrote here
# expectation arguments worth showing beside its name (the column and batch id are shown elsewhere)
_SHOWN_KWARGS = ("regex", "value_set", "min_value", "max_value", "column_B", "or_equal")


def build_data_docs(ge_result: dict[str, Any], out_dir: Path, *, run_name: str = "upload") -> Path:
    """The office's page of one validation, from GE's stored result JSON: ``out_dir/index.html`` (returned) and
    the result itself as ``out_dir/validation.json``.

    This replaces GE's own Data Docs site, whose pages fail WCAG (no language, broken list and tab roles) and
    load their styles from a CDN: the same content (every expectation, its column, success, unexpected and
    missing counts) as one self-contained, accessible page that needs no network and no GE import."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in DATA_DOCS_LEFTOVERS:     # an older GE site here would be stale and inaccessible
        shutil.rmtree(out_dir / leftover, ignore_errors=True)
    html = _environment.get_template("data_docs.html.j2").render(d=data_docs_content(ge_result, run_name))
    _write_text(out_dir / "validation.json", json.dumps(ge_result, ensure_ascii=False, indent=1, default=str))
    index = out_dir / "index.html"
    _write_text(index, html)
    return index


def data_docs_content(ge_result: dict[str, Any], run_name: str) -> dict[str, Any]:
    """What the office's page shows: the run, its figures and one line per expectation, failures first."""
    suite = str(ge_result.get("suite_name", ""))
    dataset_id = suite.split(".")[1] if suite.count(".") >= 1 else suite
    stats = ge_result.get("statistics") or {}
    rows = [_expectation_line(r) for r in ge_result.get("results") or []]
    rows.sort(key=lambda e: (e["success"], e["column"]))
    percent = stats.get("success_percent")
    return {
        "dataset_id": dataset_id, "dataset_name": _dataset_name(dataset_id), "suite_name": suite,
        "run_name": run_name, "cities": _city_names(run_name), "success": bool(ge_result.get("success")),
        "evaluated": stats.get("evaluated_expectations", len(rows)),
        "successful": stats.get("successful_expectations", sum(e["success"] for e in rows)),
        "success_percent": "" if percent is None else f"{percent:.1f}%",
        "ge_version": (ge_result.get("meta") or {}).get("great_expectations_version", ""),
        "generated": format_jst(datetime.now(UTC)), "expectations": rows,
    }


def _expectation_line(result: dict[str, Any]) -> dict[str, Any]:
    config = result.get("expectation_config") or {}
    kwargs, meta, counts = config.get("kwargs") or {}, config.get("meta") or {}, result.get("result") or {}
    code = str(meta.get("error_code", ""))
    kind = ERROR_TYPES.get(code)
    column = kwargs.get("column") or kwargs.get("column_A") or meta.get("column") or ""
    detail = ", ".join(f"{k}={kwargs[k]}" for k in _SHOWN_KWARGS if k in kwargs)
    return {
        "success": bool(result.get("success")), "column": str(column), "code": code,
        "title_ja": kind.title_ja if kind else "", "title_en": kind.title_en if kind else "",
        "type": str(config.get("type", "")), "detail": detail,
        "unexpected": _count(counts.get("unexpected_count"), counts.get("unexpected_percent")),
        "missing": _count(counts.get("missing_count"), counts.get("missing_percent")),
        "elements": "" if counts.get("element_count") is None else f"{counts['element_count']:,}",
    }


def _count(n: Any, percent: Any) -> str:
    if n is None:
        return ""
    return f"{n:,}" + (f"（{percent:.1f}%）" if isinstance(percent, int | float) and n else "")


def _dataset_name(dataset_id: str) -> str:
    from expectations.registry import default_registry

    try:
        return default_registry().get(dataset_id).name_ja
    except Exception:  # a suite of a dataset no longer in the registry: its id is its name
        return dataset_id


def _city_names(run_name: str) -> str:
    """The city an upload id or a batch id names, as ``狛江市 132195`` (empty when it names none)."""
    from kouiki.localgov import lookup

    code = city_code_of(run_name.removeprefix("batch-"))
    if code is None:
        return ""
    known = lookup(code)
    name = (known.city or known.prefecture) if known else ""
    return f"{name} {code}".strip() + (" ほか / and others" if run_name.startswith("batch-") else "")


def _write_text(target: Path, text: str) -> None:
    """Write atomically: the office never opens half a page."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
