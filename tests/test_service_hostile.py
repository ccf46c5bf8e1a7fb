"""Bad and hostile input against the real upload service: a corpus of generated files and requests, each
answered with its own clear JSON error (ja + en, never a 500), the server up throughout, and every earlier
upload and release byte-for-byte unchanged afterwards."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openpyxl
import pytest

from kouiki.tokens import issue_token
from service.testing import RunningService, catalog_url, run_service, write_members

KOMAE, YAIZU = "132195", "222127"
KOMAE_AED = Path(__file__).resolve().parents[1] / "demo" / "uploads" / "132195" / "komae_132195_aed.csv"
YAIZU_AED = Path(__file__).resolve().parents[1] / "demo" / "uploads" / "222127" / "yaizu_222127_aed.csv"
LIMIT_MB = 2
BOUNDARY = "kouiki-test-boundary"

pytestmark = pytest.mark.skipif(not KOMAE_AED.exists(), reason="needs demo/uploads")


@dataclass(frozen=True)
class Case:
    name: str
    send: Callable[[httpx.Client], httpx.Response]
    status: int
    code: str


# ---------------------------------------------------------------------------------------------- builders


def form(parts: list[tuple[str, str | None, bytes]], boundary: str = BOUNDARY, close: bool = True) -> bytes:
    """A multipart/form-data body written byte by byte: (field name, file name or None, content)."""
    out = b""
    for name, file_name, content in parts:
        disposition = f'form-data; name="{name}"'.encode()
        if file_name is not None:
            disposition += b'; filename="' + file_name.encode("utf-8", "surrogateescape") + b'"'
        out += b"--" + boundary.encode() + b"\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + content + b"\r\n"
    return out + (b"--" + boundary.encode() + b"--\r\n" if close else b"")


def post_form(body: bytes, content_type: str = f"multipart/form-data; boundary={BOUNDARY}",
              path: str = "/api/uploads", **headers: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda c: c.post(path, content=body, headers={"Content-Type": content_type, **headers})


def upload(name: str, content: bytes, **params: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda c: c.post("/api/uploads", params=params, content=form([("file", name, content)]),
                            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


def put(raw_path: str, content: bytes | Iterator[bytes], **headers: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda c: c.put(raw_path, content=content, headers=headers)


def get(path: str, **headers: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda c: c.get(path, headers=headers)


def komae_with(old: str, new: str) -> bytes:
    text = KOMAE_AED.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1).encode("utf-8")


def xlsx_bytes(rows: list[list[str]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    for cells in sheet.iter_rows():
        for cell in cells:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"      # text that looks like a formula, as a clerk's '=... would be
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def zip_bomb(entries: dict[str, int]) -> bytes:
    """An xlsx-shaped zip whose entries expand to ``size`` zero bytes each (compressed about 1000×)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        for name, size in entries.items():
            archive.writestr(name, b"\0" * size)
    return buffer.getvalue()


def chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    header = KOMAE_AED.read_bytes().split(b"\r\n", 1)[0] + b"\r\n"
    yield header
    sent = len(header)
    row = "132195,1,東京都,狛江市,名称,ﾒｲｼｮｳ,住所,,35.6,139.5,,,,,,,,,,,,\r\n".encode()
    while sent < total:
        block = row * (size // len(row))
        sent += len(block)
        yield block


def corpus() -> list[Case]:
    aed_header = KOMAE_AED.read_bytes().split(b"\r\n", 1)[0]
    komae = KOMAE_AED.read_bytes()
    real_xlsx = xlsx_bytes([r.split(",") for r in KOMAE_AED.read_text(encoding="utf-8").splitlines()[:5]])
    over = (LIMIT_MB + 1) * 1_000_000
    cases = [
        # authentication: nobody but a member city gets in
        Case("no token", anonymous("POST", "/api/uploads"), 401, "auth-required"),
        Case("no token list", anonymous("GET", "/api/uploads"), 401, "auth-required"),
        Case("empty bearer", lambda c: c.get("/api/uploads", headers={"Authorization": "Bearer"}), 401,
             "invalid-token"),
        Case("basic auth", lambda c: c.get("/api/uploads", headers={"Authorization": "Basic YWRtaW46YWRtaW4="}),
             401, "invalid-token"),
        Case("forged token", lambda c: c.get("/api/uploads", headers={
            "Authorization": "Bearer kouiki_0123456789ab_" + "A" * 43}), 401, "invalid-token"),
        Case("token with sql", lambda c: c.get("/api/uploads", headers={
            "Authorization": "Bearer ' OR 1=1 --"}), 401, "invalid-token"),
        # file names: never a path, always a table's extension
        Case("traversal name", upload("../../../etc/passwd.csv", komae), 400, "bad-file-name"),
        Case("windows traversal", upload("..\\..\\windows\\aed.csv", komae), 400, "bad-file-name"),
        Case("absolute name", upload("/etc/cron.d/aed.csv", komae), 400, "bad-file-name"),
        Case("hidden name", upload(".bashrc.csv", komae), 400, "bad-file-name"),
        Case("control chars in name", upload("aed\x01\x7f.csv", komae), 400, "bad-file-name"),
        Case("very long name", upload("あ" * 300 + ".csv", komae), 400, "bad-file-name"),
        Case("put traversal %2F", put("/api/uploads/..%2F..%2Flanding%2Fx.csv", komae), 400, "bad-file-name"),
        Case("put NUL name", put("/api/uploads/aed%00.csv", komae), 400, "bad-file-name"),
        Case("put encoded dots", put("/api/uploads/%2e%2e%2f%2e%2e%2fcatalog.csv", komae), 400, "bad-file-name"),
        Case("executable", upload("aed.exe", komae), 415, "unsupported-extension"),
        Case("html page", upload("report.html", b"<script>alert(1)</script>"), 415, "unsupported-extension"),
        Case("double extension", upload("aed.csv.exe", komae), 415, "unsupported-extension"),
        Case("macro workbook", upload("aed.xlsm", real_xlsx), 415, "unsupported-extension"),
        Case("no extension", upload("aed", komae), 415, "unsupported-extension"),
        # files that are not what they claim
        Case("png as csv", upload("aed.csv", b"\x89PNG\r\n\x1a\n" + b"\0" * 64), 415, "unsupported-format"),
        Case("jpeg as csv", upload("aed.csv", b"\xff\xd8\xff\xe0" + b"JFIF" * 16), 415, "unsupported-format"),
        Case("pdf as xlsx", upload("aed.xlsx", b"%PDF-1.7\n" + b"1 0 obj\n" * 8), 415, "unsupported-format"),
        Case("gzip as csv", upload("aed.csv", b"\x1f\x8b\x08\x00" + b"\x01" * 64), 415, "unsupported-format"),
        Case("plain zip as xlsx", upload("aed.xlsx", _plain_zip()), 415, "unsupported-format"),
        Case("old xls", upload("aed.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512), 415,
             "unsupported-format"),
        Case("elf binary as csv", upload("aed.csv", b"\x7fELF\x02\x01\x01" + b"\0" * 200), 415, "binary-content"),
        Case("broken xlsx", upload("aed.xlsx", _broken_xlsx()), 415, "corrupt-file"),
        # zip bombs
        Case("xlsx ratio bomb", upload("aed.xlsx", zip_bomb({"xl/worksheets/sheet1.xml": 50_000_000})), 413,
             "file-too-large"),
        Case("xlsx many-entry bomb", upload("aed.xlsx", zip_bomb(
            {f"xl/worksheets/sheet{i}.xml": 2_000_000 for i in range(1, 30)})), 413, "file-too-large"),
        # empty and enormous
        Case("zero bytes", upload("aed.csv", b""), 400, "empty-upload"),
        Case("zero bytes put", put("/api/uploads/aed.csv", b""), 400, "empty-upload"),
        Case("only spaces", upload("aed.csv", b"   \r\n \t \r\n"), 422, "empty-file"),
        Case("only a BOM", upload("aed.csv", b"\xef\xbb\xbf"), 422, "empty-file"),
        Case("enormous form", upload("aed.csv", aed_header + b"\r\n" + b"x" * over), 413, "upload-too-large"),
        Case("enormous put", put("/api/uploads/aed.csv", aed_header + b"\r\n" + b"x" * over), 413,
             "upload-too-large"),
        Case("enormous chunked put", put("/api/uploads/aed.csv", chunks(over)), 413, "upload-too-large"),
        Case("declared 10 GB", declared_huge, 413, "upload-too-large"),
        # NUL bytes, encodings, ragged rows
        Case("NUL in a row", upload("aed.csv", komae.replace("狛江市役所".encode(), b"\x00", 1)), 415,
             "binary-content"),
        Case("utf-16 with BOM", upload("aed.csv", b"\xff\xfe" + KOMAE_AED.read_text(encoding="utf-8")
                                       .encode("utf-16-le")), 422, "encoding-error"),
        Case("utf-16 without BOM", upload("aed.csv", KOMAE_AED.read_text(encoding="utf-8").encode("utf-16-le")),
             415, "binary-content"),
        Case("utf-8 cut in a character", upload("aed.csv", komae[:200] + "東".encode()[:2] + komae[202:]), 422,
             "encoding-error"),
        Case("cp932 mixed into utf-8", upload("aed.csv", komae + "狛江市".encode("cp932") + b"\r\n"), 422,
             "encoding-error"),
        Case("euc-jp file", upload("aed.csv", KOMAE_AED.read_text(encoding="utf-8").encode("euc_jp",
                                                                                       "replace")), 422,
             "encoding-error"),
        Case("unclosed quote", upload("aed.csv", komae_with("狛江市民ホール,", '"狛江市民ホール,')), 422,
             "unclosed-quote"),
        Case("not a known table", upload("aed.csv", "商品,値段\nりんご,100\n".encode()), 422, "no-dataset-match"),
        Case("ragged junk", upload("aed.csv", b"a\nb,c,d\n,,,,,,\nx;y;z\n" * 20), 422, "no-dataset-match"),
        Case("html as csv", upload("aed.csv", b"<html><body><script>alert(1)</script></body></html>\n"), 422,
             "no-data-rows"),   # one line: nothing below a header
        # formula injection
        Case("=HYPERLINK", upload("aed.csv", komae_with("本庁舎２階総合案内前", '=HYPERLINK("http://x.example")')), 422,
             "formula-injection"),
        Case("DDE =cmd", upload("aed.csv", komae_with("本庁舎２階総合案内前", "=cmd|' /C calc'!A0")), 422,
             "formula-injection"),
        Case("+SUM", upload("aed.csv", komae_with("本庁舎２階総合案内前", "+SUM(1+1)")), 422, "formula-injection"),
        Case("@SUM", upload("aed.csv", komae_with("本庁舎２階総合案内前", "@SUM(A1:A9)")), 422, "formula-injection"),
        Case("-cmd DDE", upload("aed.csv", komae_with("本庁舎２階総合案内前", "-cmd|' /C notepad'!A0")), 422,
             "formula-injection"),
        Case("formula in xlsx", upload("aed.xlsx", xlsx_bytes([aed_header.decode().split(","), [
            "132195", "1", "東京都", "狛江市", "=1+1", *[""] * 17]])), 422, "formula-injection"),
        # another city's rows, another city's upload
        Case("yaizu rows from komae", upload("aed.csv", YAIZU_AED.read_bytes()), 403, "other-city-data"),
        Case("city parameter", upload("aed.csv", komae, city=YAIZU), 403, "forbidden-city"),
        Case("city form field", post_form(form([("city", None, YAIZU.encode()), ("file", "aed.csv", komae)])), 403,
             "forbidden-city"),
        # malformed requests
        Case("json instead of form", lambda c: c.post("/api/uploads", json={"file": "x"}), 415,
             "unsupported-media-type"),
        Case("raw csv post", lambda c: c.post("/api/uploads", content=komae, headers={"Content-Type": "text/csv"}),
             415, "unsupported-media-type"),
        Case("form without boundary", post_form(form([("file", "aed.csv", komae)]), "multipart/form-data"), 400,
             "malformed-request"),
        Case("wrong boundary", post_form(form([("file", "aed.csv", komae)], boundary="other")), 400,
             "malformed-request"),
        Case("truncated form", post_form(form([("file", "aed.csv", komae)], close=False)[:-40]), 400,
             "malformed-request"),
        Case("form without a file", post_form(form([("dataset", None, b"aed")])), 400, "missing-file"),
        Case("empty file name", post_form(form([("file", "", b"")])), 400, "missing-file"),
        Case("two files", post_form(form([("file", "a.csv", komae), ("file", "b.csv", komae)])), 400,
             "too-many-files"),
        Case("huge text field", post_form(form([("dataset", None, b"a" * 10_000), ("file", "aed.csv", komae)])),
             400, "malformed-request"),
        Case("many fields", post_form(form([(f"f{i}", None, b"1") for i in range(30)])), 400, "malformed-request"),
        Case("non-utf8 file name", post_form(form([("file", "\udc82\udca0.csv", komae)])), 400,
             "malformed-request"),
        Case("unknown dataset", upload("aed.csv", komae, dataset="../../etc/passwd"), 400, "unknown-dataset"),
        Case("overlong dataset", upload("aed.csv", komae, dataset="x" * 500), 400, "malformed-request"),
        Case("login with junk json", lambda c: c.post("/api/session", content=b"{not json"), 400,
             "malformed-request"),
        Case("login too long", lambda c: c.post("/api/session", content=b"{" + b" " * 10_000 + b"}"), 400,
             "malformed-request"),
        # unknown ids and raw data: nothing to find
        Case("unknown upload", get(f"/api/uploads/{KOMAE}-ffffffffffffffff"), 404, "upload-not-found"),
        Case("malformed upload id", get("/api/uploads/' OR 1=1"), 404, "upload-not-found"),
        Case("unknown report", get(f"/uploads/{KOMAE}-ffffffffffffffff/report"), 404, "upload-not-found"),
        Case("landing path", get(f"/landing/{KOMAE}/"), 404, "not-found"),
        Case("catalog file", get("/catalog.sqlite"), 404, "not-found"),
        Case("static traversal", get("/static/%2e%2e/%2e%2e/catalog.sqlite"), 404, "not-found"),
        Case("delete an upload", lambda c: c.delete(f"/api/uploads/{KOMAE}-ffffffffffffffff"), 405,
             "method-not-allowed"),
    ]
    return cases


def _plain_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")
    return buffer.getvalue()


def _broken_xlsx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<<< not xml")
    return buffer.getvalue()


def anonymous(method: str, path: str) -> Callable[[httpx.Client], httpx.Response]:
    """A request without the client's Authorization header."""
    def send(c: httpx.Client) -> httpx.Response:
        request = c.build_request(method, path, content=b"x")
        del request.headers["Authorization"]
        return c.send(request)
    return send


def declared_huge(c: httpx.Client) -> httpx.Response:
    """A PUT declaring 10 GB (sent over a raw socket: an HTTP client would refuse to lie about the length)."""
    url = httpx.URL(str(c.base_url))
    head = (f"PUT /api/uploads/aed.csv HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            f"Authorization: {c.headers['Authorization']}\r\nContent-Length: {10 * 1024**3}\r\n\r\n")
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"x" * 1000)
        received = b""
        while b"\r\n\r\n" in received or not received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
            head_end = received.find(b"\r\n\r\n")
            if head_end >= 0 and _complete(received, head_end):
                break
    status_line, _, rest = received.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return httpx.Response(int(status_line.split()[1]), content=body)


def hang_up_mid_upload(c: httpx.Client) -> None:
    """A client that announces 1 MB, sends 1 kB and disconnects: no answer is owed, nothing is kept."""
    url = httpx.URL(str(c.base_url))
    head = (f"PUT /api/uploads/aed.csv HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            f"Authorization: {c.headers['Authorization']}\r\nContent-Length: 1000000\r\n\r\n")
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        sock.sendall(head.encode() + KOMAE_AED.read_bytes()[:1000])


def _complete(received: bytes, head_end: int) -> bool:
    for line in received[:head_end].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(received) - head_end - 4 >= int(value)
    return False


# ---------------------------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    root = tmp_path_factory.mktemp("service-hostile")
    members = write_members(root / "members.yaml", [(KOMAE, "狛江市"), (YAIZU, "焼津市")])
    with run_service(root / "home", members, max_upload_mb=LIMIT_MB) as running:
        yield running


def checksums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def fixture_release(home: Path) -> Path:
    """A small published release of AED (as publish/release.py lays it out)."""
    folder = home / "releases" / "aed" / "1"
    (folder / "cities").mkdir(parents=True)
    (folder / "aed.csv").write_bytes(KOMAE_AED.read_bytes())
    (folder / "aed_excel.csv").write_bytes(b"\xef\xbb\xbf" + KOMAE_AED.read_bytes())
    (folder / "cities" / f"{KOMAE}_aed.csv").write_bytes(KOMAE_AED.read_bytes())
    (folder / "metadata.json").write_text(json.dumps({"dataset_id": "aed", "release": 1}), encoding="utf-8")
    (home / "releases" / "aed" / "latest.json").write_text(json.dumps({"number": 1}), encoding="utf-8")
    return home / "releases"


def test_every_bad_or_hostile_request_gets_its_own_clear_error_and_nothing_earlier_changes(
        server: RunningService) -> None:
    url = catalog_url(server.home)
    komae_token, yaizu_token = issue_token(url, KOMAE).token, issue_token(url, YAIZU).token
    with httpx.Client(base_url=server.url, timeout=120) as c:
        earlier = [c.post("/api/uploads", headers={"Authorization": f"Bearer {token}"},
                          files={"file": (path.name, path.read_bytes())})
                   for token, path in ((komae_token, KOMAE_AED), (yaizu_token, YAIZU_AED))]
        assert [r.status_code for r in earlier] == [201, 201], [r.text for r in earlier]
        landing_before = checksums(server.home / "landing")
        releases_before = checksums(fixture_release(server.home))

        cases = corpus()
        assert len(cases) >= 50
        answers = {}
        c.headers["Authorization"] = f"Bearer {komae_token}"
        for case in cases:
            try:
                response = case.send(c)
                answers[case.name] = (response.status_code, _error_code(response))
            except httpx.HTTPError as exc:   # a reset connection is no answer either
                answers[case.name] = (0, f"{type(exc).__name__}: {exc}")
            assert server.alive(), f"{case.name}: the server died\n{server.log_tail()}"
        wrong = {name: (got, (case.status, case.code)) for case in cases
                 for name, got in [(case.name, answers[case.name])] if got != (case.status, case.code)}
        assert not wrong, json.dumps(wrong, ensure_ascii=False, indent=1)

        hang_up_mid_upload(c)
        assert c.get("/api/health").json()["ok"]
        for token, response in zip((komae_token, yaizu_token), earlier, strict=True):
            status = c.get(f"/api/uploads/{response.json()['upload_id']}", headers={"Authorization": f"Bearer {token}"})
            assert status.status_code == 200 and status.json()["sha256"] == response.json()["sha256"]
    landing_after = checksums(server.home / "landing")
    assert {k: landing_after.get(k) for k in landing_before} == landing_before
    assert checksums(server.home / "releases") == releases_before
    deadline = time.monotonic() + 10      # the hung-up upload is cleaned up when the server notices
    while list((server.home / "tmp").glob(".upload-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list((server.home / "tmp").glob(".upload-*")), "received files are cleaned up"


def _error_code(response: httpx.Response) -> str:
    """The error code of a well-formed error answer (anything else fails the test with the body)."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        error = None
    if not isinstance(error, dict):
        return f"not a JSON error: {response.text[:200]!r}"
    if not (error.get("message_ja") and error.get("message_en") and isinstance(error.get("hint_ja"), str)):
        return f"incomplete error: {error}"
    return str(error["code"])
