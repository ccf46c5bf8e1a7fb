"""Format sniffing and refusals: xlsx by its zip signature, and files that are certainly not tables."""

from __future__ import annotations

import io
import re
import zipfile

from intake.problems import IntakeError
from intake.read.common import _RESAVE_HINT_EN, _RESAVE_HINT_JA, _UTF8_BOM

_NON_SPACE = re.compile(rb"[^ \t\r\n\v\f]")

# Signatures of files that are certainly not tables, so the message can say what was uploaded.
_NOT_A_TABLE = (
    (b"\x89PNG\r\n\x1a\n", "PNG画像", "a PNG image"),
    (b"\xff\xd8\xff", "JPEG画像", "a JPEG image"),
    (b"GIF8", "GIF画像", "a GIF image"),
    (b"%PDF-", "PDF", "a PDF document"),
    (b"\x1f\x8b", "gzip圧縮ファイル", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip圧縮ファイル", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR圧縮ファイル", "a RAR archive"),
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
        raise IntakeError(
            "empty-file",
            f"ファイル「{name}」は空です（データがありません）。",
            f"The file '{name}' is empty.",
            hint_ja="データが入ったファイルを選び直してください。",
            hint_en="Choose the file that holds the data.",
        )
    if data.startswith(_OLE2_MAGIC):
        raise IntakeError(
            "unsupported-format",
            f"「{name}」は古いExcel形式(.xls)かパスワード付きのファイルで、読み込めません。",
            f"'{name}' is an old Excel workbook (.xls) or a password-protected file, which cannot be read.",
            hint_ja="Excelで「Excelブック(.xlsx)」か『CSV UTF-8 (コンマ区切り)』形式で保存し直してください。",
            hint_en="Re-save it from Excel as 'Excel Workbook (.xlsx)' or 'CSV UTF-8 (Comma delimited)'.",
        )
    kind = _known_binary_kind(data)
    if kind is not None:
        raise IntakeError(
            "unsupported-format",
            f"「{name}」は{kind[0]}で、表（CSV・Excel）ではありません。",
            f"'{name}' is {kind[1]}, not a table (CSV or Excel).",
            hint_ja="CSVファイルかExcelブック(.xlsx)を選んでください。",
            hint_en="Choose a CSV file or an Excel workbook (.xlsx).",
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise IntakeError(
            "encoding-error",
            f"「{name}」はUTF-16（Excelの「Unicode テキスト」）で保存されていて、読み込めません。",
            f"'{name}' is saved as UTF-16 (Excel's 'Unicode Text'), which is not supported.",
            hint_ja=_RESAVE_HINT_JA,
            hint_en=_RESAVE_HINT_EN,
        )
    nul_at = data.find(b"\x00")
    if nul_at >= 0:
        line = _line_at(data, nul_at)
        raise IntakeError(
            "binary-content",
            f"「{name}」の {line} 行目（先頭から {nul_at} バイトの位置）にNULバイトがあります。"
            "テキストの表ではないようです。",
            f"'{name}' contains a NUL byte at line {line} (byte offset {nul_at}); "
            "it does not look like a text table.",
            hint_ja="CSVファイルかExcelブック(.xlsx)を選んでください。" + _RESAVE_HINT_JA,
            hint_en="Choose a CSV file or an Excel workbook (.xlsx). " + _RESAVE_HINT_EN,
            line=line,
            byte_offset=nul_at,
        )


def _known_binary_kind(data: bytes) -> tuple[str, str] | None:
    for magic, kind_ja, kind_en in _NOT_A_TABLE:
        if data.startswith(magic):
            return kind_ja, kind_en
    if data.startswith((_ZIP_MAGIC, b"PK\x05\x06")):
        return "Excelブック以外のZIPファイル", "a ZIP archive that is not an Excel workbook"
    return None


def _line_at(data: bytes, offset: int) -> int:
    """1-based physical line of a byte offset; CR, LF and CRLF each end one line."""
    head = data[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1

