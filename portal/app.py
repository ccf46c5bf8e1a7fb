"""The FastAPI application: HTML pages, downloads, DCAT and the CKAN-compatible Action API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from portal import ckan, i18n, web
from portal.service import PortalService
from portal.settings import PortalSettings

STATIC = Path(__file__).resolve().parent / "static"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
PAGE_POLICY = ("default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
               "frame-ancestors 'none'")


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

    @app.middleware("http")
    async def security_headers(request: Request,
                               call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        return response

    return app


async def _http_error(request: Request, exc: StarletteHTTPException | RequestValidationError) -> Response:
    """404s (and every other HTTP error) as CKAN JSON under /api, as a short bilingual page elsewhere."""
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 404
    if request.url.path.startswith("/api"):
        kind = "Not Found Error" if status == 404 else "Bad request"
        message = "Not found" if status == 404 else str(getattr(exc, "detail", "Bad request"))
        return JSONResponse({"success": False, "error": {"__type": kind, "message": message}},
                            status_code=status)
    if status != 404:
        return Response(str(getattr(exc, "detail", "")), status_code=status,
                        media_type="text/plain; charset=utf-8")
    lang = i18n.pick_language(request.query_params.get("lang"))
    return web.not_found_page(request, lang)
