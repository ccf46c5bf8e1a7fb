"""One upload from a city, start to finish, without the web: the code path of the API and of ``kouiki upload``.

1. read and stage the received file (``intake.process.stage_file``, the uploader's dataset hint) and check
   what the service refuses although intake can read it: formula cells, another municipality's rows;
2. land the bytes (``intake.landing.land_file``: content-addressed, idempotent, never overwritten) and record
   the dataset (``intake.inbox.detect_upload``); a file that cannot be read or is refused is landed too, but
   recorded as ``unreadable`` / ``rejected`` at once, so the pipeline never picks it up;
3. validate without writing the lake (``warehouse.load.validate_staged``) and write the city's report where
   the pipeline writes it (``reports/<city>/<upload_id>.html/.json``).

The upload stays ``landed``: the pipeline's lake asset picks it up (the upload sensor starts the city's run)
and writes the lake and its own report. Uploading the same bytes again returns the first answer.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError

from expectations.registry import Registry
from intake.inbox import detect_upload
from intake.landing import Landed, land_file, record_refusal, safe_suffix, sha256_of, upload_id_for
from intake.process import StagedUpload, stage_file
from kouiki import catalog
from kouiki.catalog import UploadStatus
from kouiki.problems import IntakeError
from kouiki.settings import Paths
from service.guards import find_formula_cell, find_other_city_row
from service.revisit import REFUSED

PROBLEM_LINES_SHOWN = 200      # line numbers listed per problem in the API answer (the report has all)
PROBLEM_EXAMPLES_SHOWN = 5

_import_lock = threading.Lock()
# Two requests with the same bytes for the same city must not land and validate them twice at once.
_upload_locks = [threading.Lock() for _ in range(64)]


class UploadRefused(Exception):
    """The file cannot be used; ``error`` is intake's error dict (code, message_ja, message_en, hints, line)."""

    def __init__(self, error: dict[str, Any], upload_id: str | None) -> None:
        super().__init__(error.get("message_en", "refused"))
        self.error = error
        self.upload_id = upload_id


@dataclass(frozen=True)
class Submission:
    """An accepted upload and its immediate validation result (the report's JSON)."""

    upload: catalog.UploadRow
    is_new: bool
    report: dict[str, Any]
    report_html: Path

    def to_json(self) -> dict[str, Any]:
        """The answer for the uploader: the upload, its status and the validation summary with problems."""
        up = self.upload
        return {
            **upload_json(up),
            "is_new": self.is_new,
            "validation": validation_json(self.report),
        }


def warm_up() -> None:
    """Import the validation stack (Great Expectations takes seconds) before the first upload needs it."""
    _validation()


def _validation() -> ModuleType:
    """warehouse.load, imported once under a lock (importing one package from two threads can deadlock)."""
    with _import_lock:
        from warehouse import load

        return load


Progress = Callable[[str], None]


def submit_upload(paths: Paths, registry: Registry, city_code: str, source: Path, original_name: str, *,
                  dataset_hint: str | None = None, via: str = "api", sha256: str | None = None,
                  progress: Progress | None = None, submits_for: tuple[str, ...] = ()) -> Submission:
    """Land, detect and validate one file for ``city_code``. Raises :class:`UploadRefused` for files that
    cannot be read or are refused; readable files with failing rows are a :class:`Submission`.
    ``progress`` is told each step's name (reading, landing, validating) as it starts.

    The file is read and checked before it is landed, so a refused file is never, even for a moment, an
    upload the pipeline could pick up; it is still landed (nothing uploaded is lost) and marked refused."""
    step = progress or (lambda _name: None)
    sha = sha256 or sha256_of(source)
    with _upload_locks[int(sha[:8], 16) % len(_upload_locks)]:
        known = catalog.get_upload(paths.catalog_url, upload_id_for(city_code, sha))
        if known is not None:
            known = _revisit_if_refused(paths, registry, known, dataset_hint, submits_for)
            _refuse_if_refused(known)
            previous = _previous_submission(paths, known)
            if previous is not None:
                return previous
        step("reading")
        try:
            staged = stage_file(source, registry, original_name=original_name, dataset_hint=dataset_hint,
                                city_code=city_code)
        except IntakeError as err:
            upload = _land_and_detect(paths, registry, city_code, source, original_name, via, sha, dataset_hint)
            _refuse_if_refused(upload)
            _refuse(paths, upload, err, status=UploadStatus.UNREADABLE)   # detection passed, staging did not
        refusal = find_formula_cell(staged.raw_table) or find_other_city_row(staged, city_code, submits_for)
        step("landing")
        if refusal is not None:
            landed = _land(paths, city_code, source, original_name, via, sha)
            _refuse(paths, _get(paths, landed.upload_id), refusal, status=UploadStatus.REJECTED, refused=True)
        upload = _land_and_detect(paths, registry, city_code, source, original_name, via, sha, dataset_hint)
        _refuse_if_refused(upload)
        step("validating")
        return _validate(paths, staged, upload, is_new=known is None)


