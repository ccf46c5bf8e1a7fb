"""The HTML pages (dataset list, dataset page), the DCAT documents and the file downloads."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from kouiki.problems import Problem
from portal import catalogue, dcat, geo, glossary, i18n, quality
from portal.catalogue import DatasetEntry
from portal.datastore import SearchRequest
from portal.service import PortalService, city_org_name, resource_names
from portal.themes import OTHER, THEMES, theme_by_id

TEMPLATES = Path(__file__).resolve().parent / "templates"
PREVIEW_ROWS = 20      # a screenful on a phone; every row is in the files and the API
# Release files never change once published: caches may keep them.
IMMUTABLE = "public, max-age=31536000, immutable"


class ReleaseFileResponse(FileResponse):
    """A release file, streamed in 1 MiB reads (Starlette's 64 KiB costs one thread hop per 64 KiB)."""

    chunk_size = 1 << 20


templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters["size"] = i18n.human_size
templates.env.filters["local_time"] = i18n.local_time


def time_tag(iso_text: str) -> Markup:
    """A published time as <time datetime="…+09:00">2026-07-18 12:34 JST</time>."""
    machine = i18n.machine_time(iso_text)
    shown = escape(i18n.local_time(iso_text))
    return Markup(f'<time datetime="{escape(machine)}">{shown}</time>') if machine else Markup(shown)


templates.env.filters["time"] = time_tag
templates.env.filters["number"] = lambda n: f"{n:,}"
router = APIRouter()


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / RFC 5987)."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._") or "download"
    suffix = PurePosixPath(filename).suffix
    if suffix.isascii() and not ascii_name.endswith(suffix):
        ascii_name += suffix
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _service(request: Request) -> PortalService:
    service: PortalService = request.app.state.service
    return service


def _language(request: Request) -> str:
    """``?lang=`` when given (and remembered), else the remembered choice, else Japanese."""
    return i18n.request_language(request.query_params.get("lang"), request.cookies.get(i18n.LANG_COOKIE))


