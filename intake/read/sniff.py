"""Format sniffing and refusals: xlsx by its zip signature, and files that are certainly not tables."""

from __future__ import annotations

import io
import re
import zipfile

from intake.read.common import _UTF8_BOM
from kouiki.problems import IntakeError, Problem, Where, term

_NON_SPACE = re.compile(rb"[^ \t\r\n\v\f]")

# Signatures of files that are certainly not tables, so the message can say what was uploaded; the words for
# each kind are the catalogue's terms of unsupported-format (kouiki/problems.yaml).
_NOT_A_TABLE = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF8", "gif"),
    (b"%PDF-", "pdf"),
    (b"\x1f\x8b", "gzip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
)
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"


def _is_xlsx(data: bytes) -> bool:
    if not data.startswith(_ZIP_MAGIC):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(info.filename.startswith("xl/") for info in archive.infolist())
    except zipfile.BadZipFile:
        return False


def _refuse_non_text(data: bytes, name: str) -> None:
    """Raise for anything that is not a text table: empty, old Excel, images, archives, binary."""
    if _NON_SPACE.search(data, len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0) is None:
        raise IntakeError(Problem.of("empty-file", "zero-bytes", name=name))
    if data.startswith(_OLE2_MAGIC):
        raise IntakeError(Problem.of("unsupported-format", "old-excel", name=name))
    kind = _known_binary_kind(data)
    if kind is not None:
        words = term("unsupported-format", kind)
        raise IntakeError(Problem.of("unsupported-format", "not-a-table", name=name, kind_ja=words.ja,
                                     kind_en=words.en))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise IntakeError(Problem.of("encoding-error", "utf16", name=name))
    nul_at = data.find(b"\x00")
    if nul_at >= 0:
        line = _line_at(data, nul_at)
        raise IntakeError(Problem.of("binary-content", name=name, line=line, offset=nul_at,
                                     where=Where(line=line, byte_offset=nul_at)))


def _known_binary_kind(data: bytes) -> str | None:
    """The catalogue term for what ``data`` certainly is (``png``, ``zip`` …), None when it may be a table."""
    for magic, kind in _NOT_A_TABLE:
        if data.startswith(magic):
            return kind
    if data.startswith((_ZIP_MAGIC, b"PK\x05\x06")):
        return "zip"
    return None


def _line_at(data: bytes, offset: int) -> int:
    """1-based physical line of a byte offset; CR, LF and CRLF each end one line."""
    head = data[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1

