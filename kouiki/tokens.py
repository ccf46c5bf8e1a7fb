"""Per-city API tokens for the upload service: issued and revoked by the data office, stored hashed.

A token reads ``kouiki_<token_id>_<secret>``. The id is public (it names the token in lists, logs and the
revoke command); the secret is 32 random bytes shown once when the token is issued. The catalog keeps only
the SHA-256 of the secret: a random 256-bit secret needs no slow password hash, and a stolen catalog gives
nobody a working token. Verification compares digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Column, DateTime, RowMapping, String, Table, Text, insert, select, update

from kouiki import catalog

TOKEN_PREFIX = "kouiki"
_TOKEN_FORMAT = re.compile(r"^kouiki_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")

api_tokens = Table(
    "api_tokens",
    catalog.metadata,
    Column("token_id", String(12), primary_key=True),
    Column("city_code", String(6), nullable=False, index=True),
    Column("secret_sha256", String(64), nullable=False),
    Column("label", Text, nullable=False, default=""),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)


@dataclass(frozen=True)
class TokenInfo:
    """A token as the catalog knows it (never the secret)."""

    token_id: str
    city_code: str
    label: str
    issued_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class IssuedToken:
    """A newly issued token: ``token`` is the only copy of the secret, to hand to the city once."""

    info: TokenInfo
    token: str


@cache
def _ensure_table(url: str) -> None:
    """Create the token table even when the catalog's engine was made before this module was imported."""
    api_tokens.create(catalog.engine_for(url), checkfirst=True)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def issue_token(url: str, city_code: str, label: str = "", actor: str = "office") -> IssuedToken:
    """Issue a new token for ``city_code``; the returned ``token`` is not stored anywhere."""
    _ensure_table(url)
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    issued_at = catalog.now()
    with catalog.begin(url) as conn:
        conn.execute(insert(api_tokens).values(token_id=token_id, city_code=city_code,
                                               secret_sha256=_digest(secret), label=label, issued_at=issued_at))
        catalog.audit(conn, actor, "token.issued", token_id, {"city": city_code, "label": label})
    info = TokenInfo(token_id, city_code, label, issued_at, None)
    return IssuedToken(info=info, token=f"{TOKEN_PREFIX}_{token_id}_{secret}")


def verify_token(url: str, token: str) -> TokenInfo | None:
    """The active token ``token`` is, or None (malformed, unknown, wrong secret or revoked)."""
    match = _TOKEN_FORMAT.match(token.strip())
    if match is None:
        return None
    token_id, secret = match.groups()
    _ensure_table(url)
    with catalog.begin(url) as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.token_id == token_id)).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(row["secret_sha256"], _digest(secret)):
        return None
    return _to_info(row)


def revoke_token(url: str, token_id: str, actor: str = "office") -> TokenInfo | None:
    """Revoke a token by its id; returns it (revoked), or None when there is no such token."""
    _ensure_table(url)
    with catalog.begin(url) as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.token_id == token_id)).mappings().first()
        if row is None:
            return None
        if row["revoked_at"] is None:
            conn.execute(update(api_tokens).where(api_tokens.c.token_id == token_id)
                         .values(revoked_at=catalog.now()))
            catalog.audit(conn, actor, "token.revoked", token_id, {"city": row["city_code"]})
        row = conn.execute(select(api_tokens).where(api_tokens.c.token_id == token_id)).mappings().one()
    return _to_info(row)


def list_tokens(url: str, city_code: str | None = None) -> list[TokenInfo]:
    """Every token (active and revoked), oldest first."""
    _ensure_table(url)
    query = select(api_tokens).order_by(api_tokens.c.issued_at, api_tokens.c.token_id)
    if city_code:
        query = query.where(api_tokens.c.city_code == city_code)
    with catalog.begin(url) as conn:
        return [_to_info(r) for r in conn.execute(query).mappings()]


def _to_info(row: RowMapping) -> TokenInfo:
    return TokenInfo(token_id=row["token_id"], city_code=row["city_code"], label=row["label"] or "",
                     issued_at=row["issued_at"], revoked_at=row["revoked_at"])
