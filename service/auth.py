"""Who is calling: a city's token, from an ``Authorization: Bearer`` header (scripts) or from the upload page's
session cookie (HttpOnly, SameSite=Strict, set by logging in).

Cookie-authenticated requests that change something must also carry ``X-CSRF-Token``: a value derived from
the token that only the upload page can read (it is rendered into the page), and their Origin, when sent,
must be this server. Bearer requests carry no ambient credentials, so they need neither.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from kouiki.members import Member, load_members
from kouiki.tokens import TokenInfo, verify_token
from service import errors

SESSION_COOKIE = "kouiki_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Caller:
    """An authenticated city."""

    token: TokenInfo
    member: Member
    via_cookie: bool

    @property
    def city_code(self) -> str:
        return self.member.code


def csrf_token_for(token: str) -> str:
    """The page's CSRF value for a session token (stateless: derived, never stored)."""
    return hmac.new(token.encode("utf-8"), b"kouiki-upload-page-csrf", hashlib.sha256).hexdigest()[:40]


class MemberDirectory:
    """The member registry, re-read when its file changes (a city added with ``kouiki members add``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._members: dict[str, Member] = {}

    def get(self, code: str) -> Member | None:
        return self._current().get(code)

    def _current(self) -> dict[str, Member]:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._members = {m.code: m for m in load_members(self.path)}
                self._stamp = stamp
            return self._members


def presented_token(request: Request) -> tuple[str | None, bool]:
    """(token, came from the cookie)."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise errors.invalid_token()
        return value.strip(), False
    return request.cookies.get(SESSION_COOKIE), True


def authenticate(request: Request, catalog_url: str, members: MemberDirectory) -> Caller:
    """The calling city, or a 401/403 ApiError."""
    token, via_cookie = presented_token(request)
    if not token:
        raise errors.auth_required()
    caller = caller_for_token(token, catalog_url, members, via_cookie=via_cookie)
    if via_cookie and request.method not in SAFE_METHODS:
        _check_csrf(request, token)
    return caller


def caller_for_token(token: str, catalog_url: str, members: MemberDirectory, *, via_cookie: bool = False) -> Caller:
    """The city a token belongs to, or a 401 (unknown, revoked) / 403 (city no longer a member)."""
    info = verify_token(catalog_url, token)
    if info is None:
        raise errors.invalid_token()
    member = members.get(info.city_code)
    if member is None:
        raise errors.not_a_member(info.city_code)
    return Caller(token=info, member=member, via_cookie=via_cookie)


def _check_csrf(request: Request, token: str) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), csrf_token_for(token).encode()):
        raise errors.csrf_failed()
    check_origin(request)


def check_origin(request: Request) -> None:
    """A browser's Origin, when present, must be this server (host and port)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if origin.split("://", 1)[-1].rstrip("/") != host:
        raise errors.csrf_failed()


def require_city(caller: Caller, city_code: str | None) -> None:
    """A city may act only for itself: a named city other than the caller's is a 403."""
    if city_code and city_code.strip() != caller.city_code:
        raise errors.forbidden_city(caller.city_code)
