"""Decisions can be revisited: a refused or unreadable upload is evaluated again from its landed bytes.

A refusal was right for the configuration of its day. When the office changes that configuration (adds
``submits_for`` to a member, accepts a column mapping, adds a schema, loosens a policy), the same bytes may
now be publishable. :func:`reevaluate` reads the landed file again exactly as the upload service does
(:func:`intake.process.stage_file`, then the service's guards with the member's current rights) and records
the new decision:

* still refused, for the same reason: nothing changes (no new history row);
* refused for another reason: the new refusal replaces the old one in the catalog; the old refusal record
  beside the landed file is kept under a dated name;
* no longer refused: the upload becomes ``landed`` with its dataset, so the city's next run (``kouiki rerun``,
  the upload sensor) takes it through validation and the lake to a release.

Nothing landed is deleted or overwritten; each change of decision is one new row in the catalog's audit log
(``upload.decision``), shown by ``kouiki status UPLOAD_ID`` as the upload's history.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expectations.registry import Registry
from intake.landing import REFUSAL_SUFFIX, read_refusal, record_refusal, refusal_path
from intake.process import stage_file
from kouiki import catalog
from kouiki.catalog import UploadStatus
from kouiki.members import Member
from kouiki.problems import IntakeError
from kouiki.settings import Paths
from service.guards import find_formula_cell, find_other_city_row

REFUSED = "refused"       # detail key: the service refused this upload (formula, another city's rows)
# Statuses whose decision intake or the service made before anything was validated: evaluated again.
REVISITABLE = (UploadStatus.UNREADABLE, UploadStatus.REJECTED)
DECISION_ACTION = "upload.decision"


@dataclass(frozen=True)
class Reevaluation:
    """What one upload's evaluation decided, before and after."""

    upload_id: str
    before: UploadStatus
    after: UploadStatus           # landed (will be processed), unreadable, rejected (refused)
    dataset_id: str | None
    error: dict[str, Any] | None
    changed: bool

    def to_json(self) -> dict[str, Any]:
        return {"upload_id": self.upload_id, "before": self.before, "after": self.after,
                "dataset_id": self.dataset_id, "error": self.error, "changed": self.changed}


def is_refused(upload: catalog.UploadRow) -> bool:
    """Refused by the service (formulas, only another city's rows) or unreadable to intake."""
    return upload.status == UploadStatus.UNREADABLE or bool((upload.detail or {}).get(REFUSED))


def revisitable(upload: catalog.UploadRow) -> bool:
    """A decision taken before validation (refusal, unreadable) that a configuration change may revise."""
    return upload.status in REVISITABLE and is_refused(upload)


def reevaluate(paths: Paths, registry: Registry, upload: catalog.UploadRow, member: Member, *,
               dataset_hint: str | None = None, actor: str = "office", reason: str = "rerun") -> Reevaluation:
    """Evaluate one refused or unreadable upload again from its landed bytes with today's configuration."""
    before_error = (upload.detail or {}).get("error")
    landed = paths.home / upload.stored_path
    try:
        staged = stage_file(landed, registry, original_name=upload.original_name, dataset_hint=dataset_hint,
                            city_code=upload.city_code)
    except IntakeError as err:
        return _still_refused(paths, upload, err, UploadStatus.UNREADABLE, refused=False, actor=actor, reason=reason,
                              before_error=before_error)
    refusal = find_formula_cell(staged.raw_table) or find_other_city_row(staged, member.code, member.submits_for)
    if refusal is not None:
        return _still_refused(paths, upload, refusal, UploadStatus.REJECTED, refused=True, actor=actor, reason=reason,
                              before_error=before_error)
    supersede_refusal(landed)
    match = staged.match
    catalog.set_upload_status(
        paths.catalog_url, upload.upload_id, UploadStatus.LANDED, dataset_id=match.dataset_id, variant=match.variant,
        detail={REFUSED: False, "error": None,
                "detection": {"score": round(match.score, 3), "unmatched": match.unmatched,
                              "missing": match.missing, "encoding": staged.raw_table.encoding,
                              "format": staged.raw_table.format}})
    after = Reevaluation(upload.upload_id, upload.status, UploadStatus.LANDED, match.dataset_id, None, changed=True)
    record_decision(paths, after, actor=actor, reason=reason, before_error=before_error)
    return after