def _page(request: Request, template: str, lang: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    service = _service(request)

    def t(key: str, **values: object) -> str:
        return i18n.translate(key, lang, **values)

    def lang_url(target: str) -> str:
        # lang stays in the URL for Japanese too: the click is what changes the remembered choice
        params = dict(request.query_params)
        params["lang"] = target
        return request.url.path + "?" + urlencode(params)

    def link(path: str, **params: Any) -> str:
        wanted = {k: v for k, v in params.items() if v not in (None, "")}
        if lang != "ja":
            wanted["lang"] = lang
        return path + ("?" + urlencode(wanted) if wanted else "")

    settings = service.settings
    site_title = settings.site_title_en if lang == "en" else settings.site_title_ja
    def org_url(code: str) -> str:
        return link("/organization/" + city_org_name(code))

    response = templates.TemplateResponse(request, template, {
        "lang": lang, "t": t, "lang_url": lang_url, "link": link, "org_url": org_url, "site_title": site_title,
        "other_lang": "ja" if lang == "en" else "en", **context}, status_code=status_code)
    if request.query_params.get("lang") in i18n.LANGUAGES and request.cookies.get(i18n.LANG_COOKIE) != lang:
        response.set_cookie(i18n.LANG_COOKIE, lang, max_age=i18n.LANG_COOKIE_AGE, samesite="lax",
                            httponly=True)
    return response


def _map_context(request: Request, lang: str, layers: list[tuple[DatasetEntry, geo.PointSet]]) -> dict[str, Any]:
    """What the map partial needs: each layer's GeoJSON URL, its points for the list, the tile settings."""
    settings = _service(request).settings
    attribution = settings.map_attribution_en if lang == "en" else settings.map_attribution_ja
    return {"map_layers": [{
        "entry": entry, "points": points.points[:geo.LIST_LIMIT], "located": points.located,
        "features": points.features, "truncated": points.located > geo.LIST_LIMIT, "url": points.url}
        for entry, points in layers],
        "map_tiles": settings.map_tiles_url, "map_attribution": attribution,
        "map_attribution_url": settings.map_attribution_url}


def _point_layer(entry: DatasetEntry) -> tuple[DatasetEntry, geo.PointSet] | None:
    points = geo.release_points(entry.release)
    return (entry, points) if points is not None and points.located else None


@router.get("/", response_class=HTMLResponse)
def index(request: Request, q: str = "", kind: str = "", city: str = "") -> HTMLResponse:
    """The dataset list, searched (Japanese text, or its reading in kana) and filtered by kind and city."""
    lang = _language(request)
    entries = _service(request).entries()
    kind = kind if theme_by_id(kind) else ""
    found = catalogue.find_datasets(entries, q, kind, city)
    present = {e.theme.id for e in entries}
    kinds = [th for th in (*THEMES, OTHER) if th.id in present]
    cities = {c.code: c for e in entries for c in e.cities}
    return _page(request, "index.html", lang, entries=found, total=len(entries), q=q, kind=kind, city=city,
                 kinds=kinds, cities=sorted(cities.values(), key=lambda c: c.code),
                 has_map=any(e.release.file("geojson") for e in entries))


@router.get("/map", response_class=HTMLResponse)
def region_map(request: Request) -> HTMLResponse:
    """The region-wide view: every dataset with coordinates on one map, with the list of its points."""
    lang = _language(request)
    layers = [layer for e in _service(request).entries() if (layer := _point_layer(e))]
    return _page(request, "map.html", lang, **_map_context(request, lang, layers))


@router.get("/organization", response_class=HTMLResponse)
def organizations_page(request: Request) -> HTMLResponse:
    """The member cities (CKAN's organisations), each with the number of datasets holding its rows."""
    lang = _language(request)
    service = _service(request)
    entries = service.entries()
    cities = [(c, sum(1 for e in entries if c.code in e.city_codes)) for c in service.member_cities()]
    return _page(request, "organizations.html", lang, cities=cities, org_name=city_org_name)


@router.get("/organization/{name}", response_class=HTMLResponse)
def organization_page(request: Request, name: str) -> HTMLResponse:
    """One member city (``city-<code>``, as in the CKAN API): its datasets, its rows and its own files."""
    lang = _language(request)
    service = _service(request)
    code = name.removeprefix("city-")
    member = next((c for c in service.member_cities() if c.code == code), None)
    if not name.startswith("city-") or member is None:
        raise HTTPException(status_code=404)
    holding = [(e, next(c for c in e.cities if c.code == code), e.release.city_files(code))
               for e in service.entries() if code in e.city_codes]
    return _page(request, "organization.html", lang, member=member, holding=holding, names=resource_names)


@router.get("/dataset/{dataset_id}.{suffix}")
def dataset_file(request: Request, dataset_id: str, suffix: str) -> Response:
    """A dataset (DCAT-AP) as ``.ttl``, ``.rdf`` / ``.xml``, ``.jsonld``, ``.n3`` or ``.nt``."""
    if suffix not in dcat.SERIALISATIONS:
        raise HTTPException(status_code=404)
    return _dataset_rdf(request, dataset_id, suffix)


@router.get("/dataset/{dataset_id}", response_class=HTMLResponse)
def dataset_page(request: Request, dataset_id: str) -> Response:
    """A dataset: overview, preview, downloads, column dictionary, quality by city, release history; or its
    DCAT description when the Accept header prefers RDF."""
    suffix = dcat.negotiate(request.headers.get("accept", ""))
    if suffix is not None:
        return _dataset_rdf(request, dataset_id, suffix)
    lang = _language(request)
    service = _service(request)
    entry = service.entry(dataset_id)
    if entry is None:
        raise HTTPException(status_code=404)
    release = entry.release
    preview = _preview(service, entry)
    findings = quality.findings_counts(service.settings.findings, entry.id)
    city_files = [(c, release.city_files(c.code)) for c in entry.cities]
    csv_resource = release.file("csv")
    layer = _point_layer(entry)
    return _page(
        request, "dataset.html", lang, entry=entry, release=release, preview=preview,
        columns=glossary.localise(entry.column_dictionary(), lang), history=service.store.releases(entry.id),
        **_map_context(request, lang, [layer] if layer else []),
        conformance=(release.meta.get("conformance") or {}).get("columns") or {},
        region_files=release.region_files, city_files=city_files,
        quality=quality.city_quality(entry.cities, findings), names=resource_names,
        dcat_file=release.dcat_file,
        api_resource=release.resource_prefix + csv_resource.key if csv_resource else "",
    )


def _preview(service: PortalService, entry: DatasetEntry) -> dict[str, Any] | None:
    parquet = service.parquet_path(entry.release)
    if parquet is None:
        return None
    result = service.datastore.search(parquet, SearchRequest(resource_id="", limit=PREVIEW_ROWS,
                                                             include_total=False))
    return {"fields": [n for n, _ in result.fields], "rows": result.rows, "total": entry.release.rows}


def _rdf_response(body: bytes, media_type: str) -> Response:
    return Response(body, media_type=f"{media_type}; charset=utf-8",
                    headers={"Vary": "Accept", "Access-Control-Allow-Origin": "*"})


def _rdf_error(message: str, status: int = 400) -> Response:
    return Response(f"{message}\n", status_code=status, media_type="text/plain; charset=utf-8")


def _catalogue(request: Request, suffix: str) -> Response:
    params = request.query_params
    service = _service(request)
    base_url = str(request.base_url)
    try:
        page = dcat.Page(number=_page_number(params.get("page", "1")), size=service.settings.dcat_page_size,
                         modified_since=_since(params.get("modified_since", "")))
        profile = dcat.check_profile(params.get("profiles", ""))
    except dcat.DcatError as exc:
        return _rdf_error(str(exc))

    def build() -> tuple[bytes, str]:
        return dcat.serialise(dcat.catalogue_graph(service, base_url, page, profile, suffix), suffix)

    key = ("catalogue", base_url, suffix, profile, str(page.number), page.modified_since)
    return _rdf_response(*service.document(key, build))


def _page_number(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise dcat.DcatError(f"page must be a whole number from 1, not {raw[:40]!r}")
    return int(raw)


def _since(raw: str) -> str:
    """``modified_since`` as a Solr date (UTC, Z); naive times are UTC."""
    if not raw:
        return ""
    try:
        moment = dt.datetime.fromisoformat(raw[:64].replace("Z", "+00:00"))
    except ValueError:
        raise dcat.DcatError(f"modified_since must be an ISO 8601 date, not {raw[:40]!r}") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@router.get("/catalog")
def catalogue_negotiated(request: Request) -> Response:
    """The catalogue in the RDF serialisation the Accept header asks for (Turtle by default)."""
    suffix = dcat.negotiate(request.headers.get("accept", "")) or "ttl"
    return _catalogue(request, suffix)


@router.get("/catalog.{suffix}")
def catalogue_file(request: Request, suffix: str) -> Response:
    """The catalogue (DCAT-AP) as ``.ttl``, ``.rdf`` / ``.xml``, ``.jsonld``, ``.n3`` or ``.nt``."""
    if suffix not in dcat.SERIALISATIONS:
        raise HTTPException(status_code=404)
    return _catalogue(request, suffix)


def _dataset_rdf(request: Request, dataset_id: str, suffix: str) -> Response:
    service = _service(request)
    entry = service.entry(service.dataset_name(dataset_id))
    if entry is None:
        raise HTTPException(status_code=404)
    try:
        profile = dcat.check_profile(request.query_params.get("profiles", ""))
    except dcat.DcatError as exc:
        return _rdf_error(str(exc))
    base_url = str(request.base_url)

    def build() -> tuple[bytes, str]:
        return dcat.serialise(dcat.dataset_graph(service, entry, base_url, profile), suffix)

    key = ("dataset", base_url, suffix, profile, entry.id, str(entry.release.number))
    return _rdf_response(*service.document(key, build))


@router.get("/dataset/{dataset_id}/dcat.jsonld")
def dataset_dcat(request: Request, dataset_id: str) -> Response:
    return _dataset_rdf(request, dataset_id, "jsonld")


@router.api_route("/download/{dataset_id}/{number}/{file_path:path}", methods=["GET", "HEAD"])
def download(request: Request, dataset_id: str, number: str, file_path: str) -> ReleaseFileResponse:
    """A file of a release, streamed whole (Range requests work): only a path the release's metadata lists,
    and only when it resolves inside that release's folder."""
    service = _service(request)
    release = service.store.release(dataset_id, number)
    real = service.store.resolve(release, file_path) if release else None
    listed = (release.file_by_path(file_path) or release.dcat_file) if release else None
    if release is None or real is None or listed is None:
        raise HTTPException(status_code=404)
    return ReleaseFileResponse(real, media_type=listed.media_type, headers={
        "Content-Disposition": content_disposition(listed.name), "Cache-Control": IMMUTABLE})


def error_page(request: Request, status: int) -> HTMLResponse:
    """The error page (404, 405, 500 …) in the visitor's language, in the words of the problem catalogue."""
    lang = _language(request)
    if status == 404:
        problem = Problem.of("not-found", "page")
    elif status >= 500:
        problem = Problem.of("internal-error", "page")
    else:
        problem = Problem.of("http-error", "page", status=status)
    heading, note = (problem.en, problem.hint_en) if lang == "en" else (problem.ja, problem.hint_ja)
    return _page(request, "error.html", lang, status_code=status, status=status, heading=heading, note=note)
