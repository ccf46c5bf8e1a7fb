"""A CKAN-compatible Action API (``/api/3/action/<name>`` and ``/api/action/<name>``), read-only.

Parameters come from the query string (GET) or a JSON / form body (POST, as ckanapi sends them); answers are
``{"help", "success", "result"}`` and errors ``{"help", "success": false, "error": {"__type", "message"}}``
with CKAN's HTTP codes (400 bad request, 404 not found, 409 validation / search query errors).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from portal import catalogue, datastore
from portal.catalogue import DatasetEntry
from portal.errors import ActionError, BadRequest, NotFound, SearchQueryError, ValidationError
from portal.service import PortalService, theme_groups

log = logging.getLogger(__name__)

MAX_PACKAGE_ROWS = 1000
_FQ_TERM = re.compile(r'(?P<sign>[+-]?)(?P<field>[A-Za-z_]+):(?P<value>"[^"]*"|\([^)]*\)|\S+)')
PACKAGE_FIELDS = ("city", "tags", "organization", "groups", "kind", "res_format", "name", "id", "license_id",
                  "dataset_type", "type", "state", "capacity")
PACKAGE_SORTS = {
    "name": lambda e: e.id, "title_string": lambda e: catalogue.normalise_text(e.title("ja")),
    "metadata_modified": lambda e: e.release.published_at, "num_resources": lambda e: len(e.release.files),
}


@dataclass(frozen=True)
class Call:
    """One action call: the service, its parameters, and the request's URLs (for links in the answer)."""

    service: PortalService
    params: dict[str, Any]
    base_url: str       # http://127.0.0.1:8000/
    path: str           # /api/3/action/datastore_search

    def text(self, key: str, default: str = "") -> str:
        value = self.params.get(key, default)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    def natural(self, key: str, default: int, maximum: int | None = None) -> int:
        raw = self.params.get(key)
        if raw in (None, ""):
            return default
        try:
            value = int(str(raw))
        except ValueError:
            value = -1
        if value < 0 or isinstance(raw, bool):
            raise ValidationError({key: ["Must be a natural number"]})
        return min(value, maximum) if maximum is not None else value


Action = Callable[[Call], Any]
ACTIONS: dict[str, Action] = {}


def action(function: Action) -> Action:
    ACTIONS[function.__name__] = function
    return function


# ---------------------------------------------------------------------------------------------- datasets


@action
def package_list(call: Call) -> list[str]:
    """The names of every published dataset (``limit``, ``offset`` optional)."""
    names = call.service.store.dataset_ids()
    offset = call.natural("offset", 0)
    limit = call.natural("limit", len(names))
    return names[offset:offset + limit]


@action
def package_show(call: Call) -> dict[str, Any]:
    """A dataset with its resources (the files of its latest release) and its release history (``id``)."""
    entry = _entry(call, call.text("id") or call.text("name_or_id"))
    return call.service.package(entry, call.base_url)


@action
def package_search(call: Call) -> dict[str, Any]:
    """Datasets matching ``q`` (words; ``field:value`` too) and ``fq`` (``city:122033``, ``tags:…``,
    ``organization:…``, ``groups:…``, ``res_format:CSV``), paged by ``rows`` (≤ 1000) and ``start``."""
    service = call.service
    entries = service.entries()
    words, conditions = _parse_query(call.text("q"))
    fq_words, fq_conditions = _parse_query(call.text("fq"))
    terms = catalogue.query_terms(" ".join(words + fq_words))
    found = [e for e in entries if e.matches(terms)
             and all(_satisfies(service, e, c) for c in conditions + fq_conditions)]
    found = _sort_packages(found, call.text("sort"))
    start, rows = call.natural("start", 0), call.natural("rows", 10, MAX_PACKAGE_ROWS)
    page = found[start:start + rows]
    facets = _facets(service, found, call.params.get("facet.field"), call.natural("facet.limit", 50))
    return {
        "count": len(found), "sort": call.text("sort") or "score desc, metadata_modified desc",
        "results": [service.package(e, call.base_url) for e in page],
        "facets": {name: dict(counts) for name, counts in facets.items()},
        "search_facets": {name: {"title": name, "items": [{"name": v, "display_name": v, "count": n}
                                                           for v, n in counts.most_common()]}
                          for name, counts in facets.items()},
    }


