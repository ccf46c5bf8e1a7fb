"""DCAT-AP descriptions of the catalogue and of each dataset, as an RDF graph (rdflib) serialised to Turtle,
RDF/XML or JSON-LD, the way ckanext-dcat publishes a CKAN site.

Profiles (``?profiles=``, as ckanext-dcat names them): ``euro_dcat_ap_3`` (default; DCAT-AP 3.0.1) and
``euro_dcat_ap_2`` (DCAT-AP 2.1.1). They differ where the two versions disagree: the datatype of
``dcat:byteSize`` (xsd:nonNegativeInteger in 3, xsd:decimal in 2.1.1).

Every node the DCAT-AP range shapes check is typed (licence, format, media type, publisher, contact point,
language, location, theme, checksum algorithm); licences use canonical IRIs (creativecommons.org, not a
translated deed page), formats the EU file-type table, themes the EU data-theme table besides the portal's
own. The catalogue is paged like ckanext-dcat's (100 datasets a page, ``?page=N``, hydra paging terms).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlencode

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, FOAF, OWL, RDF, SKOS, XSD
from rdflib.term import Node

from portal import i18n
from portal.catalogue import City, DatasetEntry
from portal.search_index import SearchRequest
from portal.service import (
    PortalService,
    ckan_tags,
    ckan_timestamp,
    dataset_uuid,
    licence_of,
    resource_names,
    resource_uuid,
    vocabularies,
)
from portal.store import Release, ReleaseFile

log = logging.getLogger(__name__)

DCAT = Namespace("http://www.w3.org/ns/dcat#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
CSVW = Namespace("http://www.w3.org/ns/csvw#")
ADMS = Namespace("http://www.w3.org/ns/adms#")
FILE_TYPE = "http://publications.europa.eu/resource/authority/file-type/"
DATA_THEME = "http://publications.europa.eu/resource/authority/data-theme/"
LANGUAGE = "http://publications.europa.eu/resource/authority/language/"
IANA_MEDIA_TYPES = "https://www.iana.org/assignments/media-types/"
COUNTRY = "http://publications.europa.eu/resource/authority/country/"
DCATAP = Namespace("http://data.europa.eu/r5r/")
AVAILABILITY_STABLE = URIRef("http://publications.europa.eu/resource/authority/planned-availability/STABLE")
PUBLISHER_TYPE = URIRef("http://purl.org/adms/publishertype/LocalAuthority")
LICENCE_TYPE_ATTRIBUTION = URIRef("http://purl.org/adms/licencetype/Attribution")
XSD_TYPES = {"integer": XSD.integer, "number": XSD.decimal, "date": XSD.date, "time": XSD.time,
             "url": XSD.anyURI}
EU_THEME_LABELS = {"JUST": "Justice, legal system and public safety", "HEAL": "Health",
                   "EDUC": "Education, culture and sport", "SOCI": "Population and society",
                   "GOVE": "Government and public sector", "OP_DATPRO": "Provisional data"}
PAGE_SIZE = 100                      # ckanext.dcat.datasets_per_page's default
PROFILES = ("euro_dcat_ap_3", "euro_dcat_ap_2")
DEFAULT_PROFILE = "euro_dcat_ap_3"
PREFIXES = {"dcatap": DCATAP, "dcat": DCAT, "dct": DCTERMS, "foaf": FOAF, "vcard": VCARD, "spdx": SPDX, "hydra": HYDRA,
            "skos": SKOS, "csvw": CSVW, "adms": ADMS, "owl": OWL, "xsd": XSD}

# file suffix or media type → (rdflib format, response media type)
SERIALISATIONS = {"ttl": ("turtle", "text/turtle"), "rdf": ("xml", "application/rdf+xml"),
                  "xml": ("xml", "application/rdf+xml"), "jsonld": ("json-ld", "application/ld+json"),
                  "n3": ("n3", "text/n3"), "nt": ("nt", "application/n-triples")}
MEDIA_TYPES = {"text/turtle": "ttl", "application/x-turtle": "ttl", "application/rdf+xml": "rdf",
               "application/xml": "rdf", "text/xml": "rdf", "application/ld+json": "jsonld",
               "application/json": "jsonld", "text/n3": "n3", "application/n-triples": "nt"}


class DcatError(ValueError):
    """A bad paging or profile parameter; the message says which."""


@dataclass(frozen=True)
class Page:
    number: int
    size: int = PAGE_SIZE
    modified_since: str = ""


def negotiate(accept: str) -> str | None:
    """The serialisation (``ttl``, ``rdf``, ``jsonld``, …) an Accept header prefers; None when it prefers
    HTML or names nothing RDF. The header is read once, left to right."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")[:32]):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        choice = "html" if media in ("text/html", "application/xhtml+xml") else MEDIA_TYPES.get(media, "")
        if choice and quality > 0 and (best is None or (quality, -position) > (best[0], best[1])):
            best = (quality, -position, choice)
    return None if best is None or best[2] == "html" else best[2]


