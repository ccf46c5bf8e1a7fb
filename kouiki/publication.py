"""Where an upload stands for its city: rows read, published and withheld (with the top reasons), and the
release its rows are in. One answer for the upload page, ``kouiki status`` and the ``kouiki run`` summary.

The link from an upload to a release is the release's own record: ``releases/<dataset>/<n>/metadata.json``
lists its source uploads (and, since this version, the rows of each). An upload is "published in release N"
when N is the latest release of its dataset and lists it; an upload listed only by older releases was
replaced by a newer upload of the same city.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from kouiki import catalog
from kouiki.catalog import UploadStatus
from kouiki.validation_errors import ERROR_TYPES

TOP_REASONS = 3
OLDER_RELEASES_SEARCHED = 50   # how far back a replaced upload's last release is looked for



class PublicationState(StrEnum):
    """Where an upload stands for its city (the values are what the API and ``kouiki status --json`` show)."""

    PUBLISHED = "published"                  # in the latest release of its dataset
    PARTLY_PUBLISHED = "partly_published"    # in the latest release, some rows withheld
    WAITING = "waiting"                      # landed, not processed yet
    VALIDATED = "validated"                  # validated, waiting for the next release
    WITHHELD = "withheld"                    # every row withheld: nothing to publish
    REFUSED = "refused"                      # rejected (by validation or the upload service)
    UNREADABLE = "unreadable"                # the file could not be read
    SUPERSEDED = "superseded"                # only older releases list it: a newer upload replaced it


# state → (Japanese, English); "{n}" is the release number.
LABELS: dict[PublicationState, tuple[str, str]] = {
    PublicationState.PUBLISHED: ("公開済み（第{n}版）", "published (release {n})"),
    PublicationState.PARTLY_PUBLISHED: ("一部保留・公開済み（第{n}版）",
                                        "published in part (release {n}), some rows withheld"),
    PublicationState.WAITING: ("受付済み（処理待ち）", "received (waiting for processing)"),
    PublicationState.VALIDATED: ("検証済み（次の公開待ち）", "validated (waiting for the next release)"),
    PublicationState.WITHHELD: ("全行保留（公開なし）", "every row withheld (nothing published)"),
    PublicationState.REFUSED: ("受付不可", "not accepted"),
    PublicationState.UNREADABLE: ("受付不可（読み込めません）", "not accepted (the file cannot be read)"),
    PublicationState.SUPERSEDED: ("差し替え済み（第{n}版まで公開）",
                                  "replaced by a newer upload (published up to release {n})"),
}


@dataclass(frozen=True)
class Reason:
    code: str
    count: int
    title_ja: str
    title_en: str


@dataclass(frozen=True)
class Publication:
    """The city's view of one upload."""

    state: PublicationState
    release: int | None
    rows_read: int | None
    rows_published: int | None
    rows_withheld: int | None
    reasons: list[Reason] = field(default_factory=list)     # why rows were withheld (errors), most frequent first
    rows_with_warnings: int | None = None                   # published rows that carry a warning
    warnings: list[Reason] = field(default_factory=list)    # the most frequent warnings (published anyway)

    @property
    def label_ja(self) -> str:
        return LABELS[self.state][0].format(n=self.release)

    @property
    def label_en(self) -> str:
        return LABELS[self.state][1].format(n=self.release)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "label_ja": self.label_ja, "label_en": self.label_en}


