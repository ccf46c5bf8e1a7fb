"""The office's view of the conformance scoreboard (``marts.conformance_scoreboard``): a chart and a table.

After the scoreboard model is built, :func:`report_metadata` reads it and

- writes ``$KOUIKI_HOME/reports/office/scoreboard.html``: a city × dataset grid where each cell is coloured by
  the state of the city's newest upload and draws the share of valid rows over every upload (inline SVG, no
  script, no network), then the full table with the most frequent error to fix;
- returns Dagster metadata: the same table in Markdown with a text chart (bar + sparkline), the report's path,
  and a few headline numbers, so the asset's page in the Dagster UI shows the scoreboard directly.

City and file names are data: the page escapes everything (jinja2 autoescape) and forbids scripts (CSP).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import MetadataValue
from markupsafe import Markup

from expectations.times import format_jst
from kouiki.settings import Paths

if TYPE_CHECKING:
    import duckdb
    from jinja2 import Environment

SCOREBOARD_MODEL = "marts.conformance_scoreboard"
REPORT_PATH = Path("office") / "scoreboard.html"      # under $KOUIKI_HOME/reports
SPARK_CHARS = "▁▂▃▄▅▆▇█"
STATUS_COLOURS = {"accept": "#d8f0d8", "quarantine": "#fff2c6", "reject": "#f8d0d0", "missing": "#f3d6e8",
                  "not_declared": "#eeeeee"}
_COLUMNS = ("city_code", "city_name", "dataset_id", "dataset_name_ja", "declared", "has_file", "uploads",
            "last_file", "last_received_at", "last_decision", "rows", "rows_accepted", "rows_quarantined",
            "share_valid", "share_valid_change", "findings", "errors_by_code", "errors", "warnings", "top_issue",
            "top_warning", "share_valid_trend", "rows_in_lake", "status", "status_label")


@dataclass(frozen=True)
class ScoreRow:
    """One city × dataset line of the scoreboard."""

    city_code: str
    city_name: str
    dataset_id: str
    dataset_name_ja: str | None
    declared: bool
    has_file: bool
    uploads: int
    last_file: str | None
    last_received_at: datetime | None
    last_decision: str | None
    rows: int | None
    rows_accepted: int | None
    rows_quarantined: int | None
    share_valid: float | None
    share_valid_change: float | None
    findings: int | None
    errors_by_code: str | None
    errors: int | None              # cells with an error finding (rows withheld) in the newest upload
    warnings: int | None            # cells with a warning (rows published) in the newest upload
    top_issue: str | None
    top_warning: str | None
    share_valid_trend: list[float] | None
    rows_in_lake: int
    status: str
    status_label: str

    @property
    def by_code(self) -> dict[str, int]:
        return json.loads(self.errors_by_code) if self.errors_by_code else {}

    @property
    def received(self) -> str:
        """When the newest upload arrived, in Japan time and labelled (the catalog's times are UTC)."""
        return format_jst(self.last_received_at)


def load_scoreboard(con: duckdb.DuckDBPyConnection) -> list[ScoreRow]:
    """The built scoreboard, ordered by city and dataset."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM marts.conformance_scoreboard ORDER BY city_code, dataset_id"
    return [ScoreRow(*row) for row in con.execute(sql).fetchall()]


def report_metadata(con: duckdb.DuckDBPyConnection, paths: Paths) -> dict[str, Any]:
    """Write the office's HTML report and return the scoreboard's Dagster metadata."""
    rows = load_scoreboard(con)
    path = write_report(paths.reports / REPORT_PATH, rows)
    summary = headline(rows)
    metadata: dict[str, Any] = {
        "scoreboard": MetadataValue.md(scoreboard_markdown(rows)),
        "office_report": MetadataValue.path(str(path)),
        "office_report_url": MetadataValue.url(path.as_uri()),
        "member_cities": summary["cities"],
        "files_expected": summary["expected"],
        "files_missing": summary["missing"],
        "uploads_rejected": summary["rejected"],
        "cells_with_errors": summary["errors"],
        "cells_with_warnings": summary["warnings"],
    }
    if summary["share_valid"] is not None:
        metadata["region_share_valid"] = MetadataValue.float(summary["share_valid"])
    # one number per city: the UI's "Plots" tab then draws each city's quality over the runs
    for (code, name), share in city_shares(rows).items():
        metadata[f"share_valid {code} {name}"] = MetadataValue.float(share)
    return metadata


def headline(rows: list[ScoreRow]) -> dict[str, Any]:
    """Region-wide figures: cities, files expected / missing, rejected uploads, share of valid rows, cells with
    errors and with warnings."""
    checked = sum(r.rows or 0 for r in rows)
    valid = sum((r.share_valid or 0.0) * (r.rows or 0) for r in rows)
    return {
        "cities": len({r.city_code for r in rows}),
        "expected": sum(1 for r in rows if r.declared),
        "missing": sum(1 for r in rows if r.status == "missing"),
        "rejected": sum(1 for r in rows if r.status == "reject"),
        "share_valid": round(valid / checked, 4) if checked else None,
        "errors": sum(r.errors or 0 for r in rows),
        "warnings": sum(r.warnings or 0 for r in rows),
    }


def city_shares(rows: list[ScoreRow]) -> dict[tuple[str, str], float]:
    """Share of valid rows over each city's newest uploads (weighted by rows); cities with no file are left out."""
    checked: dict[tuple[str, str], int] = {}
    valid: dict[tuple[str, str], float] = {}
    for r in rows:
        if r.rows:
            key = (r.city_code, r.city_name)
            checked[key] = checked.get(key, 0) + r.rows
            valid[key] = valid.get(key, 0.0) + (r.share_valid or 0.0) * r.rows
    return {key: round(valid[key] / n, 4) for key, n in sorted(checked.items())}


# --- text chart (Dagster UI, Markdown) --------------------------------------------------------------------------


def bar(share: float | None, width: int = 10) -> str:
    """``█████████░ 98.2%``; empty for no data."""
    if share is None:
        return ""
    full = round(max(0.0, min(1.0, share)) * width)
    return "█" * full + "░" * (width - full) + f" {share:.1%}"


def sparkline(values: list[float] | None) -> str:
    """One block character per upload, from ▁ (0%) to █ (100%)."""
    if not values:
        return ""
    top = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[round(max(0.0, min(1.0, v)) * top)] for v in values)


