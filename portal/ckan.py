"""A CKAN-compatible Action API (``/api/3/action/<name>`` and ``/api/action/<name>``), read-only.

Parameters come from the query string (GET) or a JSON / form body (POST, as ckanapi sends them); answers are
``{"help", "success", "result"}`` and errors ``{"help", "success": false, "error": {"__type", "message"}}``
with CKAN's HTTP codes (400 bad request, 404 not found, 409 validation / search query errors).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from portal import catalogue, datastore
from portal.catalogue import DatasetEntry
from portal.errors import ActionError, BadRequest, NotFound, SearchQueryError, ValidationError
from portal.search_index import STRING_FIELDS, SearchError, SearchRequest, SearchResult
from portal.service import PortalService, ckan_timestamp, dataset_uuid, stable_uuid
from portal.solr_query import QuerySyntaxError

log = logging.getLogger(__name__)

MAX_PACKAGE_ROWS = 1000
MAX_QUERY_CHARS = 4096        # q, fq and fq_list each; longer is a 400, never a slow scan
MAX_FQ_LIST = 32
MAX_FACETS = 20
ACTION_THREADS = 24
MAX_NATURAL = 2**53
MAX_FACET_LIMIT = 10_000
MAX_SORT_CHARS = 500
SEARCH_BUDGET_S = 1.5         # a search still running after this is stopped (a CKAN 400 error)
SOLR_SPECIAL = set('+-&|!(){}[]^"~*?:\\/')
FACET_FIELDS = STRING_FIELDS - {"id", "url", "title_string"}


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
        if value > MAX_NATURAL:
            raise ValidationError({key: [f"Must be at most {MAX_NATURAL}"]})
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
def current_package_list_with_resources(call: Call) -> list[dict[str, Any]]:
    """Every dataset with its resources, newest first (``limit``, ``offset``)."""
    result = _search(call, SearchRequest(sort="metadata_modified desc", start=call.natural("offset", 0),
                                         rows=call.natural("limit", MAX_PACKAGE_ROWS, MAX_PACKAGE_ROWS)))
    return _packages(call, result.names)


@action
def package_show(call: Call) -> dict[str, Any]:
    """A dataset with its resources (the files of its latest release) by ``id`` (UUID or name)."""
    entry = _entry(call, call.text("id") or call.text("name_or_id"))
    return call.service.package(entry, call.base_url)


@action
def package_search(call: Call) -> dict[str, Any]:
    """Datasets matching ``q`` and ``fq`` / ``fq_list`` (Solr syntax: AND, OR, NOT, parentheses, phrases,
    ``eva*``, ``field:value``, ``metadata_modified:[2026-01-01T00:00:00Z TO NOW]``), sorted by ``sort``
    (``id asc``, ``metadata_modified desc``, ``score desc``, …), paged by ``rows`` (≤ 1000) and ``start``,
    with ``facet.field`` / ``facet.limit`` (-1: all) / ``facet.mincount``."""
    facet_names = _facet_fields(call.params.get("facet.field"))
    request = SearchRequest(
        q=_query_text(call, "q"), fq=(_query_text(call, "fq"), *_fq_list(call)), sort=_sort(call),
        start=call.natural("start", 0), rows=call.natural("rows", 10, MAX_PACKAGE_ROWS),
        facet_fields=tuple(facet_names), facet_limit=_facet_limit(call),
        facet_mincount=call.natural("facet.mincount", 1))
    result = _search(call, request)
    titles = _facet_titles(call.service) if facet_names else {}
    return {
        "count": result.count, "sort": result.sort, "results": _packages(call, result.names),
        "facets": {name: dict(items) for name, items in result.facets.items()},
        "search_facets": {name: {"title": name, "items": [
            {"name": value, "display_name": titles.get((name, value), value), "count": n}
            for value, n in items]} for name, items in result.facets.items()},
    }


@action
def package_autocomplete(call: Call) -> list[dict[str, str]]:
    """Datasets whose name or title contains ``q`` (``limit``, default 10)."""
    text = call.text("q")
    limit = call.natural("limit", 10, 100)
    if not text.strip():
        return []
    words = " ".join(f'"{w}"' for w in text.replace('"', " ").split()[:8])
    result = _search(call, SearchRequest(q=f"title:({words}) OR name:{_escape(text.split()[0])}*",
                                         sort="title_string asc", rows=limit))
    answer = []
    for entry in (call.service.entry(n) for n in result.names):
        if entry is None:
            continue
        title = entry.title("ja")
        field = "name" if catalogue.normalise_text(text) in entry.id else "title"
        answer.append({"name": entry.id, "title": title, "match_field": field,
                       "match_displayed": entry.id if field == "name" else f"{title} ({entry.id})"})
    return answer


@action
def format_autocomplete(call: Call) -> list[str]:
    """Resource formats containing ``q`` (``limit``, default 5)."""
    wanted = call.text("q").strip().lower()
    limit = call.natural("limit", 5, 100)
    formats = call.service.field_counts("res_format")
    return [f for f in sorted(formats, key=lambda f: (-formats[f], f)) if wanted in f.lower()][:limit]


@action
def resource_show(call: Call) -> dict[str, Any]:
    """One resource (a file of a release) by ``id``."""
    release, file = _resource(call, call.text("id"))
    return call.service.resource(release, file, call.base_url, position=release.files.index(file))


@action
def package_activity_list(call: Call) -> list[dict[str, Any]]:
    """The dataset's releases as CKAN activities, newest first (``id``, ``limit``, ``offset``)."""
    entry = _entry(call, call.text("id"))
    service = call.service
    history = service.store.releases(entry.id)
    offset, limit = call.natural("offset", 0), call.natural("limit", 31, 100)
    package_id = dataset_uuid(entry.id)
    activities = []
    for release in history[offset:offset + limit]:
        activities.append({
            "id": stable_uuid("activity", f"{entry.id}/{release.number}"),
            "timestamp": ckan_timestamp(release.published_at), "user_id": service.office_uuid(),
            "object_id": package_id, "activity_type": "new package" if release.number == history[-1].number
            else "changed package",
            "data": {"package": {"id": package_id, "name": entry.id, "title": release.title_ja,
                                 "version": str(release.number), "rows": release.rows}}})
    return activities


