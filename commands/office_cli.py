"""The data office's commands for member cities, their tokens and their uploads (merged into ``kouiki``):

    kouiki members add CODE [--name 狛江市] [--dataset aed ...]   verified, written to the member registry
    kouiki members list
    kouiki tokens issue CODE [--label ...]                     prints the token once
    kouiki tokens revoke TOKEN_ID
    kouiki tokens list [--city CODE]
    kouiki upload CODE FILE [--dataset ID]                     the API's code path; prints JSON
    kouiki status [UPLOAD_ID] [--city CODE] [--json]           where uploads stand (公開済み（第N版） …)
    kouiki rerun CODE [--dataset ID]                           reprocess a city's uploads (ingest_city)

Machine-readable output (JSON, the token) goes to stdout; progress and notes go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from expectations.times import format_jst
from kouiki import catalog, tokens
from kouiki.catalog import UploadStatus
from kouiki.localgov import is_valid_code, lookup
from kouiki.members import Member, RegistryError, city_label, load_members, member_by_code, not_a_member
from kouiki.publication import PublicationState, ReleaseIndex, publication
from kouiki.settings import Paths, get_paths, members_file

office_app = typer.Typer(no_args_is_help=True, add_completion=False)
members_app = typer.Typer(help="member cities / 構成団体", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens of member cities / 構成団体のトークン", no_args_is_help=True)
office_app.add_typer(members_app, name="members")
office_app.add_typer(tokens_app, name="tokens")
# `kouiki mappings` (commands/mappings_cli.py) is merged beside these commands by commands/cli_start.py.

out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

# Statuses a rerun puts back to "landed" (refused and unreadable ones only if their re-evaluation passes).
RERUNNABLE = (UploadStatus.ACCEPTED, UploadStatus.QUARANTINED, UploadStatus.REJECTED, UploadStatus.UNREADABLE,
              UploadStatus.LANDED)
# How `kouiki status` colours a publication state (the others are left plain).
STATE_COLOURS = {PublicationState.PUBLISHED: "green", PublicationState.PARTLY_PUBLISHED: "yellow",
                 PublicationState.REFUSED: "red", PublicationState.UNREADABLE: "red", PublicationState.WITHHELD: "red"}


def fail(message_ja: str, message_en: str = "", code: int = 1) -> typer.Exit:
    """Print one line (ja / en; never wrapped into several) on stderr and return the exit to raise."""
    err.print(f"[red]{message_ja}[/red]" + (f" / {message_en}" if message_en else ""), soft_wrap=True)
    return typer.Exit(code)


def print_json(doc: Any) -> None:
    print(json.dumps(doc, ensure_ascii=False, indent=2, default=str))


def member_or_exit(code: str) -> Member:
    members = load_members()
    for m in members:
        if m.code == code.strip():
            return m
    raise fail(not_a_member(code, members))   # suggests only a code that would work


def city_on_record_or_exit(city: str | None, found: bool, members: list[Member] | None = None) -> None:
    """``--city CODE`` naming no member, with nothing on record for it: one line saying so (and what would
    work), not an empty table. A former member's uploads and tokens are still listed."""
    if city is None or found:
        return
    members = load_members() if members is None else members
    if all(m.code != city.strip() for m in members):
        raise fail(not_a_member(city, members))


# ------------------------------------------------------------------------------------------------ members


def add_member(path: Path, code: str, name: str | None = None, datasets: list[str] | None = None,
               inbox: str | None = None) -> Member:
    """Verify a city and append it to the member registry at ``path``, keeping the file's comments.

    The code must carry a valid check digit and be in the national list; the name (default: the list's)
    must match it. The file is rewritten atomically and re-read; on any problem it is left as it was."""
    code = code.strip()
    if not is_valid_code(code):
        raise RegistryError(f"{code!r} は正しい全国地方公共団体コード（6桁・検査数字）ではありません / "
                            f"{code!r} is not a valid 6-digit local-government code (check digit)")
    known = lookup(code)
    if known is None:
        raise RegistryError(f"{code} は全国地方公共団体コードの一覧にありません / {code} is not in the national list")
    name = name or known.city or known.prefecture
    if name not in (known.city, known.prefecture, known.name):
        raise RegistryError(f"名称「{name}」はコード {code}（{known.name}）と一致しません / "
                            f"name {name!r} does not match {code} ({known.name})")
    before = path.read_text(encoding="utf-8") if path.exists() else "members: []\n"
    if path.exists() and any(m.code == code for m in load_members(path)):
        raise RegistryError(f"{code}（{name}）はすでに構成団体です / {code} ({name}) is already a member")
    _write_atomically(path, _with_member(before, code, name, datasets or [], inbox))
    try:
        return next(m for m in load_members(path) if m.code == code)
    except (RegistryError, StopIteration):
        _write_atomically(path, before)
        raise