def change(delta: float | None) -> str:
    if delta is None:
        return ""
    if abs(delta) < 0.0005:
        return "→"
    return f"{'▲' if delta > 0 else '▼'}{abs(delta):.1%}"


def scoreboard_markdown(rows: list[ScoreRow]) -> str:
    """The scoreboard as a Markdown table with a text chart per line."""
    summary = headline(rows)
    share = f"{summary['share_valid']:.1%}" if summary["share_valid"] is not None else "n/a"
    lines = [
        f"**構成市 {summary['cities']} / 提出予定 {summary['expected']} / 未提出 {summary['missing']} / "
        f"差戻し {summary['rejected']} / 地域全体の合格率 {share} / エラー {summary['errors']:,} / "
        f"警告 {summary['warnings']:,}**  ",
        f"member cities {summary['cities']}, files expected {summary['expected']}, missing {summary['missing']}, "
        f"rejected {summary['rejected']}, region-wide share of valid rows {share}, cells with errors "
        f"{summary['errors']:,} (rows withheld), with warnings {summary['warnings']:,} (rows published)",
        "",
        "| 市 / city | データセット / dataset | 状態 / status | 合格率 / valid rows | 推移 / trend | 行 / rows | "
        "受理 / accepted | エラー / errors | 警告 / warnings | 最多エラー / top issue | 最多警告 / top warning | "
        "最新 / last upload |",
        "|---|---|---|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        if r.status == "not_declared":
            continue        # not expected from this city and nothing sent: noise here (the HTML grid shows it)
        trend = f"{sparkline(r.share_valid_trend)} {change(r.share_valid_change)}".strip()
        lines.append(
            f"| {_md(r.city_code)} {_md(r.city_name)} | {_md(r.dataset_name_ja or r.dataset_id)} | "
            f"{_md(r.status_label)} | {bar(r.share_valid)} | {trend} | {_num(r.rows)} | {_num(r.rows_accepted)} | "
            f"{_num(r.errors)} | {_num(r.warnings)} | {_md(r.top_issue or '')} | {_md(r.top_warning or '')} | "
            f"{_md(r.received)} {_md(r.last_file or '')} |"
        )
    lines += ["", "対象外 (名簿にも提出もない組み合わせ) は省略 / combinations neither expected nor sent are omitted."]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _num(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


# --- HTML report with inline SVG ----------------------------------------------------------------------------------


def trend_svg(values: list[float] | None, width: int = 132, height: int = 40) -> Markup:
    """The share of valid rows upload by upload, 0–100%, as a small line chart."""
    if not values:
        return Markup("")
    pad = 4
    step = (width - 2 * pad) / max(len(values) - 1, 1)

    def y(v: float) -> float:
        return round(pad + (1 - max(0.0, min(1.0, v))) * (height - 2 * pad), 1)

    points = [(round(pad + i * step, 1), y(v)) for i, v in enumerate(values)]
    line = " ".join(f"{x},{yy}" for x, yy in points)
    dots = "".join(f'<circle cx="{x}" cy="{yy}" r="2.5"/>' for x, yy in points)
    label = ", ".join(f"{v:.1%}" for v in values)
    return Markup(
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="合格率の推移 / share valid: {label}">'
        f'<line x1="{pad}" y1="{y(1)}" x2="{width - pad}" y2="{y(1)}" class="ref"/>'
        f'<line x1="{pad}" y1="{y(0.5)}" x2="{width - pad}" y2="{y(0.5)}" class="ref"/>'
        f'<line x1="{pad}" y1="{y(0)}" x2="{width - pad}" y2="{y(0)}" class="ref"/>'
        f'<polyline points="{line}" class="trend"/>{dots}</svg>'
    )


_TEMPLATE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>適合状況スコアボード / conformance scoreboard</title>
<style>
*,*::before,*::after{box-sizing:border-box}
body{font-family:sans-serif;margin:0 auto;padding:0 1em 2em;color:#222;max-width:96em;overflow-wrap:anywhere}
.skip-link{position:absolute;left:-100vw;top:0;background:#fff;color:#0b4a9c;padding:.5em 1em;border:2px solid #0b4a9c}
.skip-link:focus{left:1em}
header.site{border-bottom:1px solid #ccc;padding:.5em 0} header.site p{margin:0;font-weight:bold}
main:focus{outline:none}
:focus-visible{outline:3px solid #1c5fb8;outline-offset:2px}
/* the wide tables scroll inside their own labelled, focusable region: the page itself never scrolls sideways */
.scroll{overflow-x:auto;max-width:100%;margin:1em 0}
table{border-collapse:collapse}
th,td{border:1px solid #ccc;padding:.35em .5em;vertical-align:top;font-size:.9em}
th{background:#f4f4f4;text-align:left}
td.num{text-align:right}
.cell{min-width:150px}
.big{font-size:1.3em;font-weight:bold}
.small{font-size:.8em;color:#404040}
.err{color:#8a0000}
.warn{color:#5e3d00}
svg .ref{stroke:#bbb;stroke-width:.5;stroke-dasharray:2 2}
svg .trend{fill:none;stroke:#1f5fa8;stroke-width:1.8}
svg circle{fill:#1f5fa8}
{% for status, colour in colours.items() %}.s-{{ status }}{background:{{ colour }}}
{% endfor %}
</style></head><body>
<a class="skip-link" href="#main">本文へ移動 <span lang="en">/ Skip to content</span></a>
<header class="site"><p>kouiki <span class="small">データ推進室 / data office</span></p></header>
<main id="main" tabindex="-1">
<h1>適合状況スコアボード <span class="small" lang="en">/ conformance scoreboard</span></h1>
<p>作成 / generated {{ generated }} — 構成市 {{ summary.cities }} 市、提出予定 {{ summary.expected }} 件、
未提出 {{ summary.missing }} 件、差戻し {{ summary.rejected }} 件、地域全体の合格率 {{ share }}、
エラー {{ num(summary.errors) }} セル（行は非公開）、警告 {{ num(summary.warnings) }} セル（行は公開）<br>
<span class="small">member cities {{ summary.cities }}, files expected {{ summary.expected }},
missing {{ summary.missing }}, rejected {{ summary.rejected }}, region-wide share of valid rows {{ share }},
cells with errors {{ num(summary.errors) }} (rows withheld), with warnings {{ num(summary.warnings) }}
(rows published)</span></p>

<h2 id="trend-heading">市ごとの品質の推移 <span class="small">/ quality trend per city</span></h2>
<p class="small">各セル: 最新アップロードの状態 (色)、合格率 (検証に通った行の割合)、
アップロードごとの推移 (点線は 0%・50%・100%)、エラー (その行は非公開) と警告 (その行は公開) のセル数。<br>
Each cell: state of the newest upload (colour), share of valid rows, that share upload by upload
(dotted lines at 0%, 50%, 100%), and the cells with errors (rows withheld) and with warnings (rows published).</p>
<div class="scroll" role="region" tabindex="0" aria-labelledby="trend-heading">
<table>
<caption class="small">市 × データセット（横にスクロールできます） / city × dataset (scrolls sideways)</caption>
<tr><th scope="col">市 / city</th>
{% for d in datasets %}<th scope="col">{{ d.name }}<br><span class="small">{{ d.id }}</span></th>{% endfor %}</tr>
{% for city in cities %}<tr><th scope="row">{{ city.name }}<br><span class="small">{{ city.code }}</span></th>
{% for r in city.cells %}<td class="cell s-{{ r.status }}">
{% if r.has_file %}<span class="big">{{ pct(r.share_valid) }}</span> {{ change(r.share_valid_change) }}<br>
{{ svg(r.share_valid_trend) }}<br>
<span class="small">{{ r.status_label }}<br>{{ num(r.rows_accepted) }} / {{ num(r.rows) }} 行受理 / rows accepted<br>
{% if r.errors is not none %}<span class="err">エラー / errors {{ num(r.errors) }}</span> ·
<span class="warn">警告 / warnings {{ num(r.warnings) }}</span><br>{% endif %}
{{ r.received }} ({{ r.uploads }} 回 / uploads)</span>
{% else %}<span class="big">—</span><br><span class="small">{{ r.status_label }}</span>{% endif %}
</td>{% endfor %}</tr>
{% endfor %}</table>
</div>

<h2 id="all-heading">一覧 <span class="small">/ all lines</span></h2>
<div class="scroll" role="region" tabindex="0" aria-labelledby="all-heading">
<table>
<tr><th scope="col">市 / city</th><th scope="col">データセット / dataset</th><th scope="col">状態 / status</th>
<th scope="col">合格率 / valid</th><th scope="col">行 / rows</th>
<th scope="col">受理 / accepted</th><th scope="col">保留 / held back</th><th scope="col">公開中 / in the lake</th>
<th scope="col">エラー / errors</th><th scope="col">警告 / warnings</th>
<th scope="col">エラーコード別 / by error code</th>
<th scope="col">最多エラー / top issue</th><th scope="col">最多警告 / top warning</th>
<th scope="col">最新ファイル / last file</th><th scope="col">受付（JST） / received (JST)</th></tr>
{% for r in rows %}<tr class="s-{{ r.status }}">
<td>{{ r.city_code }} {{ r.city_name }}</td><td>{{ r.dataset_name_ja or r.dataset_id }}</td>
<td>{{ r.status_label }}</td>
<td class="num">{{ pct(r.share_valid) }}</td><td class="num">{{ num(r.rows) }}</td>
<td class="num">{{ num(r.rows_accepted) }}</td><td class="num">{{ num(r.rows_quarantined) }}</td>
<td class="num">{{ num(r.rows_in_lake) }}</td>
<td class="num err">{{ num(r.errors) }}</td><td class="num warn">{{ num(r.warnings) }}</td>
<td>{% for code, n in r.by_code.items() %}{{ code }}: {{ n }}<br>{% endfor %}</td>
<td>{{ r.top_issue or "" }}</td><td>{{ r.top_warning or "" }}</td><td>{{ r.last_file or "" }}</td>
<td>{{ r.received }}</td></tr>
{% endfor %}</table>
</div>
</main>
<footer><p class="small">出典 / source: marts.conformance_scoreboard, marts.conformance_trend (warehouse.duckdb)。
時刻は日本時間（JST） / times are Japan Standard Time (JST).</p></footer>
</body></html>
"""

@cache
def _environment() -> Environment:
    from jinja2 import Environment, StrictUndefined  # only when the report is written, not at definitions load

    return Environment(autoescape=True, undefined=StrictUndefined)


def render_html(rows: list[ScoreRow], generated: datetime | None = None) -> str:
    """The office's report page (self-contained: inline CSS and SVG, no script)."""
    datasets = sorted({(r.dataset_id, r.dataset_name_ja or r.dataset_id) for r in rows})
    by_cell = {(r.city_code, r.dataset_id): r for r in rows}
    cities = []
    for code, name in sorted({(r.city_code, r.city_name) for r in rows}):
        cities.append({"code": code, "name": name, "cells": [by_cell[(code, d)] for d, _ in datasets]})
    summary = headline(rows)
    return _environment().from_string(_TEMPLATE).render(
        rows=rows, cities=cities, datasets=[{"id": d, "name": n} for d, n in datasets], summary=summary,
        share="n/a" if summary["share_valid"] is None else f"{summary['share_valid']:.1%}",
        generated=format_jst(generated or datetime.now(UTC)), colours=STATUS_COLOURS,
        pct=lambda v: "" if v is None else f"{v:.1%}", num=_num, change=change, svg=trend_svg,
    )


def write_report(target: Path, rows: list[ScoreRow]) -> Path:
    """Write the page atomically (a reader never sees half a page)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(render_html(rows))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
