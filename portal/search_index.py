"""The dataset search index behind ``package_search``: SQLite FTS5 in memory, built from the releases.

Why SQLite FTS5: it ships with Python (no new package, no server), runs a query in C without the GIL, can be
interrupted (a progress handler enforces each request's time budget) and copies cheaply: the index is built
once per change of the releases, serialised, and every worker thread deserialises its own private copy, so
requests never wait on each other's locks. DuckDB's FTS extension is not in the offline wheel (see
docs/portal.md) and tantivy would be a new package.

Japanese has no spaces between words, so text is indexed the way Lucene's CJK analyser does it: after NFKC,
case folding and katakana→hiragana, every run of kana/kanji becomes overlapping character bigrams
(避難場所 → 避難 難場 場所) and every run of Latin letters or digits one word. A query word is searched as the
phrase of its bigrams, so any substring of two or more characters matches; one character matches as a
prefix. FTS5 receives only quoted tokens made here, never the user's text, so its own syntax cannot be
injected.

Tables: ``docs`` (one row per dataset: sortable values), ``terms`` (exact string fields, one row per value:
tags, groups, organization, res_format, …) and ``fts`` (the text columns).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from portal import solr_query
from portal.catalogue import normalise_text
from portal.solr_query import And, Every, Node, Not, Or, QuerySyntaxError, Range, Term

TEXT_COLUMNS = ("name", "title", "notes", "tags", "groups", "organization", "res_name", "res_description",
                "res_format", "author", "maintainer", "extras", "cities", "text")
STRING_FIELDS = {"id", "name", "tags", "groups", "organization", "owner_org", "res_format", "license_id",
                 "license", "type", "dataset_type", "state", "capacity", "city", "kind", "version", "url",
                 "res_url", "res_type", "site_id", "entity_type", "title_string"}
TEXT_ONLY_FIELDS = {"title", "notes", "text", "res_name", "res_description", "author", "maintainer", "extras",
                    "cities"}
DATE_FIELDS = {"metadata_modified", "metadata_created"}
NUMBER_FIELDS = {"num_resources", "num_tags"}
SORT_FIELDS = {"id": "d.id", "name": "d.name", "title_string": "d.title_string", "title": "d.title_string",
               "metadata_modified": "d.metadata_modified", "metadata_created": "d.metadata_created",
               "num_resources": "d.num_resources", "num_tags": "d.num_tags", "license_id": "d.license_id",
               "version": "d.version", "score": "m.rank"}
FIELD_ALIASES = {"kind": "groups", "license": "license_id", "dataset_type": "type"}
DEFAULT_SORT = "score desc, metadata_modified desc"
_DATE_UNITS = {"YEAR": "years", "YEARS": "years", "MONTH": "months", "MONTHS": "months", "DAY": "days",
               "DAYS": "days", "DATE": "days", "HOUR": "hours", "HOURS": "hours", "MINUTE": "minutes",
               "MINUTES": "minutes", "SECOND": "seconds", "SECONDS": "seconds", "MILLI": "ms",
               "MILLIS": "ms", "MILLISECOND": "ms", "MILLISECONDS": "ms"}


class SearchError(ValueError):
    """The search cannot be answered as asked (bad field, sort, date, or the time budget ran out)."""


class SearchTimeout(SearchError):
    pass


@dataclass
class SearchDocument:
    """What one dataset offers to search: exact values, text, and the values it sorts by."""

    name: str
    id: str
    title: str
    metadata_modified: str
    metadata_created: str
    license_id: str
    version: str
    num_resources: int
    num_tags: int
    strings: dict[str, list[str]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    extras: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchRequest:
    q: str = ""
    fq: tuple[str, ...] = ()
    sort: str = ""
    start: int = 0
    rows: int = 10
    facet_fields: tuple[str, ...] = ()
    facet_limit: int = 50        # -1: every value
    facet_mincount: int = 1


@dataclass(frozen=True)
class SearchResult:
    count: int
    names: list[str]
    facets: dict[str, list[tuple[str, int]]]
    sort: str


# ---------------------------------------------------------------------------------------------- tokens


IDEOGRAPHIC, WORD, SEPARATOR = 0, 1, 2


@functools.lru_cache(maxsize=1 << 16)
def _char_class(char: str) -> int:
    """IDEOGRAPHIC for kana, kanji and other scripts written without spaces (letters outside ASCII with no
    case), WORD for other letters and digits, SEPARATOR for the rest."""
    if not char.isascii() and unicodedata.category(char) in ("Lo", "Lm"):
        return IDEOGRAPHIC
    return WORD if char.isalnum() else SEPARATOR


def _is_ideographic(char: str) -> bool:
    return _char_class(char) == IDEOGRAPHIC


def tokens(text: str) -> list[str]:
    """Index tokens of ``text``: Latin/digit words and bigrams of every ideographic run (see module doc)."""
    out: list[str] = []
    normalised = normalise_text(text)
    start, kind = 0, SEPARATOR
    for position, char in enumerate(normalised + " "):
        current = _char_class(char)
        if current == kind:
            continue
        _emit(normalised[start:position], kind, out)
        start, kind = position, current
    return out


def _emit(run: str, kind: int, out: list[str]) -> None:
    if kind == WORD:
        out.append(run)
    elif kind == IDEOGRAPHIC:
        if len(run) == 1:
            out.append(run)
        out.extend(run[i:i + 2] for i in range(len(run) - 1))


def _fts_quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def fts_expression(text: str, prefix: bool) -> str | None:
    """The FTS5 query for a user's word or phrase (None when nothing searchable is left)."""
    found = tokens(text)
    if not found:
        return None
    parts = [_fts_quote(t) for t in found]
    last = found[-1]
    if prefix or (len(found) == 1 and len(last) == 1 and _is_ideographic(last)):
        parts[-1] += "*"
    return " + ".join(parts) if len(parts) > 1 else parts[0]