def serialise(graph: Graph, suffix: str) -> tuple[bytes, str]:
    """(body, media type) of ``graph`` in the serialisation named by ``suffix``."""
    rdflib_format, media_type = SERIALISATIONS[suffix]
    if rdflib_format == "json-ld":
        context = {prefix: str(namespace) for prefix, namespace in PREFIXES.items()}
        body = graph.serialize(format="json-ld", context=context, auto_compact=True)
    else:
        body = graph.serialize(format=rdflib_format)
    return body.encode("utf-8"), media_type


def check_profile(raw: str) -> str:
    profile = (raw or DEFAULT_PROFILE).split(",")[0].strip()
    if profile not in PROFILES:
        raise DcatError(f"Unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    return profile


# ---------------------------------------------------------------------------------------------- graphs


def new_graph() -> Graph:
    graph = Graph()
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace)
    return graph


def catalogue_graph(service: PortalService, base_url: str, page: Page, profile: str,
                    suffix: str = "ttl") -> Graph:
    """One page of the catalogue (``page.number`` from 1), its datasets and hydra paging links."""
    if page.number < 1:
        raise DcatError("page must be a whole number from 1")
    fq = (f"metadata_modified:[{page.modified_since} TO *]",) if page.modified_since else ()
    result = service.search_index().search(SearchRequest(
        fq=fq, sort="metadata_modified desc", start=(page.number - 1) * page.size, rows=page.size))
    entries = [e for e in (service.indexed_entry(n) for n in result.names) if e is not None]
    graph = new_graph()
    catalogue = URIRef(base_url)
    _catalogue(graph, catalogue, service, base_url)
    for entry in entries:
        graph.add((catalogue, DCAT.dataset, _dataset(graph, service, entry, base_url, profile)))
    _paging(graph, base_url, page, result.count, suffix, profile)
    return graph


def dataset_graph(service: PortalService, entry: DatasetEntry, base_url: str, profile: str) -> Graph:
    graph = new_graph()
    _dataset(graph, service, entry, base_url, profile)
    return graph


def _texts(graph: Graph, subject: Node, predicate: URIRef, ja: str, en: str) -> None:
    graph.add((subject, predicate, Literal(ja or en, lang="ja")))
    if en:
        graph.add((subject, predicate, Literal(en, lang="en")))


def _date_time(text: str) -> Literal:
    return Literal(ckan_timestamp(text) or "1970-01-01T00:00:00", datatype=XSD.dateTime)


