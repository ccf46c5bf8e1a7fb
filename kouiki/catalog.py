"""kouiki's own catalog: uploads, releases and an audit log, through SQLAlchemy.

SQLite under the kouiki home by default; any SQLAlchemy URL (e.g. PostgreSQL) via ``KOUIKI_CATALOG_URL``.
The catalog holds metadata only; bytes live in the landing zone and the lake. A plain ``postgresql://`` URL is
served by psycopg2 (the driver installed with dagster-postgres): SQLAlchemy 2.1 would otherwise look for psycopg 3.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    make_url,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError


class UploadStatus(StrEnum):
    """Where an upload is in the pipeline, as the catalog stores it (the values are the stored and shown strings;
    a StrEnum equals its string, so rows written before the enum read the same)."""

    LANDED = "landed"            # stored; not processed yet (or put back for a rerun)
    ACCEPTED = "accepted"        # validated; every row published
    QUARANTINED = "quarantined"  # validated; rows with errors withheld, the others published
    REJECTED = "rejected"        # validated or refused by the service: nothing of it is published
    UNREADABLE = "unreadable"    # the file could not be read (encoding, layout, no dataset recognised)

    @classmethod
    def of_decision(cls, decision: str) -> UploadStatus:
        """The status a validation decision (accept / quarantine / reject) leaves; anything else rejects."""
        return {"accept": cls.ACCEPTED, "quarantine": cls.QUARANTINED}.get(decision, cls.REJECTED)


metadata = MetaData()

# JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
Document = JSON().with_variant(JSONB(), "postgresql")

uploads = Table(
    "uploads",
    metadata,
    Column("upload_id", String(64), primary_key=True),
    Column("city_code", String(6), nullable=False, index=True),
    Column("sha256", String(64), nullable=False),
    Column("original_name", Text, nullable=False),
    Column("size", BigInteger, nullable=False),  # PostgreSQL's integer stops at 2 GiB
    Column("stored_path", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("source", String(32), nullable=False, default="inbox"),  # inbox, api, cli
    Column("dataset_id", String(64), index=True),
    Column("variant", String(32)),
    Column("status", String(32), nullable=False, default=UploadStatus.LANDED.value),
    Column("detail", Document),  # detection, counts, decision, report paths
    Column("updated_at", DateTime(timezone=True)),
)

releases = Table(
    "releases",
    metadata,
    Column("dataset_id", String(64), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("path", Text, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", Text),
    Column("detail", Document),
)


def now() -> datetime:
    return datetime.now(UTC)


def sqlalchemy_url(url: str) -> str:
    """``url`` with a driver SQLAlchemy can load here: ``postgresql://`` and ``postgres://`` become psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


_engines_made: list[Engine] = []


@cache
def engine_for(url: str) -> Engine:
    """One engine per catalog URL; tables are created on first use."""
    url = sqlalchemy_url(url)
    # A server database may restart or drop idle connections between pipeline steps: test before use.
    options: dict[str, Any] = {} if make_url(url).get_backend_name() == "sqlite" else {"pool_pre_ping": True}
    engine = create_engine(url, **options)
    if make_url(url).get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_wal)
    _create_tables(engine)
    _engines_made.append(engine)
    return engine


TABLE_RACE = ("already exists", "duplicate key value violates unique constraint")


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    """Create the missing tables. Two processes opening a new catalog at once (two Celery workers, the daemon and
    the upload service) both see a table missing and one CREATE fails: the loser looks again."""
    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            if attempt == attempts - 1 or not any(words in str(exc) for words in TABLE_RACE):
                raise