# ---------------------------------------------------------------------------------------------- dates


def solr_date(text: str, now: datetime) -> float:
    """Seconds since the epoch of a Solr date: ``2016-01-01T00:00:00Z`` (offset or none = UTC, date only
    too) or date math ``NOW``, ``NOW-1DAY``, ``NOW/DAY``, ``2016-01-01T00:00:00Z+6MONTHS``."""
    base, rest = _date_base(text, now)
    moment = base
    pos = 0
    while pos < len(rest):
        op = rest[pos]
        if op not in "+-/":
            raise SearchError(f"Invalid date {text!r}: unexpected {op!r}")
        pos += 1
        digits_start = pos
        while pos < len(rest) and rest[pos].isdigit():
            pos += 1
        amount = int(rest[digits_start:pos]) if pos > digits_start else None
        unit_start = pos
        while pos < len(rest) and rest[pos].isalpha():
            pos += 1
        unit = _DATE_UNITS.get(rest[unit_start:pos].upper())
        if unit is None or (op == "/") != (amount is None) or (amount is not None and amount > 100_000):
            raise SearchError(f"Invalid date math in {text!r}")
        signed = None if amount is None else (amount if op == "+" else -amount)
        moment = _round(moment, unit) if signed is None else _shift(moment, unit, signed)
    return moment.timestamp()


def _date_base(text: str, now: datetime) -> tuple[datetime, str]:
    """The moment a date starts with and the date math after it. Math follows only ``NOW`` or a date ending
    in ``Z`` (otherwise ``+09:00`` would be ambiguous)."""
    if text.startswith("NOW"):
        return now, text[3:]
    end = text.find("Z")
    stamp, rest = (text[:end], text[end + 1:]) if end >= 0 else (text, "")
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        raise SearchError(f"Invalid date {text!r}: use 2016-01-01T00:00:00Z, NOW or NOW-1DAY") from None
    if end >= 0 and parsed.tzinfo is not None:
        raise SearchError(f"Invalid date {text!r}: a UTC offset and Z together")
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)), rest


def _round(moment: datetime, unit: str) -> datetime:
    """``moment`` rounded down to the start of its ``unit`` (NOW/DAY = today 00:00 UTC)."""
    order = ["years", "months", "days", "hours", "minutes", "seconds", "ms"]
    keep = order.index(unit) if unit in order else len(order)
    moment = moment.replace(microsecond=0) if keep < 6 else moment
    moment = moment.replace(second=0) if keep < 5 else moment
    moment = moment.replace(minute=0) if keep < 4 else moment
    moment = moment.replace(hour=0) if keep < 3 else moment
    moment = moment.replace(day=1) if keep < 2 else moment
    return moment.replace(month=1) if keep < 1 else moment