@action
def resource_show(call: Call) -> dict[str, Any]:
    """One resource (a file of a release) by ``id``."""
    release, file = _resource(call, call.text("id"))
    return call.service.resource(release, file, call.base_url, position=release.files.index(file))


@action
def organization_list(call: Call) -> list[Any]:
    """The one publisher: the member cities' shared data office."""
    if str(call.params.get("all_fields", "")).lower() in ("true", "1"):
        return [call.service.organization()]
    return [call.service.settings.publisher_id]


@action
def organization_show(call: Call) -> dict[str, Any]:
    organization = call.service.organization()
    if call.text("id") not in (organization["id"], organization["name"]):
        raise NotFound("Organization was not found.")
    return organization


@action
def group_list(call: Call) -> list[Any]:
    """The themes (dataset kinds) used to group datasets."""
    groups = theme_groups()
    if str(call.params.get("all_fields", "")).lower() in ("true", "1"):
        return groups
    return [g["name"] for g in groups]


@action
def tag_list(call: Call) -> list[str]:
    service = call.service
    return sorted({t for e in service.entries() for t in service.tags(e)})


@action
def license_list(call: Call) -> list[dict[str, str]]:
    licences = {e.release.licence["id"]: e.release.licence for e in call.service.entries()}
    return [{"id": lid, "title": lic["title"], "url": lic["url"]} for lid, lic in sorted(licences.items())]


@action
def status_show(call: Call) -> dict[str, Any]:
    settings = call.service.settings
    return {"site_title": settings.site_title_ja, "site_url": call.base_url.rstrip("/"),
            "site_description": "", "ckan_version": "2.10.0", "locale_default": "ja",
            "extensions": ["datastore"],
            "error_emails_to": None}


@action
def help_show(call: Call) -> str:
    name = call.text("name")
    if name not in ACTIONS:
        raise NotFound(f"Action function not found: {name}")
    return (ACTIONS[name].__doc__ or "").strip()


# ---------------------------------------------------------------------------------------------- datastore


@action
def datastore_search(call: Call) -> dict[str, Any]:
    """Rows of a resource: ``resource_id``, ``filters`` (JSON object), ``q`` (text or JSON object),
    ``fields``, ``sort`` ("col asc, col2 desc"), ``limit`` (default 100, max 32000), ``offset``,
    ``include_total``, ``distinct``, ``records_format`` (objects, lists, csv, tsv)."""
    request = datastore.parse_search_request(call.params)
    release, file = _resource(call, request.resource_id)
    scope = call.service.scope(release, file)
    parquet = call.service.parquet_path(release)
    if scope is False or parquet is None:
        raise NotFound(f"Resource {request.resource_id!r} has no datastore table (download the file).")
    assert scope is not True
    result = call.service.datastore.search(parquet, request, scope)
    descriptions = {c.name: c for c in DatasetEntry(release, catalogue.registry_dataset(release.dataset_id))
                    .column_dictionary()}
    answer: dict[str, Any] = {
        "resource_id": request.resource_id, "include_total": request.include_total,
        "records_format": request.records_format, "limit": request.limit, "offset": request.offset,
        "total_estimation_threshold": None,
        "fields": [_field(name, typ, descriptions) for name, typ in result.fields],
        "records": datastore.format_records(result, request.records_format),
        "_links": _links(call, request.limit, request.offset),
    }
    for key in ("filters", "q", "sort", "distinct"):
        if key in call.params:
            answer[key] = call.params[key]
    if result.total is not None:
        answer["total"] = result.total
        answer["total_was_estimated"] = False
    return answer