def _with_member(text: str, code: str, name: str, datasets: list[str], inbox: str | None) -> str:
    """The registry text with one more entry, through ruamel.yaml's round trip (comments and quotes kept)."""
    from io import StringIO

    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    doc = yaml.load(text) or CommentedMap()
    if doc.get("members") is None:
        doc["members"] = CommentedSeq()
    entry = CommentedMap()
    entry["code"] = DoubleQuotedScalarString(code)   # quoted: 011002 must stay text
    entry["name"] = name
    if inbox:
        entry["inbox"] = inbox
    if datasets:
        listed = CommentedSeq(datasets)
        listed.fa.set_flow_style()
        entry["datasets"] = listed
    doc["members"].append(entry)
    buffer = StringIO()
    yaml.dump(doc, buffer)
    return buffer.getvalue()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@members_app.command("add")
def members_add(
    code: Annotated[str, typer.Argument(help="全国地方公共団体コード (6 digits), e.g. 132195")],
    name: Annotated[str | None, typer.Option(help="name; default from the national list")] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="dataset id it contributes")] = None,
    inbox: Annotated[str | None, typer.Option(help="folder of files to pick up (relative to the repo)")] = None,
    sync: Annotated[bool, typer.Option(help="give the city its Dagster partition now")] = True,
) -> None:
    """Add a member city (verified against the national list). / 構成団体を追加"""
    path = members_file()
    try:
        member = add_member(path, code, name, dataset, inbox)
    except RegistryError as exc:
        raise fail(f"{exc} — 登録簿は変更していません / the member registry was not changed") from None
    err.print(f"追加しました / added: {member.code} {member.name} → {path}")
    if sync:
        from pipelines.main_run import dagster_instance, sync_partitions

        members = load_members(path)
        added = sync_partitions(dagster_instance(get_paths()), members)
        err.print(f"Dagster partition: {', '.join(city_label(c, members) for c in added) or 'already there'}")


@members_app.command("list")
def members_list() -> None:
    """List the member cities and their active tokens. / 構成団体の一覧"""
    active: dict[str, int] = {}
    for t in tokens.list_tokens(get_paths().catalog_url):
        if t.active:
            active[t.city_code] = active.get(t.city_code, 0) + 1
    table = Table()
    for col in ("code", "name", "datasets", "active tokens / 有効なトークン"):
        table.add_column(col)
    for m in load_members():
        table.add_row(m.code, m.name, ", ".join(m.datasets), str(active.get(m.code, 0)))
    out.print(table)


# ------------------------------------------------------------------------------------------------- tokens


@tokens_app.command("issue")
def tokens_issue(
    code: Annotated[str, typer.Argument(help="member city code")],
    label: Annotated[str, typer.Option(help="who or what the token is for")] = "",
) -> None:
    """Issue a token for a member city; it is printed once and stored only hashed. / トークンを発行"""
    member = member_or_exit(code)
    issued = tokens.issue_token(get_paths().catalog_url, member.code, label)
    err.print(f"{member.name}（{member.code}）のトークン {issued.info.token_id} を発行しました。"
              "この表示の後は二度と表示できません。安全な方法で担当者に渡してください。\n"
              f"Token {issued.info.token_id} for {member.name} ({member.code}); it is shown only now: "
              "hand it to the city safely.")
    print(issued.token)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="token id (see kouiki tokens list)")]) -> None:
    """Revoke a token at once. / トークンを無効化"""
    info = tokens.revoke_token(get_paths().catalog_url, token_id.strip())
    if info is None:
        raise fail(f"トークン {token_id} はありません（kouiki tokens list で確認）。",
                   f"There is no token {token_id} (see kouiki tokens list).")
    err.print(f"無効化しました / revoked: {info.token_id} ({city_label(info.city_code, load_members())})")