# ---------------------------------------------------------------------------------------------- groups


@action
def organization_list(call: Call) -> list[Any]:
    """The shared data office (owner of every dataset) and one organization per member city."""
    return _group_list(call, call.service.organizations())


@action
def organization_show(call: Call) -> dict[str, Any]:
    """An organization by ``id`` or name; ``include_datasets`` adds up to 1000 of its datasets."""
    return _group_show(call, call.service.organizations(), "organization", "Organization")


@action
def group_list(call: Call) -> list[Any]:
    """The themes (kinds of dataset) as groups."""
    return _group_list(call, call.service.groups())


@action
def group_show(call: Call) -> dict[str, Any]:
    """A group (theme) by ``id`` or name; ``include_datasets`` adds up to 1000 of its datasets."""
    return _group_show(call, call.service.groups(), "groups", "Group")


@action
def group_package_show(call: Call) -> list[dict[str, Any]]:
    """The datasets of a group (``id``), newest first, ``limit`` (default 1000)."""
    found = _find_group(call, call.service.groups(), "Group")
    result = _search(call, SearchRequest(fq=(f"groups:{found['name']}",), sort="metadata_modified desc",
                                         rows=call.natural("limit", MAX_PACKAGE_ROWS, MAX_PACKAGE_ROWS)))
    return _packages(call, result.names)


@action
def tag_list(call: Call) -> list[Any]:
    """Every tag in use (``query`` filters; ``all_fields`` gives dicts)."""
    counts = call.service.field_counts("tags")
    wanted = catalogue.normalise_text(call.text("query"))
    names = sorted(t for t in counts if wanted in catalogue.normalise_text(t))
    if _flag(call, "all_fields"):
        return [_tag(t) for t in names]
    return names


@action
def tag_show(call: Call) -> dict[str, Any]:
    """A tag by ``id`` (name or id); ``include_datasets`` adds its datasets."""
    wanted = call.text("id")
    counts = call.service.field_counts("tags")
    name = next((t for t in counts if wanted in (t, stable_uuid("tag", t))), None)
    if name is None:
        raise NotFound("Tag was not found.")
    tag = _tag(name)
    if _flag(call, "include_datasets"):
        result = _search(call, SearchRequest(fq=(f'tags:"{_escape(name)}"',), rows=MAX_PACKAGE_ROWS,
                                             sort="name asc"))
        tag["packages"] = _packages(call, result.names)
    return tag