def _catalogue(graph: Graph, catalogue: URIRef, service: PortalService, base_url: str) -> None:
    s = service.settings
    entries = service.entries()
    graph.add((catalogue, RDF.type, DCAT.Catalog))
    _texts(graph, catalogue, DCTERMS.title, s.site_title_ja, s.site_title_en)
    _texts(graph, catalogue, DCTERMS.description, i18n.translate("tagline", "ja"),
           i18n.translate("tagline", "en"))
    graph.add((catalogue, DCTERMS.publisher, _publisher(graph, service, base_url, with_members=True)))
    homepage = URIRef(base_url)
    graph.add((catalogue, FOAF.homepage, homepage))
    graph.add((homepage, RDF.type, FOAF.Document))
    for code in ("JPN", "ENG"):
        language = URIRef(LANGUAGE + code)
        graph.add((catalogue, DCTERMS.language, language))
        graph.add((language, RDF.type, DCTERMS.LinguisticSystem))
    japan = URIRef(COUNTRY + "JPN")
    graph.add((catalogue, DCTERMS.spatial, japan))
    graph.add((japan, RDF.type, DCTERMS.Location))
    graph.add((japan, SKOS.prefLabel, Literal("日本", lang="ja")))
    scheme = URIRef(DATA_THEME.rstrip("/"))
    graph.add((catalogue, DCAT.themeTaxonomy, scheme))
    graph.add((scheme, RDF.type, SKOS.ConceptScheme))
    graph.add((scheme, DCTERMS.title, Literal("Data theme", lang="en")))
    if entries:
        graph.add((catalogue, DCTERMS.modified, _date_time(max(e.release.published_at for e in entries))))
        graph.add((catalogue, DCTERMS.issued, _date_time(min(e.release.published_at for e in entries))))
        graph.add((catalogue, DCTERMS.license, _licence(graph, entries[0].release)))


def _publisher(graph: Graph, service: PortalService, base_url: str, with_members: bool = False) -> URIRef:
    s = service.settings
    node = URIRef(f"{base_url}organization/{s.publisher_id}")
    graph.add((node, RDF.type, FOAF.Agent))
    graph.add((node, RDF.type, FOAF.Organization))
    _texts(graph, node, FOAF.name, s.publisher_ja, s.publisher_en)
    graph.add((node, DCTERMS.identifier, Literal(service.office_uuid())))
    graph.add((node, DCTERMS.type, PUBLISHER_TYPE))
    graph.add((PUBLISHER_TYPE, RDF.type, SKOS.Concept))
    graph.add((PUBLISHER_TYPE, SKOS.prefLabel, Literal("Local Authority", lang="en")))
    if with_members:
        for place in service.member_cities():
            member = URIRef(f"{base_url}organization/city-{place.code}")
            graph.add((node, FOAF.member, member))
            graph.add((member, RDF.type, FOAF.Organization))
            graph.add((member, FOAF.name, Literal(place.full_name, lang="ja")))
            graph.add((member, DCTERMS.identifier, Literal(place.code)))
    return node


def _contact(graph: Graph, service: PortalService, base_url: str) -> URIRef:
    node = URIRef(f"{base_url}#contact-point")
    graph.add((node, RDF.type, VCARD.Kind))
    graph.add((node, RDF.type, VCARD.Organization))
    graph.add((node, VCARD.fn, Literal(service.settings.publisher_ja, lang="ja")))
    graph.add((node, VCARD.hasURL, URIRef(base_url)))
    return node


def _licence(graph: Graph, release: Release) -> URIRef:
    licence = licence_of(release.licence)
    node = URIRef(licence["url"])
    graph.add((node, RDF.type, DCTERMS.LicenseDocument))
    graph.add((node, DCTERMS.identifier, Literal(licence["id"])))
    graph.add((node, DCTERMS.title, Literal(licence["title"])))
    if licence["id"].startswith("CC-BY"):
        graph.add((node, DCTERMS.type, LICENCE_TYPE_ATTRIBUTION))
        graph.add((LICENCE_TYPE_ATTRIBUTION, RDF.type, SKOS.Concept))
        graph.add((LICENCE_TYPE_ATTRIBUTION, SKOS.prefLabel, Literal("Attribution", lang="en")))
    return node


def _location(graph: Graph, place: City, base_url: str) -> URIRef:
    node = URIRef(f"{base_url}organization/city-{place.code}#location")
    graph.add((node, RDF.type, DCTERMS.Location))
    graph.add((node, SKOS.prefLabel, Literal(place.full_name, lang="ja")))
    graph.add((node, DCTERMS.identifier, Literal(place.code)))
    return node