def forget_engines() -> None:
    """Close every engine (their pooled connections) so the next use reopens the database files: after a
    catalog file was moved aside or replaced."""
    for engine in _engines_made:
        engine.dispose()
    _engines_made.clear()
    engine_for.cache_clear()


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """WAL journal with synchronous=NORMAL: a commit no longer waits for fsync (thousands of uploads per run),
    and a crash of the process still loses nothing committed; readers never block the writer."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def begin(url: str) -> Iterator[Connection]:
    with engine_for(url).begin() as conn:
        yield conn


@dataclass(frozen=True)
class UploadRow:
    upload_id: str
    city_code: str
    sha256: str
    original_name: str
    size: int
    stored_path: str
    received_at: datetime
    source: str
    dataset_id: str | None
    variant: str | None
    status: UploadStatus
    detail: dict[str, Any] | None


def get_upload(url: str, upload_id: str) -> UploadRow | None:
    with begin(url) as conn:
        row = conn.execute(select(uploads).where(uploads.c.upload_id == upload_id)).mappings().first()
    return _to_upload(row) if row else None


def list_uploads(url: str, city_code: str | None = None, dataset_id: str | None = None,
                 city_codes: Iterable[str] | None = None) -> list[UploadRow]:
    """Uploads, oldest first; of one city, of several (``city_codes``), or all."""
    query = select(uploads).order_by(uploads.c.received_at, uploads.c.upload_id)
    if city_code:
        query = query.where(uploads.c.city_code == city_code)
    if city_codes is not None:
        query = query.where(uploads.c.city_code.in_(list(city_codes)))
    if dataset_id:
        query = query.where(uploads.c.dataset_id == dataset_id)
    with begin(url) as conn:
        return [_to_upload(r) for r in conn.execute(query).mappings()]


def add_upload(url: str, row: dict[str, Any]) -> bool:
    """Insert an upload record; False if that upload id already exists (same bytes, same city)."""
    try:
        with begin(url) as conn:
            exists = conn.execute(
                select(uploads.c.upload_id).where(uploads.c.upload_id == row["upload_id"])
            ).first()
            if exists:
                return False
            status = UploadStatus(row.get("status", UploadStatus.LANDED)).value
            conn.execute(insert(uploads).values(**row | {"status": status}, updated_at=row.get("received_at", now())))
            audit(conn, "system", "upload.landed", row["upload_id"], {"city": row["city_code"]})
    except IntegrityError:
        # Another process (a parallel run on a shared PostgreSQL catalog) landed the same bytes first.
        if get_upload(url, row["upload_id"]) is None:
            raise
        return False
    return True


def set_upload_status(url: str, upload_id: str, status: str, **fields: Any) -> None:
    """Store ``status`` (an :class:`UploadStatus` or its value: anything else raises ValueError) and merge
    ``detail`` into the upload's detail."""
    stored = UploadStatus(status).value
    with begin(url) as conn:
        current = conn.execute(select(uploads.c.detail).where(uploads.c.upload_id == upload_id)).scalar()
        detail = dict(current or {})
        detail.update(fields.pop("detail", {}) or {})
        conn.execute(
            update(uploads)
            .where(uploads.c.upload_id == upload_id)
            .values(status=stored, detail=detail, updated_at=now(), **fields)
        )


def audit(conn: Connection, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None) -> None:
    conn.execute(insert(audit_log).values(at=now(), actor=actor, action=action, subject=subject, detail=detail))


def record_release(url: str, dataset_id: str, number: int, content_hash: str, rows: int, path: str,
                   published_at: datetime | None = None) -> bool:
    """Insert the release's row; False when it is there already (recovery and a publication may both try)."""
    try:
        with begin(url) as conn:
            exists = conn.execute(select(releases.c.number).where(
                releases.c.dataset_id == dataset_id, releases.c.number == number)).first()
            if exists:
                return False
            conn.execute(
                insert(releases).values(
                    dataset_id=dataset_id, number=number, published_at=published_at or now(),
                    content_hash=content_hash, rows=rows, path=path,
                )
            )
            audit(conn, "system", "release.published", f"{dataset_id}/{number}", {"rows": rows})
    except IntegrityError:
        return False
    return True


def release_numbers(url: str, dataset_id: str) -> set[int]:
    with begin(url) as conn:
        return {int(r[0]) for r in conn.execute(select(releases.c.number).where(releases.c.dataset_id == dataset_id))}


def _to_upload(row: Any) -> UploadRow:
    fields = {k: row[k] for k in UploadRow.__dataclass_fields__}
    return UploadRow(**fields | {"status": UploadStatus(fields["status"])})