@action
def license_list(call: Call) -> list[dict[str, str]]:
    licences = {e.release.licence["id"]: e.release.licence for e in call.service.entries()}
    return [{"id": lid, "title": lic["title"], "url": lic["url"]} for lid, lic in sorted(licences.items())]


@action
def site_read(call: Call) -> bool:
    """Whether the site may be read: always."""
    return True


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


def _entry(call: Call, name_or_id: str) -> DatasetEntry:
    if not name_or_id:
        raise ValidationError({"id": ["Missing value"]})
    dataset_id = call.service.dataset_name(name_or_id)
    entry = call.service.entry(dataset_id) if dataset_id else None
    if entry is None:
        raise NotFound("Dataset not found")
    return entry


def _resource(call: Call, resource_id: str) -> tuple[Any, Any]:
    if not resource_id:
        raise ValidationError({"id": ["Missing value"]})
    found = call.service.find_resource(resource_id)
    if found is None:
        raise NotFound(f"Resource was not found: {resource_id}")
    return found


def _search(call: Call, request: SearchRequest) -> SearchResult:
    try:
        return call.service.search_index().search(request, budget_s=SEARCH_BUDGET_S)
    except QuerySyntaxError as exc:
        raise SearchQueryError(f"Search Query is invalid: {exc}") from None
    except SearchError as exc:
        raise SearchQueryError(str(exc)) from None


def _packages(call: Call, names: list[str]) -> list[dict[str, Any]]:
    entries = (call.service.indexed_entry(n) for n in names)
    return [call.service.package(e, call.base_url) for e in entries if e is not None]


def _query_text(call: Call, key: str) -> str:
    value = call.params.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError({key: ["Must be a string"]})
    if len(value) > MAX_QUERY_CHARS:
        raise SearchQueryError(f"Search Query is invalid: {key} is {len(value):,} characters long; "
                               f"at most {MAX_QUERY_CHARS:,} are accepted")
    _no_control_characters(key, value)
    return value


def _no_control_characters(key: str, value: str) -> None:
    bad = next((i for i, c in enumerate(value) if (c < " " and c not in "\t\n\r") or c == "\x7f"), None)
    if bad is not None:
        raise SearchQueryError(f"Search Query is invalid: {key} holds the control character "
                               f"U+{ord(value[bad]):04X} at character {bad + 1}")


def _sort(call: Call) -> str:
    sort = call.params.get("sort") or ""
    if not isinstance(sort, str):
        raise ValidationError({"sort": ["Must be a string"]})
    if len(sort) > MAX_SORT_CHARS:
        raise SearchQueryError(f"Can not sort on {len(sort):,} characters of fields; at most "
                               f"{MAX_SORT_CHARS} are accepted")
    return sort


def _fq_list(call: Call) -> list[str]:
    raw = call.params.get("fq_list")
    if raw in (None, "", []):
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.lstrip().startswith("[") else [raw]
        except ValueError:
            raise ValidationError({"fq_list": ["Could not parse as valid JSON"]}) from None
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw) or len(raw) > MAX_FQ_LIST:
        raise ValidationError({"fq_list": [f"Must be a list of at most {MAX_FQ_LIST} strings"]})
    if sum(len(v) for v in raw) > MAX_QUERY_CHARS:
        raise SearchQueryError(f"Search Query is invalid: fq_list is longer than {MAX_QUERY_CHARS:,} characters")
    for value in raw:
        _no_control_characters("fq_list", value)
    return list(raw)


def _facet_fields(raw: Any) -> list[str]:
    if raw in (None, ""):
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.lstrip().startswith("[") else [raw]
        except ValueError:
            raise ValidationError({"facet.field": ["Could not parse as valid JSON"]}) from None
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw) or len(raw) > MAX_FACETS:
        raise ValidationError({"facet.field": [f"Must be a list of at most {MAX_FACETS} field names"]})
    unknown = [n for n in raw if n not in FACET_FIELDS and not n.startswith("extras_")]
    if unknown:
        raise SearchQueryError(f"Can not facet on {', '.join(repr(n) for n in unknown[:5])}: use one of "
                               f"{', '.join(sorted(FACET_FIELDS))}")
    return list(dict.fromkeys(raw))