@tokens_app.command("list")
def tokens_list(city: Annotated[str | None, typer.Option(help="only this city")] = None) -> None:
    """List tokens (never their secrets). / トークンの一覧"""
    table = Table()
    for col in ("token id", "city / 市", "label", "issued / 発行 (JST)", "state / 状態"):
        table.add_column(col)
    members = load_members()
    listed = tokens.list_tokens(get_paths().catalog_url, city)
    city_on_record_or_exit(city, bool(listed), members)
    for t in listed:
        state = "active / 有効" if t.active else f"revoked / 無効 {format_jst(t.revoked_at)}"
        table.add_row(t.token_id, city_label(t.city_code, members), t.label, format_jst(t.issued_at), state)
    out.print(table)


# ------------------------------------------------------------------------------------------------ uploads


@office_app.command("upload")
def upload(
    code: Annotated[str, typer.Argument(help="member city code")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV / TSV / xlsx file")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="dataset id (skip detection), e.g. aed")] = None,
) -> None:
    """Upload a file for a city as the API does (land, detect, validate, report); prints JSON. / 登録"""
    from expectations.registry import default_registry
    from service.errors import ApiError
    from service.receive import check_file_name
    from service.submit import UploadRefused, submit_upload

    member = member_or_exit(code)
    registry = default_registry()
    if dataset and dataset not in registry:
        raise fail(f"データセット {dataset} はありません", f"unknown dataset {dataset}; known: "
                   f"{', '.join(sorted(registry.datasets))}", code=2)
    paths = get_paths()
    try:
        name = check_file_name(file.name)
        with _steps() as step:
            submission = submit_upload(paths, registry, member.code, file, name, dataset_hint=dataset, via="cli",
                                       progress=step, submits_for=member.submits_for)
    except ApiError as exc:
        print_json(exc.body())
        raise typer.Exit(2) from None
    except UploadRefused as refused:
        print_json({"error": {**refused.error, "upload_id": refused.upload_id}})
        raise typer.Exit(2) from None
    doc = submission.to_json()
    doc["report_html"] = str(submission.report_html)
    doc["report_json"] = str(submission.report_html.with_suffix(".json"))
    print_json(doc)


STEP_NAMES = {"reading": "読込 / reading the file", "landing": "受付・判定 / landing, detecting the dataset",
              "validating": "検証 / validating (Great Expectations)"}


class _steps:
    """A rich progress display of submit_upload's steps (on stderr)."""

    def __enter__(self) -> Any:
        # progress only for a person at a terminal: piped JSON stays clean, logs stay free of redraws
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TimeElapsedColumn(), console=err, transient=True, disable=not sys.stdout.isatty())
        self.progress.start()
        self.task = self.progress.add_task("開始 / starting", total=len(STEP_NAMES))
        return self.advance

    def advance(self, name: str) -> None:
        done = list(STEP_NAMES).index(name) if name in STEP_NAMES else 0
        self.progress.update(self.task, description=STEP_NAMES.get(name, name), completed=done)

    def __exit__(self, *exc: object) -> None:
        self.progress.update(self.task, completed=len(STEP_NAMES))
        self.progress.stop()


