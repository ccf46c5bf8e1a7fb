"""The portal's reading of releases: search, resources, DCAT, quality counts, and the publisher's contract."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import polars as pl
import pytest
import rdflib

from expectations.registry import default_registry
from portal.app import create_app
from portal.catalogue import dataset_entries, find_datasets
from portal.settings import PortalSettings, listen_port
from portal.store import ReleaseStore, file_key
from portal.testing import build_sample_tree, evacuation_space_rows, serve
from portal.web import content_disposition
from publish.release import publish_dataset

CSVW = rdflib.Namespace("http://www.w3.org/ns/csvw#")
DCAT = rdflib.Namespace("http://www.w3.org/ns/dcat#")
DCTERMS = rdflib.Namespace("http://purl.org/dc/terms/")
FOAF = rdflib.Namespace("http://xmlns.com/foaf/0.1/")
RDF_TYPE = rdflib.URIRef("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    build_sample_tree(tmp_path / "releases")
    return tmp_path


@pytest.fixture()
def client(home: Path) -> Iterator[httpx.Client]:
    with serve(create_app(PortalSettings(home=home))) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


@pytest.mark.parametrize(("path", "key", "city"), [
    ("evacuation_space.csv", "csv", None),
    ("evacuation_space_excel.csv", "excel-csv", None),
    ("evacuation_space.parquet", "parquet", None),
    ("cities/122033_evacuation_space.csv", "122033-csv", "122033"),
    ("cities/222127_evacuation_space_excel.csv", "222127-excel-csv", "222127"),
    ("evacuation_space.geojson", "geojson", None),
    ("dcat.jsonld", "dcat-jsonld", None),
    ("changes/1_to_2.csv", "changes-1-to-2-csv", None),
])
def test_resource_keys_are_stable_names_of_the_file(path: str, key: str, city: str | None) -> None:
    assert file_key("evacuation_space", path) == (key, city)


def test_content_disposition_carries_the_utf8_name() -> None:
    header = content_disposition("指定緊急避難場所一覧_excel.csv")
    assert header.startswith('attachment; filename="')
    fallback = re.search(r'filename="([^"]*)"', header)
    assert fallback and fallback.group(1).isascii() and fallback.group(1).endswith(".csv")
    assert "filename*=UTF-8''%E6%8C%87%E5%AE%9A%E7%B7%8A%E6%80%A5" in header
    expected = "attachment; filename=\"a_b_c.csv\"; filename*=UTF-8''a%22b%3Bc.csv"
    assert content_disposition('a"b;c.csv') == expected


@pytest.mark.parametrize(("query", "found"), [
    ("避難", ["evacuation_space"]),
    ("避難　場所", ["evacuation_space"]),          # an ideographic space separates words too
    ("ＡＥＤ", ["aed"]),                           # full-width Latin
    ("aed", ["aed"]),
    ("evacuation", ["evacuation_space"]),
    ("設置位置", ["aed"]),                         # a column name
    ("災害種別_津波", ["evacuation_space"]),
    ("除細動器", ["aed"]),                         # the registry's description
    ("焼津市", ["aed", "evacuation_space"]),       # a member city
    ("避難 AED", []),
])
def test_dataset_search(home: Path, query: str, found: list[str]) -> None:
    entries = dataset_entries(ReleaseStore(home / "releases"))
    assert [e.id for e in find_datasets(entries, query)] == found


def test_kind_and_city_filters(home: Path) -> None:
    entries = dataset_entries(ReleaseStore(home / "releases"))
    assert [e.id for e in find_datasets(entries, kind="safety")] == ["aed", "evacuation_space"]
    assert [e.id for e in find_datasets(entries, kind="tourism")] == []
    assert [e.id for e in find_datasets(entries, city_code="122033")] == ["evacuation_space"]


def test_release_history_ignores_incomplete_and_unpointed_folders(home: Path) -> None:
    root = home / "releases" / "evacuation_space"
    shutil.copytree(root / "2", root / ".incomplete-3-1")
    shutil.copytree(root / "2", root / "3")      # renamed into place, latest.json not moved yet
    store = ReleaseStore(home / "releases")
    assert [r.number for r in store.releases("evacuation_space")] == [2, 1]
    assert store.latest("evacuation_space").number == 2   # type: ignore[union-attr]


def test_new_formats_and_release_dcat_are_listed(home: Path, client: httpx.Client) -> None:
    release = home / "releases" / "evacuation_space" / "2"
    (release / "evacuation_space.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    (release / "dcat.jsonld").write_text('{"@context": {}}')
    meta = json.loads((release / "metadata.json").read_text(encoding="utf-8"))
    meta["files"] += [{"path": "evacuation_space.geojson", "bytes": 46, "sha256": "x"},
                      {"path": "dcat.jsonld", "bytes": 16, "sha256": "y"}]
    (release / "metadata.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    package = client.get("/api/3/action/package_show", params={"id": "evacuation_space"}).json()["result"]
    formats = {r["alias"]: r["format"] for r in package["resources"]}
    assert formats["evacuation_space-2-geojson"] == "GeoJSON"
    assert formats["evacuation_space-2-dcat-jsonld"] == "JSON-LD"
    page = client.get("/dataset/evacuation_space").text
    assert re.search(r'href="/download/evacuation_space/2/dcat.jsonld" id="release-dcat"', page)
    download = client.get("/download/evacuation_space/2/evacuation_space.geojson")
    assert download.headers["content-type"] == "application/geo+json"


@pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")
def test_catalogue_dcat_is_valid_rdf_with_the_whole_catalogue(client: httpx.Client) -> None:
    response = client.get("/catalog.jsonld")
    assert response.headers["content-type"].startswith("application/ld+json")
    graph = rdflib.Graph().parse(data=response.text, format="json-ld")
    datasets = set(graph.subjects(RDF_TYPE, DCAT.Dataset))
    assert len(datasets) == 2
    evacuation = next(d for d in datasets if str(d).endswith("/dataset/evacuation_space"))
    titles = {(getattr(t, "language", None), str(t)) for t in graph.objects(evacuation, DCTERMS.title)}
    assert titles == {("ja", "指定緊急避難場所一覧"), ("en", "Designated emergency evacuation sites")}
    assert str(graph.value(evacuation, DCTERMS.modified)).startswith("2026-05-01")
    distributions = list(graph.objects(evacuation, DCAT.distribution))
    assert len(distributions) == 7
    # the canonical licence IRI (ckanext-dcat recognises it as CC-BY-4.0), not the translated deed page
    assert {str(graph.value(d, DCTERMS.license)) for d in distributions} == {
        "http://creativecommons.org/licenses/by/4.0/"}
    urls = {str(graph.value(d, DCAT.downloadURL)) for d in distributions}
    assert f"{client.base_url}/download/evacuation_space/2/cities/122033_evacuation_space.csv" in urls
    media_types = {str(graph.value(d, DCAT.mediaType)) for d in distributions}
    assert media_types == {"https://www.iana.org/assignments/media-types/text/csv",
                           "https://www.iana.org/assignments/media-types/application/vnd.apache.parquet"}
    schema = graph.value(evacuation, CSVW.tableSchema)
    latitude = next(c for c in graph.objects(schema, CSVW.column) if str(graph.value(c, CSVW.name)) == "緯度")
    assert graph.value(latitude, CSVW.datatype) == rdflib.URIRef("http://www.w3.org/2001/XMLSchema#decimal")
    names = {str(graph.value(c, CSVW.name)) for c in graph.objects(schema, CSVW.column)}
    assert names == set(evacuation_space_rows().columns)
    publisher = graph.value(graph.value(predicate=RDF_TYPE, object=DCAT.Catalog), DCTERMS.publisher)
    members = {str(graph.value(m, DCTERMS.identifier)) for m in graph.objects(publisher, FOAF.member)}
    assert {"122033", "222127", "132195"} <= members


def test_quality_counts_come_from_findings(home: Path, client: httpx.Client) -> None:
    assert "検査結果の記録がないため" in client.get("/dataset/evacuation_space").text
    part = home / "lake" / "findings" / "evacuation_space" / "city=122033"
    part.mkdir(parents=True)
    pl.DataFrame({"severity": ["error"] * 3 + ["warning"] * 2, "source_line": [2, 3, 4, 5, 6],
                  "value": ["個人の電話番号"] * 5}).write_parquet(part / "data.parquet")
    page = client.get("/dataset/evacuation_space").text
    table = page[page.index('id="quality-table"'):]
    ichikawa_row = re.search(
        r"<td[^>]*>市川市</td><td[^>]*>121</td>\s*<td[^>]*>[\d.]+%</td>\s*<td[^>]*>(\d+)</td><td[^>]*>(\d+)</td>",
        table)
    assert ichikawa_row and ichikawa_row.groups() == ("3", "2")
    assert "個人の電話番号" not in page                 # counts only, never the findings themselves


def test_real_publisher_release_is_served(tmp_path: Path) -> None:
    """The contract with publish/release.py: what it writes, the portal lists, searches and serves."""
    rows = evacuation_space_rows()
    con = duckdb.connect()
    con.register("rows_frame", rows.with_columns(pl.col("市区町村コード").alias("_city_code"),
                                                 pl.lit(None, pl.String).alias("_upload_id")).to_arrow())
    con.execute("CREATE TABLE conformed AS SELECT * FROM rows_frame")
    dataset = default_registry().get("evacuation_space")
    releases = tmp_path / "releases"
    result = publish_dataset(con, dataset, "conformed", releases, f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    assert result.published
    with serve(create_app(PortalSettings(home=tmp_path))) as url, httpx.Client(base_url=url) as client:
        _check_published(client, result.path, dataset.name_ja)


def _check_published(client: httpx.Client, release: Path, title: str) -> None:
    package = client.get("/api/3/action/package_show", params={"id": "evacuation_space"}).json()["result"]
    assert package["title"] == title and package["rows"] == 152
    active = {r["alias"] for r in package["resources"] if r["datastore_active"]}
    assert {"evacuation_space-1-csv", "evacuation_space-1-parquet", "evacuation_space-1-222127-csv"} <= active
    params: dict[str, str | int] = {"resource_id": "evacuation_space-1-222127-csv", "limit": 100}
    search = client.get("/api/3/action/datastore_search", params=params).json()["result"]
    assert search["total"] == 31 and "_city_code" not in search["records"][0]
    csv = client.get("/download/evacuation_space/1/evacuation_space_excel.csv")
    assert csv.content == (release / "evacuation_space_excel.csv").read_bytes()
    assert client.get("/").text.count('class="dataset-card"') == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_python_m_portal_serves_kouiki_home_on_kouiki_port(home: Path) -> None:
    port = _free_port()
    env = {**os.environ, "KOUIKI_HOME": str(home), "KOUIKI_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "portal"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/3/action/package_list", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, "python -m portal stopped"
                assert time.monotonic() < deadline, "python -m portal did not answer within 30 s"
                time.sleep(0.2)
        assert answer.json()["result"] == ["aed", "evacuation_space"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_listen_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOUIKI_PORT", raising=False)
    assert listen_port() == 8000
    monkeypatch.setenv("KOUIKI_PORT", "8123")
    assert listen_port() == 8123
    monkeypatch.setenv("KOUIKI_PORT", "70000")
    with pytest.raises(ValueError, match="KOUIKI_PORT"):
        listen_port()