def _facet_limit(call: Call) -> int:
    raw = call.params.get("facet.limit")
    if raw in (None, ""):
        return 50
    try:
        value = int(str(raw))
    except ValueError:
        raise ValidationError({"facet.limit": ["Invalid integer"]}) from None
    return -1 if value < 0 else min(value, MAX_FACET_LIMIT)


def _facet_titles(service: PortalService) -> dict[tuple[str, str], str]:
    titles = {("groups", g["name"]): g["title"] for g in service.groups()}
    titles.update({("organization", o["name"]): o["title"] for o in service.organizations()})
    return titles


def _flag(call: Call, key: str) -> bool:
    return str(call.params.get(key, "")).lower() in ("true", "1", "yes", "on")


def _escape(text: str) -> str:
    return "".join("\\" + c if c in SOLR_SPECIAL or c.isspace() else c for c in text)


def _tag(name: str) -> dict[str, Any]:
    return {"id": stable_uuid("tag", name), "name": name, "display_name": name, "vocabulary_id": None}


def _group_list(call: Call, groups: list[dict[str, Any]]) -> list[Any]:
    sort = call.text("sort") or "name asc"
    key, _, direction = sort.partition(" ")
    if key not in ("name", "title", "package_count"):
        key = "name"
    ordered = sorted(groups, key=lambda g: g[key], reverse=direction.strip().lower() == "desc")
    offset = call.natural("offset", 0)
    limit = call.natural("limit", 1000, 1000)
    page = ordered[offset:offset + limit]
    if _flag(call, "all_fields"):
        return page
    return [g["name"] for g in page]


def _find_group(call: Call, groups: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    wanted = call.text("id")
    if not wanted:
        raise ValidationError({"id": ["Missing value"]})
    found = next((g for g in groups if wanted in (g["id"], g["name"])), None)
    if found is None:
        raise NotFound(f"{kind} not found")
    return found


def _group_show(call: Call, groups: list[dict[str, Any]], field: str, kind: str) -> dict[str, Any]:
    found = dict(_find_group(call, groups, kind))
    found.update({"users": [], "extras": [], "tags": [], "groups": [], "num_followers": 0})
    if _flag(call, "include_datasets"):
        result = _search(call, SearchRequest(fq=(f"{field}:{found['name']}",), sort="name asc",
                                             rows=MAX_PACKAGE_ROWS))
        found["packages"] = _packages(call, result.names)
    return found


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
@router.api_route("/api/2/action/{name}", methods=["GET", "POST"])
async def call_action(name: str, request: Request) -> Response:
    service: PortalService = request.app.state.service
    help_url = _help(request, name)
    try:
        function = ACTIONS.get(name)
        if function is None:
            raise BadRequest(f"Bad request - Action name not known: {name}")
        call = Call(service=service, params=await _params(request), base_url=str(request.base_url),
                    path=request.url.path)
        # DuckDB, SQLite, file reads and the JSON encoding of large answers block: all of it runs in worker
        # threads, never on the event loop, so a slow request cannot hold up the others.
        body = await anyio.to_thread.run_sync(_answer, function, call, help_url, limiter=_limiter())
    except ActionError as exc:
        return JSONResponse({"help": _help(request, name), "success": False, "error": exc.body()},
                            status_code=exc.status)
    except RecursionError:
        error = SearchQueryError("The request is nested too deeply")
        return JSONResponse({"help": _help(request, name), "success": False, "error": error.body()},
                            status_code=error.status)
    return Response(body, media_type="application/json")


def _answer(function: Action, call: Call, help_url: str) -> bytes:
    result = function(call)
    return json.dumps({"help": help_url, "success": True, "result": result}, ensure_ascii=False,
                      allow_nan=False, separators=(",", ":")).encode("utf-8")


_LIMITER: list[anyio.CapacityLimiter] = []


def _limiter() -> anyio.CapacityLimiter:
    """At most ``ACTION_THREADS`` actions at once (created inside the running event loop)."""
    if not _LIMITER:
        _LIMITER.append(anyio.CapacityLimiter(ACTION_THREADS))
    return _LIMITER[0]


@router.get("/api/3")
@router.get("/api")
async def api_version() -> dict[str, int]:
    return {"version": 3}