def _still_refused(paths: Paths, upload: catalog.UploadRow, err: IntakeError, status: UploadStatus, *, refused: bool,
                   actor: str, reason: str, before_error: Any) -> Reevaluation:
    error = err.to_dict()
    same = upload.status == status and isinstance(before_error, dict) and before_error.get("code") == error["code"] \
        and before_error.get("message_en") == error["message_en"]
    if same:
        return Reevaluation(upload.upload_id, upload.status, status, upload.dataset_id, error, changed=False)
    detail: dict[str, Any] = {"error": error, REFUSED: refused}
    landed = paths.home / upload.stored_path
    supersede_refusal(landed)
    catalog.set_upload_status(paths.catalog_url, upload.upload_id, status, detail=detail)
    record_refusal(paths, upload.stored_path, status, detail)
    after = Reevaluation(upload.upload_id, upload.status, status, upload.dataset_id, error, changed=True)
    record_decision(paths, after, actor=actor, reason=reason, before_error=before_error)
    return after


def supersede_refusal(landed: Path) -> Path | None:
    """Keep an earlier refusal record under a dated name (``.<sha>.refused.<n>.json``) so that it no longer
    applies (a rebuilt catalog would otherwise restore the refusal) yet stays readable. Returns its new path."""
    current = refusal_path(landed)
    if read_refusal(current) is None and not current.exists():
        return None
    stem = current.name[: -len(REFUSAL_SUFFIX)]
    n = 1
    while (target := current.with_name(f"{stem}.refused.{n}.json")).exists():
        n += 1
    os.replace(current, target)
    return target


def record_decision(paths: Paths, decision: Reevaluation, *, actor: str, reason: str,
                    before_error: Any = None) -> None:
    """One new audit row per change of decision: the upload's history is never overwritten."""
    with catalog.begin(paths.catalog_url) as conn:
        catalog.audit(conn, actor, DECISION_ACTION, decision.upload_id, {
            **decision.to_json(), "reason": reason,
            "before_error_code": before_error.get("code") if isinstance(before_error, dict) else None})


def reevaluate_city(paths: Paths, registry: Registry, member: Member, *, actor: str = "office",
                    reason: str = "rerun") -> list[Reevaluation]:
    """Every refused or unreadable upload of the member, evaluated again (oldest first)."""
    ups = catalog.list_uploads(paths.catalog_url, city_code=member.code)
    return [reevaluate(paths, registry, u, member, actor=actor, reason=reason) for u in ups if revisitable(u)]


def decision_history(paths: Paths, upload_id: str) -> list[dict[str, Any]]:
    """The upload's recorded decisions, oldest first (landing, each re-evaluation)."""
    from sqlalchemy import select

    log = catalog.audit_log
    query = select(log.c.at, log.c.actor, log.c.action, log.c.detail).where(
        log.c.subject == upload_id).order_by(log.c.id)
    with catalog.begin(paths.catalog_url) as conn:
        return [{"at": r.at.isoformat(), "actor": r.actor, "action": r.action, "detail": r.detail or {}}
                for r in conn.execute(query)]


def registry_digest(registry: Registry) -> str:
    """A fingerprint of the schema registry (datasets, layouts, policies, aliases)."""
    digest = hashlib.sha256(repr(sorted(registry.aliases.items())).encode())
    for ds in sorted(registry, key=lambda d: d.id):
        digest.update(repr(ds).encode())
    return digest.hexdigest()[:16]


def configuration_digest(member: Member, schemas: str, mapping_files: list[Path]) -> str:
    """A fingerprint of everything a refusal depends on for this member: its registry entry (rights, own
    datasets), the schema registry (``schemas``: :func:`registry_digest`) and the member's accepted mappings."""
    digest = hashlib.sha256(repr((member.code, member.submits_for, member.own_datasets, schemas)).encode())
    for file in sorted(mapping_files):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def revisit_changed(paths: Paths, registry: Registry, members: list[Member], known: dict[str, str],
                    mappings_root: Path | None = None) -> tuple[dict[str, str], list[Reevaluation]]:
    """For each member whose configuration changed since ``known`` (city → digest), evaluate its refused and
    unreadable uploads again. Returns the new digests and what changed (the upload sensor's step). Unchanged
    members cost no catalog query."""
    from intake.mapping import mappings_dir

    root = mappings_root or mappings_dir()
    by_city: dict[str, list[Path]] = {}
    for file in root.glob("*/*.yaml") if root.is_dir() else []:
        by_city.setdefault(file.parent.name, []).append(file)
    schemas = registry_digest(registry)
    digests: dict[str, str] = {}
    changed: list[Reevaluation] = []
    for member in members:
        digests[member.code] = configuration_digest(member, schemas, by_city.get(member.code, []))
        # a city seen for the first time (a new member, the sensor's first tick) only has its digest recorded
        if member.code in known and known[member.code] != digests[member.code]:
            changed += [r for r in reevaluate_city(paths, registry, member, actor="sensor",
                                                   reason="configuration changed") if r.changed]
    return digests, changed
