"""The upload service: FastAPI app with the upload page (``/``), the city API (``/api/...``) and the reports.

Every route except the health check, the login page and its static files needs a city's token, and a city
reaches only its own uploads and reports (an upload id names its city: ``<city>-<sha256[:16]>``). Nothing
here serves raw uploaded bytes. Reading and validating a file runs in worker threads (a bounded number at a
time), so a large upload never blocks the event loop or the other cities.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.exceptions import HTTPException as StarletteHTTPException

from expectations.registry import Registry, default_registry
from expectations.report import render_refusal
from kouiki import catalog
from kouiki.publication import ReleaseIndex, publication
from service import errors
from service.auth import (
    SESSION_COOKIE,
    Caller,
    MemberDirectory,
    authenticate,
    caller_for_token,
    check_origin,
    csrf_token_for,
    require_city,
)
from service.i18n import TEXTS, language
from service.receive import Received, receive_body, receive_form
from service.settings import ServiceSettings
from service.submit import Submission, UploadRefused, report_paths, submit_upload, upload_json, warm_up

HERE = Path(__file__).parent
UPLOAD_ID = re.compile(r"^(\d{6})-[0-9a-f]{16}$")
MAX_LOGIN_BYTES = 4096
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"

_templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                         trim_blocks=True, lstrip_blocks=True)


class Service:
    """The app's state: settings, members, registry and the bound on concurrent validations."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.paths = settings.paths
        self.members = MemberDirectory(settings.members_file)
        self.registry: Registry = default_registry()
        self.limiter = anyio.CapacityLimiter(settings.validation_workers)
        self.ready = threading.Event()
        self.releases = ReleaseIndex(self.paths.releases)

    def upload_json(self, upload: catalog.UploadRow) -> dict[str, Any]:
        """The upload's record with where it stands (publication: state, release, rows, reasons). A refused
        upload has a report too: its refusal page (:meth:`report`)."""
        doc = upload_json(upload) | {"publication": publication(upload, self.releases).to_json(),
                                     "links": links(upload.upload_id)}
        doc["has_report"] = bool(doc["has_report"] or doc["error"])
        return doc

    def report(self, upload: catalog.UploadRow) -> tuple[str, dict[str, Any]]:
        """The upload's report (HTML, JSON): the validation report the pipeline or the service wrote, or, for an
        upload refused before validation, its refusal page made from the catalog's record of the reason."""
        html, doc = report_paths(self.paths, upload)
        if html.is_file() and doc.is_file():
            return html.read_text(encoding="utf-8"), json.loads(doc.read_text(encoding="utf-8"))
        error = upload_json(upload)["error"]
        if not error:
            raise errors.report_not_ready()
        member = self.members.get(upload.city_code)
        return render_refusal(error, upload_id=upload.upload_id, file_name=upload.original_name,
                              city_name=member.name if member else upload.city_code, received_at=upload.received_at)

    def caller(self, request: Request) -> Caller:
        return authenticate(request, self.paths.catalog_url, self.members)

    def warm(self) -> None:
        warm_up()
        self.ready.set()

    def dataset_hint(self, value: str | None) -> str | None:
        hint = (value or "").strip()
        if not hint:
            return None
        if hint not in self.registry:
            raise errors.unknown_dataset(hint, sorted(self.registry.datasets))
        return hint

    def own_upload(self, caller: Caller, upload_id: str) -> catalog.UploadRow:
        """The caller's upload ``upload_id``: 404 for a malformed or unknown id, 403 for another city's id
        (decided from the id alone, so a city cannot probe whether another city's upload exists)."""
        match = UPLOAD_ID.match(upload_id)
        if match is None:
            raise errors.upload_not_found(upload_id[:40])
        require_city(caller, match.group(1))
        upload = catalog.get_upload(self.paths.catalog_url, upload_id)
        if upload is None or upload.city_code != caller.city_code:
            raise errors.upload_not_found(upload_id)
        return upload

    async def submit(self, caller: Caller, received: Received, dataset: str | None) -> JSONResponse:
        try:
            require_city(caller, received.fields.get("city"))
            hint = self.dataset_hint(dataset or received.fields.get("dataset"))
            run = partial(submit_upload, self.paths, self.registry, caller.city_code, received.path,
                          received.original_name, dataset_hint=hint, via="api", sha256=received.sha256,
                          submits_for=caller.member.submits_for)
            submission: Submission = await anyio.to_thread.run_sync(run, limiter=self.limiter)
        except UploadRefused as refused:
            raise errors.from_intake(refused.error, refused.upload_id) from None
        finally:
            received.discard()
        return _json(answer(submission), status=201 if submission.is_new else 200)


def answer(submission: Submission) -> dict[str, Any]:
    doc = submission.to_json()
    doc["links"] = links(submission.upload.upload_id)
    return doc


def links(upload_id: str) -> dict[str, str]:
    return {"status": f"/api/uploads/{upload_id}", "report_json": f"/api/uploads/{upload_id}/report",
            "report_html": f"/uploads/{upload_id}/report"}