def _land_and_detect(paths: Paths, registry: Registry, city_code: str, source: Path, name: str, via: str,
                     sha: str, dataset_hint: str | None) -> catalog.UploadRow:
    """land_file, then detect_upload (records the dataset, or ``unreadable``) unless it was detected before."""
    upload = _get(paths, _land(paths, city_code, source, name, via, sha).upload_id)
    if upload.dataset_id is None and upload.status == UploadStatus.LANDED:
        detect_upload(paths, registry, upload, dataset_hint=dataset_hint)
        upload = _get(paths, upload.upload_id)
    return upload


def _refuse(paths: Paths, upload: catalog.UploadRow, error: IntakeError, *, status: UploadStatus,
            refused: bool = False) -> NoReturn:
    detail: dict[str, Any] = {"error": error.to_dict()}
    if refused:
        detail[REFUSED] = True
    catalog.set_upload_status(paths.catalog_url, upload.upload_id, status, detail=detail)
    record_refusal(paths, upload.stored_path, status, detail)   # survives a lost catalog
    raise UploadRefused(error.to_dict(), upload.upload_id)


def _land(paths: Paths, city_code: str, source: Path, name: str, via: str, sha: str) -> Landed:
    try:
        return land_file(paths, city_code, source, name, via=via)
    except IntegrityError:
        # another process recorded the same bytes between land_file's check and its insert
        target = paths.landing / city_code / f"{sha}{safe_suffix(name)}"
        return Landed(upload_id_for(city_code, sha), sha, target, target.stat().st_size, is_new=False)


def _get(paths: Paths, upload_id: str) -> catalog.UploadRow:
    upload = catalog.get_upload(paths.catalog_url, upload_id)
    if upload is None:  # land_file has just recorded it; only a catalog wiped underneath us gets here
        raise RuntimeError(f"upload {upload_id} vanished from the catalog")
    return upload


def _revisit_if_refused(paths: Paths, registry: Registry, upload: catalog.UploadRow, dataset_hint: str | None,
                        submits_for: tuple[str, ...]) -> catalog.UploadRow:
    """The same bytes again, once refused: evaluated again with today's configuration and the new dataset hint
    (the registry, a mapping or the member's rights may have changed). See :mod:`service.revisit`."""
    from kouiki.members import Member
    from service.revisit import reevaluate, revisitable

    if not revisitable(upload):
        return upload
    member = Member(code=upload.city_code, name=upload.city_code, submits_for=submits_for)
    reevaluate(paths, registry, upload, member, dataset_hint=dataset_hint, actor=f"city:{upload.city_code}",
               reason="uploaded again" + (f" with dataset {dataset_hint}" if dataset_hint else ""))
    return _get(paths, upload.upload_id)


def _refuse_if_refused(upload: catalog.UploadRow) -> None:
    detail = upload.detail or {}
    if upload.status == UploadStatus.UNREADABLE or detail.get(REFUSED):
        raise UploadRefused(dict(detail.get("error") or {"code": "unreadable"}), upload.upload_id)


def _previous_submission(paths: Paths, upload: catalog.UploadRow) -> Submission | None:
    """The stored answer for bytes uploaded before (None when they were never validated, e.g. from the inbox)."""
    html, doc = report_paths(paths, upload)
    if not doc.is_file():
        return None
    return Submission(upload=upload, is_new=False, report=json.loads(doc.read_text(encoding="utf-8")),
                      report_html=html)