def _themes(graph: Graph, dataset: URIRef, entry: DatasetEntry, base_url: str) -> None:
    theme = entry.theme
    eu = URIRef(DATA_THEME + vocabularies()["data_themes"].get(theme.id, "OP_DATPRO"))
    graph.add((dataset, DCAT.theme, eu))
    graph.add((eu, RDF.type, SKOS.Concept))
    graph.add((eu, SKOS.inScheme, URIRef(DATA_THEME.rstrip("/"))))
    graph.add((eu, SKOS.prefLabel, Literal(EU_THEME_LABELS.get(str(eu)[len(DATA_THEME):], "Provisional data"),
                                           lang="en")))
    own = URIRef(f"{base_url}group/{theme.id}")
    graph.add((dataset, DCAT.theme, own))
    graph.add((own, RDF.type, SKOS.Concept))
    graph.add((own, SKOS.notation, Literal(theme.id)))
    _texts(graph, own, SKOS.prefLabel, theme.ja, theme.en)


def _dataset(graph: Graph, service: PortalService, entry: DatasetEntry, base_url: str, profile: str) -> URIRef:
    release = entry.release
    page = URIRef(f"{base_url}dataset/{entry.id}")
    node = page
    graph.add((node, RDF.type, DCAT.Dataset))
    graph.add((node, DCTERMS.identifier, Literal(dataset_uuid(entry.id))))
    _texts(graph, node, DCTERMS.title, entry.title("ja"), entry.title("en"))
    _texts(graph, node, DCTERMS.description,
           entry.description("ja") or f"{entry.title('ja')}（{release.rows:,}件）",
           entry.description("en") or f"{entry.title('en')} ({release.rows:,} rows)")
    graph.add((node, DCTERMS.publisher, _publisher(graph, service, base_url)))
    graph.add((node, DCAT.contactPoint, _contact(graph, service, base_url)))
    graph.add((node, DCTERMS.issued, _date_time(service.first_published(entry))))
    graph.add((node, DCTERMS.modified, _date_time(release.published_at)))
    graph.add((node, OWL.versionInfo, Literal(str(release.number))))
    graph.add((node, DCAT.version, Literal(str(release.number))))
    graph.add((node, DCAT.landingPage, page))
    graph.add((page, RDF.type, FOAF.Document))
    for tag in ckan_tags(entry):
        graph.add((node, DCAT.keyword, Literal(tag, lang="ja")))
    _themes(graph, node, entry, base_url)
    for place in entry.cities:
        graph.add((node, DCTERMS.spatial, _location(graph, place, base_url)))
    _table_schema(graph, node, entry)
    for file in release.files:
        graph.add((node, DCAT.distribution, _distribution(graph, service, release, file, base_url, profile)))
    return node


def _table_schema(graph: Graph, dataset: URIRef, entry: DatasetEntry) -> None:
    """The column dictionary in CSVW terms (the registry describes columns in English)."""
    schema = BNode()
    graph.add((dataset, CSVW.tableSchema, schema))
    graph.add((schema, RDF.type, CSVW.Schema))
    for column in entry.column_dictionary():
        node = BNode()
        graph.add((schema, CSVW.column, node))
        graph.add((node, RDF.type, CSVW.Column))
        graph.add((node, CSVW.name, Literal(column.name)))
        graph.add((node, CSVW.datatype, XSD_TYPES.get(column.type, XSD.string)))
        graph.add((node, CSVW.required, Literal(column.required)))
        if column.description:
            graph.add((node, DCTERMS.description, Literal(column.description, lang="en")))


