"""DCAT (W3C Data Catalog Vocabulary) descriptions in JSON-LD, built from each release's metadata.json.

The catalogue (``/catalog.jsonld``) lists every dataset with its titles (ja/en), publisher (the shared data
office, whose members are the cities), licence, modification time, column dictionary (CSVW) and distributions
(every file of the latest release, with size, media type and SHA-256).
"""

from __future__ import annotations

import logging
from typing import Any

from portal.catalogue import City, DatasetEntry, city
from portal.service import PortalService, resource_names
from portal.store import Release, ReleaseFile

log = logging.getLogger(__name__)

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "csvw": "http://www.w3.org/ns/csvw#",
    "spdx": "http://spdx.org/rdf/terms#",
}
IANA_MEDIA_TYPES = "https://www.iana.org/assignments/media-types/"
XSD_TYPES = {"integer": "xsd:integer", "number": "xsd:decimal", "date": "xsd:date", "time": "xsd:time",
             "url": "xsd:anyURI"}


def _texts(ja: str, en: str) -> list[dict[str, str]]:
    return [{"@value": ja, "@language": "ja"}, {"@value": en, "@language": "en"}]


def _date_time(text: str) -> dict[str, str]:
    return {"@value": text, "@type": "xsd:dateTime"}


def member_cities(service: PortalService) -> list[City]:
    """The member registry's cities, else every city that appears in a release."""
    try:
        from kouiki.members import load_members
        return [city(m.code) for m in load_members()]
    except Exception as exc:   # the catalogue must still answer without the office's configuration
        log.info("portal: member registry unavailable (%s); listing cities found in releases", exc)
        codes = sorted({c for e in service.entries() for c in e.city_codes})
        return [city(code) for code in codes]


def publisher(service: PortalService, base_url: str) -> dict[str, Any]:
    s = service.settings
    return {
        "@id": f"{base_url}#publisher", "@type": ["foaf:Organization", "foaf:Group"],
        "foaf:name": _texts(s.publisher_ja, s.publisher_en),
        "foaf:member": [{"@type": "foaf:Organization", "dct:identifier": c.code,
                         "foaf:name": {"@value": c.full_name, "@language": "ja"}}
                        for c in member_cities(service)],
    }


def distribution(service: PortalService, release: Release, file: ReleaseFile,
                 base_url: str) -> dict[str, Any]:
    name_ja, name_en = resource_names(release, file)
    url = service.download_url(release, file, base_url)
    node: dict[str, Any] = {
        "@id": url + "#distribution", "@type": "dcat:Distribution",
        "dct:identifier": release.resource_prefix + file.key, "dct:title": _texts(name_ja, name_en),
        "dcat:downloadURL": {"@id": url},
        "dcat:accessURL": {"@id": f"{base_url}dataset/{release.dataset_id}"},
        "dct:format": file.format,
        "dcat:mediaType": {"@id": IANA_MEDIA_TYPES + file.media_type.split(";")[0]},
        "dcat:byteSize": {"@value": str(file.bytes), "@type": "xsd:nonNegativeInteger"},
        "dct:issued": _date_time(release.published_at),
        "dct:license": {"@id": release.licence["url"]},
    }
    if file.sha256:
        node["spdx:checksum"] = {"@type": "spdx:Checksum",
                                 "spdx:algorithm": {"@id": "spdx:checksumAlgorithm_sha256"},
                                 "spdx:checksumValue": {"@value": file.sha256, "@type": "xsd:hexBinary"}}
    if file.city_code:
        node["dct:spatial"] = {"@type": "dct:Location", "dct:identifier": file.city_code}
    return node


def dataset_node(service: PortalService, entry: DatasetEntry, base_url: str) -> dict[str, Any]:
    release = entry.release
    page = f"{base_url}dataset/{entry.id}"
    history = service.store.releases(entry.id)
    return {
        "@id": page, "@type": "dcat:Dataset", "dct:identifier": entry.id,
        "dct:title": _texts(entry.title("ja"), entry.title("en")),
        "dct:description": _texts(entry.description("ja"), entry.description("en")),
        "dct:publisher": {"@id": f"{base_url}#publisher"},
        "dct:license": {"@id": release.licence["url"], "dct:title": release.licence["title"]},
        "dct:issued": _date_time(history[-1].published_at if history else release.published_at),
        "dct:modified": _date_time(release.published_at),
        "dcat:version": str(release.number),
        "dcat:landingPage": {"@id": page},
        "dcat:keyword": [{"@value": t, "@language": "ja"} for t in service.tags(entry)],
        "dcat:theme": {"@type": "skos:Concept", "skos:notation": entry.theme.id,
                       "skos:prefLabel": _texts(entry.theme.ja, entry.theme.en)},
        "dct:spatial": [{"@type": "dct:Location", "dct:identifier": c.code,
                         "skos:prefLabel": {"@value": c.full_name, "@language": "ja"}} for c in entry.cities],
        "csvw:tableSchema": {"@type": "csvw:Schema", "csvw:column": [
            {"@type": "csvw:Column", "csvw:name": c.name,
             "csvw:datatype": {"@id": XSD_TYPES.get(c.type, "xsd:string")},
             "csvw:required": {"@value": str(c.required).lower(), "@type": "xsd:boolean"},
             # the registry describes columns in English
             "dct:description": {"@value": c.description, "@language": "en"}}
            for c in entry.column_dictionary()]},
        "dcat:distribution": [distribution(service, release, f, base_url) for f in release.files],
    }


def catalogue_jsonld(service: PortalService, base_url: str) -> dict[str, Any]:
    """The whole catalogue as one JSON-LD document."""
    entries = service.entries()
    s = service.settings
    modified = max((e.release.published_at for e in entries), default="")
    document: dict[str, Any] = {
        "@context": CONTEXT, "@id": f"{base_url}catalog.jsonld", "@type": "dcat:Catalog",
        "dct:title": _texts(s.site_title_ja, s.site_title_en),
        "dct:publisher": publisher(service, base_url),
        "dct:language": [{"@id": "http://id.loc.gov/vocabulary/iso639-1/ja"},
                         {"@id": "http://id.loc.gov/vocabulary/iso639-1/en"}],
        "foaf:homepage": {"@id": base_url},
        "dcat:dataset": [dataset_node(service, e, base_url) for e in entries],
    }
    if modified:
        document["dct:modified"] = _date_time(modified)
    return document


def dataset_jsonld(service: PortalService, entry: DatasetEntry, base_url: str) -> dict[str, Any]:
    """One dataset as a JSON-LD document (with its publisher)."""
    node = dataset_node(service, entry, base_url)
    node["dct:publisher"] = publisher(service, base_url)
    return {"@context": CONTEXT, **node}
