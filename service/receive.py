"""Receiving an upload: the request body streamed to a temporary file, never held in memory.

Two ways in: a multipart form (the upload page, ``curl -F file=@aed.csv``) parsed as it arrives with
python-multipart's push parser, or the raw bytes of a PUT. Either way the bytes go to a file under
``$KOUIKI_HOME/tmp`` (same file system as the landing zone) while their SHA-256 and size are counted, and the
upload stops at the size limit. The file name the uploader gives is checked here and is only ever metadata.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from python_multipart.multipart import MultipartParseError, MultipartParser, MultipartState, parse_options_header

from service import errors

ALLOWED_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".xls")
MAX_NAME_CHARS = 200
MAX_FIELD_BYTES = 256           # text fields of the form (dataset, city): ids, never long
MAX_FIELDS = 8
DRAIN_BEYOND_LIMIT = 32_000_000  # read (and drop) this much past the limit so the client sees the 413
MULTIPART_OVERHEAD = 64_000      # boundaries, part headers and small fields around the file


@dataclass
class Received:
    """A received file: where it is, what it is called and what the form said besides."""

    path: Path
    original_name: str
    size: int
    sha256: str
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def check_file_name(raw_name: str) -> str:
    """The uploader's file name if it is a plain file name with a table's extension (NFC), else an ApiError."""
    name = unicodedata.normalize("NFC", raw_name).strip()
    if not name:
        raise errors.bad_file_name("名前がありません", "it is empty")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise errors.bad_file_name("制御文字が含まれています", "it contains control characters")
    if "/" in name or "\\" in name or name.startswith(".") or ".." in PurePath(name).parts:
        raise errors.bad_file_name("フォルダーの指定（/ \\ ..）や「.」で始まる名前は使えません",
                                   "it names a folder (/ \\ ..) or starts with a dot")
    if len(name) > MAX_NAME_CHARS:
        raise errors.bad_file_name(f"{MAX_NAME_CHARS} 文字を超えています",
                                   f"it is longer than {MAX_NAME_CHARS} characters")
    suffix = PurePath(name).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise errors.unsupported_extension(suffix, list(ALLOWED_SUFFIXES))
    return name


class _Sink:
    """A temporary file that counts and hashes what is written and refuses to grow past the limit."""

    def __init__(self, folder: Path, limit: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".upload-")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._digest = hashlib.sha256()
        self.size = 0
        self.limit = limit
        self.over_limit = False

    def write(self, data: bytes) -> None:
        if self.over_limit:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.over_limit = True
            return
        self._file.write(data)
        self._digest.update(data)

    def close(self) -> str:
        self._file.close()
        return self._digest.hexdigest()

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def _refuse_declared_size(content_length: str | None, limit: int) -> None:
    """Refuse before reading when the declared size is far beyond the limit (nothing worth draining)."""
    if content_length and content_length.isdigit() and int(content_length) > limit + DRAIN_BEYOND_LIMIT:
        raise errors.upload_too_large(limit)


async def _drain(chunks: AsyncIterator[bytes], already: int, limit: int) -> None:
    """Read the rest of an oversized body (up to a bound) so the 413 reaches the client before we close."""
    seen = already
    async for chunk in chunks:
        seen += len(chunk)
        if seen > limit + DRAIN_BEYOND_LIMIT:
            return


async def receive_body(chunks: AsyncIterator[bytes], file_name: str, folder: Path, limit: int,
                       content_length: str | None = None) -> Received:
    """A PUT: the body is the file."""
    name = check_file_name(file_name)
    _refuse_declared_size(content_length, limit)
    sink = _Sink(folder, limit)
    try:
        async for chunk in chunks:
            sink.write(chunk)
            if sink.over_limit:
                await _drain(chunks, sink.size, limit)
                raise errors.upload_too_large(limit)
        sha = sink.close()
    except BaseException:
        sink.abort()
        raise
    return _received(sink, name, sha, {})


class _FormParser:
    """Callbacks for python-multipart: the one file part goes to a sink, small text fields to a dict."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder, self.limit = folder, limit
        self.sink: _Sink | None = None
        self.file_name: str | None = None
        self.fields: dict[str, str] = {}
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._field_name: str | None = None
        self._field_value = bytearray()
        self._in_file = False
        self._parts = 0

    def callbacks(self) -> dict[str, object]:
        return {"on_part_begin": self._part_begin, "on_part_data": self._part_data, "on_part_end": self._part_end,
                "on_header_field": self._header_field, "on_header_value": self._header_value_cb,
                "on_header_end": self._header_end, "on_headers_finished": self._headers_finished}

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_FIELDS:
            raise errors.malformed_request(f"more than {MAX_FIELDS} form fields")
        self._disposition, self._field_name, self._in_file = b"", None, False
        self._field_value = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise errors.malformed_request("a form part has no name")
        self._field_name = _decode(options[b"name"], "field name")
        if b"filename" not in options and self._field_name != "file":
            return
        if self.sink is not None:
            raise errors.too_many_files()
        raw_name = _decode(options.get(b"filename", b""), "file name")
        if not raw_name:     # a browser sends filename="" when no file was chosen
            return
        self.file_name = check_file_name(raw_name)
        self.sink = _Sink(self.folder, self.limit)
        self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            assert self.sink is not None
            self.sink.write(data[start:end])
            return
        self._field_value += data[start:end]
        if len(self._field_value) > MAX_FIELD_BYTES:
            raise errors.malformed_request(f"form field {self._field_name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if not self._in_file and self._field_name is not None:
            self.fields[self._field_name] = _decode(bytes(self._field_value), f"field {self._field_name!r}")


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.malformed_request(f"the {what} is not UTF-8") from None


def multipart_boundary(content_type: str) -> bytes:
    """The boundary of a multipart/form-data request, or a 415 / 400."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise errors.unsupported_media_type(content_type[:80])
    boundary = options.get(b"boundary")
    if not boundary:
        raise errors.malformed_request("multipart/form-data without a boundary")
    return boundary


async def receive_form(chunks: AsyncIterator[bytes], content_type: str, folder: Path, limit: int,
                       content_length: str | None = None) -> Received:
    """A multipart form with one ``file`` part (and optional small fields such as ``dataset``)."""
    boundary = multipart_boundary(content_type)
    _refuse_declared_size(content_length, limit + MULTIPART_OVERHEAD)
    form = _FormParser(folder, limit)
    try:
        parser = MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
        async for chunk in chunks:
            parser.write(chunk)
            if form.sink is not None and form.sink.over_limit:
                await _drain(chunks, form.sink.size, limit)
                raise errors.upload_too_large(limit)
        parser.finalize()
        if parser.state != MultipartState.END:
            raise errors.malformed_request("the form ends before its closing boundary")
        if form.sink is None or form.file_name is None:
            raise errors.missing_file()
        sha = form.sink.close()
    except MultipartParseError as err:
        if form.sink is not None:
            form.sink.abort()
        raise errors.malformed_request(str(err)[:200]) from None
    except BaseException:
        if form.sink is not None:
            form.sink.abort()
        raise
    return _received(form.sink, form.file_name, sha, form.fields)


def _received(sink: _Sink, name: str, sha: str, fields: dict[str, str]) -> Received:
    if sink.size == 0:
        sink.path.unlink(missing_ok=True)
        raise errors.empty_upload(name)
    return Received(path=sink.path, original_name=name, size=sink.size, sha256=sha, fields=fields)