@office_app.command("status")
def status(
    upload_id: Annotated[str | None, typer.Argument(help="upload id, e.g. 132195-ac0f23f450e8697e")] = None,
    city: Annotated[str | None, typer.Option("--city", help="only this city's uploads")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON (always, with an upload id)")] = False,
) -> None:
    """Where uploads stand: 公開済み（第N版） / 一部保留 / 受付不可 …, rows read, published and withheld, top
    reasons, release. With an upload id: that upload, as JSON. / 登録の状態"""
    paths = get_paths()
    index = ReleaseIndex(paths.releases)
    if upload_id is None:
        ups = catalog.list_uploads(paths.catalog_url, city_code=city.strip() if city else None)
        city_on_record_or_exit(city, bool(ups))
        if as_json:
            print_json([upload_status_json(paths, u, index) for u in ups])
            return
        names = {m.code: m.name for m in load_members()}
        table = upload_status_table("登録の状態 / uploads")
        for up in ups:
            add_upload_row(table, f"{up.city_code} {names.get(up.city_code, '')}".strip(), up, index)
        out.print(table)
        return
    upload = catalog.get_upload(paths.catalog_url, upload_id.strip())
    if upload is None:
        print_json({"error": {"code": "upload-not-found", "message_ja": f"受付番号 {upload_id} の登録はありません。",
                              "message_en": f"There is no upload {upload_id}."}})
        raise typer.Exit(1)
    doc = upload_status_json(paths, upload, index)
    print_json(doc)
    err.print(f"{doc['publication']['label_ja']} / {doc['publication']['label_en']}")


def upload_status_json(paths: Paths, upload: catalog.UploadRow, index: ReleaseIndex | None = None) -> dict[str, Any]:
    from service.submit import report_paths, upload_json

    html, doc = report_paths(paths, upload)
    pub = publication(upload, index or ReleaseIndex(paths.releases))
    from service.revisit import decision_history

    return {**upload_json(upload), "publication": pub.to_json(), "detail": upload.detail or {},
            "report_html": str(html) if html.is_file() else None, "report_json": str(doc) if doc.is_file() else None,
            "history": decision_history(paths, upload.upload_id)}


def upload_status_table(title: str) -> Table:
    table = Table(title=title)
    for col in ("city / 市", "file / ファイル", "dataset", "status / 状態", "release / 版", "read / 読込",
                "published / 公開", "withheld / 保留", "top reasons / 主な理由", "report / 報告"):
        table.add_column(col)
    return table


def add_upload_row(table: Table, city: str, up: catalog.UploadRow, index: ReleaseIndex) -> PublicationState:
    """One upload's row; returns its publication state."""
    pub = publication(up, index)
    colour = STATE_COLOURS.get(pub.state)
    label = f"{pub.label_ja}\n{pub.label_en}"
    reasons = "\n".join(f"{r.title_ja} / {r.title_en} ×{r.count}" for r in pub.reasons)
    table.add_row(city, up.original_name, up.dataset_id or "-", f"[{colour}]{label}[/{colour}]" if colour else label,
                  _text(pub.release), _text(pub.rows_read), _text(pub.rows_published), _text(pub.rows_withheld),
                  reasons, str((up.detail or {}).get("report_html", "")))
    return pub.state


def _text(value: object) -> str:
    return "" if value is None else str(value)



@office_app.command("rerun")
def rerun(
    code: Annotated[str, typer.Argument(help="member city code")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="only uploads of this dataset")] = None,
) -> None:
    """Re-run a city: mark its uploads for reprocessing and run ingest_city for its partition. / 再処理"""
    member = member_or_exit(code)
    paths = get_paths()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=err, disable=not sys.stdout.isatty()) as progress:
        marked = mark_for_rerun(paths, member.code, dataset, progress)
        task = progress.add_task(f"ingest_city {member.code}（{member.name}）", total=None)
        ok = run_city(paths, member)
        progress.update(task, total=1, completed=1)
    ups = [u for u in catalog.list_uploads(paths.catalog_url, city_code=member.code)
           if u.upload_id in marked]
    print_json({"city_code": member.code, "run_ok": ok, "uploads": [upload_status_json(paths, u) for u in ups]})
    if not ok:
        raise typer.Exit(1)


def mark_for_rerun(paths: Paths, city_code: str, dataset: str | None = None,
                   progress: Progress | None = None) -> list[str]:
    """Put a city's uploads back to ``landed`` so the lake asset processes them again; returns their ids.
    Uploads the service refused (formulas, another city's rows) and unreadable ones are first evaluated again
    from their landed bytes with today's configuration (member registry, mappings, schemas:
    :func:`service.revisit.reevaluate`); those no longer refused are processed, the others stay refused."""
    from expectations.registry import default_registry
    from service.revisit import reevaluate, revisitable

    ups = [u for u in catalog.list_uploads(paths.catalog_url, city_code=city_code, dataset_id=dataset)
           if u.status in RERUNNABLE]
    member = member_by_code(city_code, load_members())
    task = progress.add_task("再処理の準備 / marking uploads", total=len(ups)) if progress else None
    marked = []
    for up in ups:
        if revisitable(up):
            if reevaluate(paths, default_registry(), up, member).after == UploadStatus.LANDED:
                marked.append(up)
        else:
            catalog.set_upload_status(paths.catalog_url, up.upload_id, UploadStatus.LANDED)
            marked.append(up)
        if progress is not None and task is not None:
            progress.advance(task)
    ups = marked
    with catalog.begin(paths.catalog_url) as conn:
        catalog.audit(conn, "office", "uploads.rerun", city_code, {"uploads": [u.upload_id for u in ups]})
    return [u.upload_id for u in ups]


def run_city(paths: Paths, member: Member) -> bool:
    """Execute the ingest_city job for one city's partition, recorded in the Dagster instance."""
    from pipelines.definitions import defs
    from pipelines.main_run import dagster_instance, sync_partitions

    instance = dagster_instance(paths)
    sync_partitions(instance, [member])
    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = defs.resolve_job_def("ingest_city").execute_in_process(
        partition_key=member.code, instance=instance, raise_on_error=False, run_config=run_config)
    return bool(result.success)
