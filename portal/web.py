"""The HTML pages (dataset list, dataset page), the DCAT documents and the file downloads."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates

from portal import catalogue, dcat, i18n, quality
from portal.catalogue import DatasetEntry
from portal.datastore import SearchRequest
from portal.service import PortalService, resource_names
from portal.themes import OTHER, THEMES, theme_by_id

TEMPLATES = Path(__file__).resolve().parent / "templates"
PREVIEW_ROWS = 50
# Release files never change once published: caches may keep them.
IMMUTABLE = "public, max-age=31536000, immutable"


class ReleaseFileResponse(FileResponse):
    """A release file, streamed in 1 MiB reads (Starlette's 64 KiB costs one thread hop per 64 KiB)."""

    chunk_size = 1 << 20


templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters["size"] = i18n.human_size
templates.env.filters["local_time"] = i18n.local_time
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


def _page(request: Request, template: str, lang: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    service = _service(request)

    def t(key: str, **values: object) -> str:
        return i18n.translate(key, lang, **values)

    def lang_url(target: str) -> str:
        params = dict(request.query_params)
        params["lang"] = target
        if target == "ja":
            params.pop("lang")
        return request.url.path + ("?" + urlencode(params) if params else "")

    def link(path: str, **params: Any) -> str:
        wanted = {k: v for k, v in params.items() if v not in (None, "")}
        if lang != "ja":
            wanted["lang"] = lang
        return path + ("?" + urlencode(wanted) if wanted else "")

    settings = service.settings
    site_title = settings.site_title_en if lang == "en" else settings.site_title_ja
    return templates.TemplateResponse(request, template, {
        "lang": lang, "t": t, "lang_url": lang_url, "link": link, "site_title": site_title,
        "other_lang": "ja" if lang == "en" else "en", **context}, status_code=status_code)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, q: str = "", kind: str = "", city: str = "", lang: str = "ja") -> HTMLResponse:
    """The dataset list, searched (Japanese text) and filtered by kind and city."""
    lang = i18n.pick_language(lang)
    entries = _service(request).entries()
    kind = kind if theme_by_id(kind) else ""
    found = catalogue.find_datasets(entries, q, kind, city)
    present = {e.theme.id for e in entries}
    kinds = [th for th in (*THEMES, OTHER) if th.id in present]
    cities = {c.code: c for e in entries for c in e.cities}
    return _page(request, "index.html", lang, entries=found, total=len(entries), q=q, kind=kind, city=city,
                 kinds=kinds, cities=sorted(cities.values(), key=lambda c: c.code))


@router.get("/dataset/{dataset_id}", response_class=HTMLResponse)
def dataset_page(request: Request, dataset_id: str, lang: str = "ja") -> HTMLResponse:
    """A dataset: overview, preview, downloads, column dictionary, quality by city, release history."""
    lang = i18n.pick_language(lang)
    service = _service(request)
    entry = service.entry(dataset_id)
    if entry is None:
        raise HTTPException(status_code=404)
    release = entry.release
    preview = _preview(service, entry)
    findings = quality.findings_counts(service.settings.findings, entry.id)
    city_files = [(c, release.city_files(c.code)) for c in entry.cities]
    csv_resource = release.file("csv")
    return _page(
        request, "dataset.html", lang, entry=entry, release=release, preview=preview,
        columns=entry.column_dictionary(), history=service.store.releases(entry.id),
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


@router.get("/catalog.jsonld")
def catalogue_dcat(request: Request) -> JSONResponse:
    """The whole catalogue in DCAT (JSON-LD)."""
    return JSONResponse(dcat.catalogue_jsonld(_service(request), str(request.base_url)),
                        media_type="application/ld+json")


@router.get("/dataset/{dataset_id}/dcat.jsonld")
def dataset_dcat(request: Request, dataset_id: str) -> JSONResponse:
    service = _service(request)
    entry = service.entry(dataset_id)
    if entry is None:
        raise HTTPException(status_code=404)
    return JSONResponse(dcat.dataset_jsonld(service, entry, str(request.base_url)),
                        media_type="application/ld+json")


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


def not_found_page(request: Request, lang: str) -> HTMLResponse:
    """The bilingual 404 page."""
    return _page(request, "error.html", lang, status_code=404)
