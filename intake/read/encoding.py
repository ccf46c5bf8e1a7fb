"""Encodings: UTF-8 with BOM → UTF-8 → CP932, strictly, never a guess."""

from __future__ import annotations

from intake.read.common import _UTF8_BOM, PROBE_BYTES
from intake.read.sniff import _line_at
from kouiki.problems import IntakeError, Problem, Where, term

UTF8_EVIDENCE_CHARS = 4                # this many valid non-ASCII UTF-8 characters prove a file is UTF-8


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode strictly as UTF-8 with BOM, else UTF-8, else CP932; returns ``(text, encoding)``.

    A UTF-8 decode that fails only after several valid non-ASCII characters is a damaged UTF-8 file,
    not CP932: it is reported rather than silently decoded as CP932 mojibake.
    """
    if data.startswith(_UTF8_BOM):
        try:
            return data.decode("utf-8-sig"), "utf-8-sig"
        except UnicodeDecodeError as err:
            raise _encoding_error(data, err.start, "utf-8-sig") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as err:
        utf8_failed_at = err.start
    if _looks_like_utf8(data[:utf8_failed_at]):
        raise _encoding_error(data, utf8_failed_at, "utf-8")
    try:
        return data.decode("cp932"), "cp932"
    except UnicodeDecodeError as err:
        cp932_failed_at = err.start
    if cp932_failed_at > utf8_failed_at:
        raise _encoding_error(data, cp932_failed_at, "cp932")
    raise _encoding_error(data, utf8_failed_at, "utf-8")


def _looks_like_utf8(valid_prefix: bytes) -> bool:
    text = valid_prefix.decode("utf-8", errors="replace")
    return len(text) - len(text.encode("ascii", errors="ignore")) >= UTF8_EVIDENCE_CHARS


def _encoding_error(data: bytes, offset: int, encoding: str) -> IntakeError:
    line = _line_at(data, offset)
    shown = " ".join(f"0x{byte:02X}" for byte in data[offset : offset + 2])
    label = term("encoding", encoding)
    return IntakeError(Problem.of("encoding-error", "undecodable", line=line, offset=offset, shown=shown,
                                  label_ja=label.ja, label_en=label.en, where=Where(line=line, byte_offset=offset)))


def _probe_encoding(data: bytes) -> str | None:
    """The encoding decode_text would choose, decided from a prefix when the prefix settles it; else None."""
    if data.startswith(_UTF8_BOM):
        return "utf-8-sig"
    cut = len(data)
    if len(data) > PROBE_BYTES:   # cut after a line break: never inside a UTF-8 or CP932 character
        cut = max(data.rfind(b"\n", 0, PROBE_BYTES), data.rfind(b"\r", 0, PROBE_BYTES)) + 1
    probe = data[:cut]
    try:
        probe.decode("utf-8")
    except UnicodeDecodeError as err:
        return None if _looks_like_utf8(probe[: err.start]) else "cp932"
    return "utf-8" if _looks_like_utf8(probe) else None

