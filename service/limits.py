"""Connection-level limits of the upload service: the request head (request line + headers) is capped in size,
in header count and in time, before any of it reaches the application.

uvicorn's default HTTP parser (httptools) has no header limit and no header timeout: a 200 MB header was read to
the end, and a client sending one byte a second kept a connection and a parser busy for ever (slowloris). This
protocol (uvicorn's h11 protocol with the limits in front) answers

- 431 when the head exceeds ``max_head_bytes`` (default 64 KiB) or ``max_headers`` (default 100) lines,
- 408 when the head is not complete ``head_timeout`` seconds (default 10) after the connection opened or the
  previous response ended, and closes a connection whose request body stalls for ``body_idle_timeout`` seconds,

without reading further: a huge or slow request costs one connection's buffer, never the event loop's time, so
other requests (the health check) are answered meanwhile.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from kouiki.settings import Settings

HEAD_END = b"\r\n\r\n"
DRAIN_SECONDS = 1.0   # after a refusal, keep discarding input this long so the client can read the answer


@dataclass(frozen=True)
class Limits:
    max_head_bytes: int = 64 * 1024
    max_headers: int = 100
    head_timeout: float = 10.0
    body_idle_timeout: float = 60.0

    @classmethod
    def from_env(cls) -> Limits:
        """KOUIKI_MAX_HEADER_KB, KOUIKI_MAX_HEADERS, KOUIKI_HEADER_TIMEOUT_S, KOUIKI_BODY_IDLE_TIMEOUT_S
        (``settings.http``; their defaults are this class's, tests/test_settings.py keeps them equal)."""
        http = Settings.from_env().http
        return cls(max_head_bytes=int(http.max_header_kb * 1024), max_headers=http.max_headers,
                   head_timeout=http.header_timeout_s, body_idle_timeout=http.body_idle_timeout_s)


def _answer(status: int, reason: str, ja: str, en: str) -> bytes:
    body = f"{ja}\n{en}\n".encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode("ascii") + body


TOO_LARGE = _answer(431, "Request Header Fields Too Large", "リクエストヘッダーが大きすぎるか多すぎます",
                    "request headers too large or too many")
TOO_SLOW = _answer(408, "Request Timeout", "リクエストの送信に時間がかかりすぎました", "request took too long to send")


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the head limits above in front of the parser."""

    limits = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head = bytearray()            # bytes of the current request head seen so far
        self._in_head = True
        self._refused = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return                           # draining until closed
        self._last_data = self.loop.time()
        if self._in_head and not self._check_head(data):
            return
        super().data_received(data)

    def _check_head(self, data: bytes) -> bool:
        """Count the head's bytes and lines; False (and the connection answered) when over a limit."""
        seen = len(self._head)
        self._head += data[: self.limits.max_head_bytes + len(HEAD_END) - seen]
        end = self._head.find(HEAD_END)
        head = self._head if end < 0 else self._head[:end]
        if len(head) > self.limits.max_head_bytes or head.count(b"\r\n") > self.limits.max_headers:
            self._refuse(TOO_LARGE, "header limit")
            return False
        if end >= 0:
            self._in_head = False
            self._head.clear()
            self._arm_body_timer()
        return True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # keep-alive: the next request's head starts now, with its own time limit
        self._in_head = True
        self._head.clear()
        self._arm_head_timer()

    # timers ---------------------------------------------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_head_timer(self) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._in_head and not self._refused and not self.transport.is_closing():
            if self._head:
                self._refuse(TOO_SLOW, "header timeout")
            else:                            # an idle keep-alive connection: just close it
                self.transport.close()

    def _arm_body_timer(self) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(self.limits.body_idle_timeout, self._body_check)

    def _body_check(self) -> None:
        """Close a connection whose request body has not moved for body_idle_timeout seconds (the app sees a
        disconnect and drops the partial upload)."""
        self._timer = None
        if self._in_head or self.transport.is_closing():
            return
        if self.conn.their_state != h11.SEND_BODY:
            self._arm_body_timer()          # body complete: the app is working; check again later
            return
        idle = self.loop.time() - self._last_data
        if idle >= self.limits.body_idle_timeout:
            self.logger.warning("closing a connection whose request body stalled for %.0f s", idle)
            self.transport.close()
        else:
            self._timer = self.loop.call_later(self.limits.body_idle_timeout - idle, self._body_check)

    def _refuse(self, answer: bytes, why: str) -> None:
        self._refused = True
        self._cancel_timer()
        self.logger.warning("refused a request: %s", why)
        self.transport.write(answer)
        # read and discard a little longer, so a client still sending can read the answer instead of a reset
        self.loop.call_later(DRAIN_SECONDS, self.transport.close)


def protocol_with(limits: Limits) -> type[LimitedH11Protocol]:
    """The protocol class for uvicorn's ``http=`` with these limits (uvicorn builds one per connection)."""

    class KouikiHTTPProtocol(LimitedH11Protocol):
        pass

    KouikiHTTPProtocol.limits = limits
    return KouikiHTTPProtocol


def uvicorn_options(limits: Limits) -> dict[str, Any]:
    """uvicorn.run options that apply ``limits`` (h11 itself must accept a head that large)."""
    return {"http": protocol_with(limits), "h11_max_incomplete_event_size": limits.max_head_bytes + 1024}