def _shift(moment: datetime, unit: str, amount: int) -> datetime:
    try:
        if unit in ("years", "months"):
            months = moment.month - 1 + amount * (12 if unit == "years" else 1)
            year, month = moment.year + months // 12, months % 12 + 1
            day = min(moment.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
                                   31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
            return moment.replace(year=year, month=month, day=day)
        if unit == "ms":
            return moment + timedelta(milliseconds=amount)
        return moment + timedelta(**{unit: amount})
    except (ValueError, OverflowError):
        raise SearchError("Invalid date math: the date is out of range") from None


def iso_seconds(text: str) -> float:
    """Seconds since the epoch of a stored timestamp (naive = UTC); 0 when unreadable."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


# ---------------------------------------------------------------------------------------------- building


_SCHEMA = """
CREATE TABLE docs (rowid INTEGER PRIMARY KEY, id TEXT, name TEXT, title_string TEXT,
                   metadata_modified REAL, metadata_created REAL, license_id TEXT, version TEXT,
                   num_resources INTEGER, num_tags INTEGER);
CREATE TABLE terms (doc INTEGER, field TEXT, value TEXT, folded TEXT);
CREATE VIRTUAL TABLE fts USING fts5({columns}, tokenize = 'unicode61 remove_diacritics 2');
"""


def build(documents: Iterable[SearchDocument]) -> bytes:
    """The serialised index of ``documents``."""
    con = sqlite3.connect(":memory:")
    con.executescript(_SCHEMA.format(columns=", ".join(TEXT_COLUMNS)))
    for rowid, doc in enumerate(documents, start=1):
        con.execute("INSERT INTO docs VALUES (?,?,?,?,?,?,?,?,?,?)", (
            rowid, doc.id, doc.name, normalise_text(doc.title), iso_seconds(doc.metadata_modified),
            iso_seconds(doc.metadata_created), doc.license_id, doc.version, doc.num_resources, doc.num_tags))
        strings = {**doc.strings, **{f"extras_{k}": [v] for k, v in doc.extras.items()}}
        con.executemany("INSERT INTO terms VALUES (?,?,?,?)",
                        [(rowid, name, value, normalise_text(value))
                         for name, values in strings.items() for value in dict.fromkeys(values) if value])
        texts = dict(doc.texts)
        texts["extras"] = " ".join(doc.extras.values())
        columns = {c: " ".join(tokens(texts.get(c, ""))) for c in TEXT_COLUMNS if c != "text"}
        # "text" is everything (CKAN's catch-all field): the other columns' tokens, the id and its own text
        columns["text"] = " ".join([*columns.values(), *tokens(f"{texts.get('text', '')} {doc.id}")])
        con.execute(f"INSERT INTO fts (rowid, {', '.join(TEXT_COLUMNS)}) VALUES (?{', ?' * len(TEXT_COLUMNS)})",
                    (rowid, *(columns[c] for c in TEXT_COLUMNS)))
    con.execute("CREATE INDEX terms_by_value ON terms (field, folded, doc)")
    con.execute("CREATE INDEX terms_by_doc ON terms (doc, field)")
    con.commit()
    data = con.serialize()
    con.close()
    return data


# ---------------------------------------------------------------------------------------------- searching


def known_field(name: str) -> bool:
    return (name in STRING_FIELDS or name in TEXT_ONLY_FIELDS or name in DATE_FIELDS or name in NUMBER_FIELDS
            or (name.startswith("extras_") and len(name) > 7))


class _Known(set[str]):
    """The fields a query may name (extras_* included) for the parser's check."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and known_field(name)


KNOWN_FIELDS = _Known()


@dataclass
class _Compiled:
    sql: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    ranking: list[str] = field(default_factory=list)   # FTS expressions of the positive text terms


class SearchIndex:
    """One built index; ``search`` may be called from many threads at once (each has its own copy)."""

    def __init__(self, documents: list[SearchDocument]) -> None:
        self.size = len(documents)
        self._data = build(documents)
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(":memory:", check_same_thread=False)
            con.deserialize(self._data)
            self._local.con = con
        return con

    def search(self, request: SearchRequest, budget_s: float = 1.5,
               now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> SearchResult:
        """Names of the matching datasets in order (one page), their count and the facets.
        Raises QuerySyntaxError or SearchError (SearchTimeout when ``budget_s`` runs out)."""
        tree = self._parse(request)
        compiled = _Compiled()
        _compile(tree, compiled, now(), positive=True)
        order = _order_by(request.sort)
        if "m.rank" not in order:
            compiled.ranking.clear()     # bm25 costs more than the match itself: only when sorting by score
        con = self._connection()
        deadline = time.monotonic() + budget_s
        con.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 2000)
        try:
            return self._run(con, request, compiled, order)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise SearchTimeout(f"The search took longer than {budget_s:.1f} s and was stopped; "
                                    "simplify the query") from None
            raise SearchError(f"Search Query is invalid: {exc}") from None
        finally:
            con.set_progress_handler(None, 0)
            con.execute("DROP TABLE IF EXISTS temp.matched")
            con.execute("DROP TABLE IF EXISTS temp.ranks")

    @staticmethod
    def _parse(request: SearchRequest) -> Node:
        budget = solr_query.MAX_CLAUSES
        parts: list[Node] = []
        for text in (request.q, *request.fq):
            node = solr_query.parse(text, KNOWN_FIELDS, max_clauses=budget)
            budget -= solr_query.leaves(node)
            if not isinstance(node, Every) or node.field:
                parts.append(node)
        if not parts:
            return Every()
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _run(self, con: sqlite3.Connection, request: SearchRequest, compiled: _Compiled,
             order: str) -> SearchResult:
        where = compiled.sql[0] if compiled.sql else "1"
        con.execute("DROP TABLE IF EXISTS temp.matched")
        con.execute("CREATE TEMP TABLE matched (doc INTEGER PRIMARY KEY, rank REAL)")
        if compiled.ranking:
            # one FTS5 pass for the ranks (a join on the FTS subquery would run it once per dataset)
            con.execute("DROP TABLE IF EXISTS temp.ranks")
            con.execute("CREATE TEMP TABLE ranks (doc INTEGER PRIMARY KEY, rank REAL)")
            con.execute("INSERT INTO ranks SELECT rowid, bm25(fts) FROM fts WHERE fts MATCH ?",
                        [" OR ".join(f"({r})" for r in compiled.ranking)])
            con.execute(f"INSERT INTO matched SELECT d.rowid, coalesce(r.rank, 0) FROM docs d "
                        f"LEFT JOIN ranks r ON r.doc = d.rowid WHERE {where}", compiled.params)
        else:
            con.execute(f"INSERT INTO matched SELECT d.rowid, 0 FROM docs d WHERE {where}", compiled.params)
        count = con.execute("SELECT count(*) FROM matched").fetchone()[0]
        names = [row[0] for row in con.execute(
            f"SELECT d.name FROM matched m JOIN docs d ON d.rowid = m.doc ORDER BY {order} LIMIT ? OFFSET ?",
            (request.rows, request.start))]
        facets = {name: self._facet(con, name, request) for name in request.facet_fields}
        return SearchResult(count=count, names=names, facets=facets, sort=request.sort or DEFAULT_SORT)

    @staticmethod
    def _facet(con: sqlite3.Connection, name: str, request: SearchRequest) -> list[tuple[str, int]]:
        field_name = FIELD_ALIASES.get(name, name)
        limit = request.facet_limit if request.facet_limit >= 0 else -1
        rows = con.execute(
            "SELECT t.value, count(DISTINCT t.doc) AS n FROM terms t JOIN matched m ON m.doc = t.doc "
            "WHERE t.field = ? GROUP BY t.value HAVING n >= ? ORDER BY n DESC, t.value LIMIT ?",
            (field_name, request.facet_mincount, limit)).fetchall()
        return [(str(value), int(n)) for value, n in rows]


def _order_by(sort: str) -> str:
    """SQL ORDER BY of a CKAN ``sort`` ("metadata_modified desc, name asc"); the name breaks ties."""
    clauses = []
    for raw in (sort or DEFAULT_SORT).split(","):
        words = raw.split()
        if not words:
            continue
        name = words[0]
        direction = words[1].lower() if len(words) > 1 else "asc"
        column = SORT_FIELDS.get(name)
        if column is None or direction not in ("asc", "desc") or len(words) > 2:
            raise SearchError(f"Can not sort on {raw.strip()!r}: sort on one of "
                              f"{', '.join(sorted(SORT_FIELDS))}, each followed by asc or desc")
        if name == "score":   # bm25: lower is better
            direction = "asc" if direction == "desc" else "desc"
        clauses.append(f"{column} {direction.upper()}")
    clauses.append("d.name ASC")
    return ", ".join(clauses)


def _compile(node: Node, out: _Compiled, now: datetime, positive: bool) -> None:
    """Append the SQL condition of ``node`` (over ``docs d``) to ``out``: one entry per call."""
    if isinstance(node, And | Or):
        parts: list[str] = []
        for child in node.nodes:
            _compile(child, out, now, positive)
            parts.append(out.sql.pop())
        joiner = " AND " if isinstance(node, And) else " OR "
        out.sql.append("(" + joiner.join(parts) + ")")
    elif isinstance(node, Not):
        _compile(node.node, out, now, positive=False)
        out.sql.append(f"NOT {out.sql.pop()}")
    elif isinstance(node, Every):
        _every(node, out)
    elif isinstance(node, Range):
        _range(node, out, now)
    else:
        _term(node, out, now, positive)


def _every(node: Every, out: _Compiled) -> None:
    name = FIELD_ALIASES.get(node.field or "", node.field or "")
    if name in STRING_FIELDS or name.startswith("extras_"):
        out.sql.append("d.rowid IN (SELECT doc FROM terms WHERE field = ?)")
        out.params.append(name)
    else:
        out.sql.append("1")


def _term(node: Term, out: _Compiled, now: datetime, positive: bool) -> None:
    name = FIELD_ALIASES.get(node.field or "", node.field or "")
    if name in DATE_FIELDS or name in NUMBER_FIELDS:
        _range(Range(name, node.text, node.text), out, now)
        return
    if name and (name in STRING_FIELDS or name.startswith("extras_")):
        folded = normalise_text(node.text)
        if node.prefix:
            out.sql.append("d.rowid IN (SELECT doc FROM terms WHERE field = ? AND substr(folded, 1, ?) = ?)")
            out.params += [name, len(folded), folded]
        else:
            out.sql.append("d.rowid IN (SELECT doc FROM terms WHERE field = ? AND folded = ?)")
            out.params += [name, folded]
        return
    expression = fts_expression(node.text, node.prefix)
    if expression is None:
        out.sql.append("1")
        return
    if name and name != "text":
        expression = f"{{{name}}} : ({expression})"
    out.sql.append("d.rowid IN (SELECT rowid FROM fts WHERE fts MATCH ?)")
    out.params.append(expression)
    if positive:
        out.ranking.append(expression)


def _range(node: Range, out: _Compiled, now: datetime) -> None:
    name = FIELD_ALIASES.get(node.field, node.field)
    low_op, high_op = (">=" if node.include_low else ">"), ("<=" if node.include_high else "<")
    if name in DATE_FIELDS or name in NUMBER_FIELDS:
        convert: Callable[[str], float] = (lambda v: solr_date(v, now)) if name in DATE_FIELDS else _number
        conditions, params = [], []
        if node.low is not None:
            conditions.append(f"d.{name} {low_op} ?")
            params.append(convert(node.low))
        if node.high is not None:
            conditions.append(f"d.{name} {high_op} ?")
            params.append(convert(node.high))
        out.sql.append("(" + " AND ".join(conditions) + ")" if conditions else "1")
        out.params += params
        return
    if name not in STRING_FIELDS and not name.startswith("extras_"):
        raise SearchError(f"Can not search a range on the text field {name!r}")
    string_conditions = ["field = ?"]
    string_params: list[Any] = [name]
    if node.low is not None:
        string_conditions.append(f"folded {low_op} ?")
        string_params.append(normalise_text(node.low))
    if node.high is not None:
        string_conditions.append(f"folded {high_op} ?")
        string_params.append(normalise_text(node.high))
    out.sql.append(f"d.rowid IN (SELECT doc FROM terms WHERE {' AND '.join(string_conditions)})")
    out.params += string_params


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SearchError(f"Invalid number {text!r} in a range") from None


__all__ = ["QuerySyntaxError", "SearchDocument", "SearchError", "SearchIndex", "SearchRequest", "SearchResult",
           "SearchTimeout", "tokens"]
