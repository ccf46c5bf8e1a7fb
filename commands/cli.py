"""``kouiki``: the command line of the shared data office (and of scripts)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer import _click as click  # typer 0.29 vendors click: its exceptions, not the package's

from commands.cli_start import KouikiGroup, install_plain_conversion, pyarrow_without_pandas
from kouiki.errors import ConfigError, friendly_errors
from kouiki.settings import Settings, get_paths

if TYPE_CHECKING:  # the CLI starts fast; dagster is imported only by the commands that run it
    from pipelines.main_run import MainOutcome

class _Cli(typer.Typer):
    """The typer app under kouiki's error handler: configuration errors are one line (kouiki.errors), and so
    are wrong arguments (click's usage errors, which typer would draw as a five-line box)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with friendly_errors("kouiki"):
            try:
                code = super().__call__(*args, standalone_mode=False, **kwargs)
            except click.exceptions.NoArgsIsHelpError as shown:    # `kouiki members`: the help is the answer
                typer.echo(shown.ctx.get_help() if shown.ctx else str(shown))
                raise SystemExit(2) from None
            except click.ClickException as wrong:
                print(usage_error_line(wrong), file=sys.stderr)
                raise SystemExit(wrong.exit_code) from None
            except typer.Abort:
                print("kouiki: 中断しました / aborted", file=sys.stderr)
                raise SystemExit(1) from None
            raise SystemExit(code if isinstance(code, int) else 0)


def usage_error_line(error: click.ClickException) -> str:
    """``kouiki inspect: 引数の誤り / wrong arguments: Missing argument 'file'. — kouiki inspect --help``."""
    context = getattr(error, "ctx", None)
    command = context.command_path if context is not None else "kouiki"
    message = " ".join(error.format_message().split())
    return (f"{command}: 引数の誤り / wrong arguments: {message} — 使い方は / usage: {command} --help")


install_plain_conversion()   # typer without pydantic for text, paths and flags (commands/cli_start.py)

app = _Cli(help="kouiki (広域): shared open-data platform for member municipalities (--debug: tracebacks)",
           cls=KouikiGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
# A wide table even when piped (CI logs, `make run | tee`), where rich would assume 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200, emoji=False)   # no :codes: (0.1 s to load)


@app.command()
def run() -> None:
    """Run the main job on the embedded default and print a per-city summary. / メインジョブを実行"""
    from kouiki.runlock import run_lock
    from pipelines.main_run import run_main

    started = time.monotonic()
    paths = get_paths()
    # one run at a time per home; Dagster's storage is created (or migrated) under this lock too
    with (run_lock(paths.home, say=lambda message: console.print(f"[yellow]{message}[/yellow]")),
          RunProgress(paths) as progress):
        outcome = run_main(paths, log_level="WARNING", progress=progress.phase)
    _print_summary(outcome, time.monotonic() - started)
    if not outcome.region_ok or (outcome.anonymisation is not None and not outcome.anonymisation.ok):
        raise typer.Exit(1)


RUN_PHASE_WORDS = {
    "recover": "点検・準備 / checking the home, member partitions",
    "ingest": "受付・読込・検証 / landing, reading and validating uploads",
    "publish": "地域全体の表・公開 / region-wide models and releases",
    "anonymise": "匿名加工 / anonymisation",
    "done": "完了 / done",
}


class RunProgress:
    """``kouiki run``'s progress bar on stderr: one step per phase of run_main, and while uploads are read and
    validated, how many of them are done (counted in the catalog, which the run updates as it goes). Off when
    stdout is not a terminal (logs, CI, ``| tee``)."""

    def __init__(self, paths: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.paths = paths
        self.enabled = sys.stdout.isatty()
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                            disable=not self.enabled)
        self.task = self.bar.add_task("開始 / starting", total=len(RUN_PHASE_WORDS) - 1)
        self.uploads: Any = None
        self.stop = threading.Event()
        self.watcher: threading.Thread | None = None

    def __enter__(self) -> RunProgress:
        self.bar.start()
        if self.enabled:
            self.watcher = threading.Thread(target=self._watch_uploads, name="kouiki-run-progress", daemon=True)
            self.watcher.start()
        return self

    def phase(self, name: str) -> None:
        names = list(RUN_PHASE_WORDS)
        self.bar.update(self.task, description=RUN_PHASE_WORDS.get(name, name),
                        completed=names.index(name) if name in names else 0)
        if name == "ingest" and self.enabled and self.uploads is None:
            self.uploads = self.bar.add_task("  登録ファイル / uploads processed", total=None)

    def _watch_uploads(self) -> None:
        """Every second: uploads no longer waiting (``landed``) out of all uploads, while the run goes on."""
        from kouiki import catalog

        while not self.stop.wait(1.0):
            if self.uploads is None:
                continue
            try:
                ups = catalog.list_uploads(self.paths.catalog_url)
            except Exception:  # a busy or recovering catalog: the next second will do
                continue
            self.bar.update(self.uploads, total=len(ups), completed=sum(u.status != "landed" for u in ups))

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.watcher is not None:
            self.watcher.join(timeout=5)
        self.bar.stop()


def _print_summary(outcome: MainOutcome, seconds: float) -> None:
    console.print(uploads_table(outcome))
    releases = Table(title="公開データ / published releases")
    for col in ("dataset", "release / 版", "rows / 行数", "files / ファイル"):
        releases.add_column(col)
    for dataset_id, latest in outcome.releases.items():
        releases.add_row(dataset_id, str(latest["number"]), str(latest["rows"]),
                         str(outcome.paths.releases / dataset_id / str(latest["number"])))
    console.print(releases)
    _print_anonymisation(outcome)
    scoreboard = outcome.paths.reports / "office" / "scoreboard.html"
    if scoreboard.exists():
        console.print(f"品質スコアボード / quality scoreboard (office): {scoreboard}")
    console.print(f"公開ポータル / portal: {_portal_address()}  (make portal)")
    console.print(f"Dagster UI: http://127.0.0.1:3000/  (make ui)   —   {seconds:.1f} s")


def _portal_address() -> str:
    """The portal's address (KOUIKI_PORT); a wrong port is said here, not raised: the run itself is done."""
    try:
        return f"http://127.0.0.1:{Settings.from_env().portal.port}/"
    except ConfigError as wrong:
        return str(wrong)


def uploads_table(outcome: MainOutcome) -> Table:
    """Per city and upload: where it stands (公開済み / 一部保留 / 受付不可 ...), rows read, published and withheld,
    the top reasons rows were withheld, and the release. "run failed" only for a city with uploads left
    waiting by a failed run: a city whose files were published reads 公開済み."""
    from commands.office_cli import add_upload_row, upload_status_table
    from kouiki.publication import ReleaseIndex

    index = ReleaseIndex(outcome.paths.releases)
    table = upload_status_table("市ごとの結果 / per-city summary")
    for city in outcome.cities:
        name = f"{city.member.code} {city.member.name}"
        if not city.uploads:
            table.add_row(name, "-", "-", "no files / ファイルなし", "", "", "", "", "", "")
        waiting = False
        for up in city.uploads:
            waiting |= add_upload_row(table, name, up, index) == "waiting"
        if not city.run_ok and waiting:
            table.add_row(name, "", "", "[red]処理に失敗・再実行します / run failed, uploads kept for the next "
                          "run[/red]", "", "", "", "", "", "")
    return table


def _print_anonymisation(outcome: MainOutcome) -> None:
    """The blocking checks of the anonymisation job, with the reasons a release was stopped."""
    run = outcome.anonymisation
    if run is None or not (run.checks or run.errors):
        return
    table = Table(title="匿名加工の検証 / anonymisation checks (blocking)")
    for col in ("check", "passed / 合格", "k", "l", "reason / 理由"):
        table.add_column(col)
    for check in run.checks:
        reasons = "\n".join(f"{r['ja']}\n{r['en']}" for r in check["reasons"])
        passed = "[green]yes / 合格[/green]" if check["passed"] else "[red]no, not published / 不合格・公開せず[/red]"
        table.add_row(f"{check['asset']} {check['check']}", passed, str(check["k"] or ""), str(check["l"] or ""),
                      reasons)
    console.print(table)
    for error in run.errors:
        console.print(f"[red]{error}[/red]")


@app.command()
def anonymise(
    input_csv: Annotated[Path, typer.Argument(metavar="INPUT.csv", help="records (UTF-8 or CP932; ',' or ';')")],
    qi: Annotated[list[str], typer.Option("--qi", metavar="COL=HIERARCHY.csv",
                                          help="quasi-identifier and its ARX-format hierarchy (repeat)")],
    k: Annotated[int, typer.Option("--k", help="k-anonymity (at least the platform floor)")],
    out: Annotated[Path, typer.Option("--out", dir_okay=False, help="anonymised CSV (written only if verified)")],
    report: Annotated[Path, typer.Option("--report", dir_okay=False, help="JSON report (always written)")],
    sensitive: Annotated[list[str] | None, typer.Option("--sensitive", help="sensitive attribute (repeat)")] = None,
    l_diversity: Annotated[int | None, typer.Option("--l", help="distinct l-diversity")] = None,
    max_suppression: Annotated[float, typer.Option("--max-suppression", min=0, max=100, metavar="PCT",
                                                   help="records that may be suppressed, in %")] = 5.0,
    quality_model: Annotated[str, typer.Option("--quality-model",
                                               help="loss | precision | nu_entropy (ARX's quality models)")] = "loss",
    gs_factor: Annotated[float, typer.Option("--gs-factor", min=0, max=1,
                                             help="ARX's generalisation/suppression factor")] = 0.5,
) -> None:
    """Anonymise a CSV (k-anonymity, l-diversity) and verify the result independently. / CSVを匿名加工"""
    from anonymise.cli_entry import UnsafePathError, run_cli
    from anonymise.quality import QualityModel

    try:
        quality = QualityModel(quality_model, gs_factor)
    except ValueError as exc:  # an unknown quality model or a gs-factor outside [0, 1]
        console.print(f"[red]kouiki anonymise: {' '.join(str(exc).split())}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    try:
        with _working("匿名加工・検証しています / anonymising and verifying"):
            result = run_cli(input_csv, qi, sensitive or [], k, l_diversity, max_suppression, out, report,
                             quality=quality)
    except UnsafePathError as exc:  # --out / --report naming the input: nothing is written, the input is kept
        console.print(f"[red]kouiki anonymise: {' '.join(str(exc).split())}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    _print_anonymisation_result(result, report)
    if not result["released"]:
        raise typer.Exit(2)


@contextmanager
def _working(what: str) -> Iterator[None]:
    """A spinner with the elapsed time on stderr while a long step runs (only at a terminal)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn(what), TimeElapsedColumn(), console=Console(stderr=True),
                  transient=True, disable=not sys.stdout.isatty()) as progress:
        progress.add_task(what, total=None)
        yield


def _print_anonymisation_result(result: dict[str, Any], report: Path) -> None:
    if not result["released"]:
        failure = result["failure"] or {}
        reasons = failure.get("reasons") or [failure]
        # one line per reason (usually one): what stopped it, in both languages, and where the report is
        for reason in reasons:
            console.print("[red]kouiki anonymise: 匿名加工できませんでした（出力なし） / not released (no output)"
                          f"[/red]: {reason.get('ja', '')} / {reason.get('en', '')} — report / 報告: {report}",
                          soft_wrap=True)
        return
    verification = result["verification"]
    levels = ", ".join(f"{column} → {level['name']}" for column, level in result["levels"].items())
    console.print(f"[green]匿名加工しました / released[/green]: {result['out']}")
    console.print(f"  records / 件数 {result['records_in']} → {result['records_in'] - result['records_suppressed']} "
                  f"(suppressed / 削除 {result['records_suppressed']}, {result['suppressed_pct']:.1f} %)")
    console.print(f"  verified / 検証: k={verification['k']}, l={verification['l']}, "
                  f"max risk / 最大リスク {verification['risk'].get('max', 0):.3f}")
    console.print(f"  levels / 一般化: {levels}")
    console.print(f"  report / 報告: {report}")


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV / TSV / xlsx file")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="dataset id (skip detection), e.g. aed")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a summary")] = False,
) -> None:
    """Read a file as intake would and show what kouiki sees, storing nothing. / ファイルを検査（保存しない）"""
    known_dataset_or_exit(dataset)
    pyarrow_without_pandas()
    from commands.inspect import inspect_file

    report = inspect_file(file, dataset)
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        _print_inspection(report)
    if not report["ok"]:
        raise typer.Exit(2)


def known_dataset_or_exit(dataset: str | None) -> None:
    """Stop with one line naming the known datasets (and the nearest one) when ``dataset`` is not one."""
    if dataset is None:
        return
    import difflib

    from expectations.registry import default_registry

    known = sorted(default_registry().datasets)
    if dataset in known:
        return
    near = difflib.get_close_matches(dataset, known, n=1)
    guess = f"もしかして / did you mean: {near[0]} — " if near else ""
    print(f"kouiki: データセット {dataset} はありません / unknown dataset {dataset} — {guess}"
          f"使えるID / known: {', '.join(known)}", file=sys.stderr)
    raise typer.Exit(2)


def _print_inspection(r: dict[str, Any]) -> None:
    if not r["ok"]:
        err = r["error"]
        where = f" (line {err['line']})" if err.get("line") else ""
        label = "読み込めません / cannot read" if r.get("rows") is None else "受付できません / refused"
        console.print(f"[red]{label}[/red]{where}: {err['message_ja']}\n  {err['message_en']}")
        if err.get("hint_ja"):
            console.print(f"  対処 / fix: {err['hint_ja']}")
        if r.get("rows") is not None:   # read, but refused: the rows read are still shown
            console.print(f"  rows / 行数 {r['rows']}, encoding {r['encoding']}, format {r['format']}, "
                          f"blank rows skipped {r['blank_rows_skipped']}, preamble lines {r['preamble_lines']}")
            console.print("  columns / 列: " + ", ".join(r["columns"]))
        return
    console.print(f"[bold]{r['file']}[/bold]")
    console.print(f"  encoding {r['encoding']}, format {r['format']}, rows {r['rows']}, "
                  f"blank rows skipped {r['blank_rows_skipped']}, preamble lines {r['preamble_lines']}")
    console.print(f"  dataset {r['dataset']} ({r['dataset_name_ja']}), variant {r['variant']}, score {r['score']}")
    h = r["header"]
    for label, key in (("unmatched / 該当なしの列", "unmatched"), ("missing / 不足している列", "missing"),
                       ("missing required / 必須で不足", "missing_required")):
        if h[key]:
            console.print(f"  {label}: {', '.join(h[key])}")
    if h["renamed"]:
        console.print("  renamed / 表記ゆれ: " + ", ".join(f"{a} → {b}" for a, b in h["renamed"].items()))
    for column, rules in r["normalisations"].items():
        console.print(f"  normalised / 自動補正 {column}: " + ", ".join(f"{k} ×{v}" for k, v in rules.items()))
    for n in r["notices"]:
        console.print(f"  notice {n['code']}: {n['message_ja']}")
    v = r.get("validation")
    if v:
        console.print(f"  validation / 検証: {v['decision']}, accepted {v['rows_accepted']}, failing "
                      f"{v['rows_failing']}, by code {v['counts_by_code']}")
        for f in v["first_findings"][:10]:
            console.print(f"    line {f['source_line']} {f['column']}: {f['error_code']} — {f['message_ja']}")


@app.command("sync-partitions")
def sync_partitions_cmd() -> None:
    """Give every member city its Dagster partition (run before `make ui`)."""
    from kouiki.members import city_label, load_members
    from kouiki.runlock import run_lock
    from pipelines.main_run import dagster_instance, sync_partitions

    paths = get_paths()
    members = load_members()
    with run_lock(paths.home, say=console.print):
        added = sync_partitions(dagster_instance(paths), members)
    console.print(f"partitions added: {', '.join(city_label(code, members) for code in added) or 'none'}")


@app.command()
def doctor(
    repair: Annotated[bool, typer.Option("--repair", help="repair what can be repaired / 修復")] = False,
) -> None:
    """Check the kouiki home (catalog, landed files, releases, leftovers, dead runs); exit 1 if problems remain.
    / 点検（--repair で修復）"""
    from commands.doctor import doctor as examine
    from commands.doctor import lock_free, release_lock
    from kouiki.runlock import lock_holder
    from pipelines.main_run import dagster_instance

    paths = get_paths()
    lock = lock_free(paths)
    if lock is None:
        console.print(f"[yellow]実行中のため点検のみ行います / a run is in progress (pid {lock_holder(paths.home)}): "
                      "checking only, no repair[/yellow]")
    try:
        report = examine(paths, dagster_instance(paths), fix=repair and lock is not None)
    finally:
        release_lock(lock)
    for line in report.repaired:
        console.print(f"[green]修復 / repaired[/green] {line}", soft_wrap=True)
    for problem in report.problems:
        console.print(f"[red]問題 / problem[/red] {problem.line()}", soft_wrap=True)
    if report.problems:
        hint = " (kouiki doctor --repair)" if any(p.repairable for p in report.problems) else ""
        console.print(f"{len(report.problems)} 件の問題 / problem(s){hint}")
        raise typer.Exit(1)
    console.print("[green]問題なし / no problems found[/green]")


@app.command()
def daemon() -> None:
    """Run the Dagster daemon: sensors, automation, run queue; uploads reach their release with no command.
    / 自動処理（デーモン）を起動"""
    from pipelines.daemon import exec_dagster

    exec_dagster(ui=False)


@app.command()
def ui(port: Annotated[int, typer.Option(help="port of the UI on 127.0.0.1")] = 3000) -> None:
    """Dagster UI and daemon for the data office (`make ui`). / Dagster UI とデーモンを起動"""
    from pipelines.daemon import exec_dagster

    exec_dagster(ui=True, port=port)


if __name__ == "__main__":
    app()
