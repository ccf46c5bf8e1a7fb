"""The FastAPI application: HTML pages, downloads, DCAT and the CKAN-compatible Action API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from portal import ckan, web
from portal.service import PortalService
from portal.settings import PortalSettings, tile_origin

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
PAGE_POLICY = ("default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
               "frame-ancestors 'none'")


def page_policy(settings: PortalSettings) -> str:
    """PAGE_POLICY, plus the configured map tile server's origin for images (and nothing else)."""
    origin = tile_origin(settings.map_tiles_url)
    return PAGE_POLICY.replace("img-src 'self' data:", f"img-src 'self' data: {origin}") if origin else PAGE_POLICY
# Browser apps on other origins may read the API, the DCAT documents and the files (all public, read-only),
# as CKAN does with ckan.cors.origin_allow_all.
CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT_HEADERS = {
    **CORS_HEADERS, "Access-Control-Allow-Methods": "GET, POST, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-CKAN-API-Key, Accept",
    "Access-Control-Max-Age": "86400",
}
CORS_PREFIXES = ("/api", "/catalog", "/download/")


def create_app(settings: PortalSettings | None = None) -> FastAPI:
    """The portal over ``settings.releases`` (default: KOUIKI_HOME from the environment)."""
    settings = settings or PortalSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.service.close()

    app = FastAPI(title=settings.site_title_en, docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.service = PortalService(settings)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(ckan.router)
    app.include_router(web.router)
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _server_error)
    policy = page_policy(settings)

    @app.middleware("http")
    async def security_headers(request: Request,
                               call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        public_data = _is_public_data(request.url.path)
        if request.method == "OPTIONS" and public_data:
            return Response(status_code=204, headers=PREFLIGHT_HEADERS)
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if public_data:
            for name, value in CORS_HEADERS.items():
                response.headers.setdefault(name, value)
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", policy)
        return response

    return app


def _is_public_data(path: str) -> bool:
    return path.startswith(CORS_PREFIXES) or (path.startswith("/dataset/")
                                              and path.endswith((".ttl", ".rdf", ".jsonld", ".xml")))


async def _server_error(request: Request, exc: Exception) -> Response:
    """Nothing may answer a plain 500: the API gets CKAN's error envelope, pages a short bilingual text."""
    log.exception("portal: unexpected error on %s", request.url.path)
    if request.url.path.startswith("/api"):
        return JSONResponse({"success": False, "error": {
            "__type": "Internal Server Error",
            "message": "内部エラーが発生しました。時間をおいて再度お試しください。 / "
                       "Internal error; please retry later."}},
            status_code=500, headers=CORS_HEADERS)
    try:
        return web.error_page(request, 500)
    except Exception:  # the page itself failed: the plain text still answers
        return Response("内部エラーが発生しました / Internal error", status_code=500,
                        media_type="text/plain; charset=utf-8")


async def _http_error(request: Request, exc: StarletteHTTPException | RequestValidationError) -> Response:
    """404s (and every other HTTP error) as CKAN JSON under /api, as a short bilingual page elsewhere."""
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 404
    if request.url.path.startswith("/api"):
        kind = {404: "Not Found Error", 405: "Bad request"}.get(status, "Bad request")
        message = "Not found" if status == 404 else str(getattr(exc, "detail", "Bad request"))
        return JSONResponse({"success": False, "error": {"__type": kind, "message": message}},
                            status_code=status)
    return web.error_page(request, status)