def report_paths(paths: Paths, upload: catalog.UploadRow) -> tuple[Path, Path]:
    """Where the upload's report is (HTML, JSON): the pipeline's place, reports/<city>/<upload_id>."""
    html = paths.reports / upload.city_code / f"{upload.upload_id}.html"
    return html, html.with_suffix(".json")


def _validate(paths: Paths, staged: StagedUpload, upload: catalog.UploadRow, *, is_new: bool) -> Submission:
    load = _validation()
    # a private work folder: the pipeline may be validating the same upload in paths.tmp at this moment
    with tempfile.TemporaryDirectory(dir=paths.tmp, prefix=".validate-") as workdir:
        result = load.validate_staged(staged, staged.values, upload.upload_id, Path(workdir))
    html = load.write_report(paths, staged, result, upload)
    doc = json.loads(html.with_suffix(".json").read_text(encoding="utf-8"))
    _record_validation(paths, upload.upload_id, doc, html)
    return Submission(upload=_get(paths, upload.upload_id), is_new=is_new, report=doc, report_html=html)


def _record_validation(paths: Paths, upload_id: str, doc: dict[str, Any], html: Path) -> None:
    """Keep the immediate result in the catalog; the status stays whatever the pipeline has made it."""
    current = _get(paths, upload_id)
    summary = doc.get("summary", {})
    catalog.set_upload_status(paths.catalog_url, upload_id, current.status, detail={
        "validation": {"decision": summary.get("decision"), "rows": summary.get("rows_total"),
                       "rows_accepted": summary.get("rows_accepted"),
                       "rows_quarantined": summary.get("rows_quarantined"),
                       "failures_by_code": doc.get("counts_by_code", {}), "validated_at": catalog.now().isoformat()},
        "report_html": str(html.relative_to(paths.home)),
        "report_json": str(html.with_suffix(".json").relative_to(paths.home)),
    })


def upload_json(up: catalog.UploadRow) -> dict[str, Any]:
    """An upload's catalog record for its city (no stored paths)."""
    detail = up.detail or {}
    return {
        "upload_id": up.upload_id, "city_code": up.city_code, "file_name": up.original_name, "sha256": up.sha256,
        "size": up.size, "received_at": _utc(up.received_at).isoformat(), "source": up.source,
        "dataset_id": up.dataset_id, "variant": up.variant, "status": up.status,
        "decision": (detail.get("validation") or {}).get("decision") if up.status == UploadStatus.LANDED else None,
        "rows": detail.get("rows", (detail.get("validation") or {}).get("rows")),
        "rows_accepted": detail.get("rows_accepted", (detail.get("validation") or {}).get("rows_accepted")),
        "rows_quarantined": detail.get("rows_quarantined",
                                       (detail.get("validation") or {}).get("rows_quarantined")),
        "error": detail.get("error") if up.status == UploadStatus.UNREADABLE or detail.get(REFUSED) else None,
        "has_report": bool(detail.get("report_html")),
    }


def _utc(moment: datetime) -> datetime:
    """Catalog times are UTC; SQLite hands them back without their zone."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def validation_json(report: dict[str, Any]) -> dict[str, Any]:
    """The report's content for an API answer: every problem, line numbers and examples trimmed."""
    problems = []
    for p in report.get("problems", []):
        lines = list(p.get("lines") or [])
        problems.append({
            **{k: p.get(k) for k in ("error_code", "column", "severity", "title_ja", "title_en", "explanation_ja",
                                     "explanation_en", "hint_ja", "hint_en", "count", "rows_affected")},
            "lines": lines[:PROBLEM_LINES_SHOWN], "lines_total": len(lines),
            "examples": list(p.get("examples") or [])[:PROBLEM_EXAMPLES_SHOWN],
        })
    return {
        "dataset": report.get("dataset"),
        "summary": report.get("summary"),
        "counts_by_code": report.get("counts_by_code"),
        "problems": problems,
        "notices": report.get("notices", []),
        "normalisations": report.get("normalisations", []),
    }