class ReleaseIndex:
    """Which release lists which upload, read from the releases folder (metadata files cached by mtime)."""

    def __init__(self, releases_root: Path) -> None:
        self.root = releases_root
        self._metadata: dict[Path, tuple[int, dict[str, Any]]] = {}

    def latest_number(self, dataset_id: str) -> int | None:
        pointer = self.root / dataset_id / "latest.json"
        try:
            return int(json.loads(pointer.read_text(encoding="utf-8"))["number"])
        except (OSError, ValueError, KeyError, TypeError):
            return None   # no release yet, or a pointer being replaced: "not yet published" for now

    def sources(self, dataset_id: str, number: int) -> dict[str, int | None]:
        """upload id → rows in that release (None when the release predates per-upload counts)."""
        path = self.root / dataset_id / str(number) / "metadata.json"
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return {}
        cached = self._metadata.get(path)
        if cached is None or cached[0] != mtime:
            try:
                cached = (mtime, json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                return {}
            self._metadata[path] = cached
        return {s["upload_id"]: s.get("rows") for s in cached[1].get("source_uploads", []) if "upload_id" in s}

    def find(self, dataset_id: str, upload_id: str) -> tuple[int, bool, int | None] | None:
        """(release number, is it the latest, rows) of the newest release listing the upload, or None."""
        latest = self.latest_number(dataset_id)
        if latest is None:
            return None
        for number in range(latest, max(0, latest - OLDER_RELEASES_SEARCHED), -1):
            sources = self.sources(dataset_id, number)
            if upload_id in sources:
                return number, number == latest, sources[upload_id]
        return None


def publication(upload: catalog.UploadRow, index: ReleaseIndex) -> Publication:
    """Where ``upload`` stands: its state, release and row counts (from the catalog and the releases)."""
    detail = upload.detail or {}
    read = _int(detail.get("rows"))
    accepted = _int(detail.get("rows_accepted"))
    withheld = _int(detail.get("rows_quarantined"))
    reasons, warnings = withheld_and_warnings(detail)
    warned = _int(detail.get("rows_with_warnings"))
    if upload.status == UploadStatus.UNREADABLE:
        return Publication(PublicationState.UNREADABLE, None, read, 0, read, _error_reason(detail))
    if upload.status == UploadStatus.REJECTED:
        return Publication(PublicationState.REFUSED, None, read, 0, read, reasons or _error_reason(detail))
    if upload.status == UploadStatus.LANDED or upload.dataset_id is None:
        return Publication(PublicationState.WAITING, None, None, None, None)
    found = index.find(upload.dataset_id, upload.upload_id)
    if found is None:
        if accepted == 0 and read:
            return Publication(PublicationState.WITHHELD, None, read, 0, withheld, reasons, warned, warnings)
        return Publication(PublicationState.VALIDATED, None, read, None, withheld, reasons, warned, warnings)
    number, is_latest, rows_in_release = found
    published = rows_in_release if rows_in_release is not None else accepted
    if not is_latest:
        return Publication(PublicationState.SUPERSEDED, number, read, published, withheld, reasons, warned, warnings)
    state = PublicationState.PARTLY_PUBLISHED if withheld else PublicationState.PUBLISHED
    return Publication(state, number, read, published, withheld, reasons, warned, warnings)


def withheld_and_warnings(detail: dict[str, Any]) -> tuple[list[Reason], list[Reason]]:
    """Top reasons rows were withheld (error findings) and top warnings (published rows). Loads that predate
    the split of errors and warnings count every finding as a reason."""
    every = detail.get("failures_by_code") or {}
    errors = detail.get("errors_by_code")
    if errors is None:
        return top_reasons(every), []
    warnings = {code: (_int(n) or 0) - (_int(errors.get(code)) or 0) for code, n in every.items()}
    return top_reasons(errors), top_reasons(warnings)


def top_reasons(failures_by_code: dict[str, Any], limit: int = TOP_REASONS) -> list[Reason]:
    """The most frequent finding codes, with their titles for city staff."""
    counted = sorted(((str(c), _int(n) or 0) for c, n in failures_by_code.items()), key=lambda x: (-x[1], x[0]))
    return [_reason(code, n) for code, n in counted[:limit] if n > 0]


def _reason(code: str, count: int) -> Reason:
    kind = ERROR_TYPES.get(code)
    return Reason(code, count, kind.title_ja if kind else code, kind.title_en if kind else code)


def _error_reason(detail: dict[str, Any]) -> list[Reason]:
    error = detail.get("error") or {}
    code = str(error.get("code") or "unreadable")
    kind = ERROR_TYPES.get(code)
    return [Reason(code, 1, kind.title_ja if kind else str(error.get("message_ja") or code),
                   kind.title_en if kind else str(error.get("message_en") or code))]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
