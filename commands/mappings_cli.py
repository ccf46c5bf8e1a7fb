"""``kouiki mappings``: column mappings of cities' own layouts (intake/mapping.py), proposed and accepted.

    kouiki mappings show UPLOAD_ID                the proposals for an upload (and the mapping in force, if any)
    kouiki mappings accept UPLOAD_ID [--dataset ID] [--no-run]
                                                  store the best proposal (or the one for --dataset) as YAML under
                                                  config/mappings/<city>/, evaluate the upload again and run the city
    kouiki mappings list [--city CODE]            the accepted mappings
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from expectations.registry import Registry, default_registry
from intake.headers import header_score
from intake.mapping import (
    MappingProposal,
    find_mapping,
    load_mappings,
    mappings_dir,
    propose_mapping,
    write_mapping,
)
from intake.read import RawTable, read_file
from kouiki import catalog
from kouiki.catalog import UploadStatus
from kouiki.problems import IntakeError
from kouiki.settings import Paths, get_paths

mappings_app = typer.Typer(help="column mappings of cities' own layouts / 独自形式の列の対応", no_args_is_help=True)


def read_upload(paths: Paths, registry: Registry, upload: catalog.UploadRow) -> RawTable:
    """The landed bytes of an upload, read as intake reads them."""
    return read_file(paths.home / upload.stored_path, original_name=upload.original_name,
                     header_scorer=lambda h: header_score(h, registry))


def proposals_for(paths: Paths, registry: Registry,
                  upload: catalog.UploadRow) -> tuple[RawTable, list[MappingProposal]]:
    raw = read_upload(paths, registry, upload)
    return raw, propose_mapping(raw.header, raw.data, registry, file_name=upload.original_name)


def _proposals_or_exit(paths: Paths, registry: Registry,
                       upload_id: str) -> tuple[catalog.UploadRow, RawTable, list[MappingProposal]]:
    """The upload, its file as read and its proposals; one line (ja / en) and exit 1 when there is no such upload
    or its file does not read."""
    from commands.office_cli import fail

    upload = catalog.get_upload(paths.catalog_url, upload_id.strip())
    if upload is None:
        raise fail(f"受付番号 {upload_id} の登録はありません。", f"There is no upload {upload_id}.")
    try:
        raw, proposals = proposals_for(paths, registry, upload)
    except IntakeError as err:
        raise fail(err.message_ja, err.message_en) from None
    return upload, raw, proposals


@mappings_app.command("show")
def show(upload_id: Annotated[str, typer.Argument(help="upload id, e.g. 222127-0a1b2c3d4e5f6789")]) -> None:
    """The mapping proposals for an upload, with scores, and the accepted mapping of its layout if any."""
    from commands.office_cli import print_json

    paths = get_paths()
    upload, raw, proposals = _proposals_or_exit(paths, default_registry(), upload_id)
    accepted = find_mapping(upload.city_code, raw.header)
    print_json({"upload_id": upload.upload_id, "city_code": upload.city_code, "file": upload.original_name,
                "rows": raw.data.height, "header": raw.header,
                "accepted": str(accepted.file) if accepted and accepted.file else None,
                "proposals": [p.to_json() for p in proposals]})


@mappings_app.command("accept")
def accept(
    upload_id: Annotated[str, typer.Argument(help="upload id whose layout to map")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="map onto this dataset, not the best")] = None,
    run: Annotated[bool, typer.Option("--run/--no-run", help="process the city's uploads now")] = True,
) -> None:
    """Accept the proposal for an upload's layout: stored under config/mappings/<city>/; the upload is evaluated
    again and the city's files in this layout are mapped from now on. / 列の対応を承認"""
    from commands.office_cli import fail, print_json, run_city, upload_status_json
    from kouiki.members import load_members, member_by_code
    from service.revisit import reevaluate, revisitable

    paths, registry = get_paths(), default_registry()
    upload, raw, proposals = _proposals_or_exit(paths, registry, upload_id)
    if dataset:
        proposals = [p for p in proposals if p.dataset_id == dataset] or _forced(raw, registry, dataset)
    if not proposals:
        raise fail("対応する標準データセットの候補がありません（独自データセットとして公開されます）。",
                   "No standard dataset comes close enough to propose a mapping (the file is published as the "
                   "city's own dataset).")
    chosen = proposals[0]
    file = write_mapping(chosen, upload.city_code, raw.header, upload_id=upload.upload_id)
    member = member_by_code(upload.city_code, load_members())
    with catalog.begin(paths.catalog_url) as conn:
        catalog.audit(conn, "office", "mapping.accepted", upload.upload_id,
                      {"file": str(file), "dataset": chosen.dataset_id, "score": chosen.score})
    if revisitable(upload):
        reevaluate(paths, registry, upload, member, reason=f"mapping accepted ({file.name})")
    elif upload.status != UploadStatus.LANDED:
        catalog.set_upload_status(paths.catalog_url, upload.upload_id, UploadStatus.LANDED,
                                  dataset_id=chosen.dataset_id, variant=None)
    ok = run_city(paths, member) if run else None
    current = catalog.get_upload(paths.catalog_url, upload.upload_id)
    assert current is not None
    print_json({"mapping": str(file), "dataset": chosen.dataset_id, "score": chosen.score, "run_ok": ok,
                "upload": upload_status_json(paths, current)})
    if ok is False:
        raise typer.Exit(1)


def _forced(raw: RawTable, registry: Registry, dataset: str) -> list[MappingProposal]:
    """The proposal for a dataset the office names even when it scores below the threshold."""
    from intake.mapping import column_kinds, load_vocabulary, propose_for_dataset

    if dataset not in registry:
        return []
    return [propose_for_dataset(raw.header, column_kinds(raw.header, raw.data), registry.get(dataset),
                                registry.aliases, load_vocabulary())]


@mappings_app.command("list")
def list_(city: Annotated[str | None, typer.Option("--city", help="only this city")] = None) -> None:
    """The accepted mappings (files under config/mappings/). / 承認済みの列の対応"""
    from commands.office_cli import out

    table = Table(title=f"列の対応 / column mappings ({mappings_dir()})")
    for col in ("city / 市", "dataset", "signature", "columns / 列", "accepted from / 元の登録", "file"):
        table.add_column(col)
    for m in load_mappings(city.strip() if city else None):
        mapped = sum(1 for v in m.columns.values() if v)
        table.add_row(m.city_code, m.dataset_id, m.signature, f"{mapped}/{len(m.columns)}",
                      str(m.meta.get("accepted_from", "")), str(m.file or ""))
    out.print(table)