def _json(doc: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(doc, status_code=status, headers=errors.SECURITY_HEADERS)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The upload service for ``settings`` (default: from the environment)."""
    service = Service(settings or ServiceSettings.from_env())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=service.warm, name="kouiki-warm-up", daemon=True).start()
        yield

    app = FastAPI(title="kouiki upload service", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.service = service
    app.add_exception_handler(errors.ApiError, errors.handle_api_error)
    app.add_exception_handler(StarletteHTTPException, errors.handle_http_error)
    app.add_exception_handler(RequestValidationError, errors.handle_validation_error)
    app.add_exception_handler(Exception, errors.handle_unexpected)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _api_routes(app, service)
    _page_routes(app, service)
    return app


def _api_routes(app: FastAPI, service: Service) -> None:
    limit = service.settings.max_upload_bytes

    @app.get("/api/health")
    async def health() -> JSONResponse:
        return _json({"ok": True, "ready": service.ready.is_set()})

    @app.post("/api/session")
    async def login(request: Request) -> JSONResponse:
        check_origin(request)
        token = await _login_token(request)
        caller = caller_for_token(token, service.paths.catalog_url, service.members)
        response = _json({"city_code": caller.city_code, "city_name": caller.member.name,
                          "token_id": caller.token.token_id, "csrf_token": csrf_token_for(token)})
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    @app.delete("/api/session")
    async def logout() -> JSONResponse:
        response = _json({"ok": True})
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/api/me")
    async def me(request: Request) -> JSONResponse:
        caller = service.caller(request)
        return _json({"city_code": caller.city_code, "city_name": caller.member.name,
                      "token_id": caller.token.token_id})

    @app.get("/api/datasets")
    async def datasets(request: Request) -> JSONResponse:
        service.caller(request)
        return _json([{"id": d.id, "name_ja": d.name_ja, "name_en": d.name_en} for d in service.registry])

    @app.post("/api/uploads")
    async def upload_form(request: Request, dataset: str | None = Query(None, max_length=64),
                          city: str | None = Query(None, max_length=16)) -> JSONResponse:
        caller = service.caller(request)
        require_city(caller, city)
        received = await receive_form(request.stream(), request.headers.get("content-type", ""),
                                      service.paths.tmp, limit, request.headers.get("content-length"))
        return await service.submit(caller, received, dataset)

    @app.put("/api/uploads/{file_name:path}")
    async def upload_put(request: Request, file_name: str, dataset: str | None = Query(None, max_length=64),
                         city: str | None = Query(None, max_length=16)) -> JSONResponse:
        caller = service.caller(request)
        require_city(caller, city)
        received = await receive_body(request.stream(), file_name, service.paths.tmp, limit,
                                      request.headers.get("content-length"))
        return await service.submit(caller, received, dataset)

    @app.get("/api/uploads")
    async def list_uploads(request: Request, city: str | None = Query(None, max_length=16)) -> JSONResponse:
        caller = service.caller(request)
        require_city(caller, city)
        ups = catalog.list_uploads(service.paths.catalog_url, city_code=caller.city_code)
        return _json([service.upload_json(u) for u in reversed(ups)])

    @app.get("/api/uploads/{upload_id}")
    async def upload_status(request: Request, upload_id: str) -> JSONResponse:
        caller = service.caller(request)
        upload = service.own_upload(caller, upload_id)
        return _json(service.upload_json(upload))

    @app.get("/api/uploads/{upload_id}/report")
    async def report_json(request: Request, upload_id: str) -> JSONResponse:
        caller = service.caller(request)
        upload = service.own_upload(caller, upload_id)
        return _json(service.report(upload)[1])


async def _login_token(request: Request) -> str:
    """The token of a login request (JSON ``{"token": ...}``, at most a few kB)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BYTES:
            raise errors.malformed_request("the login request is too long")
    try:
        token = json.loads(bytes(body) or b"{}").get("token")
    except (ValueError, AttributeError):
        raise errors.malformed_request('send JSON: {"token": "..."}') from None
    if not isinstance(token, str) or not token.strip():
        raise errors.auth_required()
    return token.strip()


def _page_routes(app: FastAPI, service: Service) -> None:

    @app.get("/", response_class=HTMLResponse)
    async def upload_page(request: Request, lang: str | None = Query(None, max_length=8)) -> Response:
        chosen = language(lang)
        caller = _page_caller(request, service)
        token = request.cookies.get(SESSION_COOKIE) if caller else None
        html = _templates.get_template("upload.html.j2").render(
            lang=chosen, t=TEXTS[chosen], other_lang="en" if chosen == "ja" else "ja", caller=caller,
            csrf=csrf_token_for(token) if token else "",
            datasets=[{"id": d.id, "name": d.name_ja if chosen == "ja" else d.name_en} for d in service.registry],
        )
        response = HTMLResponse(html, headers={**errors.SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP})
        if request.cookies.get(SESSION_COOKIE) and caller is None:
            response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/uploads/{upload_id}/report", response_class=HTMLResponse)
    async def report_page(request: Request, upload_id: str) -> Response:
        caller = service.caller(request)
        upload = service.own_upload(caller, upload_id)
        return HTMLResponse(service.report(upload)[0],
                            headers={**errors.SECURITY_HEADERS, "Content-Security-Policy": REPORT_CSP})


def _page_caller(request: Request, service: Service) -> Caller | None:
    """The logged-in city of a page view, or None (the page then shows the login form)."""
    if not request.cookies.get(SESSION_COOKIE):
        return None
    try:
        return service.caller(request)
    except errors.ApiError:
        return None
