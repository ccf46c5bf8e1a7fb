"""DCAT-AP from a real server: Turtle, RDF/XML and JSON-LD for the catalogue and each dataset (suffixes and
Accept headers), hydra paging, and validation with pyshacl against the official SHACL shapes of DCAT-AP 2.1.1
(core + range) and DCAT-AP 3.0.1 (vendored in tests/data/dcat-ap with their licence)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyshacl
import pytest
import rdflib
from rdflib.compare import isomorphic
from rdflib.namespace import DCTERMS, RDF, XSD

from portal.app import create_app
from portal.settings import PortalSettings
from portal.testing import build_catalogue, build_sample_tree, serve

SHAPES = Path(__file__).resolve().parent / "data" / "dcat-ap"
DCAT = rdflib.Namespace("http://www.w3.org/ns/dcat#")
SH = rdflib.Namespace("http://www.w3.org/ns/shacl#")
HYDRA = rdflib.Namespace("http://www.w3.org/ns/hydra/core#")
SPDX = rdflib.Namespace("http://spdx.org/rdf/terms#")
AP2_CORE = ["2.1.1/dcat-ap_2.1.1_shacl_shapes.ttl", "2.1.1/dcat-ap_2.1.1_shacl_range.ttl"]
AP2_RECOMMENDED = ["2.1.1/dcat-ap_2.1.1_shacl_shapes_recommended.ttl"]
AP3 = ["3.0.1/dcat-ap-SHACL.ttl", "3.0.1/ranges.ttl"]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("dcat-home")
    build_sample_tree(home / "releases")
    with serve(create_app(PortalSettings(home=home))) as url:
        yield url


def shapes(*files: str) -> rdflib.Graph:
    """The official shapes; property shapes that are named but never defined (3.0.1's ranges.ttl has five)
    are dropped, since pyshacl refuses a graph with them (see tests/data/dcat-ap/LICENSE.md)."""
    graph = rdflib.Graph()
    for name in files:
        graph.parse(SHAPES / name, format="turtle")
    for shape, prop in list(graph.subject_objects(SH.property)):
        if graph.value(prop, SH.path) is None:
            graph.remove((shape, SH.property, prop))
    return graph


def violations(data: rdflib.Graph, *files: str) -> Counter[tuple[str, str, str]]:
    """(severity, path, message) → how often, for every result of validating ``data``."""
    _, report, _ = pyshacl.validate(data, shacl_graph=shapes(*files), advanced=True)
    found: Counter[tuple[str, str, str]] = Counter()
    for result in report.subjects(RDF.type, SH.ValidationResult):
        found[(str(report.value(result, SH.resultSeverity)).split("#")[-1],
               str(report.value(result, SH.resultPath)), str(report.value(result, SH.resultMessage))[:120])] += 1
    return found


def _graph(response: httpx.Response, rdflib_format: str) -> rdflib.Graph:
    assert response.status_code == 200, response.text[:300]
    return rdflib.Graph().parse(data=response.text, format=rdflib_format)


def _of(found: Counter[tuple[str, str, str]], severity: str) -> int:
    return sum(n for (s, _, _), n in found.items() if s == severity)


def test_catalogue_has_zero_dcat_ap_2_1_1_core_and_range_violations(base_url: str) -> None:
    data = _graph(httpx.get(f"{base_url}/catalog.ttl", params={"profiles": "euro_dcat_ap_2"}), "turtle")
    found = violations(data, *AP2_CORE)
    assert _of(found, "Violation") == 0, found
    recommended = violations(data, *AP2_RECOMMENDED)          # reported, not failed: they are warnings
    assert _of(recommended, "Violation") == 0
    print(f"DCAT-AP 2.1.1 recommended-property warnings: {_of(recommended, 'Warning')} {dict(recommended)}")


def test_catalogue_has_zero_dcat_ap_3_violations(base_url: str) -> None:
    data = _graph(httpx.get(f"{base_url}/catalog.ttl"), "turtle")
    found = violations(data, *AP3)
    assert _of(found, "Violation") == 0, found
    print(f"DCAT-AP 3.0.1 warnings: {_of(found, 'Warning')}")
    # the shapes do bite: the same catalogue under the other version's rules (byteSize datatype) fails
    assert any("byteSize" in path for (_, path, _) in violations(data, *AP2_CORE))


@pytest.mark.parametrize("profile", ["euro_dcat_ap_2", "euro_dcat_ap_3"])
def test_each_dataset_document_conforms(base_url: str, profile: str) -> None:
    for dataset in ("evacuation_space", "aed"):
        data = _graph(httpx.get(f"{base_url}/dataset/{dataset}.ttl", params={"profiles": profile}), "turtle")
        found = violations(data, *(AP2_CORE if profile == "euro_dcat_ap_2" else AP3))
        assert _of(found, "Violation") == 0, found


def test_catalogue_content(base_url: str) -> None:
    graph = _graph(httpx.get(f"{base_url}/catalog.ttl"), "turtle")
    catalogue = graph.value(predicate=RDF.type, object=DCAT.Catalog)
    tagline = "構成市が共同で公開するオープンデータ（自治体標準オープンデータセット）"
    assert {(t.language, str(t)) for t in graph.objects(catalogue, DCTERMS.description)
            if isinstance(t, rdflib.Literal)} >= {("ja", tagline)}
    evacuation = rdflib.URIRef(f"{base_url}/dataset/evacuation_space")
    distributions = list(graph.objects(evacuation, DCAT.distribution))
    assert len(distributions) == 7
    licences = {graph.value(d, DCTERMS.license) for d in distributions}
    assert licences == {rdflib.URIRef("http://creativecommons.org/licenses/by/4.0/")}
    assert (next(iter(licences)), RDF.type, DCTERMS.LicenseDocument) in graph
    formats = {str(graph.value(d, DCTERMS.format)) for d in distributions}
    assert formats == {"http://publications.europa.eu/resource/authority/file-type/CSV",
                       "http://publications.europa.eu/resource/authority/file-type/PARQUET"}
    sizes = {graph.value(d, DCAT.byteSize).datatype for d in distributions}      # type: ignore[union-attr]
    assert sizes == {XSD.nonNegativeInteger}
    checksum = graph.value(distributions[0], SPDX.checksum)
    assert graph.value(checksum, SPDX.algorithm) == SPDX.checksumAlgorithm_sha256
    assert len(str(graph.value(checksum, SPDX.checksumValue))) == 64
    contact = graph.value(evacuation, DCAT.contactPoint)
    assert (contact, RDF.type, rdflib.URIRef("http://www.w3.org/2006/vcard/ns#Kind")) in graph
    publisher = graph.value(evacuation, DCTERMS.publisher)
    assert (publisher, RDF.type, rdflib.FOAF.Agent) in graph
    themes = {str(t) for t in graph.objects(evacuation, DCAT.theme)}
    assert "http://publications.europa.eu/resource/authority/data-theme/JUST" in themes


@pytest.mark.parametrize(("path", "accept", "rdflib_format", "media_type"), [
    ("/catalog.ttl", None, "turtle", "text/turtle"),
    ("/catalog.rdf", None, "xml", "application/rdf+xml"),
    ("/catalog.jsonld", None, "json-ld", "application/ld+json"),
    ("/catalog", "text/turtle", "turtle", "text/turtle"),
    ("/catalog", "application/rdf+xml;q=0.9, text/turtle;q=0.5", "xml", "application/rdf+xml"),
    ("/catalog", "application/ld+json", "json-ld", "application/ld+json"),
    ("/catalog", None, "turtle", "text/turtle"),
    ("/dataset/aed.ttl", None, "turtle", "text/turtle"),
    ("/dataset/aed.rdf", None, "xml", "application/rdf+xml"),
    ("/dataset/aed.jsonld", None, "json-ld", "application/ld+json"),
    ("/dataset/aed", "text/turtle", "turtle", "text/turtle"),
    ("/dataset/aed", "application/rdf+xml", "xml", "application/rdf+xml"),
    ("/dataset/aed/dcat.jsonld", None, "json-ld", "application/ld+json"),
])
def test_serialisations_and_negotiation_give_the_same_graph(base_url: str, path: str, accept: str | None,
                                                           rdflib_format: str, media_type: str) -> None:
    headers = {"Accept": accept} if accept else {}
    response = httpx.get(base_url + path, headers=headers)
    assert response.headers["content-type"].startswith(media_type)
    graph = _graph(response, rdflib_format)
    reference_path = "/catalog.ttl" if path.startswith("/catalog") else "/dataset/aed.ttl"
    reference = _graph(httpx.get(base_url + reference_path), "turtle")
    assert isomorphic(_without_paging(graph), _without_paging(reference))
    assert response.headers["access-control-allow-origin"] == "*"


def _without_paging(graph: rdflib.Graph) -> rdflib.Graph:
    """The graph without its hydra paging node (whose URLs name the serialisation asked for)."""
    for page in list(graph.subjects(RDF.type, HYDRA.PagedCollection)):
        graph.remove((page, None, None))
    return graph


def test_browsers_still_get_the_page_and_bad_requests_are_clear(base_url: str) -> None:
    page = httpx.get(f"{base_url}/dataset/aed", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{base_url}/dataset/no_such.ttl").status_code == 404
    assert httpx.get(f"{base_url}/catalog.exe").status_code == 404
    for params in ({"page": "0"}, {"page": "x"}, {"modified_since": "yesterday"}, {"profiles": "nope"}):
        bad = httpx.get(f"{base_url}/catalog.ttl", params=params)
        assert bad.status_code == 400 and bad.text.strip()


def test_catalogue_pages_like_ckanext_dcat(tmp_path: Path) -> None:
    build_catalogue(tmp_path / "releases", 24)
    settings = PortalSettings(home=tmp_path, dcat_page_size=20)      # 100 by default, as ckanext-dcat
    with serve(create_app(settings)) as url, httpx.Client(timeout=60) as client:
        first = _graph(client.get(f"{url}/catalog.ttl"), "turtle")
        second = _graph(client.get(f"{url}/catalog.ttl", params={"page": "2"}), "turtle")
        recent = _graph(client.get(f"{url}/catalog.ttl", params={"modified_since": "2026-04-01T09:14:00"}),
                        "turtle")
    datasets = [set(g.subjects(RDF.type, DCAT.Dataset)) for g in (first, second)]
    assert [len(d) for d in datasets] == [20, 4] and not datasets[0] & datasets[1]
    paging = first.value(predicate=RDF.type, object=HYDRA.PagedCollection)
    assert str(first.value(paging, HYDRA.totalItems)) == "24"
    assert str(first.value(paging, HYDRA.nextPage)) == f"{url}/catalog.ttl?page=2"
    assert str(first.value(paging, HYDRA.lastPage)) == f"{url}/catalog.ttl?page=2"
    assert first.value(paging, HYDRA.previousPage) is None
    assert len(set(recent.subjects(RDF.type, DCAT.Dataset))) == 10      # published 09:14 … 09:23