def _distribution(graph: Graph, service: PortalService, release: Release, file: ReleaseFile, base_url: str,
                  profile: str) -> URIRef:
    resource_id = release.resource_prefix + file.key
    node = URIRef(f"{base_url}dataset/{release.dataset_id}/resource/{resource_id}")
    name_ja, name_en = resource_names(release, file)
    url = URIRef(service.download_url(release, file, base_url))
    graph.add((node, RDF.type, DCAT.Distribution))
    graph.add((node, DCTERMS.identifier, Literal(resource_uuid(release, file))))
    _texts(graph, node, DCTERMS.title, name_ja, name_en)
    _texts(graph, node, DCTERMS.description, f"{name_ja}（第{release.number}版）",
           f"{name_en} (release {release.number})")
    graph.add((node, DCAT.accessURL, URIRef(f"{base_url}dataset/{release.dataset_id}")))
    # a published release never changes: its files stay available as they are
    graph.add((node, DCATAP.availability, AVAILABILITY_STABLE))
    graph.add((AVAILABILITY_STABLE, RDF.type, SKOS.Concept))
    graph.add((AVAILABILITY_STABLE, SKOS.prefLabel, Literal("stable", lang="en")))
    graph.add((node, DCAT.downloadURL, url))
    file_type = vocabularies()["file_types"].get(file.format)
    if file_type:
        format_node = URIRef(FILE_TYPE + file_type)
        graph.add((node, DCTERMS.format, format_node))
        graph.add((format_node, RDF.type, DCTERMS.MediaTypeOrExtent))
    media = URIRef(IANA_MEDIA_TYPES + file.media_type.split(";")[0])
    graph.add((node, DCAT.mediaType, media))
    graph.add((media, RDF.type, DCTERMS.MediaType))
    size_type = XSD.decimal if profile == "euro_dcat_ap_2" else XSD.nonNegativeInteger
    graph.add((node, DCAT.byteSize, Literal(str(file.bytes), datatype=size_type)))
    graph.add((node, DCTERMS.issued, _date_time(release.published_at)))
    graph.add((node, DCTERMS.modified, _date_time(release.published_at)))
    graph.add((node, DCTERMS.license, _licence(graph, release)))
    # DCAT-AP 2.1.1's shape admits only SHA-1 checksums; releases record SHA-256, so that profile omits it.
    if file.sha256 and profile != "euro_dcat_ap_2":
        checksum = BNode()
        graph.add((node, SPDX.checksum, checksum))
        graph.add((checksum, RDF.type, SPDX.Checksum))
        graph.add((checksum, SPDX.algorithm, SPDX.checksumAlgorithm_sha256))
        graph.add((SPDX.checksumAlgorithm_sha256, RDF.type, SPDX.ChecksumAlgorithm))
        graph.add((checksum, SPDX.checksumValue, Literal(file.sha256, datatype=XSD.hexBinary)))
    if file.city_code:
        graph.add((node, DCTERMS.spatial, _location(graph, _city(release, file.city_code), base_url)))
    return node


def _city(release: Release, code: str) -> City:
    from portal.catalogue import city
    return city(code, release.rows_by_city.get(code, 0))


def _paging(graph: Graph, base_url: str, page: Page, total: int, suffix: str, profile: str) -> None:
    """hydra:PagedCollection like ckanext-dcat: first / last / next / previous page URLs."""
    last = max(1, -(-total // page.size))

    def url(number: int) -> Literal:
        params: dict[str, str | int] = {"page": number}
        if page.modified_since:
            params["modified_since"] = page.modified_since
        if profile != DEFAULT_PROFILE:
            params["profiles"] = profile
        return Literal(f"{base_url}catalog.{suffix}?{urlencode(params)}")

    node = URIRef(str(url(page.number)))
    graph.add((node, RDF.type, HYDRA.PagedCollection))
    graph.add((node, HYDRA.totalItems, Literal(total, datatype=XSD.integer)))
    graph.add((node, HYDRA.itemsPerPage, Literal(page.size, datatype=XSD.integer)))
    graph.add((node, HYDRA.firstPage, url(1)))
    graph.add((node, HYDRA.lastPage, url(last)))
    if page.number < last:
        graph.add((node, HYDRA.nextPage, url(page.number + 1)))
    if page.number > 1:
        graph.add((node, HYDRA.previousPage, url(min(page.number - 1, last))))