@action
def datastore_info(call: Call) -> dict[str, Any]:
    """The columns (with types and descriptions) and the row count of a resource (``id``)."""
    resource_id = call.text("id") or call.text("resource_id")
    release, file = _resource(call, resource_id)
    scope, parquet = call.service.scope(release, file), call.service.parquet_path(release)
    if scope is False or parquet is None:
        raise NotFound(f"Resource {resource_id!r} has no datastore table.")
    assert scope is not True
    descriptions = {c.name: c for c in DatasetEntry(release, catalogue.registry_dataset(release.dataset_id))
                    .column_dictionary()}
    columns = call.service.datastore.schema(parquet)
    return {"meta": {"id": resource_id, "count": call.service.datastore.count(parquet, scope)},
            "fields": [_field(n, t, descriptions) for n, t in columns]}


def _field(name: str, duckdb_type: str, descriptions: dict[str, catalogue.ColumnEntry]) -> dict[str, Any]:
    if name == datastore.ROW_ID:
        return {"id": name, "type": "int"}
    described = descriptions.get(name)
    info = {"label": name, "notes": described.description if described else "",
            "type_override": ""}
    return {"id": name, "type": datastore.ckan_type(duckdb_type), "info": info}


def _links(call: Call, limit: int, offset: int) -> dict[str, str]:
    """start / next (/ prev) like CKAN: this call's URL with another offset."""
    base = {k: (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
            for k, v in call.params.items()}
    base.pop("offset", None)
    links = {"start": f"{call.path}?{urlencode(base)}",
             "next": f"{call.path}?{urlencode({**base, 'offset': offset + limit})}"}
    if offset - limit > 0:
        links["prev"] = f"{call.path}?{urlencode({**base, 'offset': offset - limit})}"
    return links


# ---------------------------------------------------------------------------------------------- helpers


def _entry(call: Call, dataset_id: str) -> DatasetEntry:
    if not dataset_id:
        raise ValidationError({"id": ["Missing value"]})
    entry = call.service.entry(dataset_id)
    if entry is None:
        raise NotFound("Dataset not found")
    return entry


def _resource(call: Call, resource_id: str) -> tuple[Any, Any]:
    if not resource_id:
        raise ValidationError({"id": ["Missing value"]})
    found = call.service.store.resource(resource_id)
    if found is None:
        raise NotFound(f"Resource was not found: {resource_id}")
    return found


def _parse_query(text: str) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """Words and (sign, field, values) conditions of a Solr-like ``q`` / ``fq``; ``*:*`` means everything."""
    conditions = []
    for match in _FQ_TERM.finditer(text):
        field, value = match["field"], match["value"]
        if field not in PACKAGE_FIELDS:
            raise SearchQueryError(
                f"Can not search on field {field!r}; use one of {', '.join(PACKAGE_FIELDS)}")
        if value.startswith("("):
            values = [v.strip().strip('"') for v in re.split(r"\s+OR\s+", value[1:-1]) if v.strip()]
        else:
            values = [value.strip('"')]
        conditions.append((match["sign"], field, values))
    rest = _FQ_TERM.sub(" ", text).replace("*:*", " ")
    return [w for w in rest.split() if w not in ("AND", "*")], conditions


def _field_values(service: PortalService, entry: DatasetEntry, field: str) -> set[str]:
    release = entry.release
    if field == "city":
        return {v for c in entry.cities for v in (c.code, c.name, c.full_name)}
    if field == "tags":
        return set(service.tags(entry))
    if field == "organization":
        return {service.settings.publisher_id}
    if field in ("groups", "kind"):
        return {entry.theme.id}
    if field == "res_format":
        return {f.format.lower() for f in release.files}
    if field in ("name", "id"):
        return {entry.id}
    if field == "license_id":
        return {release.licence["id"]}
    if field in ("dataset_type", "type"):
        return {"dataset"}
    return {"active"} if field == "state" else {"public"}


def _satisfies(service: PortalService, entry: DatasetEntry, condition: tuple[str, str, list[str]]) -> bool:
    sign, field, values = condition
    have = _field_values(service, entry, field)
    wanted = {v.lower() for v in values} if field == "res_format" else set(values)
    hit = bool(have & wanted)
    return not hit if sign == "-" else hit


def _sort_packages(entries: list[DatasetEntry], sort: str) -> list[DatasetEntry]:
    clauses = [c.split() for c in sort.split(",") if c.strip()] or [["metadata_modified", "desc"]]
    ordered = sorted(entries, key=lambda e: e.id)
    for clause in reversed(clauses):
        name, direction = clause[0], (clause[1].lower() if len(clause) > 1 else "asc")
        if name == "score":
            continue
        key = PACKAGE_SORTS.get(name)
        if key is None or direction not in ("asc", "desc") or len(clause) > 2:
            raise SearchQueryError(
                f"Can not sort on {' '.join(clause)!r}; use one of {', '.join(PACKAGE_SORTS)}")
        ordered.sort(key=key, reverse=direction == "desc")
    return ordered


def _facets(service: PortalService, entries: list[DatasetEntry], raw: Any,
            limit: int) -> dict[str, Counter[str]]:
    if raw in (None, ""):
        return {}
    names = json.loads(raw) if isinstance(raw, str) and raw.startswith("[") else raw
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or any(n not in PACKAGE_FIELDS for n in names):
        raise ValidationError({"facet.field": [f"must be a list of: {', '.join(PACKAGE_FIELDS)}"]})
    facets: dict[str, Counter[str]] = {}
    for name in names:
        counts: Counter[str] = Counter()
        for entry in entries:
            counts.update(_facet_values(service, entry, name))
        facets[name] = Counter(dict(counts.most_common(limit)))
    return facets


def _facet_values(service: PortalService, entry: DatasetEntry, field: str) -> set[str]:
    if field == "city":
        return {c.code for c in entry.cities}
    if field == "res_format":
        return {f.format for f in entry.release.files}
    return _field_values(service, entry, field)


# ---------------------------------------------------------------------------------------------- HTTP


router = APIRouter()


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    if request.method != "POST":
        return params
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    if not body.strip():
        return params
    if "application/json" in content_type or body.lstrip()[:1] in (b"{", b"["):
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise BadRequest(f"Bad request - JSON Error: {exc}") from exc
        if not isinstance(data, dict):
            raise BadRequest("Bad request - JSON Error: Request data JSON decoded to a non-dictionary")
        params.update(data)
    elif "application/x-www-form-urlencoded" in content_type or not content_type:
        params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    else:
        raise BadRequest(f"Bad request - unsupported request body: {content_type}")
    return params


def _help(request: Request, name: str) -> str:
    return f"{request.base_url}api/3/action/help_show?name={name}"


@router.api_route("/api/3/action/{name}", methods=["GET", "POST"])
@router.api_route("/api/action/{name}", methods=["GET", "POST"])
async def call_action(name: str, request: Request) -> JSONResponse:
    service: PortalService = request.app.state.service
    try:
        function = ACTIONS.get(name)
        if function is None:
            raise BadRequest(f"Bad request - Action name not known: {name}")
        call = Call(service=service, params=await _params(request), base_url=str(request.base_url),
                    path=request.url.path)
        # DuckDB and file reads block: run the action in the thread pool, not on the event loop.
        result = await run_in_threadpool(function, call)
    except ActionError as exc:
        return JSONResponse({"help": _help(request, name), "success": False, "error": exc.body()},
                            status_code=exc.status)
    return JSONResponse({"help": _help(request, name), "success": True, "result": result})


@router.get("/api/3")
@router.get("/api")
async def api_version() -> dict[str, int]:
    return {"version": 3}
