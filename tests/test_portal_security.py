"""Only files a release's metadata.json lists are served; nothing else under KOUIKI_HOME is reachable.

Requests go over a raw socket (http.client) so that ``../`` and ``%2e%2e`` reach the server as written,
without a client normalising them away.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal.app import create_app
from portal.settings import PortalSettings
from portal.testing import build_sample_tree, serve

SECRET = "SECRET-住民の個人情報-do-not-publish"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kouiki home with every private area filled with a marker, and traps inside releases/."""
    home = tmp_path_factory.mktemp("home")
    releases = home / "releases"
    build_sample_tree(releases)
    for relative in ("landing/122033/0123abcd.csv", "private/加工方法等情報.txt", "reports/122033/up-1.html",
                     "lake/quarantine/evacuation_space/city=122033/data.parquet",
                     "lake/findings/evacuation_space/city=122033/data.parquet", "warehouse.duckdb",
                     "catalog.sqlite", "inbox/122033/new.csv"):
        target = home / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(SECRET, encoding="utf-8")
    release = releases / "evacuation_space" / "2"
    # a symlink inside the release, even when metadata.json lists it, points outside: refused
    (release / "evil.csv").symlink_to(home / "private" / "加工方法等情報.txt")
    meta = json.loads((release / "metadata.json").read_text(encoding="utf-8"))
    meta["files"] += [{"path": "evil.csv", "bytes": 1, "sha256": ""},
                      {"path": "../../../private/加工方法等情報.txt", "bytes": 1, "sha256": ""},
                      {"path": str(home / "landing" / "122033" / "0123abcd.csv"), "bytes": 1, "sha256": ""}]
    (release / "metadata.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    # a dataset folder that is a symlink to private/, made to look like a release
    (home / "private" / "1").mkdir()
    (home / "private" / "1" / "metadata.json").write_text(json.dumps(
        {"dataset_id": "leak", "release": 1, "files": [{"path": "secret.txt"}]}), encoding="utf-8")
    (home / "private" / "1" / "secret.txt").write_text(SECRET, encoding="utf-8")
    (home / "private" / "latest.json").write_text(json.dumps({"number": 1}), encoding="utf-8")
    (releases / "leak").symlink_to(home / "private")
    # a release being written, and a finished one whose pointer has not moved yet
    for folder in (".incomplete-3-99", "3"):
        (releases / "evacuation_space" / folder).mkdir()
        (releases / "evacuation_space" / folder / "evacuation_space.csv").write_text(SECRET, encoding="utf-8")
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[tuple[str, int]]:
    with serve(create_app(PortalSettings(home=home))) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def _get(server: tuple[str, int], raw_path: str, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(*server, timeout=10)
    try:
        connection.putrequest("GET", raw_path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


RELEASE = "/download/evacuation_space/2"
NEVER_REACHABLE = [
    f"{RELEASE}/../../../landing/122033/0123abcd.csv",
    f"{RELEASE}/%2e%2e/%2e%2e/%2e%2e/private/%E5%8A%A0%E5%B7%A5%E6%96%B9%E6%B3%95%E7%AD%89%E6%83%85%E5%A0%B1.txt",
    f"{RELEASE}/..%2f..%2f..%2freports%2f122033%2fup-1.html",
    f"{RELEASE}/%2E%2E%2F%2E%2E%2F%2E%2E%2Fwarehouse.duckdb",
    f"{RELEASE}/cities/../../../../catalog.sqlite",
    f"{RELEASE}//etc/passwd",
    f"{RELEASE}/%2Fetc%2Fpasswd",
    f"{RELEASE}/metadata.json",
    f"{RELEASE}/evil.csv",
    f"{RELEASE}/../../../private/%E5%8A%A0%E5%B7%A5%E6%96%B9%E6%B3%95%E7%AD%89%E6%83%85%E5%A0%B1.txt",
    "/download/evacuation_space/..%2F..%2Fprivate/%E5%8A%A0%E5%B7%A5%E6%96%B9%E6%B3%95%E7%AD%89%E6%83%85%E5%A0%B1.txt",
    "/download/evacuation_space/.incomplete-3-99/evacuation_space.csv",
    "/download/evacuation_space/3/evacuation_space.csv",
    "/download/evacuation_space/02/evacuation_space.csv",
    "/download/leak/1/secret.txt",
    "/download/../lake/quarantine/evacuation_space/city=122033/data.parquet",
    "/landing/122033/0123abcd.csv", "/private/", "/reports/122033/up-1.html", "/lake/findings/",
    "/warehouse.duckdb", "/catalog.sqlite", "/inbox/122033/new.csv",
    "/releases/evacuation_space/2/evacuation_space.csv",
    "/static/../../private/secret.txt", "/static/%2e%2e/%2e%2e/%2e%2e/warehouse.duckdb",
    "/dataset/..%2F..%2Fprivate", "/dataset/leak",
]


@pytest.mark.parametrize("raw_path", NEVER_REACHABLE)
def test_private_areas_and_traversal_are_404(server: tuple[str, int], raw_path: str) -> None:
    status, _, body = _get(server, raw_path)
    assert status == 404
    assert SECRET.encode("utf-8") not in body


@pytest.mark.parametrize("resource_id", ["leak-1-secret-txt", "evacuation_space-2-evil-csv", "../../private",
                                         "evacuation_space-3-csv"])
def test_api_never_names_a_private_file(server: tuple[str, int], resource_id: str) -> None:
    for action in ("resource_show?id=", "datastore_search?resource_id="):
        status, headers, body = _get(server, f"/api/3/action/{action}{resource_id}")
        assert status == 404 and headers["content-type"].startswith("application/json")
        assert json.loads(body)["error"]["__type"] == "Not Found Error"
    status, _, body = _get(server, "/api/3/action/package_list")
    assert json.loads(body)["result"] == ["aed", "evacuation_space"]   # the symlinked "leak" is no dataset


def test_listed_files_download_whole_with_headers(server: tuple[str, int], home: Path) -> None:
    release = home / "releases" / "evacuation_space" / "2"
    meta = json.loads((release / "metadata.json").read_text(encoding="utf-8"))
    listed = {f["path"]: f["sha256"] for f in meta["files"]}
    for path, content_type in (("evacuation_space_excel.csv", "text/csv; charset=utf-8"),
                               ("evacuation_space.parquet", "application/vnd.apache.parquet"),
                               ("cities/222127_evacuation_space.csv", "text/csv; charset=utf-8")):
        status, headers, body = _get(server, f"{RELEASE}/{path}")
        assert status == 200
        assert headers["content-type"] == content_type
        assert body == (release / path).read_bytes()
        assert hashlib.sha256(body).hexdigest() == listed[path]
        name = os.path.basename(path)
        assert headers["content-disposition"] == f"attachment; filename=\"{name}\"; filename*=UTF-8''{name}"
    status, headers, body = _get(server, f"{RELEASE}/evacuation_space.csv", {"Range": "bytes=0-99"})
    assert status == 206 and len(body) == 100
    status, _, body = _get(server, "/download/evacuation_space/1/evacuation_space.csv")
    assert status == 200 and body == (home / "releases/evacuation_space/1/evacuation_space.csv").read_bytes()


def test_search_text_is_escaped_in_the_page(server: tuple[str, int]) -> None:
    status, headers, body = _get(server, "/?q=%3Cscript%3Ealert(1)%3C/script%3E&lang=%22%3E%3Cb%3E")
    assert status == 200
    assert b"<script>alert(1)</script>" not in body and b"&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert b'"><b>' not in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
